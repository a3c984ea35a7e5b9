//! One flow object per connection, as in Haka: the same Lua value at every
//! event of a connection, usable as a table key (strong or weak), released
//! when the connection ends.

use super::*;

/// Records, at every event, whether the flow is the one `new_connection` saw.
const IDENTITY_RULES: &str = r#"
    local ev = haka.dissectors.tcp_connection.events
    seen, same, weak = {}, {}, setmetatable({}, { __mode = "k" })
    local function note(name, flow)
      same[#same + 1] = name .. "=" .. tostring(rawequal(flow, first) and flow == first)
      seen[flow] = (seen[flow] or 0) + 1
    end
    haka.rule{ on = ev.new_connection, eval = function(flow, pkt)
      first = flow; weak[flow] = true; note("new", flow) end }
    haka.rule{ on = ev.receive_packet, eval = function(flow, pkt, dir) note("pkt", flow) end }
    haka.rule{ on = ev.receive_data, eval = function(flow, data, dir) note("data", flow) end }
    haka.rule{ on = ev.end_connection, eval = function(flow) note("end", flow); first = nil end }
"#;

fn weak_count(h: &Harness) -> i64 {
    h.eval("collectgarbage() collectgarbage() local n = 0 for _ in pairs(weak) do n = n + 1 end return n")
        .unwrap()
}

#[test]
fn every_event_of_a_connection_gets_the_same_flow_object() {
    let mut h = Harness::new(IDENTITY_RULES);
    let f = tcp_flow(21);
    h.packet(Event::TcpNewConnection, &syn(), Some((&f, Direction::Up)));
    h.packet(Event::TcpConnectionPacket, &syn(), Some((&f, Direction::Up)));
    h.data(&f, Direction::Up, b"GET /");
    h.data(&f, Direction::Down, b"200 OK");
    h.rules.end(Event::TcpEndConnection, &cx(), &f);
    let same: Vec<String> = h.global("same");
    assert_eq!(same, ["new=true", "pkt=true", "data=true", "data=true", "end=true"]);
    // A strong table keyed by the flow counted every event under one key.
    let counts: Vec<i64> =
        h.eval("local c = {} for _, n in pairs(seen) do c[#c + 1] = n end return c").unwrap();
    assert_eq!(counts, [5]);
    assert_eq!(h.errors(), 0);
}

#[test]
fn weak_tables_empty_once_the_connection_ends() {
    let mut h = Harness::new(IDENTITY_RULES);
    h.eval::<()>("seen = setmetatable({}, { __mode = 'k' })").unwrap();
    let f = tcp_flow(22);
    h.packet(Event::TcpNewConnection, &syn(), Some((&f, Direction::Up)));
    h.data(&f, Direction::Up, b"x");
    assert_eq!(weak_count(&h), 1, "alive while the connection is");
    h.rules.end(Event::TcpEndConnection, &cx(), &f);
    assert_eq!(weak_count(&h), 0, "sluice let go of the flow at end_connection");
}

#[test]
fn a_flow_kept_past_its_connection_refuses_to_work() {
    let mut h = Harness::new(
        r#"local ev = haka.dissectors.tcp_connection.events
        haka.rule{ on = ev.receive_data, eval = function(flow) kept = flow; flow.x = 1 end }"#,
    );
    let f = tcp_flow(23);
    h.data(&f, Direction::Up, b"x");
    h.rules.end(Event::TcpEndConnection, &cx(), &f);
    for expr in ["return kept.x", "kept.y = 2", "kept:drop()", "return kept.srcport"] {
        let err = h.eval::<mlua::Value>(expr).expect_err(expr);
        let msg = crate::rules::error::error_message(&err);
        assert!(msg.contains("used after its connection ended"), "{expr}: {msg}");
    }
    // Late events of the ended connection do not reach rules.
    assert_eq!(h.data(&f, Direction::Up, b"late"), Action::Accept);
    assert_eq!(h.errors(), 0);
}

#[test]
fn decisions_act_only_on_the_running_events_flow() {
    let mut h = Harness::new(
        r#"local ev = haka.dissectors.tcp_connection.events
        haka.rule{ on = ev.receive_data, eval = function(flow, data)
          if not other then other = flow return end
          ok, msg = pcall(function() other:reset() end); msg = tostring(msg)
          other_port = other.dstport   -- reading another live flow is fine
        end }"#,
    );
    h.data(&tcp_flow(24), Direction::Up, b"x");
    assert_eq!(h.data(&tcp_flow(25), Direction::Up, b"y"), Action::Accept);
    assert!(!h.global::<bool>("ok"));
    assert!(h.global::<String>("msg").contains("flow of the running event"));
    assert_eq!(h.global::<i64>("other_port"), 80);
}

#[test]
fn state_keyed_by_flow_is_bounded_under_churn() {
    // A rule keeping state in flow fields and in a weak table keyed by the
    // flow: after many short connections, nothing of them is left.
    let mut h = Harness::new(
        r#"local ev = haka.dissectors.tcp_connection.events
        by_flow = setmetatable({}, { __mode = "k" })
        haka.rule{ on = ev.receive_data, eval = function(flow, data)
          flow.buf = (flow.buf or "") .. data:asstring()
          by_flow[flow] = #flow.buf
        end }"#,
    );
    let before = h.rules.lua.used_memory();
    for id in 1..=20_000u64 {
        let f = tcp_flow(id);
        h.data(&f, Direction::Up, b"GET / HTTP/1.1\r\n\r\n");
        h.rules.end(Event::TcpEndConnection, &cx(), &f);
        h.rules.forget(id);
    }
    assert_eq!(h.rules.flows.len(), 0);
    let n: i64 = h
        .eval(
            "collectgarbage() collectgarbage() local n = 0 for _ in pairs(by_flow) do n = n + 1 end return n",
        )
        .unwrap();
    assert_eq!(n, 0);
    let after = h.rules.lua.used_memory();
    assert!(after < before + 256 * 1024, "memory grew from {before} to {after} bytes");
    assert_eq!(h.errors(), 0);
}

#[test]
fn flow_times_are_packet_times() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow)
          t = { flow.start_time.seconds, flow.last_activity.seconds, haka.network_time().seconds,
                flow.last_activity - flow.start_time }
        end }"#,
    );
    let f = tcp_flow(26);
    h.rules.data(&Context { time: Timestamp::from_secs_micros(100, 0) }, &f, Direction::Up, b"a");
    h.rules.data(&Context { time: Timestamp::from_secs_micros(102, 500_000) }, &f, Direction::Up, b"b");
    let t: Vec<f64> = h.global("t");
    assert_eq!(t, [100.0, 102.5, 102.5, 2.5]);
}
