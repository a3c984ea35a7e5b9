//! The engine's share of the inline bulk-TCP path, measured without a kernel:
//! what `sluice run` does per queued packet besides the queue's own work.
//!
//! `make bench-inline` measures the real thing on the netns testbed, but on
//! two shared cores a single figure there varies by ±15%; this bench isolates
//! the part sluice controls, so a change to the engine shows up in one run.
//!
//! The traffic is shaped like the inline benchmark's: one TCP connection
//! (handshake with MSS, SACK, timestamps and window scale), 1448-byte
//! segments with the timestamp option, and the receiver's ACK every second
//! segment, acknowledging data sent `--lag` segments earlier (the packets
//! still waiting in the queue when the ACK was queued). Packets are handed to
//! the engine in batches of 32, each first copied into a buffer of its own as
//! the queue driver does. Modes, interleaved per round, medians reported:
//!
//! 1. baseline: the driver's copy of each packet, and nothing else;
//! 2. the engine with no rules;
//! 3. the engine with the `receive_data` rule of `make bench-inline`;
//! 4. the same with `--stream-depth 1048576` (rules see the first MiB of
//!    each direction; the rest only goes through the tracker).
//!
//! Each mode also runs "cold": 4 MiB are written between batches, about what
//! the kernel's forwarding of a batch does to the caches inline.
//!
//! `cargo bench --bench inline_bulk [-- --segments N --lag L --rounds R --only MODE]`

use std::error::Error;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::alert::AlertSink;
use sluice::config::{EngineConfig, RulesConfig};
use sluice::engine::{ChecksumState, Emitted, Engine, Output, Packet, Verdict};
use sluice::inspect::{Inspector, NoRules};
use sluice::rules::{LuaRules, RuleSinks};
use sluice::stats::Stats;
use sluice::time::Timestamp;
use sluice::wire::forge::TcpSegment;
use sluice::wire::{tcp_flags, SeqNumber};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The same allocator as `sluice` (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Payload of a full segment with the timestamp option (1500-byte MTU).
const MSS: usize = 1448;
/// Packets handed to the engine at once, as `sluice run` does.
const BATCH: usize = 32;
/// Bytes written between batches in the cold modes.
const POLLUTION: usize = 4 << 20;
/// The rule of `make bench-inline` (tests/netns/rules/bench_receive_data.lua).
const RULE: &str = include_str!("../tests/netns/rules/bench_receive_data.lua");

struct Options {
    segments: usize,
    lag: usize,
    rounds: usize,
    /// Run only this mode (1-4), warm only: for profilers.
    only: Option<usize>,
}

impl Options {
    /// Our flags; anything else (cargo passes `--bench`) is ignored.
    fn from_args() -> Self {
        let mut o = Options { segments: 60_000, lag: 400, rounds: 5, only: None };
        let args: Vec<String> = std::env::args().collect();
        for pair in args.windows(2) {
            let value = pair[1].parse::<usize>().ok().filter(|&v| v > 0);
            match (pair[0].as_str(), value) {
                ("--segments", Some(v)) => o.segments = v,
                ("--lag", Some(v)) => o.lag = v,
                ("--rounds", Some(v)) => o.rounds = v,
                ("--only", Some(v)) => o.only = Some(v),
                _ => {}
            }
        }
        o
    }
}

/// TCP timestamp option (NOP, NOP, TS) with the given value.
fn ts_option(val: u32) -> [u8; 12] {
    let v = val.to_be_bytes();
    [1, 1, 8, 10, v[0], v[1], v[2], v[3], 0, 0, 0, 1]
}

/// The packets of one bulk transfer, client to server, in queue order.
fn bulk_stream(o: &Options) -> Vec<Vec<u8>> {
    let client = IpAddr::V4(Ipv4Addr::new(10, 200, 1, 1));
    let server = IpAddr::V4(Ipv4Addr::new(10, 200, 2, 2));
    let seg = |from_client: bool, seq: SeqNumber, ack: SeqNumber, flags: u8, opts: &[u8], payload: &[u8]| {
        // 64 KiB unscaled in the handshake, 1 MiB (8,192 << 7) after it.
        let window = if flags & tcp_flags::SYN != 0 { 65_535 } else { 8_192 };
        let mut s = if from_client {
            TcpSegment::new(client, 40_000, server, 9_000)
        } else {
            TcpSegment::new(server, 9_000, client, 40_000)
        };
        s.seq = seq;
        s.ack = ack;
        s.flags = flags;
        s.options = opts;
        s.payload = payload;
        s.window = window;
        s.build()
    };
    // Text the rule's pattern does not occur in.
    let text: Vec<u8> =
        b"GET /index.html HTTP/1.1\r\nHost: bench\r\nAccept: */*\r\n\r\n<div>the quick brown fox</div>\n"
            .iter()
            .copied()
            .cycle()
            .take(MSS * 7)
            .collect();
    // MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
    let syn_opts = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
    let mut c = SeqNumber(0x1234_0000);
    let mut s = SeqNumber(0x9876_0000);
    let mut packets = vec![seg(true, c, SeqNumber(0), tcp_flags::SYN, &syn_opts, &[])];
    c = c + 1;
    packets.push(seg(false, s, c, tcp_flags::SYN | tcp_flags::ACK, &syn_opts, &[]));
    s = s + 1;
    packets.push(seg(true, c, s, tcp_flags::ACK, &ts_option(1), &[]));
    let first = c;
    for i in 0..o.segments {
        let at = (i * 131) % (text.len() - MSS);
        packets.push(seg(true, c, s, tcp_flags::ACK, &ts_option(i as u32), &text[at..at + MSS]));
        c = c + MSS as u32;
        if i % 2 == 1 {
            // The lag grows to its full size as the sender's window opens.
            let acked = first + ((i + 1 - o.lag.min(i / 2)) * MSS) as u32;
            packets.push(seg(false, s, acked, tcp_flags::ACK, &ts_option(i as u32), &[]));
        }
    }
    packets
}

/// One pass: every packet copied as the driver does, then (unless
/// `engine` is None) through the engine in batches; checks the verdicts.
fn pass<I: Inspector>(stream: &[Vec<u8>], engine: Option<Engine<I>>, cold: bool) -> BenchResult<Duration> {
    let mut engine = engine;
    let mut out = Output::new();
    let mut pollution = vec![0u8; if cold { POLLUTION } else { 0 }];
    let mut accepted = 0usize;
    let mut elapsed = Duration::ZERO;
    for (b, chunk) in stream.chunks(BATCH).enumerate() {
        if cold {
            // Outside the timed part: what the kernel does between batches.
            pollution.iter_mut().step_by(64).for_each(|x| *x = x.wrapping_add(1));
            black_box(&pollution);
        }
        let start = Instant::now();
        let copies: Vec<Vec<u8>> = chunk.iter().map(|p| p.to_vec()).collect();
        match engine.as_mut() {
            Some(engine) => {
                let base = (b * BATCH) as u64;
                let pkts: Vec<Packet<'_>> = copies
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Packet {
                        id: base + i as u64,
                        data: p,
                        time: Timestamp(1_700_000_000_000_000 + (base + i as u64) * 5),
                        checksum: ChecksumState::Unchecked,
                    })
                    .collect();
                engine.process_batch(&pkts, &mut out);
                accepted +=
                    out.items.iter().filter(|e| matches!(e, Emitted::Verdict(_, Verdict::Accept))).count();
                out.clear();
            }
            None => accepted += black_box(&copies).len(),
        }
        elapsed += start.elapsed();
    }
    if accepted != stream.len() {
        return Err(format!("{accepted} of {} packets accepted", stream.len()).into());
    }
    Ok(elapsed)
}

fn lua_engine(stream_depth: u64) -> BenchResult<Engine<LuaRules>> {
    let stats = Arc::new(Stats::new());
    let sinks = RuleSinks { alerts: AlertSink::memory().0, stats: stats.clone() };
    let rules = LuaRules::from_source("bench_receive_data.lua", RULE, &RulesConfig::default(), sinks)?;
    let cfg = EngineConfig { stream_depth, ..EngineConfig::default() };
    Ok(Engine::with_stats(cfg, rules, stats))
}

type Mode = (&'static str, fn(&[Vec<u8>], bool) -> BenchResult<Duration>);

fn modes() -> Vec<Mode> {
    vec![
        ("baseline: the driver's packet copy", |s, cold| pass::<NoRules>(s, None, cold)),
        ("engine, no rules", |s, cold| pass(s, Some(Engine::new(EngineConfig::default(), NoRules)), cold)),
        ("engine, receive_data rule", |s, cold| pass(s, Some(lua_engine(0)?), cold)),
        ("engine, rule, --stream-depth 1 MiB", |s, cold| pass(s, Some(lua_engine(1 << 20)?), cold)),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> BenchResult<()> {
    let o = Options::from_args();
    let stream = bulk_stream(&o);
    println!(
        "inline-shaped bulk stream: {} packets ({} segments of {MSS} B, ACK lag {} segments), batches of {BATCH}, {} rounds",
        stream.len(),
        o.segments,
        o.lag,
        o.rounds
    );
    let modes = modes();
    if let Some((name, run)) = o.only.and_then(|m| modes.get(m - 1)) {
        let t = run(&stream, false)?;
        println!("{name}: {:.0} ns/packet", t.as_nanos() as f64 / stream.len() as f64);
        return Ok(());
    }
    let mut ns = vec![vec![Vec::new(); 2]; modes.len()];
    for _ in 0..o.rounds {
        for cold in [false, true] {
            for (m, (_, run)) in modes.iter().enumerate() {
                let t = run(&stream, cold)?;
                ns[m][usize::from(cold)].push(t.as_nanos() as f64 / stream.len() as f64);
            }
        }
    }
    println!("\n{:<36} {:>12} {:>12} {:>14}", "mode", "ns/packet", "cold caches", "cold - base");
    let base_cold = median(ns[0][1].clone());
    for (m, (name, _)) in modes.iter().enumerate() {
        let warm = median(ns[m][0].clone());
        let cold = median(ns[m][1].clone());
        println!("{name:<36} {warm:>12.0} {cold:>12.0} {:>14.0}", cold - base_cold);
    }
    println!("(medians; 'cold' writes {} MiB between batches, outside the timing)", POLLUTION >> 20);
    Ok(())
}
