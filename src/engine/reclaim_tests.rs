//! The total stream buffer full: connections whose held bytes are stuck give
//! them back (both ends reset), healthy transfers keep theirs.

use std::time::Duration;

use super::tests::{client, server, Conv, Harness, Script, S};
use super::*;
use crate::wire::forge::TcpSegment;
use crate::wire::tcp_flags::ACK;
use crate::wire::SeqNumber;

const TOTAL: usize = 32 << 10;
const SEG: usize = 1000;

fn harness() -> Harness {
    Harness::with_config(
        EngineConfig { max_total_buffer: TOTAL, ..EngineConfig::default() },
        Script::default(),
    )
}

fn open(h: &mut Harness, port: u16) -> Conv {
    let mut c = Conv::on_port(port, 1000, 5000);
    for p in c.handshake() {
        h.accept(&p);
    }
    c
}

fn wait(h: &mut Harness, d: Duration) {
    h.time = h.time.saturating_add(d);
}

/// `n` segments from the client 100 bytes past a hole: held until it is filled.
fn hold_island(h: &mut Harness, c: &Conv, n: usize) {
    let start = c.cseq + 100;
    for i in 0..n {
        h.accept(&c.seg(true, start + (i * SEG) as u32, ACK, &[b'i'; SEG]));
    }
}

/// `n` in-order segments from the client that the server does not acknowledge.
fn hold_unacknowledged(h: &mut Harness, c: &mut Conv, n: usize) {
    for _ in 0..n {
        h.accept(&c.data(true, &[b'u'; SEG]));
    }
}

/// The server acknowledging the client's bytes up to `ack`.
fn server_ack(c: &Conv, ack: SeqNumber) -> Vec<u8> {
    let mut t = TcpSegment::new(server(), S, client(), c.port);
    t.seq = c.sseq;
    t.ack = ack;
    t.flags = ACK;
    t.build()
}

/// Two seconds of packet time, `packets()` sent every 200 ms.
fn every_200ms_for_2s(h: &mut Harness, mut packets: impl FnMut(u32) -> Vec<Vec<u8>>) {
    for k in 1..=10u32 {
        wait(h, Duration::from_millis(200));
        for p in packets(k) {
            h.accept(&p);
        }
    }
}

/// Sends in-order client segments until one is refused for memory; returns
/// it and what was forged when it was refused.
fn fill_until_refused(h: &mut Harness, c: &mut Conv) -> (Vec<u8>, Vec<Vec<u8>>) {
    for _ in 0..TOTAL / SEG + 1 {
        let p = c.data(true, &[b'b'; SEG]);
        let (v, forged) = h.send(&p);
        if v == Verdict::Drop {
            assert_eq!(h.count(Counter::DropMemoryLimit), 1);
            return (p, forged);
        }
    }
    panic!("the total buffer never filled");
}

#[test]
fn an_out_of_order_island_left_standing_is_reset_to_make_room() {
    let mut h = harness();
    let mut a = open(&mut h, 40001);
    hold_island(&mut h, &a, 20);
    // Two seconds of a byte at a time into the hole, each acknowledged: the
    // stream moves, the island stands.
    every_200ms_for_2s(&mut h, |_| {
        let byte = a.data(true, b"t");
        vec![byte, server_ack(&a, a.cseq)]
    });
    let mut b = open(&mut h, 40002);
    let (refused, forged) = fill_until_refused(&mut h, &mut b);
    assert_eq!(h.count(Counter::TcpMemoryResets), 1);
    assert_eq!(forged.len(), 2, "an RST to each end of the stuck connection");
    assert!(h.engine.buffered_bytes() < TOTAL / 2, "its {} bytes are free", 20 * SEG);
    // The sender's retransmission fits now; the reset connection is over.
    h.accept(&refused);
    h.drop(&a.seg(true, a.cseq, ACK, b"fill"));
}

#[test]
fn a_download_never_acknowledged_is_reset_to_make_room() {
    let mut h = harness();
    let mut a = open(&mut h, 40001);
    let start = a.cseq;
    hold_unacknowledged(&mut h, &mut a, 20);
    // The receiver stays in touch but acknowledges nothing new.
    every_200ms_for_2s(&mut h, |_| vec![server_ack(&a, start)]);
    let mut b = open(&mut h, 40002);
    let (refused, forged) = fill_until_refused(&mut h, &mut b);
    // The server may not have every byte sluice passed: RSTs at both its
    // possible receive points, and one to the client.
    assert_eq!((h.count(Counter::TcpMemoryResets), forged.len()), (1, 3));
    h.accept(&refused);
}

#[test]
fn bytes_held_for_less_than_a_second_are_kept() {
    let mut h = harness();
    let a = open(&mut h, 40001);
    hold_island(&mut h, &a, 20);
    wait(&mut h, Duration::from_millis(500));
    let mut b = open(&mut h, 40002);
    let (refused, forged) = fill_until_refused(&mut h, &mut b);
    assert_eq!((h.count(Counter::TcpMemoryResets), forged.len()), (0, 0));
    h.drop(&refused);
    // The island's connection goes on: filling its hole delivers everything.
    h.accept(&a.seg(true, a.cseq, ACK, b"f"));
}

#[test]
fn a_transfer_being_acknowledged_keeps_its_bytes_however_long_it_holds_them() {
    let mut h = harness();
    let mut a = open(&mut h, 40001);
    let start = a.cseq;
    hold_unacknowledged(&mut h, &mut a, 20);
    // Two seconds of a slow receiver: an acknowledgement every 200 ms.
    every_200ms_for_2s(&mut h, |k| vec![server_ack(&a, start + k * SEG as u32)]);
    let mut b = open(&mut h, 40002);
    let (_, forged) = fill_until_refused(&mut h, &mut b);
    assert_eq!((h.count(Counter::TcpMemoryResets), forged.len()), (0, 0));
    h.accept(&a.data(true, b"more"));
}

#[test]
fn the_search_for_a_stuck_connection_runs_at_most_every_100_ms() {
    let mut h = harness();
    let mut a = open(&mut h, 40001);
    hold_unacknowledged(&mut h, &mut a, 10);
    wait(&mut h, Duration::from_millis(900));
    let mut b = open(&mut h, 40002);
    // Refused before `a` is stuck: the search finds nothing.
    let (refused, _) = fill_until_refused(&mut h, &mut b);
    assert_eq!(h.count(Counter::TcpMemoryResets), 0);
    // `a` is stuck 70 ms later, but the next search is not due yet.
    wait(&mut h, Duration::from_millis(70));
    h.drop(&refused);
    assert_eq!(h.count(Counter::TcpMemoryResets), 0);
    // Due again: `a` is reset; the retransmission after that fits.
    wait(&mut h, Duration::from_millis(40));
    h.drop(&refused);
    assert_eq!(h.count(Counter::TcpMemoryResets), 1);
    h.accept(&refused);
}

#[test]
fn a_swarm_of_small_stuck_holders_gives_back_a_sixteenth_of_the_total() {
    let mut h = harness();
    // 40 connections with 500 bytes behind a 100-byte hole: the record of
    // each spans 600 bytes from the acknowledged point, 24,000 in all.
    let swarm: Vec<Conv> = (0..40u16)
        .map(|i| {
            let c = open(&mut h, 41000 + i);
            h.accept(&c.seg(true, c.cseq + 100, ACK, &[b's'; 500]));
            c
        })
        .collect();
    wait(&mut h, Duration::from_secs(2));
    let mut b = open(&mut h, 40002);
    let (refused, forged) = fill_until_refused(&mut h, &mut b);
    // 2,048 bytes (32 KiB / 16) take four of them, an RST to each end of each.
    assert_eq!((h.count(Counter::TcpMemoryResets), forged.len()), (4, 8));
    h.accept(&refused);
    let still_held = swarm.iter().filter(|c| h.send(&c.seg(true, c.cseq, ACK, b"x")).0 == Verdict::Accept);
    assert_eq!(still_held.count(), 36, "the others keep their connections");
}
