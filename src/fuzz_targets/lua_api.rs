//! `lua_api`: the Lua rule API called in every way the input chooses.
//!
//! The rule file (`lua_api.lua`) hooks every event; at each one it reads
//! from the input (handed in as a `--var`) which calls to make on the event's
//! packet, flow, data, iterator, on address, network and time objects, on
//! objects kept from earlier events, and through `haka.*` and `sluice.*`,
//! with arguments of every kind. Fixed traffic drives it through the
//! [`Engine`]: IPv4 and IPv6 TCP conversations, UDP, ICMP, a fragmented
//! datagram, a reset connection, timeouts.
//!
//! Rule errors are expected. Invariants: every packet gets exactly one
//! verdict and the counters add up (the engine's contract holds whatever
//! rules do), the recorder's event-order checks, and the rule state still
//! works afterwards: a last connection gets its "canary" alert.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::book::Book;
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

pub(super) fn run(data: &[u8]) {
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let cfg = RulesConfig {
        instruction_limit: 200_000,
        memory_limit: 32 << 20,
        vars: vec![("ops".to_string(), hex)],
        ..RulesConfig::default()
    };
    let (alerts, memory) = AlertSink::memory();
    let stats = Arc::new(Stats::new());
    let sinks = RuleSinks { alerts, stats: stats.clone() };
    let rules = match LuaRules::from_source("lua_api.lua", RULES, &cfg, sinks) {
        Ok(r) => r,
        Err(e) => panic!("the harness's rules do not load: {e}"),
    };
    let mut engine =
        Engine::with_stats(EngineConfig::default(), Recorder::new(rules, Vec::new()), stats.clone());
    let mut book = Book::default();
    let mut out = Output::new();
    let mut now = crate::pcapgen::DEFAULT_START;
    for (t, p) in traffic() {
        now = t;
        let id = book.id();
        engine.process(Packet { id, data: &p, time: t, checksum: Default::default() }, &mut out);
        book.collect(&mut out);
    }
    // Timeouts: UDP flows end, TCP flows left open time out.
    now = now.saturating_add(Duration::from_secs(7200));
    engine.tick(now, &mut out);
    book.collect(&mut out);
    let before = canary_alerts(&memory.values());
    for (_, p) in canary(now) {
        let id = book.id();
        engine.process(Packet { id, data: &p, time: now, checksum: Default::default() }, &mut out);
        book.collect(&mut out);
    }
    engine.finish(now, &mut out);
    book.collect(&mut out);
    book.check(&stats);
    assert_eq!(
        canary_alerts(&memory.values()),
        before + 1,
        "the rule state stopped working: no canary alert"
    );
}

fn canary_alerts(alerts: &[serde_json::Value]) -> usize {
    alerts.iter().filter(|a| a.get("description").and_then(|d| d.as_str()) == Some("canary")).count()
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
