//! The receiver model through the engine: each Linux rule (out-of-order
//! queue, in order against the queue, PAWS, TCP-MD5/AO, SYN data, urgent
//! data, TTL insertion) under the default `linux` policy, next to what the
//! `strict` policy does with the same packets. Fragment duplicates are in
//! `ip/defrag.rs`.

use super::super::tests::{client, established_with, server, strict_config, Conv, Harness, Script, C, S};
use super::super::{normalize, Verdict};
use crate::config::EngineConfig;
use crate::stats::Counter;
use crate::tcp::receiver_policy::{TargetPolicy, UrgentMode};
use crate::time::Timestamp;
use crate::wire::decode;
use crate::wire::forge::TcpSegment;
use crate::wire::tcp_flags::{ACK, PSH, SYN, URG};
use crate::wire::SeqNumber;

fn linux() -> (Harness, Conv) {
    established_with(EngineConfig::default(), Script::default())
}

fn strict() -> (Harness, Conv) {
    established_with(strict_config(), Script::default())
}

fn up(h: &Harness) -> &[u8] {
    &h.engine.inspector().up
}

/// A client segment with a TCP option list and TTL.
fn seg_with(c: &Conv, seq: SeqNumber, options: &[u8], ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = seq;
    t.ack = c.sseq;
    t.flags = ACK | PSH;
    t.options = options;
    t.ttl = ttl;
    t.payload = payload;
    t.build()
}

// ------------------------------------------------------------ tcp_data_queue_ofo

#[test]
fn a_segment_inside_a_queued_one_is_dropped_and_the_old_bytes_stay() {
    for (mut h, c, linux) in [(linux().0, linux().1, true), (strict().0, strict().1, false)] {
        let b = c.cseq;
        h.accept(&c.seg(true, b + 3, ACK, b"ack"));
        h.drop(&c.seg(true, b + 3, ACK, b"ume"));
        h.accept(&c.seg(true, b, ACK, b"att"));
        assert_eq!(up(&h), b"attack", "linux: {linux}");
    }
}

#[test]
fn same_start_and_longer_replaces_the_queued_segment() {
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 3, ACK, b"ack"));
    h.accept(&c.seg(true, b + 3, ACK, b"une!!"));
    h.accept(&c.seg(true, b, ACK, b"att"));
    assert_eq!(up(&h), b"attune!!");
    assert_eq!(h.count(Counter::OverlapsResolved), 1);
    // Strict: the longer conflicting copy is refused, the stream stalls at
    // the queued bytes.
    let (mut h, c) = strict();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 3, ACK, b"ack"));
    h.drop(&c.seg(true, b + 3, ACK, b"une!!"));
    h.accept(&c.seg(true, b, ACK, b"att"));
    assert_eq!(up(&h), b"attack");
}

#[test]
fn a_covering_segment_removes_the_queued_ones() {
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 4, ACK, b"XX"));
    h.accept(&c.seg(true, b + 2, ACK, b"rmless"));
    h.accept(&c.seg(true, b, ACK, b"ha"));
    assert_eq!(up(&h), b"harmless");
}

#[test]
fn partial_overlaps_keep_both_and_the_lower_one_wins() {
    // Lower one first: its bytes win where they overlap.
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 2, ACK, b"rmle"));
    h.accept(&c.seg(true, b + 4, ACK, b"XXss"));
    h.accept(&c.seg(true, b, ACK, b"ha"));
    assert_eq!(up(&h), b"harmless");
    // Lower one second: the newcomer starts lower, so its bytes win.
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 4, ACK, b"XXss"));
    h.accept(&c.seg(true, b + 2, ACK, b"rmle"));
    h.accept(&c.seg(true, b, ACK, b"ha"));
    assert_eq!(up(&h), b"harmless");
}

#[test]
fn in_order_bytes_win_over_queued_ones() {
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 3, ACK, b"XXXless"));
    h.accept(&c.seg(true, b, ACK, b"harm"));
    assert_eq!(up(&h), b"harmXXless");
    // Strict refuses the in-order copy that disagrees with the queue.
    let (mut h, c) = strict();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 3, ACK, b"XXXless"));
    h.drop(&c.seg(true, b, ACK, b"harm"));
}

#[test]
fn delivered_bytes_are_never_replaced_under_either_policy() {
    for (mut h, mut c) in [linux(), strict()] {
        let b = c.cseq;
        h.accept(&c.data(true, b"attune"));
        h.drop(&c.seg(true, b + 3, ACK, b"ack!"));
        assert_eq!(up(&h), b"attune");
    }
}

#[test]
fn a_possible_coalesce_is_not_predicted() {
    // `ack` queued right after `XY` (the previous packet ended there): GRO
    // or tcp_ooo_try_coalesce may have joined them; a conflicting copy
    // starting at `ack` is refused rather than guessed.
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 1, ACK, b"XY"));
    h.accept(&c.seg(true, b + 3, ACK, b"ack"));
    h.drop(&c.seg(true, b + 3, ACK, b"une!"));
    assert_eq!(h.count(Counter::DropOverlapConflict), 1);
}

#[test]
fn a_copy_with_a_lower_ttl_never_wins_a_conflict() {
    // The insertion attack: the benign copy is sent to expire past sluice.
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 3, ACK, b"ack"));
    h.drop(&seg_with(&c, b + 3, &[], 3, b"une!!"));
    // ...nor is a conflict predicted against its bytes.
    let (mut h, c) = linux();
    h.accept(&seg_with(&c, b + 3, &[], 3, b"une"));
    h.drop(&c.seg(true, b + 3, ACK, b"ack!!"));
    // Same bytes with a lower TTL are fine.
    h.accept(&seg_with(&c, b + 3, &[], 3, b"une!"));
}

// ------------------------------------------------------------ PAWS

/// NOP, NOP, timestamp `tsval`.
fn ts(tsval: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&[0, 0, 0, 0]);
    o
}

/// A connection whose SYN (tsval `syn_ts`) and SYN-ACK carry timestamps.
fn with_timestamps(cfg: EngineConfig, syn_ts: u32) -> (Harness, Conv) {
    let mut h = Harness::with_config(cfg, Script::default());
    let mut c = Conv::new(1000, 5000);
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = c.cseq;
    t.flags = SYN;
    let o = ts(syn_ts);
    t.options = &o;
    h.accept(&t.build());
    c.cseq = c.cseq + 1;
    let mut t = TcpSegment::new(server(), S, client(), C);
    t.seq = c.sseq;
    t.ack = c.cseq;
    t.flags = SYN | ACK;
    let o2 = ts(77);
    t.options = &o2;
    h.accept(&t.build());
    c.sseq = c.sseq + 1;
    h.accept(&seg_with(&c, c.cseq, &ts(syn_ts), 64, b""));
    (h, c)
}

#[test]
fn paws_drops_an_old_timestamp_and_the_real_segment_passes() {
    let (mut h, c) = with_timestamps(EngineConfig::default(), 1000);
    let b = c.cseq;
    h.drop(&seg_with(&c, b, &ts(990), 64, b"XXXXXXXX"));
    assert_eq!(h.count(Counter::DropPaws), 1);
    h.accept(&seg_with(&c, b, &ts(1001), 64, b"harmless"));
    assert_eq!(up(&h), b"harmless");
    // Within TCP_PAWS_WINDOW (1) of ts_recent is still accepted.
    h.accept(&seg_with(&c, b + 8, &ts(1000), 64, b"!"));
    // Strict: the old copy passes (the record argument), the real one conflicts.
    let (mut h, c) = with_timestamps(strict_config(), 1000);
    h.accept(&seg_with(&c, c.cseq, &ts(990), 64, b"XXXXXXXX"));
    h.drop(&seg_with(&c, c.cseq, &ts(1001), 64, b"harmless"));
}

#[test]
fn paws_follows_tsval_wrap_and_forgets_after_24_days() {
    // ts_recent just below 2^32: a tsval of 5 (wrapped) is newer, one of
    // u32::MAX - 100 older.
    let (mut h, c) = with_timestamps(EngineConfig::default(), u32::MAX - 2);
    let b = c.cseq;
    h.drop(&seg_with(&c, b, &ts(u32::MAX - 100), 64, b"old"));
    h.accept(&seg_with(&c, b, &ts(5), 64, b"new"));
    // 24 days later the old timestamp no longer rejects anything.
    let long = EngineConfig {
        tcp_established_timeout: std::time::Duration::from_secs(30 * 86_400),
        ..Default::default()
    };
    let (mut h, c) = with_timestamps(long, 5000);
    h.time = Timestamp(h.time.0 + 24 * 24 * 3600 * 1_000_000);
    h.accept(&seg_with(&c, c.cseq, &ts(10), 64, b"late"));
    assert_eq!(up(&h), b"late");
}

// ------------------------------------------------------------ TCP-MD5 / TCP-AO

/// A TCP-MD5 option with a made-up digest.
fn md5() -> Vec<u8> {
    let mut o = vec![19, 18];
    o.extend_from_slice(&[0x5a; 16]);
    o.extend_from_slice(&[1, 1]);
    o
}

#[test]
fn an_md5_segment_on_an_unsigned_connection_is_dropped_as_linux_drops_it() {
    let (mut h, c) = linux();
    let b = c.cseq;
    h.drop(&seg_with(&c, b, &md5(), 64, b"XXXXXXXX"));
    assert_eq!(h.count(Counter::DropAuthOption), 1);
    h.accept(&c.seg(true, b, ACK, b"harmless"));
    assert_eq!(up(&h), b"harmless");
    // Strict: not dropped for the option; the real copy conflicts.
    let (mut h, c) = strict();
    h.accept(&seg_with(&c, c.cseq, &md5(), 64, b"XXXXXXXX"));
    h.drop(&c.seg(true, c.cseq, ACK, b"harmless"));
}

#[test]
fn an_ao_segment_passes_but_never_wins_a_conflict() {
    // Without CONFIG_TCP_AO Linux ignores the option; with it, it drops the
    // segment. Either way rules see what the endpoint reads.
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&c.seg(true, b + 3, ACK, b"ack"));
    h.drop(&seg_with(&c, b + 3, &[29, 4, 1, 2], 64, b"une!!"));
    h.accept(&seg_with(&c, b + 6, &[29, 4, 1, 2], 64, b"!!"));
    let (mut h, c) = linux();
    h.accept(&seg_with(&c, b + 3, &[29, 4, 1, 2], 64, b"une"));
    h.drop(&c.seg(true, b + 3, ACK, b"ack!!"));
    assert_eq!(h.count(Counter::DropAuthOption), 0);
}

#[test]
fn a_signed_connection_is_handled_strictly() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(1000, 5000);
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = c.cseq;
    t.flags = SYN;
    let o = md5();
    t.options = &o;
    h.accept(&t.build());
    c.cseq = c.cseq + 1;
    h.accept(&c.seg(false, c.sseq, SYN | ACK, b""));
    c.sseq = c.sseq + 1;
    h.accept(&seg_with(&c, c.cseq, &md5(), 64, b""));
    let b = c.cseq;
    h.accept(&seg_with(&c, b + 3, &md5(), 64, b"ack"));
    // Linux would let a longer copy replace it; with keys sluice cannot
    // check, it is refused.
    h.drop(&seg_with(&c, b + 3, &md5(), 64, b"une!!"));
}

// ------------------------------------------------------------ SYN data

#[test]
fn syn_data_not_acknowledged_is_forgotten_and_the_real_start_is_not_a_conflict() {
    let mut h = Harness::new(Script::default());
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = SeqNumber(100);
    t.flags = SYN;
    t.payload = b"early";
    h.accept(&t.build());
    // Rules see it: with Fast Open the server may deliver it.
    assert_eq!(h.events(), ["tcp_connection:new:80", "data:up:early"].map(String::from));
    let mut c = Conv::new(101, 7000);
    h.accept(&c.seg(false, c.sseq, SYN | ACK, b""));
    c.sseq = c.sseq + 1;
    assert_eq!(h.count(Counter::SynDataForgotten), 1);
    h.accept(&c.seg(true, c.cseq, ACK, b"other"));
    assert_eq!(up(&h), b"earlyother");
}

#[test]
fn syn_data_acknowledged_by_the_syn_ack_stays() {
    let mut h = Harness::new(Script::default());
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = SeqNumber(100);
    t.flags = SYN;
    t.payload = b"early";
    h.accept(&t.build());
    let c = Conv::new(106, 7000);
    h.accept(&c.seg(false, c.sseq, SYN | ACK, b""));
    assert_eq!(h.count(Counter::SynDataForgotten), 0);
    // Acknowledged: the server has it (Fast Open) and ignores other bytes
    // there as old data; rules never see them.
    h.accept(&c.seg(true, SeqNumber(101), ACK, b"EVIL!"));
    assert_eq!(up(&h), b"early");
}

// ------------------------------------------------------------ urgent data

fn urgent_seg(c: &Conv, seq: SeqNumber, ptr: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = seq;
    t.ack = c.sseq;
    t.flags = ACK | URG;
    t.urgent = ptr;
    t.payload = payload;
    t.build()
}

#[test]
fn oob_hides_the_urgent_byte_from_rules_as_read_skips_it() {
    let (mut h, c) = linux();
    let b = c.cseq;
    // Pointer 2: the urgent byte is the one before it, `X` at offset 1.
    let (v, _) = h.send(&urgent_seg(&c, b, 2, b"aXbc"));
    assert_eq!(v, Verdict::Accept, "passed unmodified");
    assert_eq!(up(&h), b"abc");
    assert_eq!(h.count(Counter::UrgentHidden), 1);
    // A retransmission of the same pointer changes nothing.
    assert_eq!(h.send(&urgent_seg(&c, b, 2, b"aXbc")).0, Verdict::Accept);
    // A later pointer would make the old byte's fate depend on the
    // application's reads: cleared, read inline.
    let (v, _) = h.send(&urgent_seg(&c, b + 4, 1, b"Yd"));
    let Verdict::AcceptModified(bytes) = v else { panic!("expected a normalised packet, got {v:?}") };
    assert!(!decode(&bytes).unwrap().tcp().unwrap().has(URG));
    assert!(normalize::checksum_ok(&decode(&bytes).unwrap()));
    assert_eq!(up(&h), b"abcYd");
}

#[test]
fn an_urgent_byte_arriving_out_of_order_is_hidden_when_delivered() {
    let (mut h, c) = linux();
    let b = c.cseq;
    h.accept(&urgent_seg(&c, b + 2, 1, b"Xcd"));
    h.accept(&c.seg(true, b, ACK, b"ab"));
    assert_eq!(up(&h), b"abcd");
}

#[test]
fn an_urgent_pointer_in_a_packet_rules_dropped_is_forgotten() {
    // A rule error drops the packet carrying the pointer: the receiver never
    // sees it, so its byte stays in the stream rules see.
    let script = Script {
        reset_on: Some(b"boom".to_vec()),
        action_on_match: Some(crate::inspect::Action::DropPacket),
        ..Script::default()
    };
    let (mut h, c) = established_with(EngineConfig::default(), script);
    let b = c.cseq;
    h.drop(&urgent_seg(&c, b, 6, b"boom"));
    assert_eq!(h.engine.stats().get(Counter::UrgentHidden), 1);
    h.engine.inspector_mut().reset_on = None;
    h.accept(&c.seg(true, b, ACK, b"boomXy"));
    assert_eq!(up(&h), b"boomboomXy");
}

#[test]
fn inline_and_strict_clear_urg() {
    let mut cfg = EngineConfig::default();
    cfg.receiver.set_urgent(None, UrgentMode::Inline);
    let mut strict_oob = strict_config();
    strict_oob.receiver.set_urgent(None, UrgentMode::Oob);
    for cfg in [cfg, strict_oob] {
        let (mut h, c) = established_with(cfg, Script::default());
        let (v, _) = h.send(&urgent_seg(&c, c.cseq, 2, b"aXbc"));
        assert!(matches!(v, Verdict::AcceptModified(_)), "{v:?}");
        assert_eq!(up(&h), b"aXbc");
    }
}

#[test]
fn the_policy_is_resolved_per_receiver() {
    // Client data goes to the server: the server's network decides.
    let mut cfg = EngineConfig::default();
    cfg.receiver.set_policy(format!("{}/32", server()).parse().unwrap(), TargetPolicy::Strict);
    let (mut h, c) = established_with(cfg, Script::default());
    let b = c.cseq;
    h.accept(&c.seg(true, b + 3, ACK, b"ack"));
    h.drop(&c.seg(true, b + 3, ACK, b"une!!"));
    // ...and the server's data goes to the client, modelled as Linux.
    let s = c.sseq;
    h.accept(&c.seg(false, s + 3, ACK, b"ack"));
    h.accept(&c.seg(false, s + 3, ACK, b"une!!"));
}
