//! `haka.policy`: Haka's top-level criteria, the last eligible policy
//! applying, the criterion objects, rule-defined points with `apply`, and
//! keys that are refused.

use super::*;
use crate::wire::forge::udp_packet;

fn flow_to(id: u64, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> FlowInfo {
    FlowInfo { id, proto: L4Proto::Tcp, src, src_port: sport, dst, dst_port: dport }
}

/// A `new_connection` event of a TCP flow to `dport`, from client port `sport`.
fn connect(h: &mut Harness, id: u64, sport: u16, dport: u16) -> Action {
    let f = flow_to(id, client(), sport, server(), dport);
    h.packet(Event::TcpNewConnection, &syn(), Some((&f, Direction::Up)))
}

/// The load error of `src`, which is loaded as `p.lua` after one empty line.
fn load_error(src: &str) -> String {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    match LuaRules::from_source("p.lua", &format!("\n{src}"), &RulesConfig::default(), sinks) {
        Ok(_) => panic!("must not load: {src}"),
        Err(e) => e.to_string(),
    }
}

/// Haka's `sample/filter` policy pair: drop by default, then accept port 80.
const DEFAULT_DENY: &str = r#"
local tcp_connection = require("protocol/tcp_connection")
haka.policy {
  on = tcp_connection.policies.new_connection,
  name = "drop by default",
  action = { haka.policy.alert{ description = "drop by default" }, haka.policy.drop }
}
haka.policy {
  on = tcp_connection.policies.new_connection,
  dstport = 80,
  name = "authorizing http traffic",
  action = haka.policy.accept
}
rule_runs = 0
haka.rule{ on = tcp_connection.events.new_connection, eval = function() rule_runs = rule_runs + 1 end }
"#;

#[test]
fn default_deny_first_then_a_later_accept_wins() {
    let mut h = Harness::new(DEFAULT_DENY);
    assert_eq!(connect(&mut h, 1, 40000, 80), Action::Accept);
    assert_eq!(connect(&mut h, 2, 40000, 22), Action::DropFlow);
    let v = h.alerts.values();
    assert_eq!(v.len(), 1, "only the refused connection alerts: {v:?}");
    assert_eq!(v[0]["description"], "drop by default");
    assert_eq!(v[0]["policy"], "drop by default");
    // Haka's desc at new_connection: client as source, server as target.
    assert_eq!(v[0]["sources"], serde_json::json!([{"address": ["10.0.0.1"]}, {"service": ["tcp/40000"]}]));
    assert_eq!(v[0]["targets"], serde_json::json!([{"address": ["10.0.0.2"]}, {"service": ["tcp/22"]}]));
    // The rules of the event run only for the accepted connection.
    assert_eq!(h.global::<i64>("rule_runs"), 1);
}

#[test]
fn every_policy_is_checked_and_the_last_eligible_applies() {
    let mut h = Harness::new(
        r#"
        local point = haka.dissectors.tcp_connection.policies.new_connection
        haka.policy{ on = point, dstport = 23, action = haka.policy.drop }
        haka.policy{ on = point, name = "telnet from a high port", dstport = 23,
          srcport = haka.policy.range(1024, 65535), action = haka.policy.accept }
        haka.policy{ on = point, name = "ssh", dstport = 22, action = haka.policy.accept }
        haka.policy{ on = point, name = "everything", action = haka.policy.alert{ severity = "low" } }
        "#,
    );
    // The last policy (no criteria) is eligible everywhere: only its alert applies.
    assert_eq!(connect(&mut h, 1, 40000, 23), Action::Accept);
    assert_eq!(connect(&mut h, 2, 999, 23), Action::Accept);
    let v = h.alerts.values();
    assert_eq!(v.len(), 2);
    // No description given: Haka's point name.
    assert_eq!(v[0]["description"], "new connection");
    assert_eq!(v[0]["policy"], "everything");

    let mut h = Harness::new(
        r#"
        local point = haka.dissectors.tcp_connection.policies.new_connection
        haka.policy{ on = point, dstport = 23, action = haka.policy.drop }
        haka.policy{ on = point, name = "telnet from a high port", dstport = 23,
          srcport = haka.policy.range(1024, 65535), action = haka.policy.accept }
        "#,
    );
    assert_eq!(connect(&mut h, 1, 40000, 23), Action::Accept);
    assert_eq!(connect(&mut h, 2, 999, 23), Action::DropFlow);
    assert_eq!(connect(&mut h, 3, 999, 80), Action::Accept);
}

#[test]
fn udp_new_connection_point_gives_the_same_values() {
    let mut h = Harness::new(
        r#"local ipv4 = require("protocol/ipv4")
           haka.policy{ on = haka.dissectors.udp_connection.policies.new_connection,
             srcip = "10.0.0.1", srcport = 5353, dstip = ipv4.addr("10.0.0.2"), dstport = 53,
             action = { haka.policy.drop, function(point, flow, values, desc)
               seen = string.format("%s %s:%d > %s:%d %s", tostring(point), tostring(values.srcip), values.srcport,
                 tostring(values.dstip), values.dstport, desc.targets[2].service[1])
               same_flow = flow.srcport == 5353 and flow.dstport == 53 end } }"#,
    );
    let p = udp_packet(client(), 5353, server(), 53, b"q");
    assert_eq!(h.packet(Event::UdpNewConnection, &p, Some((&udp_flow(1), Direction::Up))), Action::DropFlow);
    assert_eq!(
        h.global::<String>("seen"),
        "hook udp_connection.policies.new_connection 10.0.0.1:5353 > 10.0.0.2:53 udp/53"
    );
    assert!(h.global::<bool>("same_flow"));
    let mut other = udp_flow(2);
    other.dst_port = 54;
    assert_eq!(h.packet(Event::UdpNewConnection, &p, Some((&other, Direction::Up))), Action::Accept);
}

/// Each criterion object against the ports and addresses of new connections.
#[test]
fn criterion_objects_at_new_connection() {
    let cases: &[(&str, u16, IpAddr, bool)] = &[
        ("dstport = 80", 80, server(), true),
        ("dstport = 80", 81, server(), false),
        ("dstport = haka.policy.value(80)", 80, server(), true),
        ("dstport = haka.policy.value(80)", 8080, server(), false),
        ("dstport = haka.policy.set{ 22, 80, 443 }", 443, server(), true),
        ("dstport = haka.policy.set{ 22, 80, 443 }", 444, server(), false),
        ("dstport = haka.policy.range(1000, 2000)", 1000, server(), true),
        ("dstport = haka.policy.range(1000, 2000)", 2000, server(), true),
        ("dstport = haka.policy.range(1000, 2000)", 2001, server(), false),
        ("dstport = haka.policy.outofrange(1000, 2000)", 999, server(), true),
        ("dstport = haka.policy.outofrange(1000, 2000)", 2001, server(), true),
        ("dstport = haka.policy.outofrange(1000, 2000)", 1500, server(), false),
        ("dstport = haka.policy.present()", 1, server(), true),
        ("dstport = haka.policy.absent()", 1, server(), false),
        ("dstip = ipv4.addr('10.0.0.2')", 1, server(), true),
        ("dstip = ipv4.addr('10.0.0.2')", 1, v4(10, 0, 0, 3), false),
        ("dstip = '10.0.0.2'", 1, server(), true),
        ("dstip = haka.policy.ipv4_in_network(ipv4.network('10.0.0.0/8'))", 1, v4(10, 9, 9, 9), true),
        ("dstip = haka.policy.ipv4_in_network(ipv4.network('10.0.0.0/8'))", 1, v4(11, 0, 0, 1), false),
        ("dstip = ipv4.network('192.168.0.0/16')", 1, v4(192, 168, 3, 4), true),
        ("dstip = haka.policy.ipv6_in_network('2001:db8::/32')", 1, "2001:db8::5".parse().unwrap(), true),
        ("dstip = haka.policy.ipv6_in_network('2001:db8::/32')", 1, "2001:db9::5".parse().unwrap(), false),
        ("dstip = haka.policy.ipv6_in_network('2001:db8::/32')", 1, server(), false),
        ("dstip = '192.168.0.0/16'", 1, v4(192, 169, 0, 1), false),
        ("dstip = haka.policy.set{ ipv4.addr('10.0.0.7'), ipv4.addr('10.0.0.2') }", 1, server(), true),
        ("dstip = haka.policy.range(ipv4.addr('10.0.0.1'), ipv4.addr('10.0.0.5'))", 1, v4(10, 0, 0, 5), true),
        (
            "dstip = haka.policy.range(ipv4.addr('10.0.0.1'), ipv4.addr('10.0.0.5'))",
            1,
            v4(10, 0, 0, 6),
            false,
        ),
    ];
    for (criterion, dport, dst, eligible) in cases {
        let src = format!(
            "ipv4 = require('protocol/ipv4')\n\
             haka.policy{{ on = haka.dissectors.tcp_connection.policies.new_connection, {criterion},\n\
               action = haka.policy.drop }}"
        );
        let mut h = Harness::new(&src);
        let f = flow_to(1, client(), 40000, *dst, *dport);
        let got = h.packet(Event::TcpNewConnection, &syn(), Some((&f, Direction::Up)));
        let want = if *eligible { Action::DropFlow } else { Action::Accept };
        assert_eq!(got, want, "{criterion} with {dst}:{dport}");
        assert_eq!(h.errors(), 0, "{criterion}");
    }
}

#[test]
fn learning_criteria_record_then_match() {
    let mut h = Harness::new(
        r#"
        local point = haka.dissectors.tcp_connection.policies.new_connection
        haka.policy.learning = true
        haka.policy{ on = point, action = haka.policy.drop }
        haka.policy{ on = point, name = "known ports", dstport = haka.policy.learn(haka.policy.set),
          srcport = haka.policy.learn(haka.policy.range), action = haka.policy.accept }
        "#,
    );
    // While learning, the learning policy is eligible and records the values.
    assert_eq!(connect(&mut h, 1, 2000, 80), Action::Accept);
    assert_eq!(connect(&mut h, 2, 3000, 443), Action::Accept);
    h.eval::<()>("haka.policy.learning = false").unwrap();
    assert_eq!(connect(&mut h, 3, 2500, 443), Action::Accept);
    assert_eq!(connect(&mut h, 4, 2500, 22), Action::DropFlow, "port 22 was never seen");
    assert_eq!(connect(&mut h, 5, 3001, 80), Action::DropFlow, "source port outside the learnt range");
    assert_eq!(h.errors(), 0);
}

#[test]
fn criterion_object_errors_are_load_errors() {
    let point = "haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, action = haka.policy.drop,";
    let cases = [
        (format!("{point} dstport = haka.policy.range(9, 1) }}"), "invalid bounds"),
        (format!("{point} dstport = haka.policy.range(9) }}"), "invalid min or max"),
        (format!("{point} dstport = haka.policy.set(5) }}"), "haka.policy.set expects a table"),
        (format!("{point} dstport = haka.policy.present }}"), "call it"),
        (format!("{point} dstip = haka.policy.ipv4_in_network('x') }}"), "expects a network"),
        (
            format!("{point} dstip = haka.policy.ipv4_in_network('2001:db8::/32') }}"),
            "ipv4_in_network expects",
        ),
        (format!("{point} dstip = haka.policy.ipv6_in_network('10.0.0.0/8') }}"), "ipv6_in_network expects"),
        (format!("{point} dstport = haka.policy.learn(haka.policy.outofrange) }}"), "cannot learn"),
        (format!("{point} dstport = {{ 80, 443 }} }}"), "'dstport' must be a port number"),
        (format!("{point} dstport = '80' }}"), "'dstport' must be a port number"),
        (format!("{point} srcip = 'nowhere' }}"), "'srcip' must be an address"),
    ];
    for (src, want) in &cases {
        let err = load_error(src);
        assert!(err.starts_with("p.lua:2: "), "{err}");
        assert!(err.contains(want), "{src}: {err}");
    }
}

#[test]
fn unknown_policy_keys_are_refused_with_the_key_and_line() {
    let point = "on = haka.dissectors.tcp_connection.policies.new_connection, action = haka.policy.drop";
    let err = load_error(&format!("haka.policy{{ {point}, dport = 80 }}"));
    assert!(err.starts_with("p.lua:2: "), "{err}");
    assert!(err.contains("unknown key 'dport'"), "{err}");
    // sluice's old form says how to rewrite it.
    let err = load_error(&format!("haka.policy{{ {point}, criterion = {{ dstport = 23 }} }}"));
    assert!(err.starts_with("p.lua:2: "), "{err}");
    assert!(err.contains("unknown key 'criterion'"), "{err}");
    assert!(err.contains("top-level key"), "{err}");
    assert!(err.contains("haka.policy.range(min, max)"), "{err}");
    let err = load_error(&format!("haka.policy{{ {point}, criteria = {{ dstport = 23 }} }}"));
    assert!(err.contains("unknown key 'criteria'"), "{err}");
    let err = load_error(&format!("haka.policy{{ {point}, [1] = 2 }}"));
    assert!(err.contains("unexpected key [1]"), "{err}");
    let cases = [
        ("haka.policy{ on = haka.dissectors.tcp.events.receive_packet, action = haka.policy.drop }", "'on'"),
        ("haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, action = 5 }", "'action' must be"),
        ("haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, action = { 5 } }", "'action' must be"),
        ("haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection }", "'action' is missing"),
        ("haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, name = 3, action = haka.policy.drop }", "'name'"),
    ];
    for (src, want) in cases {
        let err = load_error(src);
        assert!(err.starts_with("p.lua:2: "), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// A rule-defined point: policies on it run when a rule applies it, with
/// the rule's values, and act on the context the rule gives.
const RULE_POINT: &str = r#"
local tcp_connection = require("protocol/tcp_connection")
local big_upload = haka.policy.new("big upload")
haka.policy{ on = big_upload, name = "log", action = haka.policy.log(haka.log.info, "upload of %d", 1) }
haka.policy{ on = big_upload, name = "huge", size = haka.policy.range(1000, math.huge), action = {
  haka.policy.alert{ severity = "high" }, haka.policy.drop } }
haka.policy{ on = big_upload, name = "trusted", size = haka.policy.present(), user = "admin",
  action = function(point, ctx, values, desc) trusted = point.name .. " " .. values.user .. " " .. desc.why end }
haka.rule{ on = tcp_connection.events.receive_data, eval = function(flow, data, dir)
  local user = data:sub(1, 5):asstring()
  big_upload:apply{ values = { size = #data, user = user }, ctx = flow, desc = { why = "size" } }
end }
haka.rule{ on = haka.dissectors.tcp.events.receive_packet, eval = function(pkt)
  if #pkt.payload > 0 then big_upload:apply{ values = { size = 5000 }, ctx = pkt } end
end }
"#;

#[test]
fn rule_defined_points_apply_the_last_eligible_policy() {
    let mut h = Harness::new(RULE_POINT);
    let f = tcp_flow(1);
    assert_eq!(h.data(&f, Direction::Up, b"small"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, &[b'x'; 1500]), Action::DropFlow);
    assert_eq!(h.data(&f, Direction::Up, &[b'a'; 10]), Action::Accept);
    let mut admin = b"admin".to_vec();
    admin.extend_from_slice(&[b' '; 2000]);
    // "trusted" comes after "huge": it wins for the admin.
    assert_eq!(h.data(&f, Direction::Up, &admin), Action::Accept);
    assert_eq!(h.global::<String>("trusted"), "big upload admin size");
    // With a packet as the context, drop drops the packet.
    assert_eq!(h.packet(Event::TcpPacket, &tcp_packet(tcp_flags::ACK, b"data"), None), Action::DropPacket);
    let v = h.alerts.values();
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0]["description"], "big upload");
    assert_eq!(v[0]["severity"], "high");
    assert_eq!(v[0]["policy"], "huge");
    assert_eq!(v[0]["why"], "size");
    assert_eq!(h.errors(), 0);
}

#[test]
fn apply_refuses_bad_arguments() {
    let mut h = Harness::new(
        r#"
        local p = haka.policy.new("p")
        haka.policy{ on = p, action = haka.policy.drop }
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
          local what = data:asstring()
          local ok, err = pcall(function()
            if what == "noctx" then p:apply{ values = {} }
            elseif what == "key" then p:apply{ values = {}, ctx = flow, value = 1 }
            elseif what == "values" then p:apply{ values = 3, ctx = flow }
            else p:apply{ ctx = {} } end
          end)
          msg = tostring(err)
        end }
        "#,
    );
    let f = tcp_flow(1);
    let mut msg = |what: &[u8]| {
        h.data(&f, Direction::Up, what);
        h.global::<String>("msg")
    };
    assert!(msg(b"noctx").contains("'ctx' is missing"));
    assert!(msg(b"key").contains("unknown key 'value'"));
    assert!(msg(b"values").contains("'values' must be a table"));
    // A context without a drop method: Lua's own error, reported.
    assert!(msg(b"nodrop").contains("drop"));
}

#[test]
fn policy_actions_are_functions_as_in_haka() {
    let h = Harness::new(
        r#"kinds = type(haka.policy.accept) .. type(haka.policy.drop) .. type(haka.policy.alert{})
              .. type(haka.policy.log(haka.log.info, "x"))"#,
    );
    assert_eq!(h.global::<String>("kinds"), "functionfunctionfunctionfunction");
    // A rule's own action may call them (Haka's actions are plain functions).
    let mut h = Harness::new(
        r#"
        local warn = haka.policy.alert{ severity = "low" }
        haka.policy{ on = haka.dissectors.tcp_connection.policies.new_connection, action = function(point, flow, values, desc)
          if values.dstport == 25 then haka.policy.drop(point, flow) end
          warn(point, flow, values, desc)
          nil_ok = pcall(haka.policy.drop, point, nil)
        end }
        "#,
    );
    assert_eq!(connect(&mut h, 1, 40000, 25), Action::DropFlow);
    assert_eq!(connect(&mut h, 2, 40000, 26), Action::Accept);
    assert!(!h.global::<bool>("nil_ok"), "drop without a context is an error");
    let v = h.alerts.values();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["description"], "new connection");
    assert_eq!(v[1]["targets"][1]["service"][0], "tcp/26");
    assert_eq!(h.errors(), 0);
}

/// The examples of the Policies section of docs/rules-api.md load, and the
/// default-deny one behaves as the text says.
#[test]
fn policy_doc_examples_load_and_default_deny_accepts_port_80() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules-api.md")).unwrap();
    let start = doc.find("\n## Policies\n").expect("a Policies section");
    let section = &doc[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let blocks: Vec<&str> =
        section.split("```lua\n").skip(1).map(|b| b.split("```").next().unwrap_or("")).collect();
    assert!(blocks.len() >= 2, "{blocks:?}");
    for b in &blocks {
        Harness::new(b);
    }
    let mut h = Harness::new(blocks[0]);
    assert_eq!(connect(&mut h, 1, 40000, 80), Action::Accept);
    assert_eq!(connect(&mut h, 2, 40000, 25), Action::DropFlow);
    assert_eq!(h.alerts.values().len(), 1);
}
