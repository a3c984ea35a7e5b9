//! Tests of the Lua rule layer. Each test loads a small rule file, builds
//! packets with the forge, calls the [`Inspector`] methods as the engine
//! would, and checks the decisions, what the rules saw (through globals
//! they set) and the alerts.

mod api;
mod event_data;
mod events;
mod fields;
mod flow_identity;
mod limits;
mod objects;
mod policy;
mod regexp;
mod reload;
mod rule_spec;
mod streamed;

use std::net::IpAddr;
use std::sync::Arc;

use super::{LuaRules, RuleSinks};
use crate::alert::{AlertSink, MemoryAlerts};
use crate::config::RulesConfig;
use crate::flow::{Direction, L4Proto};
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::stats::{Counter, Stats};
use crate::time::Timestamp;
use crate::wire::decode::v4;
use crate::wire::forge::TcpSegment;
use crate::wire::{decode, tcp_flags, SeqNumber};

/// A loaded rule set with its alert and counter sinks.
struct Harness {
    rules: LuaRules,
    alerts: MemoryAlerts,
    stats: Arc<Stats>,
}

impl Harness {
    fn new(src: &str) -> Harness {
        Self::with_config(src, &RulesConfig::default())
    }

    fn with_config(src: &str, cfg: &RulesConfig) -> Harness {
        let (alerts, mem) = AlertSink::memory();
        let stats = Arc::new(Stats::new());
        let sinks = RuleSinks { alerts, stats: stats.clone() };
        let rules = match LuaRules::from_source("test.lua", src, cfg, sinks) {
            Ok(r) => r,
            Err(e) => panic!("rules do not load: {e}"),
        };
        Harness { rules, alerts: mem, stats }
    }

    /// A packet event.
    fn packet(&mut self, event: Event, bytes: &[u8], flow: Option<(&FlowInfo, Direction)>) -> Action {
        let d = decode(bytes).expect("test packet decodes");
        self.rules.packet(event, &cx(), &d, flow)
    }

    /// TCP `receive_data`.
    fn data(&mut self, flow: &FlowInfo, dir: Direction, bytes: &[u8]) -> Action {
        self.rules.data(&cx(), flow, dir, bytes)
    }

    /// A global set by the rules.
    fn global<T: mlua::FromLua>(&self, name: &str) -> T {
        self.rules.lua.globals().get(name).expect("global readable")
    }

    /// Evaluates a Lua expression in the rule state (outside any event).
    fn eval<T: mlua::FromLuaMulti>(&self, expr: &str) -> mlua::Result<T> {
        self.rules.lua.load(expr).eval()
    }

    fn errors(&self) -> u64 {
        self.stats.get(Counter::RuleErrors)
    }
}

/// The context of every test event: t = 1000.5 s.
fn cx() -> Context {
    Context { time: Timestamp::from_secs_micros(1000, 500_000) }
}

fn client() -> IpAddr {
    v4(10, 0, 0, 1)
}

fn server() -> IpAddr {
    v4(10, 0, 0, 2)
}

/// A TCP flow 10.0.0.1:40000 → 10.0.0.2:80 with the given id.
fn tcp_flow(id: u64) -> FlowInfo {
    FlowInfo { id, proto: L4Proto::Tcp, src: client(), src_port: 40000, dst: server(), dst_port: 80 }
}

/// A UDP flow 10.0.0.1:5353 → 10.0.0.2:53.
fn udp_flow(id: u64) -> FlowInfo {
    FlowInfo { id, proto: L4Proto::Udp, src: client(), src_port: 5353, dst: server(), dst_port: 53 }
}

/// A client → server TCP segment of `tcp_flow`.
fn tcp_packet(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = TcpSegment::new(client(), 40000, server(), 80);
    s.seq = SeqNumber(1000);
    s.ack = SeqNumber(2000);
    s.flags = flags;
    s.payload = payload;
    s.build()
}

fn syn() -> Vec<u8> {
    tcp_packet(tcp_flags::SYN, b"")
}
