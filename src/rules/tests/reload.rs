//! A reload hands each flow's rule state to the new rules.

use super::*;

/// Resets when "attack" appears in the client stream, across chunks, keeping
/// the tail of the last chunk in the flow (the documented idiom). Before
/// touching the state, each call records in globals what it found there.
const SPLIT_PATTERN_RULES: &str = r#"
    local tcp_connection = require("protocol/tcp_connection")
    haka.rule {
      on = tcp_connection.events.receive_data,
      eval = function (flow, data, dir)
        found_seen = flow.seen
        found_nested = flow.keep and flow.keep.nested.n
        found_function = flow.keep and type(flow.keep.f)
        local text = (flow.tail or "") .. data:asstring()
        flow.seen = (flow.seen or 0) + 1
        flow.keep = { nested = { n = 42 }, f = function () end }
        if text:find("attack", 1, true) then flow:reset() end
        flow.tail = text:sub(-5)
      end
    }
"#;

#[test]
fn a_pattern_split_across_a_reload_is_still_found() {
    let mut old = Harness::new(SPLIT_PATTERN_RULES);
    let f = tcp_flow(11);
    assert_eq!(old.data(&f, Direction::Up, b"hello att"), Action::Accept);

    let mut new = Harness::new(SPLIT_PATTERN_RULES);
    new.rules.take_over(&mut old.rules);
    assert_eq!(new.data(&f, Direction::Up, b"ack"), Action::Reset, "the tail came along");
    assert_eq!(new.errors(), 0);
    assert_eq!(new.global::<i64>("found_seen"), 1);
    assert_eq!(new.global::<i64>("found_nested"), 42);
    // The function belonged to the old state's code: left out.
    assert_eq!(new.global::<String>("found_function"), "nil");
}

#[test]
fn without_take_over_the_split_pattern_is_missed() {
    // The control: the same reload without carrying state loses the tail.
    let mut old = Harness::new(SPLIT_PATTERN_RULES);
    let f = tcp_flow(12);
    assert_eq!(old.data(&f, Direction::Up, b"hello att"), Action::Accept);
    let mut new = Harness::new(SPLIT_PATTERN_RULES);
    assert_eq!(new.data(&f, Direction::Up, b"ack"), Action::Accept);
    assert_eq!(new.global::<Option<i64>>("found_seen"), None);
}

#[test]
fn a_flow_forgotten_before_the_reload_is_not_carried() {
    let mut old = Harness::new(SPLIT_PATTERN_RULES);
    let f = tcp_flow(13);
    old.data(&f, Direction::Up, b"hello att");
    old.rules.forget(f.id);
    let mut new = Harness::new(SPLIT_PATTERN_RULES);
    new.rules.take_over(&mut old.rules);
    assert_eq!(new.data(&f, Direction::Up, b"ack"), Action::Accept);
}
