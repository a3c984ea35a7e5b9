//! The `data` of `receive_data` as a light userdata (`event_data.rs`): it
//! reads the event's bytes in place, and one kept past its event never
//! shows another event's bytes.

use super::*;

#[test]
fn kept_data_never_shows_later_bytes() {
    let mut h = Harness::new(
        r#"local rem = require("regexp/pcre")
        local re = rem.re:compile("x")
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
          if not kept then kept = data; flow.kept = data; return end
          same = (kept == data)
          uses = {
            function(d) return #d end,
            function(d) return d:asstring() end,
            function(d) return tostring(d) end,
            function(d) return d:sub(1, 2):asstring() end,
            function(d) return d[1] end,
            function(d) return re:match(d) end,
          }
          r = {}
          for i, use in ipairs(uses) do
            local ok, err = pcall(use, kept)
            local ok2, err2 = pcall(use, flow.kept or kept)
            r[i] = (not ok and not ok2) and tostring(err) or "worked"
          end
          now = data:asstring()
        end }"#,
    );
    // The first connection keeps its data; later events, of the same
    // connection and of another, must not read through it.
    h.data(&tcp_flow(1), Direction::Up, b"first bytes");
    for (f, bytes) in [(tcp_flow(1), &b"later bytes x"[..]), (tcp_flow(2), &b"other flow x"[..])] {
        assert_eq!(h.data(&f, Direction::Up, bytes), Action::Accept);
        assert!(!h.global::<bool>("same"), "a kept data is not the current one");
        assert_eq!(h.global::<String>("now").as_bytes(), bytes);
        let r: Vec<String> = h.eval("return r").unwrap();
        assert_eq!(r.len(), 6);
        for (i, msg) in r.iter().enumerate() {
            assert!(msg.contains("data object used after its event ended"), "use {}: {msg}", i + 1);
        }
    }
    assert_eq!(h.errors(), 0);
}

#[test]
fn data_bytes_are_read_in_place() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
             r = { #data, data[1], data[#data], data[0] == nil, data[#data + 1] == nil, data[2.0],
                   type(data), getmetatable(data) }
             bad_field = { pcall(function() return data.nope end) }
             bad_set = { pcall(function() data.x = 1 end) }
           end }"#,
    );
    h.data(&tcp_flow(1), Direction::Up, b"AbZ");
    let r: (i64, i64, i64, bool, bool, i64, String, bool) = h.eval("return table.unpack(r, 1, 8)").unwrap();
    assert_eq!(r, (3, 65, 90, true, true, 98, "userdata".into(), false));
    let (ok, msg): (bool, String) = h.eval("return bad_field[1], tostring(bad_field[2])").unwrap();
    assert!(!ok && msg.contains("data has no field 'nope'"), "{msg}");
    let (ok, msg): (bool, String) = h.eval("return bad_set[1], tostring(bad_set[2])").unwrap();
    assert!(!ok && msg.contains("data is read-only"), "{msg}");
}

#[test]
fn runaway_loop_stops_within_the_budget() {
    // Two VM instructions per iteration (SETTABUP, FORLOOP). The budget is
    // checked every 1000 instructions (budget.rs), so the loop stops within
    // 1000 instructions of the limit: a budget checked every 10,000 would
    // let it run up to 10% past it.
    let limit = 100_000;
    let mut h = Harness::with_config(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
             for i = 1, 1e12 do n = i end
           end }"#,
        &RulesConfig { instruction_limit: limit, ..RulesConfig::default() },
    );
    assert_eq!(h.data(&tcp_flow(1), Direction::Up, b"x"), Action::DropPacket);
    assert_eq!(h.errors(), 1);
    let n: i64 = h.global("n");
    let ran = 2 * n as u64;
    assert!(ran <= limit + 1_000 && ran + 1_000 >= limit, "ran {ran} instructions of a budget of {limit}");
}
