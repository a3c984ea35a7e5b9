//! `--stream-depth` and `--bypass` in the engine.

use super::*;
use crate::config::Bypass;

fn depth_config(depth: u64, bypass: Bypass) -> EngineConfig {
    EngineConfig { stream_depth: depth, bypass, ..EngineConfig::default() }
}

#[test]
fn rules_get_the_bytes_up_to_the_depth_and_hear_it_was_reached() {
    let (mut h, mut c) = established_with(depth_config(10, Bypass::Off), Script::default());
    h.accept(&c.data(true, b"0123456"));
    h.accept(&c.data(true, b"789abc"));
    h.accept(&c.data(true, b"more bytes"));
    h.accept(&c.data(false, b"reply"));
    assert_eq!(h.engine.inspector().up, b"0123456789");
    assert_eq!(h.engine.inspector().down, b"reply", "the other direction has its own depth");
    let depth_events: Vec<&String> = h.events().iter().filter(|e| e.starts_with("depth:")).collect();
    assert_eq!(depth_events, ["depth:up"], "once, for the direction that passed it");
    assert_eq!(h.count(Counter::StreamBytesPastDepth), 3 + 10);
    assert_eq!(h.count(Counter::StreamPacketsPastDepth), 1);
    assert_eq!(h.count(Counter::StreamDepthReached), 1);
    assert_eq!(h.count(Counter::StreamBytes), 10 + 5);
    // The connection is still tracked: its FINs end it for rules.
    h.accept(&c.fin(true));
    h.accept(&c.fin(false));
    h.accept(&ack_all(&c, false));
    assert_eq!(h.events().last().map(String::as_str), Some("tcp_connection:end"));
}

#[test]
fn a_reset_after_the_depth_carries_the_sequence_numbers_the_ends_expect() {
    let script = Script { action_on_depth: Some(Action::Reset), ..Script::default() };
    let (mut h, mut c) = established_with(depth_config(8, Bypass::Off), script);
    // The client's direction passes the depth; its packets go on being tracked.
    let (v, _) = h.send(&c.data(true, b"12345678 and past the depth"));
    assert_eq!(v, Verdict::Drop, "the rule resets at the client's depth");
    let (mut h, mut c) = established_with(depth_config(8, Bypass::Off), Script::default());
    h.accept(&c.data(true, b"12345678 and past the depth"));
    h.accept(&c.data(true, b" and more"));
    h.accept(&ack_all(&c, false));
    h.engine.inspector_mut().action_on_depth = Some(Action::Reset);
    let (client_next, server_next) = (c.cseq, c.sseq);
    // Later the server's direction passes it too, and the rule resets.
    let (v, forged) = h.send(&c.data(false, b"server bytes"));
    assert_eq!(v, Verdict::Drop);
    assert_eq!(h.engine.inspector().up, b"12345678");
    assert_eq!(h.engine.inspector().down, b"server b");
    let to_client = decode(&forged[0]).unwrap();
    let to_server = decode(&forged[1]).unwrap();
    assert_eq!(to_client.ip.dst, client());
    assert_eq!(to_client.tcp().unwrap().seq, server_next, "the client expects the server's next byte");
    assert_eq!(to_server.tcp().unwrap().seq, client_next, "the server expects every byte past the depth");
}

#[test]
fn bypass_marks_packets_once_the_connection_is_past_depth() {
    let (mut h, mut c) = established_with(depth_config(4, Bypass::Both), Script::default());
    h.accept(&c.data(true, b"abcdef"));
    assert!(h.out.bypass.is_empty(), "one direction only: both must be past the depth");
    h.accept(&c.data(false, b"xy"));
    assert!(h.out.bypass.is_empty());
    h.accept(&c.data(false, b"zzzz"));
    assert_eq!(h.out.bypass, [h.next_id - 1], "the packet that took the second direction past it");
    h.accept(&ack_all(&c, false));
    assert_eq!(h.out.bypass, [h.next_id - 1], "and every later packet");
    assert_eq!(h.count(Counter::BypassMarked), 2);

    let (mut h, mut c) = established_with(depth_config(4, Bypass::Either), Script::default());
    h.accept(&c.data(true, b"abc"));
    assert!(h.out.bypass.is_empty());
    h.accept(&c.data(true, b"def"));
    assert_eq!(h.out.bypass, [h.next_id - 1], "either: one direction past the depth is enough");

    let (mut h, mut c) = established_with(depth_config(4, Bypass::Off), Script::default());
    h.accept(&c.data(true, b"abcdef"));
    h.accept(&c.data(false, b"abcdef"));
    assert!(h.out.bypass.is_empty(), "no bypass unless asked for");
}

#[test]
fn a_dropped_connection_is_never_marked() {
    let script = Script { reset_on: Some(b"bad".to_vec()), ..Script::default() };
    let (mut h, mut c) = established_with(depth_config(4, Bypass::Either), script);
    let (v, _) = h.send(&c.data(true, b"bad!"));
    assert_eq!(v, Verdict::Drop);
    h.drop(&c.data(true, b"more"));
    assert!(h.out.bypass.is_empty());
}

#[test]
fn batches_stop_at_the_depth() {
    let script = Script { stream_only: true, ..Script::default() };
    let (mut h, mut c) = established_with(depth_config(5, Bypass::Off), script);
    let ps = vec![c.data(true, b"abc"), c.data(true, b"def"), c.data(true, b"ghi")];
    let (v, _) = h.send_batch(&ps);
    assert_eq!(v, vec![Verdict::Accept; 3]);
    assert_eq!(h.engine.inspector().up, b"abcde");
    assert_eq!(h.count(Counter::StreamDepthReached), 1);
}
