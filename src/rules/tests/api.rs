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
    let mut telnet = tcp_flow(1);
    telnet.dst_port = 23;
    let syn_bytes = syn();
    let d = decode(&syn_bytes).unwrap();
    assert_eq!(
        rules.packet(Event::TcpNewConnection, &cx(), &d, Some((&telnet, Direction::Up))),
        Action::DropFlow
    );
    // Telnet into the watched network: the later telnet policy applies.
    let mut watched_telnet = tcp_flow(3);
    watched_telnet.dst = v4(192, 0, 2, 5);
    watched_telnet.dst_port = 23;
    assert_eq!(
        rules.packet(Event::TcpNewConnection, &cx(), &d, Some((&watched_telnet, Direction::Up))),
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

#[test]
fn var_settings_are_readable_and_missing_ones_fail_loudly() {
    let cfg = RulesConfig {
        vars: vec![("port".to_owned(), "8080".to_owned()), ("mode".to_owned(), "strict".to_owned())],
        ..RulesConfig::default()
    };
    let h = Harness::with_config(
        r#"port = tonumber(sluice.var("port"))
        mode = sluice.vars.mode
        fallback = sluice.var("absent", "dflt")
        local n = 0 for _ in pairs(sluice.vars) do n = n + 1 end
        count = n
        ok, msg = pcall(sluice.var, "typo"); msg = tostring(msg)
        ro = pcall(function() sluice.vars.mode = "x" end)"#,
        &cfg,
    );
    assert_eq!(h.global::<i64>("port"), 8080);
    assert_eq!(h.global::<String>("mode"), "strict");
    assert_eq!(h.global::<String>("fallback"), "dflt");
    assert_eq!(h.global::<i64>("count"), 2);
    assert!(!h.global::<bool>("ok"));
    assert!(h.global::<String>("msg").contains("--var typo=VALUE"));
    assert!(!h.global::<bool>("ro"));
}
