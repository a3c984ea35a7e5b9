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

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sluice::capture::pcap::PcapSource;
use sluice::config::EngineConfig;
use sluice::flow::Direction::{Down, Up};
use sluice::ip::fragment::fragment;
use sluice::offline::{self, OfflineOptions};
use sluice::pcapgen::{write_pcap_file, Conversation, Framing, TimedPacket};
use sluice::wire::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};
use sluice::wire::{checksum, decode, proto, SeqNumber, Transport};

const ATTACK: &[u8] = b"attack";

fn conv() -> Conversation {
    Conversation::new("10.1.0.1:40000".parse().unwrap(), "10.1.0.2:80".parse().unwrap())
}

fn conv6() -> Conversation {
    Conversation::new("[fd00:1::1]:40000".parse().unwrap(), "[fd00:1::2]:80".parse().unwrap())
}

/// What a case is about.
enum Expect {
    /// Some endpoint policy reads `attack` from the input; through sluice
    /// every policy reads exactly these bytes (which must not contain it).
    Attack(&'static [u8]),
    /// Every policy reads exactly these bytes, without sluice and through it.
    Benign(&'static [u8]),
    /// Every policy reads `plain` without sluice and `filtered` through it:
    /// sluice rewrites packets so that every endpoint reads what rules saw.
    Normalised { plain: &'static [u8], filtered: &'static [u8] },
}

struct Case {
    name: &'static str,
    packets: Vec<TimedPacket>,
    expect: Expect,
    engine: EngineConfig,
    /// Client payloads lost between the gateway and the endpoint (the first
    /// packet carrying each), in both runs: what a TTL expiring just past the
    /// gateway, or any loss on the last link, does.
    lost: &'static [&'static [u8]],
    /// Counters that must be at least 1 after the run.
    counters: &'static [&'static str],
    /// Counters that must stay 0.
    zero: &'static [&'static str],
}

impl Case {
    fn counters(mut self, c: &'static [&'static str]) -> Self {
        self.counters = c;
        self
    }
    fn zero(mut self, c: &'static [&'static str]) -> Self {
        self.zero = c;
        self
    }
    fn lost(mut self, l: &'static [&'static [u8]]) -> Self {
        self.lost = l;
        self
    }
    fn engine(mut self, e: EngineConfig) -> Self {
        self.engine = e;
        self
    }
}

fn case(name: &'static str, c: Conversation, expect: Expect) -> Case {
    packets(name, c.into_packets(), expect)
}

fn packets(name: &'static str, packets: Vec<TimedPacket>, expect: Expect) -> Case {
    Case { name, packets, expect, engine: EngineConfig::default(), lost: &[], counters: &[], zero: &[] }
}

// ---------------------------------------------------------------- crafting

/// SYN options as `Conversation::handshake` sends them: MSS 1460, NOP,
/// window scale 7, SACK permitted.
const SYN_OPTIONS: &[u8] = &[2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2];

/// Recomputes the TCP checksum of a whole (unfragmented) packet.
fn fix_tcp_checksum(p: &mut [u8]) {
    let d = decode(p).unwrap();
    let t = d.tcp().unwrap().clone();
    let (src, dst) = (d.ip.src, d.ip.dst);
    p[t.offset + 16..t.offset + 18].copy_from_slice(&[0, 0]);
    let c16 = checksum::transport(src, dst, proto::TCP, &p[t.offset..]);
    p[t.offset + 16..t.offset + 18].copy_from_slice(&c16.to_be_bytes());
}

/// Sets a packet's TCP window field (unscaled) and acknowledgment number.
fn with_window(mut p: Vec<u8>, ack: Option<SeqNumber>, window: u16) -> Vec<u8> {
    let off = decode(&p).unwrap().tcp().unwrap().offset;
    if let Some(ack) = ack {
        p[off + 8..off + 12].copy_from_slice(&ack.0.to_be_bytes());
    }
    p[off + 14..off + 16].copy_from_slice(&window.to_be_bytes());
    fix_tcp_checksum(&mut p);
    p
}

/// The server's pure ACK of `ack`, advertising `window` (scaled by the
/// server's shift of 7, so 1 grants 128 bytes).
fn server_ack(c: &mut Conversation, ack: SeqNumber, window: u16) {
    let seq = c.next_seq(Down);
    let p = c.build(Down, seq, ACK, &[], &[]);
    c.push(with_window(p, Some(ack), window));
}

/// A handshake like `Conversation::handshake` (ISNs 1000 and 5000, window
/// scale 7 both ways), except that the SYN carries `syn_payload` and the
/// SYN-ACK advertises `window` (never scaled in a SYN, RFC 7323 2.2). The
/// server acknowledges only the SYN, as Linux without a TFO cookie does.
fn opened(syn_payload: &[u8], window: u16) -> Conversation {
    let mut c = conv().isn(1001, 5001);
    let syn = c.build(Up, SeqNumber(1000), SYN, SYN_OPTIONS, syn_payload);
    let synack = c.build(Down, SeqNumber(5000), SYN | ACK, SYN_OPTIONS, &[]);
    c.push(syn).push(with_window(synack, None, window));
    c.ack(Up);
    c
}

/// Adds a segment with a custom urgent pointer (the builder has none).
fn urgent_segment(c: &mut Conversation, seq: SeqNumber, urgent: u16, payload: &[u8]) {
    let mut p = c.build(Up, seq, ACK | PSH | URG, &[], payload);
    let off = decode(&p).unwrap().tcp().unwrap().offset;
    p[off + 18..off + 20].copy_from_slice(&urgent.to_be_bytes());
    fix_tcp_checksum(&mut p);
    c.push(p);
}

/// Corrupts a packet's TCP checksum.
fn bad_checksum(mut p: Vec<u8>) -> Vec<u8> {
    let d = decode(&p).unwrap();
    let off = d.tcp().unwrap().offset + 16;
    p[off] ^= 0x55;
    p
}

/// Two 32-byte payloads that differ only in the bytes of fragment 1 (of
/// fragments sized 24, 16, rest) and have the same TCP checksum: the second
/// swaps 16-bit words of the first ("at" "ta" "ck" -> "ta" "ck" "at"), which
/// leaves the one's-complement sum unchanged. So fragments 0 and 2 are the
/// same for both, and whichever copy of fragment 1 an endpoint keeps, the
/// datagram checksums (as in `tests/netns_fidelity.rs`).
const OVERLAP_EVIL: &[u8] = b"....------attack--------........";
const OVERLAP_GOOD: &[u8] = b"....------tackat--------........";

/// Fragments 0, 1 of `first`, 1 of `second`, 2 (all the same offsets and
/// lengths: Linux keeps the first copy of an exact duplicate, IPFRAG_DUP),
/// then the benign segment whole (a fresh datagram), then FIN.
fn overlapping_fragments(evil_first: bool) -> Conversation {
    let mut c = conv();
    c.handshake();
    let seq = c.next_seq(Up);
    let evil = c.build(Up, seq, ACK | PSH, &[], OVERLAP_EVIL);
    let good = c.build(Up, seq, ACK | PSH, &[], OVERLAP_GOOD);
    let tcp_sum = |p: &[u8]| decode(p).unwrap().tcp().unwrap().checksum;
    assert_eq!(tcp_sum(&evil), tcp_sum(&good), "crafting: the two versions must checksum alike");
    let e = fragment(&evil, &[24, 16], 7);
    let g = fragment(&good, &[24, 16], 7);
    assert_eq!((e.len(), e[0] == g[0], e[2] == g[2]), (3, true, true));
    let (first, second) = if evil_first { (&e[1], &g[1]) } else { (&g[1], &e[1]) };
    c.push(e[0].clone()).push(first.clone()).push(second.clone()).push(e[2].clone());
    c.wait(200_000);
    c.segment(Up, seq, ACK | PSH, OVERLAP_GOOD);
    c.segment(Up, seq + OVERLAP_GOOD.len() as u32, FIN | ACK, b"");
    c
}

/// One connection's data in fragments (`sizes` as `fragment` takes them).
fn fragmented(mut c: Conversation, payload: &[u8], sizes: &[usize]) -> Conversation {
    c.handshake();
    let seq = c.next_seq(Up);
    let whole = c.build(Up, seq, ACK | PSH, &[], payload);
    for f in fragment(&whole, sizes, 99) {
        c.push(f);
    }
    c
}

/// Two connections in turn on the same 4-tuple: `first`, ended
/// by an orderly close or (unacknowledged) by an RST, then a new one carrying `second`.
fn reused(first: &[u8], close: bool, second: &[u8]) -> Vec<TimedPacket> {
    let mut c = conv();
    c.handshake();
    if close {
        // FIN, the server's ACK and FIN, the last ACK.
        c.send(Up, first).close();
    } else {
        c.data(Up, first).rst(Up);
    }
    let later = sluice::time::Timestamp(c.packets().last().unwrap().0 .0 + 1000);
    let mut c2 = conv().isn(900_000, 77).at(later);
    c2.handshake().send(Up, second);
    let mut packets = c.into_packets();
    packets.extend(c2.into_packets());
    packets
}

/// In-order bytes before the window test: more than the SYN-ACK's
/// (unscaled) window, so only windows advertised later cover what follows.
const WINDOW_LEAD: usize = 5600;
const WINDOW_GAP: usize = 2000;

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
    out.push(case("fragments-overlap-conflict", c, Expect::Attack(b"")).counters(&["drop_fragment_overlap"]));
    // Exact duplicates of fragment 1 with other bytes, either copy valid,
    // then the benign segment resent whole. Evil first: Linux (first copy
    // wins) reads the attack. Good first: Linux reads the benign copy, an
    // endpoint keeping the last copy the attack. Either way sluice drops the
    // datagram (it never guesses the endpoint's policy) and every endpoint
    // reads the benign resend.
    out.push(
        case("fragments-overlap-evil-first", overlapping_fragments(true), Expect::Attack(OVERLAP_GOOD))
            .counters(&["drop_fragment_overlap"]),
    );
    out.push(
        case("fragments-overlap-good-first", overlapping_fragments(false), Expect::Attack(OVERLAP_GOOD))
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

// ---------------------------------------------------------------- endpoint model

/// Which copy of overlapping bytes (TCP out-of-order data, IP fragments)
/// the endpoint keeps.
#[derive(Clone, Copy, Debug)]
enum Overlap {
    FirstWins,
    LastWins,
}

/// What the endpoint does with a segment reaching past the right edge of
/// its receive window (the largest `ack + (window << scale)` it advertised:
/// Linux never shrinks the window it offered).
#[derive(Clone, Copy, Debug)]
enum Window {
    /// Linux: a segment whose first new byte is inside the window is taken
    /// whole, bytes past the edge included (`tcp_data_queue` queues the
    /// skb); one whose first new byte is at or past the edge is discarded
    /// (a zero window, `SKB_DROP_REASON_TCP_ZEROWINDOW`, or out of order
    /// beyond it, `SKB_DROP_REASON_TCP_OVERWINDOW`).
    Whole,
    /// RFC 793 3.9: the segment is trimmed to the window, bytes past the
    /// edge are discarded (the sender retransmits them).
    Trim,
}

/// One endpoint behaviour: the model reads every case under each.
#[derive(Clone, Copy, Debug)]
struct Policy {
    overlap: Overlap,
    window: Window,
}

const POLICIES: [Policy; 4] = [
    Policy { overlap: Overlap::FirstWins, window: Window::Whole },
    Policy { overlap: Overlap::LastWins, window: Window::Whole },
    Policy { overlap: Overlap::FirstWins, window: Window::Trim },
    Policy { overlap: Overlap::LastWins, window: Window::Trim },
];

/// The client's bytes as a receiving endpoint holds and reads them.
#[derive(Default)]
struct Endpoint {
    /// Sequence number of stream byte 0.
    first: Option<SeqNumber>,
    /// In-order bytes received (urgent bytes included: they take sequence space).
    stream: Vec<u8>,
    ooo: BTreeMap<u64, u8>,
    /// Offsets of urgent bytes, which a normal read() skips.
    urgent: Vec<u64>,
    reset: bool,
    /// The client's SYN announced window scaling.
    client_scales: bool,
    /// Shift applied to the server's window fields (0 unless both SYNs
    /// carried the option, RFC 7323 2.2).
    server_shift: u8,
    /// Right edge of the receive window (stream offset); unlimited until the
    /// server advertised one.
    edge: Option<i64>,
}

impl Endpoint {
    /// Stream offset of `seq`.
    fn offset(&self, seq: SeqNumber) -> i64 {
        self.first.map_or(0, |f| seq.diff(f))
    }

    fn rcv_nxt(&self) -> i64 {
        self.stream.len() as i64
    }

    /// What the application reads.
    fn app(&self) -> Vec<u8> {
        self.stream
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.urgent.contains(&(*i as u64)))
            .map(|(_, b)| *b)
            .collect()
    }

    /// A window the server advertised (in a SYN-ACK: never scaled).
    fn advertise(&mut self, ack: SeqNumber, window: u16, syn: bool) {
        let shift = if syn { 0 } else { self.server_shift };
        let edge = self.offset(ack) + (i64::from(window) << shift);
        self.edge = Some(self.edge.map_or(edge, |e| e.max(edge)));
    }

    fn segment(&mut self, policy: Policy, seq: SeqNumber, data: &[u8], urgent: Option<usize>) {
        let start = self.offset(seq);
        let rcv = self.rcv_nxt();
        if start + data.len() as i64 <= rcv {
            // Old data (a retransmission): discarded.
            return;
        }
        let take = match (self.edge, policy.window) {
            (None, _) => data.len(),
            (Some(edge), Window::Whole) if start.max(rcv) >= edge => return,
            (Some(_), Window::Whole) => data.len(),
            (Some(edge), Window::Trim) => (edge - start).clamp(0, data.len() as i64) as usize,
        };
        if let Some(u) = urgent {
            // Linux default (no SO_OOBINLINE): the urgent byte is not read.
            self.urgent.push((start + u as i64).max(0) as u64);
        }
        for (i, &b) in data[..take].iter().enumerate() {
            let off = start + i as i64;
            let rcv = self.rcv_nxt();
            if off < rcv {
                continue;
            }
            if off == rcv {
                self.stream.push(b);
                self.ooo.remove(&(off as u64));
                continue;
            }
            match policy.overlap {
                Overlap::FirstWins => {
                    self.ooo.entry(off as u64).or_insert(b);
                }
                Overlap::LastWins => {
                    self.ooo.insert(off as u64, b);
                }
            }
        }
        while let Some(b) = self.ooo.remove(&(self.stream.len() as u64)) {
            self.stream.push(b);
        }
    }
}

/// Reads an IP-level capture as the server would: reassembles fragments
/// (discarding an IPv6 first fragment without the whole TCP header),
/// discards bad checksums, segments without ACK and segments outside the
/// receive window the server advertised, honours RSTs at rcv_nxt. The first
/// client packet carrying each of `lost` never arrives. Returns the bytes
/// each connection's application read, concatenated.
fn endpoint_reads(packets: &[Vec<u8>], policy: Policy, lost: &[&[u8]]) -> Vec<u8> {
    let mut frags: HashMap<(IpAddr, u32), Vec<Fragment>> = HashMap::new();
    let mut conns: Vec<((IpAddr, u16), Endpoint)> = Vec::new();
    let mut still_lost: Vec<&[u8]> = lost.to_vec();
    for raw in packets {
        let Ok(d) = decode(raw) else { continue };
        let whole;
        let d = if let Some(f) = d.ip.fragment {
            if d.ip.version == 6 && f.offset == 0 && d.ip_payload().len() < 20 {
                // RFC 8200 4.5, Linux ipv6_frag_thdr_truncated(): a first
                // fragment must hold the upper-layer header; it is discarded.
                continue;
            }
            let list = frags.entry((d.ip.src, f.id)).or_default();
            list.push((f.offset, d.ip_payload().to_vec(), f.more, raw[..d.ip.header_len].to_vec()));
            match reassemble(list, policy.overlap) {
                Some(p) => {
                    whole = p;
                    frags.remove(&(d.ip.src, f.id));
                    match decode(&whole) {
                        Ok(w) => w,
                        Err(_) => continue,
                    }
                }
                None => continue,
            }
        } else {
            d
        };
        let Transport::Tcp(t) = &d.transport else { continue };
        if !checksum::transport_ok(d.ip.src, d.ip.dst, proto::TCP, d.l4_bytes()) {
            continue;
        }
        if t.src_port == 80 {
            // The server's windows.
            let key = (d.ip.dst, t.dst_port);
            let Some((_, e)) = conns.iter_mut().rev().find(|(k, _)| *k == key) else { continue };
            if t.has(SYN | ACK) {
                let both = e.client_scales && t.options.window_scale.is_some();
                e.server_shift = if both { t.options.window_scale.unwrap_or(0).min(14) } else { 0 };
            }
            if t.has(ACK) && !t.has(RST) {
                e.advertise(t.ack, t.window, t.has(SYN));
            }
            continue;
        }
        if t.dst_port != 80 {
            continue;
        }
        if let Some(i) = still_lost.iter().position(|l| *l == d.payload() && d.ip.fragment.is_none()) {
            still_lost.remove(i);
            continue;
        }
        let key = (d.ip.src, t.src_port);
        if t.has(SYN) {
            // Linux without a TFO cookie ignores data on a SYN.
            let e = Endpoint {
                first: Some(t.seq + 1),
                client_scales: t.options.window_scale.is_some(),
                ..Endpoint::default()
            };
            conns.push((key, e));
            continue;
        }
        let Some((_, e)) = conns.iter_mut().rev().find(|(k, _)| *k == key) else { continue };
        if e.reset {
            continue;
        }
        if t.has(RST) {
            if e.offset(t.seq) == e.rcv_nxt() {
                e.reset = true;
            }
            continue;
        }
        if !t.has(ACK) {
            continue;
        }
        let urgent = (t.has(URG) && t.urgent > 0).then(|| usize::from(t.urgent) - 1);
        e.segment(policy, t.seq, d.payload(), urgent);
    }
    conns.into_iter().flat_map(|(_, e)| e.app()).collect()
}

/// A held fragment: offset, data, more-fragments flag, the IP header bytes.
type Fragment = (u32, Vec<u8>, bool, Vec<u8>);

/// Reassembles a datagram once its fragments cover it; `None` until then.
fn reassemble(list: &[Fragment], policy: Overlap) -> Option<Vec<u8>> {
    let end = list.iter().find(|f| !f.2).map(|f| f.0 as usize + f.1.len())?;
    let mut bytes: Vec<Option<u8>> = vec![None; end];
    let order: Vec<&Fragment> = match policy {
        Overlap::FirstWins => list.iter().collect(),
        Overlap::LastWins => list.iter().rev().collect(),
    };
    for (off, data, _, _) in order {
        for (i, b) in data.iter().enumerate() {
            if let Some(slot) = bytes.get_mut(*off as usize + i) {
                slot.get_or_insert(*b);
            }
        }
    }
    let payload: Option<Vec<u8>> = bytes.into_iter().collect();
    let payload = payload?;
    let first = list.iter().find(|f| f.0 == 0)?;
    let mut header = first.3.clone();
    if header.first().map(|b| b >> 4) == Some(4) {
        let total = (header.len() + payload.len()) as u16;
        header[2..4].copy_from_slice(&total.to_be_bytes());
        header[6] = 0;
        header[7] = 0;
        header[10] = 0;
        header[11] = 0;
        let c = checksum::ipv4_header(&header);
        header[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        // IPv6 from `fragment()`: base header + fragment header.
        let next = header[40];
        header.truncate(40);
        header[6] = next;
        header[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    header.extend_from_slice(&payload);
    Some(header)
}

// ---------------------------------------------------------------- running

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity").join(name)
}

fn ip_packets(path: &Path) -> Vec<Vec<u8>> {
    let src = PcapSource::open(path).expect("capture opens");
    src.map(|r| r.expect("record reads")).filter_map(|r| r.ip().map(<[u8]>::to_vec)).collect()
}

fn bless() -> bool {
    std::env::var("SLUICE_BLESS").is_ok_and(|v| v == "1")
}

fn contains_attack(v: &[u8]) -> bool {
    v.windows(ATTACK.len()).any(|w| w == ATTACK)
}

fn show(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

fn run_case(case: &Case) {
    let dir = fixture_dir(case.name);
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("input.pcap");
    write_pcap_file(&input, &Framing::Raw, &case.packets).expect("input written");
    let output = tmp.path().join("output.pcap");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/rules.lua");
    let mut opts = OfflineOptions::new(rules, input.clone());
    opts.output = Some(output.clone());
    opts.alerts = Some(tmp.path().join("alerts.jsonl"));
    opts.engine = case.engine.clone();
    opts.progress = false;
    let summary = offline::run(&opts).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert!(!summary.has_errors(), "{}: {summary}", case.name);

    let before = ip_packets(&input);
    let after = ip_packets(&output);
    let reads = |pkts: &[Vec<u8>], p: Policy| endpoint_reads(pkts, p, case.lost);
    let (plain, filtered): (Option<&[u8]>, &[u8]) = match case.expect {
        Expect::Attack(filtered) => {
            assert!(
                POLICIES.iter().any(|p| contains_attack(&reads(&before, *p))),
                "{}: without sluice no endpoint policy reads the attack; the case proves nothing: {}",
                case.name,
                POLICIES.map(|p| show(&reads(&before, p))).join(", ")
            );
            assert!(!contains_attack(filtered), "{}: the case expects the attack through sluice", case.name);
            (None, filtered)
        }
        Expect::Benign(b) => (Some(b), b),
        Expect::Normalised { plain, filtered } => (Some(plain), filtered),
    };
    for policy in POLICIES {
        let out = reads(&after, policy);
        assert!(
            !contains_attack(&out) || plain.is_some_and(contains_attack),
            "{} ({policy:?}): the endpoint read attack bytes through sluice: {}",
            case.name,
            show(&out)
        );
        assert!(
            out == filtered,
            "{} ({policy:?}): through sluice the endpoint read {}, expected {}",
            case.name,
            show(&out),
            show(filtered)
        );
        if let Some(plain) = plain {
            let got = reads(&before, policy);
            assert!(
                got == plain,
                "{} ({policy:?}): without sluice the endpoint read {}, expected {}",
                case.name,
                show(&got),
                show(plain)
            );
        }
    }
    let counter = |n: &str| summary.counters.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    for name in case.counters {
        let v = counter(name);
        assert!(v.is_some_and(|v| v >= 1), "{}: counter {name} is {v:?}, expected >= 1", case.name);
    }
    for name in case.zero {
        let v = counter(name);
        assert_eq!(v, Some(0), "{}: counter {name} must stay 0", case.name);
    }

    // Golden comparison of the exact output.
    let expected = dir.join("expected.pcap");
    let committed_input = dir.join("input.pcap");
    if bless() {
        fs::create_dir_all(&dir).expect("fixture dir");
        fs::copy(&input, &committed_input).expect("input saved");
        fs::copy(&output, &expected).expect("expected saved");
        return;
    }
    let want_in = fs::read(&committed_input).unwrap_or_else(|_| {
        panic!("{}: no fixture; run SLUICE_BLESS=1 cargo test --release --test fidelity", case.name)
    });
    assert!(
        fs::read(&input).unwrap() == want_in,
        "{}: generated input differs from the committed fixture",
        case.name
    );
    let want = ip_packets(&expected);
    assert_eq!(after.len(), want.len(), "{}: output packet count differs from expected.pcap", case.name);
    for (i, (a, w)) in after.iter().zip(&want).enumerate() {
        assert!(a == w, "{}: output packet {i} differs from expected.pcap", case.name);
    }
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity");
    for entry in fs::read_dir(root).expect("fixtures") {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
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
