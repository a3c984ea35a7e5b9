//! Packet builders shared by the offline fidelity suites (`harness.rs`) and
//! the netns suite (`tests/netns_fidelity.rs`): one definition of each
//! crafted segment, so the two suites test the same bytes.

#![allow(dead_code)]

use sluice::flow::Direction::Up;
use sluice::ip::fragment::fragment;
use sluice::pcapgen::Conversation;
use sluice::wire::header::Tcp;
use sluice::wire::{decode, tcp_flags::*, SeqNumber};

/// Recomputes the TCP checksum of a whole (unfragmented) packet.
pub fn fix_tcp_checksum(p: &mut [u8]) {
    Tcp::of_packet(p).unwrap().fill_checksum();
}

/// Adds a client segment with URG and urgent pointer `urgent` (the builder
/// has no urgent pointer).
pub fn urgent_segment(c: &mut Conversation, seq: SeqNumber, urgent: u16, payload: &[u8]) {
    let mut p = c.build(Up, seq, ACK | PSH | URG, &[], payload);
    let mut t = Tcp::of_packet(&mut p).unwrap();
    t.set_urgent(urgent);
    t.fill_checksum();
    c.push(p);
}

/// Corrupts a packet's TCP checksum.
pub fn bad_checksum(mut p: Vec<u8>) -> Vec<u8> {
    let mut t = Tcp::of_packet(&mut p).unwrap();
    let sum = t.checksum();
    t.set_checksum(sum ^ 0x5500);
    p
}

/// Fragment sizes for the overlap cases: fragment 0 holds the TCP header and
/// 4 payload bytes, fragment 1 payload bytes 4..20, fragment 2 the rest.
pub const OVERLAP_SIZES: &[usize] = &[24, 16];

/// Two 32-byte payloads that differ only in the bytes of fragment 1 and have
/// the same TCP checksum: the second swaps 16-bit words of the first ("at"
/// "ta" "ck" -> "ta" "ck" "at"), which leaves the one's-complement sum
/// unchanged. So fragments 0 and 2 are the same for both, and whichever copy
/// of fragment 1 an endpoint keeps, the datagram checksums.
pub const OVERLAP_EVIL: &[u8] = b"....------attack--------........";
pub const OVERLAP_GOOD: &[u8] = b"....------tackat--------........";

/// On an open connection: fragments 0, 1 of the first version, 1 of the
/// second, 2 (all the same offsets and lengths), then the benign segment
/// whole (a fresh datagram), then FIN.
pub fn overlapping_fragments(c: &mut Conversation, evil_first: bool) {
    let seq = c.next_seq(Up);
    let evil = c.build(Up, seq, ACK | PSH, &[], OVERLAP_EVIL);
    let good = c.build(Up, seq, ACK | PSH, &[], OVERLAP_GOOD);
    let tcp_sum = |p: &[u8]| decode(p).unwrap().tcp().unwrap().checksum;
    assert_eq!(tcp_sum(&evil), tcp_sum(&good), "crafting: the two versions must checksum alike");
    let e = fragment(&evil, OVERLAP_SIZES, 7);
    let g = fragment(&good, OVERLAP_SIZES, 7);
    assert_eq!((e.len(), e[0] == g[0], e[2] == g[2]), (3, true, true));
    let (first, second) = if evil_first { (&e[1], &g[1]) } else { (&g[1], &e[1]) };
    c.push(e[0].clone()).push(first.clone()).push(second.clone()).push(e[2].clone());
    c.wait(200_000);
    c.segment(Up, seq, ACK | PSH, OVERLAP_GOOD);
    c.segment(Up, seq + OVERLAP_GOOD.len() as u32, FIN | ACK, b"");
}
