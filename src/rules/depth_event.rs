//! `tcp_connection.events.depth_reached(flow, dir)`: `dir`'s stream passed
//! `--stream-depth`. Its bytes up to the depth were delivered; rules get
//! nothing more of that direction. Streamed rules waiting on it get the end
//! of their stream, and a monologue of that direction ends there.

use mlua::{MultiValue, Value};

use super::LuaRules;
use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo};

impl LuaRules {
    /// `info`'s `dir` stream passed the depth.
    pub(super) fn on_depth_reached(&mut self, cx: &Context, info: &FlowInfo, dir: Direction) -> Action {
        if self.flows.has_ended(info.id) {
            return Action::Accept;
        }
        let (epoch, mut slot) = match self.open_connection_event(cx, info) {
            Ok(opened) => opened,
            Err(action) => return action,
        };
        let mut failed = self.finish_direction(epoch, &mut slot, dir);
        if slot.monologue.speaker() == Some(dir) {
            failed |= self.end_turn(epoch, &slot.ud, &mut slot.monologue);
        }
        if !self.rules[Event::TcpDepthReached.index()].is_empty() && !self.budget.exhausted() {
            let dir_v = Value::String(self.dirs[dir.index()].clone());
            let args = MultiValue::from_iter([Value::UserData(slot.ud.clone()), dir_v]);
            failed |= self.call_rules(Event::TcpDepthReached, args);
        }
        self.flows.put_back(slot);
        self.finish(failed)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use crate::alert::AlertSink;
    use crate::config::{EngineConfig, RulesConfig};
    use crate::engine::{ChecksumState, Engine, Output, Packet};
    use crate::rules::{LuaRules, RuleSinks};
    use crate::stats::Stats;
    use crate::time::Timestamp;
    use crate::wire::forge::TcpSegment;
    use crate::wire::tcp_flags::{ACK, PSH, SYN};
    use crate::wire::SeqNumber;

    const RULES: &str = r#"
        require("protocol/tcp_connection")
        seen = { up = "", down = "" }
        reached = ""
        streamed_end = false
        haka.rule {
          on = haka.dissectors.tcp_connection.events.receive_data,
          eval = function (flow, data, dir) seen[dir] = seen[dir] .. data:asstring() end
        }
        haka.rule {
          on = haka.dissectors.tcp_connection.events.depth_reached,
          eval = function (flow, dir) reached = reached .. dir .. ";" .. flow.dstport .. ";" end
        }
        haka.rule {
          on = haka.dissectors.tcp_connection.events.receive_data,
          options = { streamed = true },
          eval = function (flow, iter, dir)
            if dir ~= "up" then return end
            for sub in iter:foreach_available() do end
            streamed_end = true
          end
        }
    "#;

    #[test]
    fn rules_hear_the_depth_and_streamed_rules_get_the_end_of_their_stream() {
        let (alerts, _) = AlertSink::memory();
        let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
        let rules = match LuaRules::from_source("depth.lua", RULES, &RulesConfig::default(), sinks) {
            Ok(r) => r,
            Err(e) => panic!("rules do not load: {e}"),
        };
        let cfg = EngineConfig { stream_depth: 6, ..EngineConfig::default() };
        let mut engine = Engine::new(cfg, rules);
        let (c, s): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let seg = |up: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]| {
            let mut t = if up { TcpSegment::new(c, 4000, s, 80) } else { TcpSegment::new(s, 80, c, 4000) };
            (t.seq, t.ack, t.flags, t.payload) = (SeqNumber(seq), SeqNumber(ack), flags, payload);
            t.build()
        };
        let packets = [
            seg(true, 100, 0, SYN, b""),
            seg(false, 500, 101, SYN | ACK, b""),
            seg(true, 101, 501, ACK, b""),
            seg(true, 101, 501, ACK | PSH, b"GET /"),
            seg(true, 106, 501, ACK | PSH, b"abcdef"),
            seg(true, 112, 501, ACK | PSH, b"never seen"),
            seg(false, 501, 122, ACK | PSH, b"short"),
        ];
        let mut out = Output::new();
        for (i, p) in packets.iter().enumerate() {
            let time = Timestamp(1_000_000 + i as u64);
            engine.process(
                Packet { id: i as u64, data: p, time, checksum: ChecksumState::Unchecked },
                &mut out,
            );
        }
        let lua = &engine.inspector().lua;
        let seen: mlua::Table = lua.globals().get("seen").unwrap();
        assert_eq!(seen.get::<String>("up").unwrap(), "GET /a");
        assert_eq!(seen.get::<String>("down").unwrap(), "short");
        assert_eq!(lua.globals().get::<String>("reached").unwrap(), "up;80;");
        assert!(lua.globals().get::<bool>("streamed_end").unwrap(), "the streamed rule's iterator ended");
    }
}
