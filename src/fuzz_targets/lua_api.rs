//! `lua_api`: the Lua rule API called in every way the input chooses.
//!
//! The rule file (`lua_api.lua`) hooks every event; at each one it reads
//! from the input which calls to make on the event's packet, flow, data,
//! iterator, on address, network and time objects, on objects kept from
//! earlier events, and through `haka.*` and `sluice.*`, with arguments of
//! every kind. Fixed traffic drives it through the [`Engine`]: IPv4 and
//! IPv6 TCP conversations, UDP, ICMP, a fragmented datagram, a reset
//! connection, timeouts.
//!
//! The rules are loaded once per thread (loading them costs ~50 times a
//! run). The input reaches them in the payload of a first, "control" UDP
//! datagram (10.8.8.1 to 10.8.8.2, port 9997), at which the rule file resets
//! everything a run can change (see `begin_input` in `lua_api.lua`); no
//! call is made at the control datagram's events. What carries over from
//! one input to the next is listed in `docs/architecture.md` ("Fuzzing").
//!
//! Rule errors are expected. Invariants: every packet gets exactly one
//! verdict and the counters add up (the engine's contract holds whatever
//! rules do), the recorder's event-order checks, and the rule state still
//! works afterwards: a last connection gets its "canary" alert.

use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::book::Book;
use super::lent::Lent;
use super::recorder::Recorder;
use crate::alert::AlertSink;
use crate::config::{EngineConfig, RulesConfig};
use crate::engine::{Engine, Output, Packet};
use crate::flow::Direction::{Down, Up};
use crate::ip::fragment::fragment;
use crate::pcapgen::{icmp_echo, Conversation, TimedPacket};
use crate::rules::{LuaRules, RuleSinks};
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::wire::decode::v4;
use crate::wire::forge::udp_packet;

const RULES: &str = include_str!("lua_api.lua");

/// The control datagram's addresses and port (as in `lua_api.lua`).
const CONTROL: ([u8; 4], [u8; 4], u16) = ([10, 8, 8, 1], [10, 8, 8, 2], 9997);

/// One thread's rules and the alerts they wrote during the current run.
struct Loaded {
    rules: LuaRules,
    alerts: Arc<Mutex<Vec<u8>>>,
}

/// Alert lines go to a buffer the harness empties at each run.
struct AlertBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for AlertBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn load() -> Loaded {
    let cfg = RulesConfig { instruction_limit: 200_000, memory_limit: 32 << 20, ..RulesConfig::default() };
    let buf = Arc::new(Mutex::new(Vec::new()));
    let alerts = AlertSink::to_writer(Box::new(AlertBuffer(buf.clone())));
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    match LuaRules::from_source("lua_api.lua", RULES, &cfg, sinks) {
        Ok(rules) => Loaded { rules, alerts: buf },
        Err(e) => panic!("the harness's rules do not load: {e}"),
    }
}

pub(super) fn run(data: &[u8]) {
    thread_local! {
        static LOADED: std::cell::Cell<Option<Loaded>> = const { std::cell::Cell::new(None) };
    }
    // Taken out for the run: a run that panics drops the state.
    let mut loaded = LOADED.take().unwrap_or_else(load);
    run_with(&mut loaded, data);
    LOADED.set(Some(loaded));
}

fn run_with(loaded: &mut Loaded, data: &[u8]) {
    if let Ok(mut b) = loaded.alerts.lock() {
        b.clear();
    }
    let stats = Arc::new(Stats::new());
    let recorder = Recorder::new(Lent(&mut loaded.rules), Vec::new());
    let mut engine = Engine::with_stats(EngineConfig::default(), recorder, stats.clone());
    let mut book = Book::default();
    let mut out = Output::new();
    let mut now = crate::pcapgen::DEFAULT_START;
    let (c, s, port) = CONTROL;
    let control = udp_packet(c.into(), 1, s.into(), port, data);
    for (t, p) in std::iter::once((now, control)).chain(traffic()) {
        now = t;
        let id = book.id();
        engine.process(Packet { id, data: &p, time: t, checksum: Default::default() }, &mut out);
        book.collect(&mut out);
    }
    // Timeouts: UDP flows end, TCP flows left open time out.
    now = now.saturating_add(Duration::from_secs(7200));
    engine.tick(now, &mut out);
    book.collect(&mut out);
    let told = format!("input of {} bytes", data.len());
    assert_eq!(alerts(&loaded.alerts, &told), 1, "the rules did not get the input");
    let before = alerts(&loaded.alerts, "canary");
    for (_, p) in canary(now) {
        let id = book.id();
        engine.process(Packet { id, data: &p, time: now, checksum: Default::default() }, &mut out);
        book.collect(&mut out);
    }
    engine.finish(now, &mut out);
    book.collect(&mut out);
    book.check(&stats);
    assert_eq!(engine.flow_count(), 0, "flows left after finish");
    assert_eq!(
        alerts(&loaded.alerts, "canary"),
        before + 1,
        "the rule state stopped working: no canary alert"
    );
}

/// How many alerts in `buf` have this description.
fn alerts(buf: &Mutex<Vec<u8>>, description: &str) -> usize {
    let Ok(b) = buf.lock() else { return 0 };
    String::from_utf8_lossy(&b)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|a| a.get("description").and_then(|d| d.as_str()) == Some(description))
        .count()
}

/// The fuzzed rules' traffic: every event with every kind of object.
fn traffic() -> Vec<TimedPacket> {
    let c4 = SocketAddr::new(v4(10, 0, 0, 1), 40000);
    let s4 = SocketAddr::new(v4(10, 0, 0, 2), 80);
    let c6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 40001);
    let s6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)), 443);
    let mut conv = Conversation::new(c4, s4);
    conv.handshake()
        .send(Up, b"GET / HTTP/1.0\r\n\r\n")
        .send(Up, b"more")
        .send(Down, b"HTTP/1.0 200 OK\r\n\r\nbody");
    conv.udp(Up, b"query").udp(Down, b"answer");
    conv.push(icmp_echo(c4.ip(), s4.ip(), 1, 1, b"ping"));
    conv.push(icmp_echo(c6.ip(), s6.ip(), 1, 1, b"ping6"));
    for f in fragment(&udp_packet(c4.ip(), 5000, s4.ip(), 53, &[7u8; 64]), &[32], 99) {
        conv.push(f);
    }
    conv.close();
    let mut v6 = Conversation::new(c6, s6).at(DEFAULT_LATER);
    v6.handshake().send(Up, b"hello over six").send(Down, b"reply");
    let mut reset =
        Conversation::new(SocketAddr::new(c4.ip(), 40002), SocketAddr::new(s4.ip(), 7000)).at(DEFAULT_LATER);
    reset.handshake().data(Up, b"then a reset").rst(Down);
    let mut all = conv.into_packets();
    all.extend(v6.into_packets());
    all.extend(reset.into_packets());
    all
}

/// A second after the first conversation started.
const DEFAULT_LATER: Timestamp = Timestamp(crate::pcapgen::DEFAULT_START.0 + 1_000_000);

/// A connection to the canary port carrying "CANARY".
fn canary(now: Timestamp) -> Vec<TimedPacket> {
    let mut c =
        Conversation::new(SocketAddr::new(v4(10, 9, 9, 1), 50000), SocketAddr::new(v4(10, 9, 9, 2), 9999))
            .at(now);
    c.handshake().send(Up, b"CANARY");
    c.into_packets()
}
