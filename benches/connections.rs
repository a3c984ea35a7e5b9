//! Cost per connection as the number of connections grows: short HTTP-like
//! connections (handshake, request, response, FIN exchange: 8 packets), one
//! after the other with a few open at a time, through the engine:
//!
//! 1. with no rules (the baseline of each row);
//! 2. with a rule keeping state in flow fields (`flow.n`, `flow.buf`);
//! 3. with a rule keeping state in a table keyed by the flow object (a weak
//!    table, also cleared at `end_connection`, as a Haka rule does).
//!
//! For each count (50k, 500k and 5M by default) it prints the time per
//! connection of each, and at the end each curve's spread: the slowest point
//! over the fastest. Flat means the spread stays near 1. The engine runs
//! with the default configuration (a million flows), so at 5M the table
//! holds the ~750,000 connections of the last closing timeout and expires
//! the older ones as it goes.
//!
//! Times are the thread's CPU time (the bench machines are shared), the
//! fastest of `--repeat` runs (3 by default).
//!
//! `cargo bench --bench connections [-- --counts 50000,500000,5000000] [--curves none,fields,keyed] [--repeat 3]`

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use sluice::alert::AlertSink;
use sluice::config::{EngineConfig, RulesConfig};
use sluice::engine::{ChecksumState, Engine, Output, Packet};
use sluice::inspect::{Inspector, NoRules};
use sluice::rules::{LuaRules, RuleSinks};
use sluice::stats::Stats;
use sluice::time::Timestamp;
use sluice::wire::forge::TcpSegment;
use sluice::wire::{tcp_flags, SeqNumber};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The allocator `sluice` runs on (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FLOW_FIELDS: &str = r#"
require("protocol/tcp_connection")
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    flow.n = (flow.n or 0) + 1
    flow.buf = data:asstring():sub(1, 16)
  end
}
"#;

const FLOW_KEYED_TABLE: &str = r#"
require("protocol/tcp_connection")
local seen = setmetatable({}, { __mode = "k" })
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    local s = seen[flow]
    if not s then s = { n = 0 } seen[flow] = s end
    s.n = s.n + 1
    s.last = data:asstring():sub(1, 16)
  end
}
haka.rule {
  on = haka.dissectors.tcp_connection.events.end_connection,
  eval = function (flow) seen[flow] = nil end
}
"#;

const REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// The 8 packets of connection `i` (a distinct 4-tuple for 16M connections).
fn connection(i: u64, out: &mut Vec<Vec<u8>>) {
    let client = IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8));
    let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let port = 1024 + (i >> 24) as u16;
    let (c0, s0) = (SeqNumber(1000), SeqNumber(5000));
    let mut seg = |up: bool, seq: SeqNumber, ack: SeqNumber, flags: u8, payload: &[u8]| {
        let mut s = if up {
            TcpSegment::new(client, port, server, 80)
        } else {
            TcpSegment::new(server, 80, client, port)
        };
        s.seq = seq;
        s.ack = ack;
        s.flags = flags;
        s.payload = payload;
        out.push(s.build());
    };
    let (a, pa, fa) = (tcp_flags::ACK, tcp_flags::PSH | tcp_flags::ACK, tcp_flags::FIN | tcp_flags::ACK);
    let c1 = c0 + 1;
    let s1 = s0 + 1;
    let c2 = c1 + REQUEST.len() as u32;
    let s2 = s1 + RESPONSE.len() as u32;
    seg(true, c0, SeqNumber(0), tcp_flags::SYN, b"");
    seg(false, s0, c1, tcp_flags::SYN | a, b"");
    seg(true, c1, s1, a, b"");
    seg(true, c1, s1, pa, REQUEST);
    seg(false, s1, c2, pa, RESPONSE);
    seg(true, c2, s2, fa, b"");
    seg(false, s2, c2 + 1, fa, b"");
    seg(true, c2 + 1, s2 + 1, a, b"");
}

/// CPU time this thread has used. The machines these benches run on are
/// shared: wall time would count the time other processes held the CPU.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU nanoseconds per connection for `count` connections through `engine`.
fn run<I: Inspector>(mut engine: Engine<I>, count: u64) -> f64 {
    let mut out = Output::new();
    let mut packets = Vec::with_capacity(8);
    let mut id = 0u64;
    let start = thread_cpu();
    for i in 0..count {
        packets.clear();
        connection(i, &mut packets);
        for p in &packets {
            // 10 µs of packet time per packet: closed flows linger their
            // closing timeout (60 s, some 750,000 connections), as on a busy
            // gateway. The clock is advanced before each packet, as
            // `sluice pcap` does, so they expire on time.
            let time = Timestamp(1_700_000_000_000_000 + id * 10);
            engine.tick(time, &mut out);
            engine.process(Packet { id, data: p, time, checksum: ChecksumState::Unchecked }, &mut out);
            id += 1;
            out.clear();
        }
    }
    // The end of the capture: the flows still lingering are retired (and
    // freed) too, so every point pays for each connection's whole life.
    engine.finish(Timestamp(1_700_000_000_000_000 + id * 10), &mut out);
    let elapsed = thread_cpu() - start;
    elapsed.as_nanos() as f64 / count as f64
}

fn lua(source: &str) -> BenchResult<Engine<LuaRules>> {
    let stats = Arc::new(Stats::new());
    let sinks = RuleSinks { alerts: AlertSink::memory().0, stats: stats.clone() };
    let rules = LuaRules::from_source("bench-connections.lua", source, &RulesConfig::default(), sinks)?;
    Ok(Engine::with_stats(EngineConfig::default(), rules, stats))
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|p| p[0] == name).map(|p| p[1].clone())
}

fn counts() -> Vec<u64> {
    match arg("--counts") {
        Some(list) => list.split(',').filter_map(|c| c.replace('_', "").parse().ok()).collect(),
        None => vec![50_000, 500_000, 5_000_000],
    }
}

/// Runs of each point (`--repeat R`, default 3): the fastest is kept, as
/// the one least disturbed by other processes.
fn repeats() -> usize {
    arg("--repeat").and_then(|r| r.parse().ok()).unwrap_or(3).max(1)
}

/// The fastest of `repeats()` runs of `point`.
fn fastest(point: impl Fn() -> BenchResult<f64>) -> BenchResult<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats() {
        best = best.min(point()?);
    }
    Ok(best)
}

/// The curves to run (`--curves none,fields,keyed`; all by default).
fn wanted(curve: &str) -> bool {
    arg("--curves").is_none_or(|list| list.split(',').any(|c| c == curve))
}

fn main() -> BenchResult<()> {
    // Building packets is part of every row alike; its cost is printed too.
    let counts = counts();
    println!("short connections (8 packets each) through the engine, CPU ns per connection:");
    println!(
        "{:>10} {:>12} {:>12} {:>14} {:>14}",
        "connections", "build only", "no rules", "flow fields", "flow-keyed table"
    );
    let mut curves: [Vec<f64>; 3] = Default::default();
    for &n in &counts {
        let build = {
            let start = thread_cpu();
            let mut packets = Vec::with_capacity(8);
            for i in 0..n {
                packets.clear();
                connection(i, &mut packets);
                std::hint::black_box(&packets);
            }
            (thread_cpu() - start).as_nanos() as f64 / n as f64
        };
        let skip = f64::NAN;
        let none = if wanted("none") {
            fastest(|| Ok(run(Engine::new(EngineConfig::default(), NoRules), n)))?
        } else {
            skip
        };
        let fields = if wanted("fields") { fastest(|| Ok(run(lua(FLOW_FIELDS)?, n)))? } else { skip };
        let keyed = if wanted("keyed") { fastest(|| Ok(run(lua(FLOW_KEYED_TABLE)?, n)))? } else { skip };
        println!("{n:>10} {build:>12.0} {none:>12.0} {fields:>14.0} {keyed:>14.0}");
        for (c, v) in curves.iter_mut().zip([none, fields, keyed]) {
            c.push(v);
        }
    }
    for (name, c) in ["no rules", "flow fields", "flow-keyed table"].iter().zip(&curves) {
        let lo = c.iter().copied().filter(|v| !v.is_nan()).fold(f64::INFINITY, f64::min);
        let hi = c.iter().copied().filter(|v| !v.is_nan()).fold(0.0, f64::max);
        println!("{name:<18} spread {:.2} (slowest / fastest point)", hi / lo);
    }
    Ok(())
}
