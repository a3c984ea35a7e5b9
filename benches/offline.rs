//! Offline throughput: how fast sluice gets through a pcap, beside a baseline
//! measured in the same run on the same file.
//!
//! The capture is generated in memory with `sluice::wire::forge`: many
//! concurrent TCP connections (2,000 by default), interleaved at random, each
//! with a handshake, a few request/response exchanges (responses in 1448-byte
//! segments with a short last one, delayed ACKs in the reverse direction) and a
//! FIN close. It is written to a raw-IP pcap in a temporary directory, then read
//! back once per mode and round:
//!
//! 1. baseline: reading the pcap records and decoding each packet
//!    (`pcap-file` + `sluice::wire::decode`), the floor any mode pays;
//! 2. the engine with no rules (`NoRules`): every packet through `Engine::process`;
//! 3. the engine with a Lua `receive_data` rule searching every chunk
//!    (`data:asstring():find(...)`);
//! 4. the engine with a streamed rule (`options = { streamed = true }`)
//!    searching the stream through Haka's blocking iterator;
//! 5. the engine with a streamed `regexp/pcre` rule (`re:match(iter)`).
//!
//! Beside each rule mode it prints the rule's cost per MB of stream: its
//! time over the no-rules engine's, per MB of TCP payload.
//!
//! Every mode reads the file the same way (buffered, from the page cache), so
//! the ratio to the baseline is the cost of sluice itself. Each mode runs
//! `--rounds` times, interleaved with the others so drift hits all alike; the
//! median is reported.
//!
//! `cargo bench --bench offline [-- --connections N --megabytes M --rounds R]`

use std::error::Error;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufReader, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;
use sluice::alert::AlertSink;
use sluice::config::EngineConfig;
use sluice::config::RulesConfig;
use sluice::engine::{ChecksumState, Emitted, Engine, Output, Packet};
use sluice::inspect::{Inspector, NoRules};
use sluice::rules::{LuaRules, RuleSinks};
use sluice::stats::Stats;
use sluice::time::Timestamp;
use sluice::wire::forge::TcpSegment;
use sluice::wire::{decode, tcp_flags, SeqNumber};
use std::sync::Arc;

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// A full-sized segment's payload (1500-byte MTU, TCP timestamps).
const MSS: usize = 1448;
/// The pcap starts here (packet time), 20 µs between packets.
const START_SECS: u64 = 1_700_000_000;
const PACKET_GAP_MICROS: u64 = 20;
/// Read buffer for the pcap, as the offline driver would use.
const READ_BUFFER: usize = 1 << 20;

/// The rule of mode 3: search every chunk of stream data, as an IDS rule would.
const LUA_SEARCH_RULE: &str = r#"
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if data:asstring():find("attack", 1, true) then
      haka.alert{ description = "attack string", severity = "high" }
    end
  end
}
"#;

/// The rule of mode 4: the same search as a streamed rule, keeping the
/// tail of each run of bytes so a pattern split across segments is found.
const LUA_STREAMED_RULE: &str = r#"
require("protocol/tcp_connection")
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  options = { streamed = true },
  eval = function (flow, iter, dir)
    local tail = ""
    for sub in iter:foreach_available() do
      local text = tail .. sub:asstring()
      if text:find("attack", 1, true) then
        haka.alert{ description = "attack string", severity = "high" }
      end
      tail = text:sub(-5)
    end
  end
}
"#;

/// The rule of mode 5: the same search as a streamed `regexp/pcre` rule.
const LUA_STREAMED_REGEXP_RULE: &str = r#"
require("protocol/tcp_connection")
local rem = require("regexp/pcre")
local re = rem.re:compile("attack")
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  options = { streamed = true },
  eval = function (flow, iter, dir)
    while re:match(iter) do
      haka.alert{ description = "attack string", severity = "high" }
    end
  end
}
"#;

struct Options {
    connections: usize,
    megabytes: usize,
    rounds: usize,
}

impl Options {
    /// Our flags; anything else (cargo passes `--bench`) is ignored.
    fn from_args() -> Self {
        let mut o = Options { connections: 2_000, megabytes: 150, rounds: 5 };
        let args: Vec<String> = std::env::args().collect();
        for pair in args.windows(2) {
            let value = pair[1].parse::<usize>().ok().filter(|&v| v > 0);
            match (pair[0].as_str(), value) {
                ("--connections", Some(v)) => o.connections = v,
                ("--megabytes", Some(v)) => o.megabytes = v,
                ("--rounds", Some(v)) => o.rounds = v,
                _ => {}
            }
        }
        o
    }
}

/// xorshift64*: deterministic traffic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [lo, hi].
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// One TCP connection's packets, in the order its two ends send them.
struct Connection {
    packets: Vec<Vec<u8>>,
    next: usize,
}

/// Builds the packets of connection `index`: handshake, `exchanges`
/// request/response pairs carrying about `response_bytes` in all, FIN close.
fn connection(index: usize, response_bytes: usize, rng: &mut Rng, text: &[u8]) -> Connection {
    let client = IpAddr::V4(Ipv4Addr::new(
        10,
        1 + (index / 60_000) as u8,
        (index / 250 % 240) as u8,
        (index % 250 + 1) as u8,
    ));
    let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + (index % 16) as u8));
    let client_port = 10_000 + (index % 50_000) as u16;
    let mut c_seq = SeqNumber(rng.next() as u32);
    let mut s_seq = SeqNumber(rng.next() as u32);
    let mut packets = Vec::new();
    let mut emit =
        |from_client: bool, seq: SeqNumber, ack: SeqNumber, flags: u8, opts: &[u8], payload: &[u8]| {
            let mut s = if from_client {
                TcpSegment::new(client, client_port, server, 80)
            } else {
                TcpSegment::new(server, 80, client, client_port)
            };
            s.seq = seq;
            s.ack = ack;
            s.flags = flags;
            s.options = opts;
            s.payload = payload;
            s.window = 502;
            packets.push(s.build());
        };
    // MSS 1460, SACK permitted, window scale 7.
    let syn_options = [2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7];
    emit(true, c_seq, SeqNumber(0), tcp_flags::SYN, &syn_options, &[]);
    c_seq = c_seq + 1;
    emit(false, s_seq, c_seq, tcp_flags::SYN | tcp_flags::ACK, &syn_options, &[]);
    s_seq = s_seq + 1;
    emit(true, c_seq, s_seq, tcp_flags::ACK, &[], &[]);

    let exchanges = rng.range(1, 6);
    let per_exchange = response_bytes / exchanges;
    let slice = |rng: &mut Rng, len: usize| {
        let at = rng.range(0, text.len() - len.min(text.len()));
        &text[at..at + len.min(text.len())]
    };
    for _ in 0..exchanges {
        let request_len = rng_len(rng, 120, 700);
        let request = slice(rng, request_len);
        emit(true, c_seq, s_seq, tcp_flags::PSH | tcp_flags::ACK, &[], request);
        c_seq = c_seq + request.len() as u32;
        let mut left = rng_len(rng, per_exchange / 2, per_exchange * 3 / 2).max(1);
        let mut unacked = 0;
        while left > 0 {
            let len = left.min(MSS);
            let last = len == left;
            let flags = if last { tcp_flags::PSH | tcp_flags::ACK } else { tcp_flags::ACK };
            let payload = slice(rng, len);
            emit(false, s_seq, c_seq, flags, &[], payload);
            s_seq = s_seq + len as u32;
            left -= len;
            unacked += 1;
            // Delayed ACKs: every second segment, and the last.
            if unacked == 2 || last {
                emit(true, c_seq, s_seq, tcp_flags::ACK, &[], &[]);
                unacked = 0;
            }
        }
    }
    emit(true, c_seq, s_seq, tcp_flags::FIN | tcp_flags::ACK, &[], &[]);
    c_seq = c_seq + 1;
    emit(false, s_seq, c_seq, tcp_flags::FIN | tcp_flags::ACK, &[], &[]);
    s_seq = s_seq + 1;
    emit(true, c_seq, s_seq, tcp_flags::ACK, &[], &[]);
    Connection { packets, next: 0 }
}

fn rng_len(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    rng.range(lo, hi.max(lo))
}

/// Text-like payload bytes the rule's pattern does not occur in.
fn corpus(rng: &mut Rng) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the ",
        "quick ",
        "brown ",
        "fox ",
        "jumps ",
        "over ",
        "lazy ",
        "dog ",
        "GET ",
        "HTTP/1.1\r\n",
        "<div>",
        "0123",
    ];
    let mut text = Vec::with_capacity(1 << 18);
    while text.len() < 1 << 18 {
        text.extend_from_slice(WORDS[rng.next() as usize % WORDS.len()].as_bytes());
    }
    text
}

/// Writes the interleaved capture; returns (packets, IP bytes, TCP payload bytes).
fn write_capture(path: &Path, o: &Options) -> BenchResult<(u64, u64, u64)> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let text = corpus(&mut rng);
    let response_bytes = o.megabytes * 1_000_000 / o.connections;
    let mut live: Vec<Connection> =
        (0..o.connections).map(|i| connection(i, response_bytes, &mut rng, &text)).collect();
    let header = PcapHeader { datalink: DataLink::RAW, snaplen: 65_535, ..Default::default() };
    let mut writer =
        PcapWriter::with_header(BufWriter::with_capacity(READ_BUFFER, File::create(path)?), header)?;
    let (mut packets, mut bytes, mut payload) = (0u64, 0u64, 0u64);
    // Interleave: each packet comes from a connection picked at random among
    // those with packets left, so all of them are open at once.
    while !live.is_empty() {
        let pick = rng.next() as usize % live.len();
        let conn = &mut live[pick];
        let data = std::mem::take(&mut conn.packets[conn.next]);
        conn.next += 1;
        if conn.next == conn.packets.len() {
            live.swap_remove(pick);
        }
        let time = Duration::from_micros(START_SECS * 1_000_000 + packets * PACKET_GAP_MICROS);
        writer.write_packet(&PcapPacket::new(time, data.len() as u32, &data))?;
        packets += 1;
        bytes += data.len() as u64;
        payload += decode(&data).map_or(0, |d| d.payload().len() as u64);
    }
    writer.into_writer().flush()?;
    Ok((packets, bytes, payload))
}

/// What one pass over the capture saw.
struct Pass {
    packets: u64,
    bytes: u64,
    elapsed: Duration,
}

fn open(path: &Path) -> BenchResult<PcapReader<BufReader<File>>> {
    Ok(PcapReader::new(BufReader::with_capacity(READ_BUFFER, File::open(path)?))?)
}

/// Mode 1: read and decode every record.
fn baseline(path: &Path) -> BenchResult<Pass> {
    let start = Instant::now();
    let mut reader = open(path)?;
    let (mut packets, mut bytes, mut decoded) = (0u64, 0u64, 0u64);
    while let Some(record) = reader.next_packet() {
        let record = record?;
        if let Ok(d) = decode(&record.data) {
            black_box(&d);
            decoded += 1;
        }
        packets += 1;
        bytes += record.data.len() as u64;
    }
    if decoded != packets {
        return Err(format!("{} of {packets} packets did not decode", packets - decoded).into());
    }
    Ok(Pass { packets, bytes, elapsed: start.elapsed() })
}

/// Modes 2 and 3: every record through the engine; checks that each packet
/// got exactly one verdict.
fn through_engine<I: Inspector>(path: &Path, mut engine: Engine<I>) -> BenchResult<Pass> {
    let start = Instant::now();
    let mut reader = open(path)?;
    let mut out = Output::new();
    let (mut packets, mut bytes, mut verdicts) = (0u64, 0u64, 0u64);
    let mut now = Timestamp::default();
    while let Some(record) = reader.next_packet() {
        let record = record?;
        now = Timestamp::from_duration(record.timestamp);
        let pkt = Packet { id: packets, data: &record.data, time: now, checksum: ChecksumState::Unchecked };
        engine.process(pkt, &mut out);
        verdicts += count_verdicts(&out);
        out.clear();
        packets += 1;
        bytes += record.data.len() as u64;
    }
    engine.finish(now, &mut out);
    verdicts += count_verdicts(&out);
    let elapsed = start.elapsed();
    if verdicts != packets {
        return Err(format!("{verdicts} verdicts for {packets} packets").into());
    }
    Ok(Pass { packets, bytes, elapsed })
}

fn count_verdicts(out: &Output) -> u64 {
    out.items.iter().filter(|e| matches!(e, Emitted::Verdict(..))).count() as u64
}

/// An engine with the rules of `source`, counting into the engine's stats.
fn lua_engine(source: &str) -> BenchResult<Engine<LuaRules>> {
    let stats = Arc::new(Stats::new());
    let sinks = RuleSinks { alerts: AlertSink::memory().0, stats: stats.clone() };
    let rules = LuaRules::from_source("bench-rule.lua", source, &RulesConfig::default(), sinks)?;
    Ok(Engine::with_stats(EngineConfig::default(), rules, stats))
}

type Mode = (&'static str, fn(&Path) -> BenchResult<Pass>);

fn modes() -> Vec<Mode> {
    vec![
        ("baseline: read + decode", baseline),
        ("engine, no rules", |p| through_engine(p, Engine::new(EngineConfig::default(), NoRules))),
        ("engine, asstring+find rule", |p| through_engine(p, lua_engine(LUA_SEARCH_RULE)?)),
        ("engine, streamed find rule", |p| through_engine(p, lua_engine(LUA_STREAMED_RULE)?)),
        ("engine, streamed regexp rule", |p| through_engine(p, lua_engine(LUA_STREAMED_REGEXP_RULE)?)),
    ]
}

fn main() -> BenchResult<()> {
    let o = Options::from_args();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("offline-bench.pcap");
    let t = Instant::now();
    let (packets, bytes, payload) = write_capture(&path, &o)?;
    println!(
        "capture: {} connections, {packets} packets, {:.1} MB of IP packets (mean {} B), {:.1} MB of stream, \
         written in {:.1} s",
        o.connections,
        bytes as f64 / 1e6,
        bytes / packets.max(1),
        payload as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let modes = modes();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    for _ in 0..o.rounds {
        for (i, (name, run)) in modes.iter().enumerate() {
            let pass = run(&path)?;
            if (pass.packets, pass.bytes) != (packets, bytes) {
                return Err(format!("{name}: saw {} packets / {} bytes", pass.packets, pass.bytes).into());
            }
            times[i].push(pass.elapsed);
        }
    }

    println!("median of {} rounds, one core:", o.rounds);
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>12} {:>16}",
        "mode", "seconds", "Mpkt/s", "Gbit/s", "rel. speed", "rule ms/MB stream"
    );
    let medians: Vec<f64> = times.iter_mut().map(|t| median(t).as_secs_f64()).collect();
    let base = medians.first().copied().unwrap_or(1.0);
    let no_rules = medians.get(1).copied().unwrap_or(base);
    for (i, ((name, _), secs)) in modes.iter().zip(&medians).enumerate() {
        // The rule's own cost: its time over the no-rules engine's, per MB of stream.
        let per_mb = if i >= 2 {
            format!("{:.3}", (secs - no_rules) * 1e3 / (payload as f64 / 1e6))
        } else {
            "-".into()
        };
        println!(
            "{:<30} {:>10.3} {:>10.3} {:>10.2} {:>11.2}x {:>16}",
            name,
            secs,
            packets as f64 / secs / 1e6,
            bytes as f64 * 8.0 / secs / 1e9,
            base / secs,
            per_mb
        );
    }
    Ok(())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}
