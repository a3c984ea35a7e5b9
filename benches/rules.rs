//! Cost of calling Lua rules per event (release build).
//!
//! 1. `engine per data segment`: the whole engine (decode, flow table, TCP
//!    tracking, reassembly) on the data segments of one connection, 1448
//!    bytes each (the server ACKs every second one), with no rules beside the
//!    same engine with a `receive_data` rule: an empty one, and one that
//!    searches each chunk (`data:asstring():find(...)`), and the rule of
//!    `scripts/bench-vs-libnids.sh` (per-direction tails in flow fields,
//!    joined to each chunk before the find). At the end it prints
//!    what each rule adds per event over the no-rule engine, measured in the
//!    same run (medians of interleaved rounds, in thread CPU time, which
//!    leaves out the time other processes take the core).
//! 2. The rule layer alone (`LuaRules` called directly): a `receive_data`
//!    rule searching 1460-byte chunks, a packet rule reading a few fields,
//!    and an empty rule as the baseline of the call itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice::alert::AlertSink;
use sluice::config::{EngineConfig, RulesConfig};
use sluice::engine::{ChecksumState, Engine, Output, Packet};
use sluice::flow::{Direction, L4Proto};
use sluice::inspect::{Context, Event, FlowInfo, Inspector, NoRules};
use sluice::rules::{LuaRules, RuleSinks};
use sluice::stats::{Counter, Stats};
use sluice::time::Timestamp;
use sluice::wire::decode::v4;
use sluice::wire::forge::TcpSegment;
use sluice::wire::{decode, tcp_flags, SeqNumber};

fn rules(src: &str) -> LuaRules {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    LuaRules::from_source("bench.lua", src, &RulesConfig::default(), sinks).expect("bench rules load")
}

/// The empty `receive_data` rule.
const EMPTY_RULE: &str =
    "haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir) end }";

/// The searching `receive_data` rule (the pattern never occurs).
const FIND_RULE: &str = r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data,
    eval = function(flow, data, dir) if data:asstring():find("attack", 1, true) then flow:reset() end end }"#;

/// The rule of `scripts/bench-vs-libnids.sh` (sluice+find): per-direction
/// tails kept in flow fields, `tail .. data:asstring()`, a plain find, and
/// the new tail cut off (the pattern never occurs).
const TAIL_FIND_RULE: &str = r#"local PATTERN = "SLUICE-BENCH-NEEDLE"
haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function(flow, data, dir)
    local key = dir == "up" and "tail_up" or "tail_down"
    local text = (flow[key] or "") .. data:asstring()
    local at = text:find(PATTERN, 1, true)
    while at do
      haka.alert{ description = "pattern" }
      at = text:find(PATTERN, at + 1, true)
    end
    flow[key] = text:sub(-(#PATTERN - 1))
  end }"#;

/// Data segments per connection (one timed block).
const SEGMENTS: usize = 256;
/// Payload of a data segment.
const MSS: usize = 1448;

/// Packets of one connection: its handshake (untimed) and its data
/// segments with the server's ACKs (timed), then its close (untimed).
struct Connection {
    handshake: Vec<Vec<u8>>,
    data: Vec<Vec<u8>>,
    close: Vec<Vec<u8>>,
}

fn connection(port: u16, text: &[u8]) -> Connection {
    let (client, server) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
    let seg = |up: bool, seq: SeqNumber, ack: SeqNumber, flags: u8, opts: &[u8], payload: &[u8]| {
        let mut s = if up {
            TcpSegment::new(client, port, server, 80)
        } else {
            TcpSegment::new(server, 80, client, port)
        };
        // Windows in SYNs are not scaled.
        let window = if flags & tcp_flags::SYN != 0 { 65535 } else { 502 };
        (s.seq, s.ack, s.flags, s.options, s.payload, s.window) = (seq, ack, flags, opts, payload, window);
        s.build()
    };
    // MSS 1460, SACK permitted, window scale 7.
    let opts = [2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7];
    let (mut c, mut s) = (SeqNumber(1000), SeqNumber(9000));
    let mut handshake = vec![seg(true, c, SeqNumber(0), tcp_flags::SYN, &opts, &[])];
    c = c + 1;
    handshake.push(seg(false, s, c, tcp_flags::SYN | tcp_flags::ACK, &opts, &[]));
    s = s + 1;
    handshake.push(seg(true, c, s, tcp_flags::ACK, &[], &[]));
    let mut data = Vec::new();
    for i in 0..SEGMENTS {
        let at = (i * 397) % (text.len() - MSS);
        data.push(seg(true, c, s, tcp_flags::ACK, &[], &text[at..at + MSS]));
        c = c + MSS as u32;
        if i % 2 == 1 {
            data.push(seg(false, s, c, tcp_flags::ACK, &[], &[]));
        }
    }
    let close = vec![
        seg(true, c, s, tcp_flags::FIN | tcp_flags::ACK, &[], &[]),
        seg(false, s, c + 1, tcp_flags::FIN | tcp_flags::ACK, &[], &[]),
        seg(true, c + 1, s + 1, tcp_flags::ACK, &[], &[]),
    ];
    Connection { handshake, data, close }
}

/// Feeds `pkts` to `engine`; the number of packets.
fn feed<I: Inspector>(engine: &mut Engine<I>, out: &mut Output, pkts: &[Vec<u8>], id: &mut u64) {
    for p in pkts {
        *id += 1;
        let pkt =
            Packet { id: *id, data: p, time: Timestamp(*id * 1000), checksum: ChecksumState::Unchecked };
        engine.process(pkt, out);
        out.clear();
    }
}

/// An engine with its own port counter and packet ids.
struct Bench<I: Inspector> {
    engine: Engine<I>,
    out: Output,
    id: u64,
    port: u16,
}

impl<I: Inspector> Bench<I> {
    fn new(inspector: I) -> Self {
        Bench {
            engine: Engine::new(EngineConfig::default(), inspector),
            out: Output::new(),
            id: 0,
            port: 1024,
        }
    }

    /// Runs the data segments of `blocks` connections; the wall time and
    /// the thread's CPU time they took.
    fn run(&mut self, blocks: u64, text: &[u8]) -> (Duration, Duration) {
        let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..blocks {
            self.port = if self.port == u16::MAX { 1024 } else { self.port + 1 };
            let conn = connection(self.port, text);
            feed(&mut self.engine, &mut self.out, &conn.handshake, &mut self.id);
            let (t, c) = (Instant::now(), thread_cpu());
            feed(&mut self.engine, &mut self.out, &conn.data, &mut self.id);
            cpu += thread_cpu().saturating_sub(c);
            wall += t.elapsed();
            feed(&mut self.engine, &mut self.out, &conn.close, &mut self.id);
        }
        (wall, cpu)
    }
}

/// CPU time of this thread: on a shared machine it leaves out the time
/// other processes took the core.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn text() -> Vec<u8> {
    b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n"
        .iter()
        .copied()
        .cycle()
        .take(1 << 16)
        .collect()
}

/// The engine with no rules beside the same engine with a `receive_data`
/// rule, per data segment (one `receive_data` event each).
fn engine_bench(c: &mut Criterion) {
    let text = text();
    check_one_event_per_segment(&text);
    let mut none = Bench::new(NoRules);
    let mut empty = Bench::new(rules(EMPTY_RULE));
    let mut find = Bench::new(rules(FIND_RULE));
    let mut tail = Bench::new(rules(TAIL_FIND_RULE));
    let mut g = c.benchmark_group("engine per data segment");
    g.bench_function("no rules", |b| b.iter_custom(|n| per_block(&mut none, n, &text)));
    g.bench_function("empty receive_data rule", |b| b.iter_custom(|n| per_block(&mut empty, n, &text)));
    g.bench_function("find receive_data rule", |b| b.iter_custom(|n| per_block(&mut find, n, &text)));
    g.bench_function("tail+find receive_data rule", |b| b.iter_custom(|n| per_block(&mut tail, n, &text)));
    g.finish();

    // The rules' cost over the no-rule engine, measured side by side.
    let rounds = 15;
    let blocks = 40;
    let (mut t0, mut t1, mut t2, mut t3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        t0.push(none.run(blocks, &text).1);
        t1.push(empty.run(blocks, &text).1);
        t2.push(find.run(blocks, &text).1);
        t3.push(tail.run(blocks, &text).1);
    }
    let events = (blocks as usize * SEGMENTS) as f64;
    let ns = |t: &mut Vec<Duration>| {
        t.sort_unstable();
        t[t.len() / 2].as_secs_f64() * 1e9 / events
    };
    let (base, e, f, t) = (ns(&mut t0), ns(&mut t1), ns(&mut t2), ns(&mut t3));
    println!(
        "engine per receive_data event, thread CPU time (median of {rounds} interleaved rounds of {events} events):"
    );
    println!("  no rules                 {base:8.0} ns");
    println!("  empty receive_data rule  {e:8.0} ns   rule adds {:6.0} ns per event", e - base);
    println!("  find receive_data rule   {f:8.0} ns   rule adds {:6.0} ns per event", f - base);
    println!("  tail+find (bench script) {t:8.0} ns   rule adds {:6.0} ns per event", t - base);
}

/// The bench measures what it says: every data segment is one
/// `receive_data` event of its whole payload.
fn check_one_event_per_segment(text: &[u8]) {
    let (alerts, seen) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let src = r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data,
        eval = function(flow, data, dir) haka.alert{ description = tostring(#data) } end }"#;
    let rules =
        LuaRules::from_source("check.lua", src, &RulesConfig::default(), sinks).expect("check rule loads");
    let mut b = Bench::new(rules);
    b.run(2, text);
    let stats = b.engine.stats();
    assert_eq!(stats.get(Counter::Dropped), 0, "{:?}", stats.snapshot());
    let lines = seen.lines();
    let full = lines.iter().filter(|l| l.contains(&format!("\"{MSS}\""))).count();
    assert_eq!(
        (lines.len(), full),
        (2 * SEGMENTS, 2 * SEGMENTS),
        "one event of {MSS} bytes per data segment"
    );
}

/// Time per data segment over `n` segments (whole connections).
fn per_block<I: Inspector>(b: &mut Bench<I>, n: u64, text: &[u8]) -> Duration {
    let blocks = n.div_ceil(SEGMENTS as u64);
    let (t, _) = b.run(blocks, text);
    // Scale to the `n` iterations criterion asked for.
    t.mul_f64(n as f64 / (blocks * SEGMENTS as u64) as f64)
}

fn bench(c: &mut Criterion) {
    let cx = Context { time: Timestamp(0) };
    let flow = FlowInfo {
        id: 1,
        proto: L4Proto::Tcp,
        src: v4(10, 0, 0, 1),
        src_port: 40000,
        dst: v4(10, 0, 0, 2),
        dst_port: 80,
    };
    // Text-like bytes: a search for "attack" meets its first letter now and then.
    let chunk: Vec<u8> = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n"
        .iter()
        .copied()
        .cycle()
        .take(1460)
        .collect();

    let mut empty = rules(EMPTY_RULE);
    c.bench_function("receive_data empty rule", |b| {
        b.iter(|| black_box(empty.data(&cx, &flow, Direction::Up, black_box(&chunk))))
    });

    let mut find = rules(FIND_RULE);
    c.bench_function("receive_data find in 1460 bytes", |b| {
        b.iter(|| black_box(find.data(&cx, &flow, Direction::Up, black_box(&chunk))))
    });

    let mut seg = TcpSegment::new(v4(10, 0, 0, 1), 40000, v4(10, 0, 0, 2), 80);
    seg.flags = tcp_flags::ACK;
    seg.payload = &chunk;
    let pkt = seg.build();
    let d = decode(&pkt).expect("decodes");
    let mut fields = rules(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_packet, eval = function(flow, pkt, dir)
             if pkt.dstport == 23 or pkt.flags.rst or pkt.ttl < 2 then pkt:drop() end end }"#,
    );
    c.bench_function("tcp receive_packet three fields", |b| {
        b.iter(|| black_box(fields.packet(Event::TcpConnectionPacket, &cx, &d, Some((&flow, Direction::Up)))))
    });
}

criterion_group!(benches, engine_bench, bench);
criterion_main!(benches);
