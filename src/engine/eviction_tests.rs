//! What a full flow table may forget: a live connection a rule dropped must
//! not come back as a new flow when a flood pushes it out of the table.

use super::tests::{server, Conv, Harness, Script, S};
use super::*;
use crate::wire::forge::TcpSegment;
use crate::wire::tcp_flags::SYN;

/// A SYN from a fresh source port: one half-open flow each.
fn syn_from(port: u16) -> Vec<u8> {
    let mut t = TcpSegment::new("10.0.0.9".parse().unwrap(), port, server(), S);
    t.flags = SYN;
    t.build()
}

/// Rules that `flow:drop()` a connection whose client sends "evil".
fn drop_on_evil() -> Script {
    Script { reset_on: Some(b"evil".to_vec()), action_on_match: Some(Action::DropFlow), ..Script::default() }
}

fn midstream_harness(max_flows: usize, script: Script) -> Harness {
    let cfg = EngineConfig { max_flows, tcp_midstream: true, ..EngineConfig::default() };
    Harness::with_config(cfg, script)
}

#[test]
fn a_dropped_live_connection_survives_a_syn_flood_under_midstream() {
    let mut h = midstream_harness(4, drop_on_evil());
    let mut c = Conv::new(1000, 5000);
    for p in c.handshake() {
        h.accept(&p);
    }
    h.drop(&c.data(true, b"evil"));
    // The flood fills and churns the table.
    for port in 1..50u16 {
        h.accept(&syn_from(port));
    }
    assert!(h.count(Counter::FlowsEvicted) >= 45);
    // The client is still connected and keeps sending: still dropped, never
    // picked up midstream as a new flow.
    let before = h.engine.inspector().up.len();
    h.drop(&c.data(true, b"more"));
    assert_eq!(h.engine.inspector().up.len(), before, "rules saw no new stream");
    assert!(h.count(Counter::DropFlowDropped) >= 1);
}

#[test]
fn a_connection_refused_at_its_syn_does_not_pin_the_table() {
    // A rule refusing a port must not let a SYN flood to that port fill the
    // table with flows that can never leave.
    let script = Script { refuse_port: Some(S), ..Script::default() };
    let mut h = midstream_harness(4, script);
    for port in 1..50u16 {
        h.drop(&syn_from(port));
    }
    assert!(h.count(Counter::FlowsEvicted) >= 45);
    assert_eq!(h.count(Counter::DropFlowLimit), 0);
}

#[test]
fn a_dropped_connection_gives_its_buffered_bytes_back_at_once() {
    let mut h = Harness::new(drop_on_evil());
    let mut c = Conv::new(1000, 5000);
    for p in c.handshake() {
        h.accept(&p);
    }
    // An island held out of order, then the rule drops the connection.
    let base = c.cseq;
    h.accept(&c.seg(true, base + 100, crate::wire::tcp_flags::ACK, b"island"));
    assert!(h.engine.buffered_bytes() >= 6);
    h.drop(&c.data(true, b"evil"));
    assert_eq!(h.engine.buffered_bytes(), 0);
    assert_eq!(h.count(Counter::StreamBytesBuffered), 0);
}
