//! Memory per idle established TCP flow: N handshakes (SYN, SYN-ACK, ACK,
//! no data) run offline through the engine, every flow left established
//! and idle in the table, then the process's resident memory and live heap
//! bytes are compared with an empty-table baseline measured in the same
//! run: the same engine, built with the same `max_flows`, before any flow.
//!
//! Each variant runs in a process of its own (this program starts itself
//! again), so that memory one variant freed cannot hide in the next one's
//! baseline:
//!
//! * `engine`: no rules (the engine's own cost per flow);
//! * `rule`: a `new_connection` rule that keeps a flow field, so that every
//!   flow also has its Lua flow object and state table.
//!
//! `cargo bench --bench flow_memory [-- --flows 1000000 --variants engine,rule]`
//! (or `SLUICE_BENCH_FLOWS=N`). The default is 1,000,000 flows.

use std::alloc::{GlobalAlloc, Layout};
use std::error::Error;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sluice::alert::AlertSink;
use sluice::config::{EngineConfig, RulesConfig};
use sluice::engine::{flow_layout, ChecksumState, Engine, Output, Packet};
use sluice::inspect::{Inspector, NoRules};
use sluice::rules::{LuaRules, RuleSinks};
use sluice::stats::{Counter, Stats};
use sluice::time::Timestamp;
use sluice::wire::forge::TcpSegment;
use sluice::wire::{tcp_flags, SeqNumber};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The allocator `sluice` itself runs on (see `src/main.rs`), counting the
/// bytes it has handed out and not yet had back.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A rule that gives every connection a flow field (its Lua flow object and
/// state table then live as long as the flow).
const FLOW_FIELD_RULE: &str = r#"
require("protocol/tcp_connection")
haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    flow.seen = true
  end
}
"#;

/// Resident memory of this process, in bytes (`/proc/self/statm`).
fn rss_bytes() -> BenchResult<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).ok_or("statm: no resident field")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * u64::try_from(page)?)
}

fn live_heap() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed) as i64
}

/// The three packets of handshake `i` (a distinct 4-tuple for 16M flows).
fn handshake(i: u64, out: &mut Vec<Vec<u8>>) {
    let client = IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8));
    let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let port = 1024 + (i >> 24) as u16;
    let (c0, s0) = (SeqNumber(1000), SeqNumber(5000));
    let mut syn = TcpSegment::new(client, port, server, 80);
    syn.seq = c0;
    syn.flags = tcp_flags::SYN;
    out.push(syn.build());
    let mut syn_ack = TcpSegment::new(server, 80, client, port);
    syn_ack.seq = s0;
    syn_ack.ack = c0 + 1;
    syn_ack.flags = tcp_flags::SYN | tcp_flags::ACK;
    out.push(syn_ack.build());
    let mut ack = TcpSegment::new(client, port, server, 80);
    ack.seq = c0 + 1;
    ack.ack = s0 + 1;
    ack.flags = tcp_flags::ACK;
    out.push(ack.build());
}

/// What one variant measured.
struct Measured {
    base_rss: u64,
    rss: u64,
    base_heap: i64,
    heap: i64,
    established: u64,
    seconds: f64,
}

/// Runs `flows` handshakes through `engine` (as `sluice pcap` drives it:
/// a tick, then the packet), 1 µs of packet time apart.
fn run<I: Inspector>(
    mut engine: Engine<I>,
    flows: u64,
    base_rss: u64,
    base_heap: i64,
) -> BenchResult<Measured> {
    let mut out = Output::new();
    let mut packets = Vec::with_capacity(3);
    let mut id = 0u64;
    let start = Instant::now();
    for i in 0..flows {
        packets.clear();
        handshake(i, &mut packets);
        for p in &packets {
            let time = Timestamp(1_700_000_000_000_000 + id);
            out.clear();
            engine.tick(time, &mut out);
            engine.process(Packet { id, data: p, time, checksum: ChecksumState::Unchecked }, &mut out);
            id += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let stats = engine.stats();
    let (rss, heap) = (rss_bytes()?, live_heap());
    let established = stats.get(Counter::TcpConnections);
    if engine.flow_count() as u64 != flows || stats.get(Counter::Dropped) != 0 {
        return Err(format!(
            "expected {flows} flows and no drop, got {} flows, {} dropped",
            engine.flow_count(),
            stats.get(Counter::Dropped)
        )
        .into());
    }
    std::hint::black_box(&engine);
    Ok(Measured { base_rss, rss, base_heap, heap, established, seconds })
}

fn config(flows: u64) -> EngineConfig {
    let default = EngineConfig::default();
    EngineConfig { max_flows: default.max_flows.max(flows as usize), ..default }
}

fn measure(variant: &str, flows: u64) -> BenchResult<Measured> {
    match variant {
        "engine" => {
            let engine = Engine::new(config(flows), NoRules);
            let (rss, heap) = (rss_bytes()?, live_heap());
            run(engine, flows, rss, heap)
        }
        "rule" => {
            let stats = Arc::new(Stats::new());
            let sinks = RuleSinks { alerts: AlertSink::memory().0, stats: stats.clone() };
            // The default Lua memory cap (256 MiB) is sized for far fewer
            // connections than this; the bench measures, it does not cap.
            let rules_config = RulesConfig { memory_limit: 64 << 30, ..RulesConfig::default() };
            let rules = LuaRules::from_source("flow-memory.lua", FLOW_FIELD_RULE, &rules_config, sinks)?;
            let engine = Engine::with_stats(config(flows), rules, stats);
            let (rss, heap) = (rss_bytes()?, live_heap());
            run(engine, flows, rss, heap)
        }
        other => Err(format!("unknown variant {other} (engine, rule)").into()),
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|p| p[0] == name).map(|p| p[1].clone())
}

fn flow_count() -> BenchResult<u64> {
    match arg("--flows").or_else(|| std::env::var("SLUICE_BENCH_FLOWS").ok()) {
        Some(n) => Ok(n.replace('_', "").parse()?),
        None => Ok(1_000_000),
    }
}

/// Child process: measure one variant and print its figures as one line.
fn child(variant: &str, flows: u64) -> BenchResult<()> {
    let m = measure(variant, flows)?;
    println!("{} {} {} {} {} {} {}", m.base_rss, m.rss, m.base_heap, m.heap, m.established, m.seconds, flows);
    Ok(())
}

fn main() -> BenchResult<()> {
    let flows = flow_count()?;
    if let Some(variant) = arg("--child") {
        return child(&variant, flows);
    }
    println!("size_of of what every flow holds (bytes):");
    for (name, size) in flow_layout() {
        println!("  {name:<32} {size:>5}");
    }
    let variants = arg("--variants").unwrap_or_else(|| "engine,rule".into());
    println!(
        "\n{flows} idle established TCP flows (SYN, SYN-ACK, ACK), max_flows {}:",
        config(flows).max_flows
    );
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>12} {:>13} {:>12}",
        "variant", "base RSS MB", "RSS MB", "RSS B/flow", "heap B/flow", "base heap MB", "µs/handshake"
    );
    for variant in variants.split(',') {
        let exe = std::env::current_exe()?;
        let output = Command::new(exe).args(["--child", variant, "--flows", &flows.to_string()]).output()?;
        if !output.status.success() {
            return Err(format!("{variant}: {}", String::from_utf8_lossy(&output.stderr)).into());
        }
        let line = String::from_utf8(output.stdout)?;
        let f: Vec<f64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
        let [base_rss, rss, base_heap, heap, established, seconds, n] = f[..] else {
            return Err(format!("{variant}: unexpected output {line:?}").into());
        };
        let mb = |b: f64| b / (1 << 20) as f64;
        println!(
            "{variant:<8} {:>12.1} {:>12.1} {:>12.0} {:>12.0} {:>13.1} {:>12.2}",
            mb(base_rss),
            mb(rss),
            (rss - base_rss) / n,
            (heap - base_heap) / n,
            mb(base_heap),
            seconds * 1e6 / established.max(1.0)
        );
    }
    Ok(())
}
