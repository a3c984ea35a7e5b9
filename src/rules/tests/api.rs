//! The haka functions: alerts, policies, logging, require, loading errors,
//! `check`.

use std::io::Write as _;

use super::*;
use crate::rules::check;
use crate::wire::forge::udp_packet;

#[test]
fn alert_json_has_fields_time_id_and_flow() {
    let mut h = Harness::new(
        r#"
        local ipv4 = require("protocol/ipv4")
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir)
          ids = ids or {}
          ids[#ids + 1] = haka.alert{
            description = "bad " .. data:asstring(),
            severity = "high", confidence = "low", completion = "failed", ref = { "cve-1", "cve-2" },
            method = { description = "string match", ref = "x" },
            sources = { haka.alert.address(flow.srcip) },
            targets = { haka.alert.service("tcp/" .. flow.dstport), haka.alert.address(ipv4.network("10.0.0.0/8")) },
          }
        end }
        haka.rule{ on = haka.dissectors.udp.events.receive_packet, eval = function(pkt)
          haka.alert{ description = "udp", severity = "low", extra = { n = 1.5, t = true } }
        end }
        "#,
    );
    let f = tcp_flow(3);
    h.data(&f, Direction::Up, b"one");
    h.data(&f, Direction::Up, b"two");
    h.packet(Event::UdpPacket, &udp_packet(client(), 1, server(), 2, b""), None);
    let v = h.alerts.values();
    assert_eq!(v.len(), 3);
    let a = &v[0];
    assert_eq!(a["id"], 1);
    assert_eq!(a["time"], 1000.5);
    assert_eq!(a["description"], "bad one");
    assert_eq!(a["severity"], "high");
    assert_eq!(a["confidence"], "low");
    assert_eq!(a["completion"], "failed");
    assert_eq!(a["ref"], serde_json::json!(["cve-1", "cve-2"]));
    assert_eq!(a["method"], serde_json::json!({"description": "string match", "ref": "x"}));
    assert_eq!(a["sources"], serde_json::json!([{"address": ["10.0.0.1"]}]));
    assert_eq!(a["targets"], serde_json::json!([{"service": ["tcp/80"]}, {"address": ["10.0.0.0/8"]}]));
    assert_eq!(
        a["flow"],
        serde_json::json!({"proto": "tcp", "src": "10.0.0.1", "sport": 40000, "dst": "10.0.0.2", "dport": 80})
    );
    assert_eq!(v[1]["id"], 2);
    assert_eq!(v[1]["description"], "bad two");
    // Outside a flow event there is no flow.
    assert_eq!(v[2]["id"], 3);
    assert!(v[2].get("flow").is_none());
    assert_eq!(v[2]["extra"], serde_json::json!({"n": 1.5, "t": true}));
    let ids: Vec<i64> = h.global("ids");
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(h.stats.get(Counter::Alerts), 3);
}

#[test]
fn alert_of_a_cyclic_table_terminates() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.udp.events.receive_packet, eval = function(pkt)
             local t = { name = "loop" }; t.self = t
             haka.alert{ description = "cycle", method = t } end }"#,
    );
    h.packet(Event::UdpPacket, &udp_packet(client(), 1, server(), 2, b""), None);
    let v = h.alerts.values();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["method"]["self"]["self"]["name"], "loop");
}

const POLICIES: &str = r#"
local ipv4 = require("protocol/ipv4")
local tcp_connection = require("protocol/tcp_connection")
haka.policy{ on = tcp_connection.policies.new_connection, name = "no telnet",
  criterion = { dstport = 23 },
  action = { haka.policy.drop, haka.policy.alert{ description = "telnet refused", severity = "medium" } } }
haka.policy{ on = tcp_connection.policies.new_connection, name = "lan",
  criterion = { dstip = ipv4.network("10.0.0.0/8"), srcport = { 1024, 65535 } },
  action = haka.policy.accept }
haka.policy{ on = tcp_connection.policies.new_connection, name = "one host",
  criterion = { srcip = "192.168.1.1" },
  action = haka.policy.alert{ description = "host seen" } }
haka.policy{ on = tcp_connection.events.new_connection, name = "default",
  action = haka.policy.drop }
rule_runs = 0
haka.rule{ on = tcp_connection.events.new_connection, eval = function() rule_runs = rule_runs + 1 end }
"#;

fn flow_to(id: u64, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> FlowInfo {
    FlowInfo { id, proto: L4Proto::Tcp, src, src_port: sport, dst, dst_port: dport }
}

#[test]
fn policies_first_match_applies() {
    let mut h = Harness::new(POLICIES);
    let mut new_conn = |f: &FlowInfo| h.packet(Event::TcpNewConnection, &syn(), Some((f, Direction::Up)));
    // Port 23 matches the first policy even though it is also in 10/8.
    assert_eq!(new_conn(&flow_to(1, client(), 40000, server(), 23)), Action::DropFlow);
    // 10/8 from a high port: accepted by "lan", the default drop is not reached.
    assert_eq!(new_conn(&flow_to(2, client(), 40000, server(), 80)), Action::Accept);
    // 10/8 from a low port fails "lan"'s range and falls to the default.
    assert_eq!(new_conn(&flow_to(3, client(), 999, server(), 80)), Action::DropFlow);
    // 192.168.1.1: alert only (no drop), stops before the default.
    assert_eq!(new_conn(&flow_to(4, v4(192, 168, 1, 1), 40000, v4(8, 8, 8, 8), 443)), Action::Accept);
    // Anything else: dropped by the default.
    assert_eq!(new_conn(&flow_to(5, v4(192, 168, 1, 2), 40000, v4(8, 8, 8, 8), 443)), Action::DropFlow);
    let v = h.alerts.values();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["description"], "telnet refused");
    assert_eq!(v[0]["policy"], "no telnet");
    assert_eq!(v[0]["flow"]["dport"], 23);
    assert_eq!(v[1]["description"], "host seen");
    assert_eq!(v[1]["policy"], "one host");
    // Rules run only for connections the policies did not refuse.
    assert_eq!(h.global::<i64>("rule_runs"), 2);
}

#[test]
fn bad_policies_fail_to_load_with_location() {
    let cases = [
        ("haka.policy{ on = haka.dissectors.tcp.events.receive_packet, action = haka.policy.drop }", "'on'"),
        (
            "haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, criterion = { port = 1 }, action = haka.policy.drop }",
            "unknown criterion 'port'",
        ),
        (
            "haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, criterion = { dstport = {9, 1} }, action = haka.policy.drop }",
            "dstport",
        ),
        ("haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, action = 5 }", "action"),
    ];
    for (src, want) in cases {
        let (alerts, _) = AlertSink::memory();
        let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
        let err = LuaRules::from_source("p.lua", &format!("\n{src}"), &RulesConfig::default(), sinks)
            .expect_err("bad policy must not load")
            .to_string();
        assert!(err.starts_with("p.lua:2: "), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn udp_policy_point_works() {
    let mut h = Harness::new(
        r#"haka.policy{ on = haka.dissectors.udp_connection.policies.new_connection,
             criterion = { dstport = 53 }, action = haka.policy.drop }"#,
    );
    let p = udp_packet(client(), 5353, server(), 53, b"q");
    assert_eq!(h.packet(Event::UdpNewConnection, &p, Some((&udp_flow(1), Direction::Up))), Action::DropFlow);
    let mut other = udp_flow(2);
    other.dst_port = 54;
    assert_eq!(h.packet(Event::UdpNewConnection, &p, Some((&other, Direction::Up))), Action::Accept);
}

#[test]
fn log_and_print_run_and_bad_formats_are_errors() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.udp.events.receive_packet, eval = function(pkt)
             haka.log("plain %d", 1); haka.log.debug("d %s", "x"); haka.log.info("i")
             haka.log.warning("w %s", tostring(pkt.src)); haka.log.error("e")
             print("printed", 1, nil)
             if pkt.payload:asstring() == "bad" then haka.log.info("%d", "not a number") end
           end }"#,
    );
    let mk = |p: &[u8]| udp_packet(client(), 1, server(), 2, p);
    h.packet(Event::UdpPacket, &mk(b"ok"), None);
    assert_eq!(h.errors(), 0);
    h.packet(Event::UdpPacket, &mk(b"bad"), None);
    assert_eq!(h.errors(), 1);
}

#[test]
fn rules_cannot_be_added_after_loading() {
    let h = Harness::new("");
    let err = h
        .eval::<()>("haka.rule{ on = haka.dissectors.tcp.events.receive_packet, eval = function() end }")
        .expect_err("haka.rule after load");
    assert!(crate::rules::error::error_message(&err).contains("only be called while the rule files load"));
    assert_eq!(h.rules.rule_count(), 0);
}

#[test]
fn embedded_modules_are_the_dissectors() {
    let h = Harness::new(
        r#"
        local tcpc = require("protocol/tcp_connection")
        r = { tcpc == haka.dissectors.tcp_connection,
              require("protocol.tcp_connection") == tcpc,
              tcpc.events.receive_data == haka.dissectors.tcp_connection.events.receive_data,
              type(require("protocol/ipv4").addr) == "function",
              type(require("protocol/ipv6").network) == "function",
              require("protocol/udp").events.receive_packet ~= nil,
              require("protocol/icmp").events.receive_packet ~= nil,
              require("protocol/tcp").events.receive_packet ~= require("protocol/udp").events.receive_packet,
              require("protocol/udp_connection").policies.new_connection ~= nil }
        n = #r
        "#,
    );
    assert_eq!(h.global::<i64>("n"), 9);
    let r: Vec<bool> = h.global("r");
    assert_eq!(r, vec![true; 9]);
}

fn write(dir: &std::path::Path, rel: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p
}

#[test]
fn require_finds_modules_beside_the_rule_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "lib/words.lua", "loads = (loads or 0) + 1\nreturn { bad = 'attack' }\n");
    write(dir.path(), "helper.lua", "local w = require('lib.words')\nreturn { word = w.bad }\n");
    let path = write(
        dir.path(),
        "rules.lua",
        r#"local helper = require("helper")
        local words = require("lib/words")
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
          if data:asstring():find(words.bad, 1, true) then flow:reset() end end }
        word = helper.word"#,
    );
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let mut rules = LuaRules::load(&path, &RulesConfig::default(), sinks).unwrap();
    let word: String = rules.lua.globals().get("word").unwrap();
    assert_eq!(word, "attack");
    // "lib.words" and "lib/words" are one module, loaded once.
    let loads: i64 = rules.lua.globals().get("loads").unwrap();
    assert_eq!(loads, 1);
    assert_eq!(rules.data(&cx(), &tcp_flow(1), Direction::Up, b"an attack!"), Action::Reset);

    let bad = write(dir.path(), "bad.lua", "\nrequire('missing')\n");
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let err = LuaRules::load(&bad, &RulesConfig::default(), sinks).unwrap_err().to_string();
    assert!(err.contains("bad.lua:2:") && err.contains("missing"), "{err}");

    let escape = write(dir.path(), "escape.lua", "require('../etc/passwd')\n");
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let err = LuaRules::load(&escape, &RulesConfig::default(), sinks).unwrap_err().to_string();
    assert!(err.contains("invalid module name"), "{err}");
}

#[test]
fn check_reports_rules_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "r.lua",
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function() end }
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function() end }
        haka.rule{ on = haka.dissectors.ipv4.events.receive_packet, eval = function() end }
        haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, action = haka.policy.accept }"#,
    );
    let r = check(&path, &Default::default()).unwrap();
    assert_eq!(r.rules, 3);
    assert_eq!(r.policies, 1);
    assert_eq!(
        r.events,
        vec!["ipv4.receive_packet", "tcp_connection.new_connection", "tcp_connection.receive_data"]
    );
    let missing = check(&dir.path().join("nope.lua"), &Default::default()).unwrap_err().to_string();
    assert!(missing.contains("nope.lua"), "{missing}");
}

#[test]
fn sample_rules_refuse_telnet_and_reset_attacks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/rules.lua");
    let (alerts, mem) = AlertSink::memory();
    let stats = Arc::new(Stats::new());
    let sinks = RuleSinks { alerts, stats: stats.clone() };
    let mut rules = LuaRules::load(&path, &RulesConfig::default(), sinks).unwrap();
    let telnet = flow_to(1, client(), 40000, server(), 23);
    let syn_bytes = syn();
    let d = decode(&syn_bytes).unwrap();
    assert_eq!(
        rules.packet(Event::TcpNewConnection, &cx(), &d, Some((&telnet, Direction::Up))),
        Action::DropFlow
    );
    let web = tcp_flow(2);
    assert_eq!(rules.packet(Event::TcpNewConnection, &cx(), &d, Some((&web, Direction::Up))), Action::Accept);
    assert_eq!(rules.data(&cx(), &web, Direction::Up, b"GET / HTTP/1.0\r\n"), Action::Accept);
    // Server → client "attack" is not what the rule looks for; case matters.
    assert_eq!(rules.data(&cx(), &web, Direction::Down, b"attack"), Action::Accept);
    assert_eq!(rules.data(&cx(), &web, Direction::Up, b"ATTACK"), Action::Accept);
    assert_eq!(rules.data(&cx(), &web, Direction::Up, b"xx attack xx"), Action::Reset);
    let v = mem.values();
    assert!(v.len() >= 2, "{v:?}");
    assert!(v.iter().any(|a| a["flow"]["dport"] == 23));
    assert!(v.iter().any(|a| a["flow"]["dport"] == 80));
    assert_eq!(stats.get(Counter::RuleErrors), 0);
}
