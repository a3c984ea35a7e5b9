//! Stream fidelity, offline: the adversarial cases of `docs/stream-fidelity.md`
//! (the same packet arrangements as `tests/netns_fidelity.rs`, plus some the
//! real endpoint there cannot be made to show) as pcap tests. Each case is a
//! crafted capture; `sluice pcap` runs it with a rule that resets on the bytes
//! `attack`. A model of a receiving endpoint (Linux's default stream
//! semantics, under each of the endpoint policies that can differ: which copy
//! of an overlap it keeps, whether it trims a segment to its receive window)
//! then reads the client's bytes out of the input capture and out of sluice's
//! output:
//!
//! * attack variants: some endpoint policy reads `attack` from the input (the
//!   case is real); through sluice every policy reads exactly the same
//!   expected bytes, which never contain `attack`;
//! * benign variants (the same arrangement carrying harmless bytes): every
//!   policy reads exactly the benign bytes, without sluice and through it
//!   (or, where sluice normalises packets, exactly the normalised bytes);
//! * counters show the policy that applied (or that one did not apply).
//!
//! Inputs and expected outputs are committed under `tests/fidelity/<case>/`
//! (`SLUICE_BLESS=1 cargo test --release --test fidelity` rewrites them) and
//! compared byte for byte, so behaviour changes show up in review. Each case
//! is its own test, named after it (`-` becomes `_`), so a known sluice bug
//! can be marked `#[ignore = "..."]` while the rest runs.

#[path = "fidelity/harness.rs"]
mod harness;

use std::fs;

use harness::*;
use sluice::config::EngineConfig;
use sluice::flow::Direction::Up;
use sluice::ip::fragment::fragment;
use sluice::pcapgen::Conversation;
use sluice::wire::tcp_flags::{ACK, PSH, RST, SYN};

fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // ------------------------------------------------ segmentation, ordering

    // One byte per segment.
    let mut c = conv();
    c.handshake();
    for b in b"an attack, bytewise" {
        c.send(Up, &[*b]);
    }
    // The packet carrying the final `k` is dropped; sluice resets.
    out.push(case("segmented-bytewise", c, Expect::Attack(b"an attac")));
    let mut c = conv();
    c.handshake();
    for b in b"harmless bytes" {
        c.send(Up, &[*b]);
    }
    out.push(case("segmented-bytewise-benign", c, Expect::Benign(b"harmless bytes")).zero(&["drop_rule"]));

    // Reordering: the second half first; the gap-closing packet carries the
    // verdict for the held island.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack!").segment(Up, base, ACK | PSH, b"att");
    out.push(case("reordered", c, Expect::Attack(b"")).counters(&["tcp_out_of_order_segments"]));
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"mless!").segment(Up, base, ACK | PSH, b"har");
    out.push(
        case("reordered-benign", c, Expect::Benign(b"harmless!"))
            .counters(&["tcp_out_of_order_segments"])
            .zero(&["drop_rule"]),
    );
    // The same over IPv6.
    let mut c = conv6();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack!").segment(Up, base, ACK | PSH, b"att");
    out.push(case("ipv6-reordered", c, Expect::Attack(b"")).counters(&["tcp_out_of_order_segments"]));
    let mut c = conv6();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"mless!").segment(Up, base, ACK | PSH, b"har");
    out.push(
        case("ipv6-reordered-benign", c, Expect::Benign(b"harmless!"))
            .counters(&["tcp_out_of_order_segments"])
            .zero(&["drop_rule"]),
    );

    // Duplicated segment: same bytes, accepted, not delivered twice.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base, ACK | PSH, b"att").data(Up, b"ack");
    out.push(case("duplicated", c, Expect::Attack(b"att")).counters(&["tcp_retransmissions"]));
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"har").segment(Up, base, ACK | PSH, b"har").data(Up, b"mless");
    out.push(
        case("duplicated-benign", c, Expect::Benign(b"harmless"))
            .counters(&["tcp_retransmissions"])
            .zero(&["drop_rule", "drop_tcp_overlap_conflict"]),
    );
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ing!").segment(Up, base + 3, ACK | PSH, b"ing!");
    c.segment(Up, base, ACK | PSH, b"sor");
    out.push(
        case("reordered-duplicated-benign", c, Expect::Benign(b"soring!"))
            .counters(&["tcp_out_of_order_segments"])
            .zero(&["drop_tcp_overlap_conflict"]),
    );

    // ------------------------------------------------ overlaps, retransmissions

    // Out-of-order overlap with other bytes: whichever copy the endpoint
    // keeps, rules must have seen it. `ume` is refused; the recorded `ack`
    // completes the pattern.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base + 3, ACK | PSH, b"ume").segment(
        Up,
        base,
        ACK | PSH,
        b"att",
    );
    out.push(case("ooo-overlap-conflict", c, Expect::Attack(b"")).counters(&["drop_tcp_overlap_conflict"]));
    // The other order: `ack` is refused, every endpoint reads the recorded copy.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ume").segment(Up, base + 3, ACK | PSH, b"ack").segment(
        Up,
        base,
        ACK | PSH,
        b"att",
    );
    out.push(
        case("ooo-overlap-conflict-last", c, Expect::Attack(b"attume"))
            .counters(&["drop_tcp_overlap_conflict"]),
    );

    // Retransmission of delivered, unacknowledged bytes with other content:
    // the endpoint has the first copy and discards the retransmission as old
    // data; sluice refuses it. Passing it to rules as new data would be a
    // false reset.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"attune").segment(Up, base + 3, ACK | PSH, b"ack");
    out.push(
        case("retransmit-other-bytes", c, Expect::Benign(b"attune"))
            .counters(&["drop_tcp_overlap_conflict"])
            .zero(&["drop_rule"]),
    );
    // ...the attack variant: the first copy passed the gateway but never
    // reached the endpoint (lost on the last link, or sent with a TTL that
    // expires there), so the endpoint takes the retransmission's other
    // bytes. sluice refuses them (they conflict with its record); the
    // sender's real retransmission of the recorded bytes passes.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"attune").segment(Up, base, ACK | PSH, b"attack").segment(Up, base, ACK | PSH, b"attune");
    out.push(
        case("retransmit-other-bytes-lost", c, Expect::Attack(b"attune"))
            .lost(&[b"attune"])
            .counters(&["drop_tcp_overlap_conflict"])
            .zero(&["drop_rule"]),
    );
    // ...and after the receiver acknowledged them.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.send(Up, b"attune").segment(Up, base + 3, ACK | PSH, b"ack");
    out.push(
        case("retransmit-after-ack", c, Expect::Benign(b"attune"))
            .zero(&["drop_tcp_overlap_conflict", "drop_rule"]),
    );

    // ------------------------------------------------ segments the endpoint discards

    // Bad TCP checksum: the endpoint discards the segment.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    let bad = bad_checksum(c.build(Up, base + 3, ACK | PSH, &[], b"une"));
    c.data(Up, b"att");
    c.push(bad);
    c.data(Up, b"ack");
    out.push(case("bad-checksum", c, Expect::Attack(b"att")).counters(&["drop_bad_checksum"]));
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    let bad = bad_checksum(c.build(Up, base + 3, ACK | PSH, &[], b"ack"));
    c.data(Up, b"att");
    c.push(bad);
    c.data(Up, b"une");
    out.push(
        case("bad-checksum-benign", c, Expect::Benign(b"attune"))
            .counters(&["drop_bad_checksum"])
            .zero(&["drop_rule"]),
    );

    // Missing ACK flag in an established connection: the endpoint discards it.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 3, PSH, b"une").data(Up, b"ack");
    out.push(case("no-ack-flag", c, Expect::Attack(b"att")).counters(&["drop_tcp_bad_flags"]));
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 3, PSH, b"ack").data(Up, b"une");
    out.push(
        case("no-ack-flag-benign", c, Expect::Benign(b"attune"))
            .counters(&["drop_tcp_bad_flags"])
            .zero(&["drop_rule"]),
    );

    // ------------------------------------------------ receive window

    // A segment straddling the right edge of the receive window (the SYN-ACK
    // grants 5 bytes: "att" and "ac"). Linux takes such a segment whole
    // (tcp_data_queue queues the skb if its first new byte is in the
    // window): it reads `attack!!`; a trimming endpoint reads `attac`. So
    // sluice must inspect the whole segment.
    let mut c = opened(b"", 5);
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 3, ACK | PSH, b"ack!!");
    out.push(case("out-of-window", c, Expect::Attack(b"att")).zero(&["drop_tcp_out_of_window"]));
    // ...with harmless bytes it passes. The server then acknowledges what a
    // trimming endpoint kept and the client retransmits the segment, which
    // a trimming endpoint now takes the rest of and Linux ignores as old.
    let mut c = opened(b"", 5);
    let base = c.next_seq(Up);
    c.data(Up, b"har").segment(Up, base + 3, ACK | PSH, b"mless!!");
    server_ack(&mut c, base + 5, 1);
    c.segment(Up, base + 3, ACK | PSH, b"mless!!");
    out.push(case("out-of-window-straddle-benign", c, Expect::Benign(b"harmless!!")).zero(&[
        "drop_tcp_out_of_window",
        "drop_tcp_overlap_conflict",
        "drop_rule",
    ]));
    // Far outside the window (the server advertised 65535 << 7 after the
    // handshake; the segment starts far beyond it).
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 3 + 100_000_000, ACK | PSH, b"ack").data(Up, b"une");
    out.push(
        case("out-of-window-benign", c, Expect::Benign(b"attune"))
            .counters(&["drop_tcp_out_of_window"])
            .zero(&["drop_rule"]),
    );
    // Starting exactly at the right edge (rcv_nxt + window, out of order):
    // Linux discards it (tcp_data_queue: `!before(seq, rcv_nxt +
    // tcp_receive_window)`, SKB_DROP_REASON_TCP_OVERWINDOW), so its bytes
    // never join the stream; the client later sends other bytes there.
    // sluice drops it too (recording `ack` as an island would make `att`
    // complete `attack` and reset a connection that reads `attune`).
    let mut c = opened(b"", 3);
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
    server_ack(&mut c, base + 3, 1);
    c.segment(Up, base + 3, ACK | PSH, b"une");
    out.push(
        case("out-of-window-edge-benign", c, Expect::Benign(b"attune"))
            .counters(&["drop_tcp_out_of_window"])
            .zero(&["drop_rule"]),
    );
    // In order into a closed (zero) window: Linux discards the data
    // (SKB_DROP_REASON_TCP_ZEROWINDOW); once the window opens the client
    // sends other bytes there. sluice drops it too, so rules never see the
    // `ack` that the endpoint never reads.
    let mut c = opened(b"", 3);
    let base = c.next_seq(Up);
    c.data(Up, b"att");
    server_ack(&mut c, base + 3, 0);
    c.segment(Up, base + 3, ACK | PSH, b"ack");
    server_ack(&mut c, base + 3, 1);
    c.segment(Up, base + 3, ACK | PSH, b"une");
    out.push(
        case("zero-window-benign", c, Expect::Benign(b"attune"))
            .counters(&["drop_tcp_out_of_window"])
            .zero(&["drop_rule"]),
    );
    // Window scaling: the SYN-ACK grants 4096 bytes (never scaled), the
    // server's later ACKs carry a window field of 63 (8064 bytes at scale
    // 7). After 5600 acknowledged bytes the SYN-ACK's window covers nothing;
    // a segment 2000 bytes ahead is inside the receive window only if the
    // scale is applied to the later window fields (unscaled they grant 63
    // bytes).
    let mut c = opened(b"", 4096);
    let chunk = [b'.'; 1400];
    for _ in 0..WINDOW_LEAD / chunk.len() {
        c.data(Up, &chunk);
        let acked = c.next_seq(Up);
        server_ack(&mut c, acked, 63);
    }
    let base = c.next_seq(Up);
    c.segment(Up, base + WINDOW_GAP as u32, ACK | PSH, b"tail");
    c.data(Up, &chunk[..WINDOW_GAP / 2]).data(Up, &chunk[..WINDOW_GAP / 2]);
    let mut read = vec![b'.'; WINDOW_LEAD + WINDOW_GAP];
    read.extend_from_slice(b"tail");
    let read: &'static [u8] = Box::leak(read.into_boxed_slice());
    out.push(
        case("window-scaled-benign", c, Expect::Benign(read))
            .counters(&["tcp_out_of_order_segments"])
            .zero(&["drop_tcp_out_of_window", "drop_rule"]),
    );

    // ------------------------------------------------ resets

    // A fake RST (wrong sequence number) must not stop inspection.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 1000, RST, b"").data(Up, b"ack");
    out.push(case("fake-rst", c, Expect::Attack(b"att")).counters(&["drop_tcp_bad_rst"]));
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 1000, RST, b"").data(Up, b"une");
    out.push(
        case("fake-rst-benign", c, Expect::Benign(b"attune"))
            .counters(&["drop_tcp_bad_rst"])
            .zero(&["drop_rule"]),
    );
    // A real RST ends the connection: nothing after it reaches the server.
    let mut c = conv();
    c.handshake();
    c.data(Up, b"att").rst(Up).data(Up, b"ack");
    out.push(
        case("real-rst-benign", c, Expect::Benign(b"att"))
            .counters(&["drop_tcp_closed"])
            .zero(&["drop_rule"]),
    );

    // ------------------------------------------------ urgent data

    // Linux hides the urgent byte from read(); sluice clears URG so the
    // endpoint reads every byte inline, as rules do.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att");
    urgent_segment(&mut c, base + 3, 1, b"Xack");
    out.push(
        case("urgent", c, Expect::Attack(b"attXack"))
            .strict()
            .counters(&["tcp_urgent_cleared", "packets_modified"])
            .zero(&["drop_rule"]),
    );
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"har");
    urgent_segment(&mut c, base + 3, 1, b"Xmless");
    out.push(
        case("urgent-benign", c, Expect::Normalised { plain: b"harmless", filtered: b"harXmless" })
            .strict()
            .counters(&["tcp_urgent_cleared", "packets_modified"])
            .zero(&["drop_rule"]),
    );

    // ------------------------------------------------ IP fragments

    let c = fragmented(conv(), b"........attack........", &[24, 16]);
    out.push(case("fragments", c, Expect::Attack(b"")).counters(&["ip_datagrams_reassembled"]));
    let c = fragmented(conv(), b"........harmless........", &[24, 16]);
    out.push(
        case("fragments-benign", c, Expect::Benign(b"........harmless........"))
            .counters(&["ip_datagrams_reassembled"])
            .zero(&["drop_rule", "drop_fragment", "drop_fragment_overlap"]),
    );
    // Overlapping fragments with other bytes. Same length, so the two
    // versions' fragments line up. The evil TCP header (fragment 0) only
    // checksums with the evil middle fragment: an endpoint keeping the last
    // copy of an overlap reads the attack; one keeping the first discards
    // the datagram.
    let mut c = conv();
    c.handshake();
    let seq = c.next_seq(Up);
    let benign = c.build(Up, seq, ACK | PSH, &[], b"................................");
    let evil = c.build(Up, seq, ACK | PSH, &[], b"..............attack............");
    let good = fragment(&benign, &[24, 16], 7);
    let bad = fragment(&evil, &[24, 16], 7);
    c.push(bad[0].clone()).push(good[1].clone()).push(bad[1].clone()).push(bad[2].clone());
    out.push(
        case("fragments-overlap-conflict", c, Expect::Attack(b""))
            .strict()
            .counters(&["drop_fragment_overlap"]),
    );
    // Exact duplicates of fragment 1 with other bytes, either copy valid,
    // then the benign segment resent whole. Evil first: Linux (first copy
    // wins) reads the attack. Good first: Linux reads the benign copy, an
    // endpoint keeping the last copy the attack. Either way sluice drops the
    // datagram (it never guesses the endpoint's policy) and every endpoint
    // reads the benign resend.
    out.push(
        case("fragments-overlap-evil-first", overlapping_fragments(true), Expect::Attack(OVERLAP_GOOD))
            .strict()
            .counters(&["drop_fragment_overlap"]),
    );
    out.push(
        case("fragments-overlap-good-first", overlapping_fragments(false), Expect::Attack(OVERLAP_GOOD))
            .strict()
            .counters(&["drop_fragment_overlap"]),
    );

    // IPv6, in fragments. The first fragment holds the whole TCP header
    // (RFC 8200 4.5: Linux discards a first fragment without the
    // upper-layer header, and so does the model).
    let c = fragmented(conv6(), b"v6 attack in pieces, and some more", &[32, 8]);
    out.push(case("ipv6-fragments", c, Expect::Attack(b"")).counters(&["ip_datagrams_reassembled"]));
    let c = fragmented(conv6(), b"v6 harmless pieces, and some more", &[32, 8]);
    out.push(
        case("ipv6-fragments-benign", c, Expect::Benign(b"v6 harmless pieces, and some more"))
            .counters(&["ip_datagrams_reassembled"])
            .zero(&["drop_rule", "drop_fragment", "drop_fragment_overlap"]),
    );

    // ------------------------------------------------ sequence space

    // Sequence numbers across 2^32, with reordering around the wrap: ISN
    // 2^32 - 3, the data starts at 2^32 - 2, "att" spans the wrap.
    let mut c = conv().isn(u32::MAX - 2, 10);
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
    out.push(case("sequence-wrap", c, Expect::Attack(b"")));
    let mut c = conv().isn(u32::MAX - 2, 10);
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"mless").segment(Up, base, ACK | PSH, b"har");
    out.push(
        case("sequence-wrap-benign", c, Expect::Benign(b"harmless"))
            .counters(&["tcp_out_of_order_segments"])
            .zero(&["drop_rule"]),
    );

    // ------------------------------------------------ SYN with data

    // SYN carrying the attack (as a TCP Fast Open client would); without a
    // TFO cookie the server ignores it and the client sends it again.
    let mut c = conv();
    let isn = c.next_seq(Up);
    let syn = c.build(Up, isn, SYN, &[], b"attack");
    c.push(syn);
    c.handshake().send(Up, b"attack");
    out.push(case("syn-with-data", c, Expect::Attack(b"")));
    // The SYN's data is ignored by the server, so the first data segment may
    // carry other bytes at the same sequence numbers: sluice recorded the
    // SYN's bytes, refuses the other bytes, passes the matching resend.
    let mut c = opened(b"harmless", 65535);
    let base = c.next_seq(Up);
    c.segment(Up, base, ACK | PSH, b"attack!!").segment(Up, base, ACK | PSH, b"harmless");
    out.push(
        case("syn-with-data-other-bytes", c, Expect::Attack(b"harmless"))
            .strict()
            .counters(&["drop_tcp_overlap_conflict"]),
    );
    let mut c = opened(b"harmless", 65535);
    let base = c.next_seq(Up);
    c.segment(Up, base, ACK | PSH, b"harmless");
    out.push(
        case("syn-with-data-benign", c, Expect::Benign(b"harmless"))
            .zero(&["drop_rule", "drop_tcp_overlap_conflict"]),
    );

    // ------------------------------------------------ connection reuse

    // A new SYN on the 4-tuple after an orderly close, or after an RST: the
    // new connection is inspected.
    let p = reused(b"first", true, b"second attack");
    out.push(packets("reuse-after-close", p, Expect::Attack(b"first")).counters(&["drop_rule"]));
    let p = reused(b"first", true, b"second");
    out.push(packets("reuse-after-close-benign", p, Expect::Benign(b"firstsecond")).zero(&["drop_rule"]));
    let p = reused(b"first", false, b"second attack");
    out.push(packets("reuse-after-reset", p, Expect::Attack(b"first")).counters(&["drop_rule"]));
    let p = reused(b"first", false, b"second");
    out.push(packets("reuse-after-reset-benign", p, Expect::Benign(b"firstsecond")).zero(&["drop_rule"]));

    // ------------------------------------------------ limits

    // Many out-of-order islands: past the limit segments are dropped, and the
    // connection still works once the sender fills the gap in order.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    for i in 0..20u32 {
        c.segment(Up, base + 100 + 10 * i, ACK | PSH, b"x");
    }
    c.data(Up, b"benign stream");
    out.push(
        case("ooo-limit-benign", c, Expect::Benign(b"benign stream"))
            .engine(EngineConfig { max_ooo_segments: 8, ..EngineConfig::default() })
            .counters(&["drop_stream_buffer_full"])
            .zero(&["drop_rule"]),
    );

    out
}

/// Runs the case whose name is `test` with `_` for `-`.
fn run_named(test: &str) {
    let all = cases();
    let case = all
        .iter()
        .find(|c| c.name.replace('-', "_") == test)
        .unwrap_or_else(|| panic!("no case for test {test}"));
    run_case(case);
}

macro_rules! offline_cases {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        /// One test per case.
        mod case {
            $(
                $(#[$attr])*
                #[test]
                fn $name() {
                    super::run_named(stringify!($name));
                }
            )*
        }
        const CASE_TESTS: &[&str] = &[$(stringify!($name)),*];
    };
}

offline_cases!(
    segmented_bytewise,
    segmented_bytewise_benign,
    reordered,
    reordered_benign,
    ipv6_reordered,
    ipv6_reordered_benign,
    duplicated,
    duplicated_benign,
    reordered_duplicated_benign,
    ooo_overlap_conflict,
    ooo_overlap_conflict_last,
    retransmit_other_bytes,
    retransmit_other_bytes_lost,
    retransmit_after_ack,
    bad_checksum,
    bad_checksum_benign,
    no_ack_flag,
    no_ack_flag_benign,
    out_of_window,
    out_of_window_straddle_benign,
    out_of_window_benign,
    out_of_window_edge_benign,
    zero_window_benign,
    window_scaled_benign,
    fake_rst,
    fake_rst_benign,
    real_rst_benign,
    urgent,
    urgent_benign,
    fragments,
    fragments_benign,
    fragments_overlap_conflict,
    fragments_overlap_evil_first,
    fragments_overlap_good_first,
    ipv6_fragments,
    ipv6_fragments_benign,
    sequence_wrap,
    sequence_wrap_benign,
    syn_with_data,
    syn_with_data_other_bytes,
    syn_with_data_benign,
    reuse_after_close,
    reuse_after_close_benign,
    reuse_after_reset,
    reuse_after_reset_benign,
    ooo_limit_benign,
);

#[test]
fn every_case_has_a_test_and_a_fixture_dir() {
    let mut names: Vec<String> = cases().iter().map(|c| c.name.replace('-', "_")).collect();
    let unique = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), unique, "case names are unique");
    let mut tests: Vec<String> = CASE_TESTS.iter().map(|s| s.to_string()).collect();
    tests.sort();
    assert_eq!(names, tests, "every case has exactly one test in offline_cases!");
    // No fixture left behind by a renamed or removed case.
    // (`receiver/` holds the fixtures of tests/receiver.rs.)
    for entry in fs::read_dir(fixture_root()).expect("fixtures") {
        let entry = entry.unwrap();
        if entry.path().is_dir() && entry.file_name() != "receiver" {
            let n = entry.file_name().to_string_lossy().replace('-', "_");
            assert!(names.contains(&n), "fixture dir {:?} has no case", entry.file_name());
        }
    }
}

// ---------------------------------------------------------------- the model itself

// The model must see through each disguise, or the cases above would pass
// for the wrong reason.

fn raw(c: Conversation) -> Vec<Vec<u8>> {
    c.into_packets().into_iter().map(|p| p.1).collect()
}

#[test]
fn endpoint_model_reads_attacks_in_raw_input() {
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
    let pkts = raw(c);
    for p in POLICIES {
        assert_eq!(endpoint_reads(&pkts, p, &[]), b"attack", "{p:?}");
    }
}

#[test]
fn endpoint_model_applies_the_receive_window() {
    let [whole, _, trim, _] = POLICIES;
    // A segment straddling the edge: taken whole, or trimmed.
    let mut c = opened(b"", 5);
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 3, ACK | PSH, b"ack!!");
    let pkts = raw(c);
    assert_eq!(endpoint_reads(&pkts, whole, &[]), b"attack!!");
    assert_eq!(endpoint_reads(&pkts, trim, &[]), b"attac");
    // Starting exactly at the edge, in order (zero window) or not: discarded.
    for ooo in [false, true] {
        let mut c = opened(b"", 3);
        let base = c.next_seq(Up);
        if ooo {
            c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
        } else {
            c.data(Up, b"att").segment(Up, base + 3, ACK | PSH, b"ack");
        }
        let pkts = raw(c);
        for p in POLICIES {
            assert_eq!(endpoint_reads(&pkts, p, &[]), b"att", "{p:?}, out of order: {ooo}");
        }
    }
    // The window scale applies to the server's windows after the handshake
    // (1 << 7 = 128 bytes), never to the SYN-ACK's.
    let mut c = opened(b"", 1);
    let base = c.next_seq(Up);
    c.data(Up, b"a");
    server_ack(&mut c, base + 1, 1);
    c.segment(Up, base + 1, ACK | PSH, &[b'b'; 200]);
    let pkts = raw(c);
    let mut want = b"a".to_vec();
    want.extend_from_slice(&[b'b'; 128]);
    assert_eq!(endpoint_reads(&pkts, trim, &[]), want);
}

#[test]
fn endpoint_model_discards_an_ipv6_first_fragment_without_the_tcp_header() {
    let short = raw(fragmented(conv6(), b"v6 attack in pieces", &[16, 8]));
    let long = raw(fragmented(conv6(), b"v6 attack in pieces", &[32, 8]));
    for p in POLICIES {
        assert_eq!(endpoint_reads(&short, p, &[]), b"", "{p:?}");
        assert_eq!(endpoint_reads(&long, p, &[]), b"v6 attack in pieces", "{p:?}");
    }
}

#[test]
fn endpoint_model_loses_only_the_first_copy() {
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"attune").segment(Up, base, ACK | PSH, b"attack").segment(Up, base, ACK | PSH, b"attune");
    let pkts = raw(c);
    for p in POLICIES {
        assert_eq!(endpoint_reads(&pkts, p, &[]), b"attune", "{p:?}");
        assert_eq!(endpoint_reads(&pkts, p, &[b"attune"]), b"attack", "{p:?}");
    }
}
