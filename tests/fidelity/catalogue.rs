//! The stream-fidelity case catalogue, one list for both suites: the
//! offline suite (`tests/fidelity.rs`: `sluice pcap` on a crafted capture,
//! read by a model endpoint under several policies) and the netns suite
//! (`tests/netns_fidelity.rs`: a crafted client, a real Linux server, sluice
//! inline). Each case is defined once: its name, the client's packets, what
//! each suite expects. A case runs in both suites unless its `only` says
//! why it cannot.
//!
//! The packets: each connection's script runs after the handshake on a
//! [`Conversation`]. Offline the whole capture is built in advance; in
//! netns the crafted client makes the handshake with the real server and
//! then plays the script, waiting for the server's answer wherever the
//! script has one (`send`, `close`). The netns server application reads
//! until EOF, so the script ends the client's stream with [`Ending`]; the
//! offline captures have no FIN there (the model reads bytes, not EOF, and
//! the committed fixtures predate the shared catalogue). Where the suites
//! cannot send the same packets (the receive-window cases: offline the
//! capture states the windows, in netns the kernel chooses them and a live
//! script reads them), the case holds both ways of making them.

// Each suite reads its own share of a case.
#![allow(dead_code, unused_imports)]

use sluice::config::EngineConfig;
use sluice::flow::Direction::Up;
use sluice::ip::fragment::fragment;
use sluice::pcapgen::{Conversation, TimedPacket};
use sluice::wire::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use sluice::wire::SeqNumber;

use crate::harness::craft::{bad_checksum, overlapping_fragments, urgent_segment, OVERLAP_GOOD};
use crate::harness::{opened, server_ack, Case as Offline, Expect};

#[path = "catalogue_netns.rs"]
mod netns;
pub use netns::{End, Live, Netns, Reads, QUEUED};

/// How a script ends the client's stream: with a FIN in the netns suite,
/// with nothing offline.
pub struct Ending {
    pub fin: bool,
}

impl Ending {
    /// FIN at the client's next sequence number.
    pub fn fin(&self, c: &mut Conversation) {
        if self.fin {
            c.fin(Up);
        }
    }

    /// FIN at `seq` (after out-of-order data, whose end the conversation
    /// does not track).
    pub fn fin_at(&self, c: &mut Conversation, seq: SeqNumber) {
        if self.fin {
            c.segment(Up, seq, FIN | ACK, b"");
        }
    }
}

/// Builds one connection's client packets after the handshake.
pub type Script = fn(&mut Conversation, &Ending);

/// How one connection's packets are made after the handshake.
#[derive(Clone, Copy)]
pub enum Play {
    /// The same script in both suites.
    Script(Script),
    /// netns: driven live ([`Live`]); offline: the case's capture.
    Live(Live),
}

/// One client connection.
pub struct Conn {
    /// The client's initial sequence number.
    pub isn: u32,
    /// The server's, offline (in netns the kernel chooses it).
    pub server_isn: u32,
    /// Data carried on the SYN.
    pub syn_payload: &'static [u8],
    pub play: Play,
}

/// One case of the catalogue.
pub struct Case {
    pub name: &'static str,
    pub v6: bool,
    /// The client's connections, one after the other on the same 4-tuple.
    pub conns: Vec<Conn>,
    /// A capture built whole (server packets and their windows included),
    /// in place of the conversation the connections' scripts make offline.
    pub capture: Option<fn() -> Vec<TimedPacket>>,
    /// What the offline suite expects (from a case with the name, the
    /// packets and no expectation), if it runs the case.
    pub offline: Option<fn(Offline) -> Offline>,
    /// What the netns suite expects, if it runs the case.
    pub netns: Option<Netns>,
    /// Why the case runs in one suite only.
    pub only: &'static str,
}

/// The client's address pair in the offline captures.
fn offline_conv(v6: bool) -> Conversation {
    let (c, s) = if v6 { ("[fd00:1::1]:40000", "[fd00:1::2]:80") } else { ("10.1.0.1:40000", "10.1.0.2:80") };
    Conversation::new(c.parse().unwrap(), s.parse().unwrap())
}

impl Case {
    /// The offline capture: the case's own, or its connections in turn
    /// (each 1 ms after the last packet of the one before).
    pub fn offline_packets(&self) -> Vec<TimedPacket> {
        if let Some(capture) = self.capture {
            return capture();
        }
        let mut packets: Vec<TimedPacket> = Vec::new();
        for conn in &self.conns {
            let Play::Script(script) = conn.play else {
                panic!("{}: a live case needs a capture", self.name)
            };
            let mut c = if conn.syn_payload.is_empty() {
                let mut c = offline_conv(self.v6).isn(conn.isn, conn.server_isn);
                if let Some(last) = packets.last() {
                    c = c.at(sluice::time::Timestamp(last.0 .0 + 1000));
                }
                c.handshake();
                c
            } else {
                assert!(
                    packets.is_empty() && !self.v6 && conn.isn == 1000,
                    "{}: opened() is IPv4, ISN 1000",
                    self.name
                );
                opened(conn.syn_payload, 65535)
            };
            script(&mut c, &Ending { fin: false });
            packets.extend(c.into_packets());
        }
        packets
    }
}

/// A case on one connection (ISNs 1000 and 5000) in both suites.
fn case(name: &'static str, script: Script, offline: fn(Offline) -> Offline, netns: Netns) -> Case {
    Case {
        name,
        v6: false,
        conns: vec![conn(script)],
        capture: None,
        offline: Some(offline),
        netns: Some(netns),
        only: "",
    }
}

/// A case on one connection that only the offline suite runs, and why.
fn offline_only(
    name: &'static str,
    why: &'static str,
    script: Script,
    offline: fn(Offline) -> Offline,
) -> Case {
    Case { netns: None, only: why, ..case(name, script, offline, Netns::benign((b"", End::Eof))) }
}

fn conn(script: Script) -> Conn {
    Conn { isn: 1000, server_isn: 5000, syn_payload: b"", play: Play::Script(script) }
}

impl Case {
    fn v6(mut self) -> Self {
        self.v6 = true;
        self
    }
    fn capture(mut self, capture: fn() -> Vec<TimedPacket>) -> Self {
        self.capture = Some(capture);
        self
    }
}

/// The first client sequence number after the handshake.
fn base(c: &Conversation) -> SeqNumber {
    c.next_seq(Up)
}

/// The offline suite's benign twins and variants the netns suite does not
/// play: they add no arrangement the real endpoint would show differently.
const TWIN: &str = "offline only: a twin of a case both suites run, with other bytes; \
                    the netns suite plays one variant per arrangement";

/// Every case, in the order of `docs/stream-fidelity.md`.
pub fn catalogue() -> Vec<Case> {
    let mut all = segmentation();
    all.extend(overlaps());
    all.extend(discarded());
    all.extend(netns::window());
    all.extend(resets_and_urgent());
    all.extend(fragments());
    all.extend(sequence_and_syn());
    all.extend(reuse_and_limits());
    all
}

fn segmentation() -> Vec<Case> {
    vec![
        case(
            "segmented-bytewise",
            |c, end| {
                for b in b"an attack, bytewise" {
                    c.data(Up, &[*b]);
                }
                end.fin(c);
            },
            // The packet carrying the final `k` is dropped; sluice resets.
            |o| o.expect(Expect::Attack(b"an attac")),
            Netns::attack((b"an attack, bytewise", End::Eof), (b"an attac", End::Reset)),
        ),
        case(
            "segmented-bytewise-benign",
            |c, end| {
                for b in b"harmless bytes" {
                    c.data(Up, &[*b]);
                }
                end.fin(c);
            },
            |o| o.expect(Expect::Benign(b"harmless bytes")).zero(&["drop_rule"]),
            Netns::benign((b"harmless bytes", End::Eof)).zero(&["drop_rule"]),
        ),
        // Reordering: the second half first; the gap-closing packet carries
        // the verdict for the held island.
        case(
            "reordered",
            |c, end| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"ack!").segment(Up, b, ACK | PSH, b"att");
                end.fin_at(c, b + 7);
            },
            |o| o.expect(Expect::Attack(b"")).counters(&["tcp_out_of_order_segments"]),
            Netns::attack((b"attack!", End::Eof), (b"", End::Reset)).counters(&["tcp_out_of_order_segments"]),
        ),
        offline_only(
            "reordered-benign",
            TWIN,
            |c, _| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"mless!").segment(Up, b, ACK | PSH, b"har");
            },
            |o| {
                o.expect(Expect::Benign(b"harmless!"))
                    .counters(&["tcp_out_of_order_segments"])
                    .zero(&["drop_rule"])
            },
        ),
        // The same over IPv6.
        case(
            "ipv6-reordered",
            |c, end| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"ack!").segment(Up, b, ACK | PSH, b"att");
                end.fin_at(c, b + 7);
            },
            |o| o.expect(Expect::Attack(b"")).counters(&["tcp_out_of_order_segments"]),
            Netns::attack((b"attack!", End::Eof), (b"", End::Reset)).counters(&["tcp_out_of_order_segments"]),
        )
        .v6(),
        offline_only(
            "ipv6-reordered-benign",
            TWIN,
            |c, _| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"mless!").segment(Up, b, ACK | PSH, b"har");
            },
            |o| {
                o.expect(Expect::Benign(b"harmless!"))
                    .counters(&["tcp_out_of_order_segments"])
                    .zero(&["drop_rule"])
            },
        )
        .v6(),
        // Duplicated segment: same bytes, accepted, not delivered twice.
        case(
            "duplicated",
            |c, end| {
                let b = base(c);
                c.data(Up, b"att").segment(Up, b, ACK | PSH, b"att").data(Up, b"ack");
                end.fin(c);
            },
            |o| o.expect(Expect::Attack(b"att")).counters(&["tcp_retransmissions"]),
            Netns::attack((b"attack", End::Eof), (b"att", End::Reset)).counters(&["tcp_retransmissions"]),
        ),
        offline_only(
            "duplicated-benign",
            TWIN,
            |c, _| {
                let b = base(c);
                c.data(Up, b"har").segment(Up, b, ACK | PSH, b"har").data(Up, b"mless");
            },
            |o| {
                o.expect(Expect::Benign(b"harmless"))
                    .counters(&["tcp_retransmissions"])
                    .zero(&["drop_rule", "drop_tcp_overlap_conflict"])
            },
        ),
        case(
            "reordered-duplicated-benign",
            |c, end| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"ing!").segment(Up, b + 3, ACK | PSH, b"ing!");
                c.segment(Up, b, ACK | PSH, b"sor");
                end.fin_at(c, b + 7);
            },
            |o| {
                o.expect(Expect::Benign(b"soring!"))
                    .counters(&["tcp_out_of_order_segments"])
                    .zero(&["drop_tcp_overlap_conflict"])
            },
            Netns::benign((b"soring!", End::Eof))
                .counters(&["tcp_out_of_order_segments"])
                .zero(&["drop_tcp_overlap_conflict"]),
        ),
    ]
}

fn overlaps() -> Vec<Case> {
    vec![
        // Out-of-order overlap with other bytes: whichever copy the endpoint
        // keeps, rules must have seen it. Linux keeps the first of two
        // out-of-order copies of the same range (tcp_data_queue_ofo: "all
        // the bits are present, drop"). `ume` is refused; the recorded `ack`
        // completes the pattern.
        case(
            "ooo-overlap-conflict",
            |c, end| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"ack").segment(Up, b + 3, ACK | PSH, b"ume");
                c.segment(Up, b, ACK | PSH, b"att");
                end.fin_at(c, b + 6);
            },
            |o| o.expect(Expect::Attack(b"")).counters(&["drop_tcp_overlap_conflict"]),
            Netns::attack((b"attack", End::Eof), (b"", End::Reset)).counters(&["drop_tcp_overlap_conflict"]),
        ),
        // The other order: `ack` is refused, every endpoint reads the
        // recorded copy.
        offline_only(
            "ooo-overlap-conflict-last",
            "offline only: the model's last-copy policy reads the attack here; Linux keeps the first \
             copy of a same-range overlap (ooo-overlap-conflict), and replaces a queued segment only \
             with one that covers it, which ooo-overlap-later-copy plays against it",
            |c, _| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"ume").segment(Up, b + 3, ACK | PSH, b"ack");
                c.segment(Up, b, ACK | PSH, b"att");
            },
            |o| o.expect(Expect::Attack(b"attume")).counters(&["drop_tcp_overlap_conflict"]),
        ),
        // A later out-of-order segment at the same sequence number that
        // covers an earlier one replaces it in Linux's queue: Linux reads the
        // later copy. `ack` is refused: the server reads the recorded copy,
        // and the FIN after the never-filled byte 5 never ends the stream.
        Case {
            netns: Some(
                Netns::attack((b"attack", End::Eof), (b"attum", End::Timeout))
                    .strict()
                    .counters(&["drop_tcp_overlap_conflict"]),
            ),
            offline: None,
            only: "netns only: what a real Linux does with a covering later copy; the model's \
                   policies are first copy and last copy (ooo-overlap-conflict, -last)",
            ..case(
                "ooo-overlap-later-copy",
                |c, end| {
                    let b = base(c);
                    c.segment(Up, b + 3, ACK | PSH, b"um").segment(Up, b + 3, ACK | PSH, b"ack");
                    c.segment(Up, b, ACK | PSH, b"att");
                    end.fin_at(c, b + 6);
                },
                |o| o,
                Netns::benign((b"", End::Eof)),
            )
        },
        // Retransmission of delivered, unacknowledged bytes with other
        // content: the endpoint has the first copy and discards the
        // retransmission as old data; sluice refuses it. Passing it to rules
        // as new data would be a false reset. In netns the server's pure ACKs
        // are dropped inside its namespace, so sluice never sees "attune"
        // acknowledged.
        case(
            "retransmit-other-bytes",
            |c, end| {
                let b = base(c);
                c.data(Up, b"attune").segment(Up, b + 3, ACK | PSH, b"ack");
                end.fin(c);
            },
            |o| {
                o.expect(Expect::Benign(b"attune"))
                    .counters(&["drop_tcp_overlap_conflict"])
                    .zero(&["drop_rule"])
            },
            Netns::benign((b"attune", End::Eof))
                .counters(&["drop_tcp_overlap_conflict"])
                .zero(&["drop_rule"])
                .server_acks_dropped(),
        ),
        // ...the attack variant: the first copy passed the gateway but never
        // reached the endpoint (lost on the last link, or sent with a TTL
        // that expires there), so the endpoint takes the retransmission's
        // other bytes. sluice refuses them (they conflict with its record);
        // the sender's real retransmission of the recorded bytes passes.
        offline_only(
            "retransmit-other-bytes-lost",
            "offline only: the loss past the gateway is the model's (`lost`); the netns testbed has \
             no lossy last link",
            |c, _| {
                let b = base(c);
                c.data(Up, b"attune").segment(Up, b, ACK | PSH, b"attack").segment(
                    Up,
                    b,
                    ACK | PSH,
                    b"attune",
                );
            },
            |o| {
                o.expect(Expect::Attack(b"attune"))
                    .lost(&[b"attune"])
                    .counters(&["drop_tcp_overlap_conflict"])
                    .zero(&["drop_rule"])
            },
        ),
        // ...and after the receiver acknowledged them (`send` waits for the
        // server's ACK): acknowledged bytes are released, accepted without
        // comparison.
        case(
            "retransmit-after-ack",
            |c, end| {
                let b = base(c);
                c.send(Up, b"attune").segment(Up, b + 3, ACK | PSH, b"ack");
                end.fin(c);
            },
            |o| o.expect(Expect::Benign(b"attune")).zero(&["drop_tcp_overlap_conflict", "drop_rule"]),
            Netns::benign((b"attune", End::Eof)).zero(&["drop_tcp_overlap_conflict", "drop_rule"]),
        ),
    ]
}

fn discarded() -> Vec<Case> {
    vec![
        // Bad TCP checksum: the endpoint discards the segment.
        case(
            "bad-checksum",
            |c, end| {
                let b = base(c);
                let bad = bad_checksum(c.build(Up, b + 3, ACK | PSH, &[], b"une"));
                c.data(Up, b"att");
                c.push(bad);
                c.data(Up, b"ack");
                end.fin(c);
            },
            |o| o.expect(Expect::Attack(b"att")).counters(&["drop_bad_checksum"]),
            Netns::attack((b"attack", End::Eof), (b"att", End::Reset)).counters(&["drop_bad_checksum"]),
        ),
        case(
            "bad-checksum-benign",
            |c, end| {
                let b = base(c);
                let bad = bad_checksum(c.build(Up, b + 3, ACK | PSH, &[], b"ack"));
                c.data(Up, b"att");
                c.push(bad);
                c.data(Up, b"une");
                end.fin(c);
            },
            |o| o.expect(Expect::Benign(b"attune")).counters(&["drop_bad_checksum"]).zero(&["drop_rule"]),
            Netns::benign((b"attune", End::Eof)).counters(&["drop_bad_checksum"]).zero(&["drop_rule"]),
        ),
        // Missing ACK flag in an established connection: the endpoint
        // discards it.
        offline_only(
            "no-ack-flag",
            TWIN,
            |c, _| {
                let b = base(c);
                c.data(Up, b"att").segment(Up, b + 3, PSH, b"une").data(Up, b"ack");
            },
            |o| o.expect(Expect::Attack(b"att")).counters(&["drop_tcp_bad_flags"]),
        ),
        case(
            "no-ack-flag-benign",
            |c, end| {
                let b = base(c);
                c.data(Up, b"att").segment(Up, b + 3, PSH, b"ack").data(Up, b"une");
                end.fin(c);
            },
            |o| o.expect(Expect::Benign(b"attune")).counters(&["drop_tcp_bad_flags"]).zero(&["drop_rule"]),
            Netns::benign((b"attune", End::Eof)).counters(&["drop_tcp_bad_flags"]),
        ),
        // Far outside the window (the server advertised 65535 << 7 after the
        // handshake; the segment starts far beyond it).
        case(
            "out-of-window-benign",
            |c, end| {
                let b = base(c);
                c.data(Up, b"att").segment(Up, b + 3 + 100_000_000, ACK | PSH, b"ack").data(Up, b"une");
                end.fin(c);
            },
            |o| {
                o.expect(Expect::Benign(b"attune")).counters(&["drop_tcp_out_of_window"]).zero(&["drop_rule"])
            },
            Netns::benign((b"attune", End::Eof)).counters(&["drop_tcp_out_of_window"]),
        ),
    ]
}

fn resets_and_urgent() -> Vec<Case> {
    vec![
        // A fake RST (inside the window but not at rcv_nxt: Linux answers
        // with a challenge ACK and goes on, RFC 5961) must not stop
        // inspection.
        case(
            "fake-rst",
            |c, end| {
                let b = base(c);
                c.data(Up, b"att").segment(Up, b + 1000, RST, b"").data(Up, b"ack");
                end.fin(c);
            },
            |o| o.expect(Expect::Attack(b"att")).counters(&["drop_tcp_bad_rst"]),
            Netns::attack((b"attack", End::Eof), (b"att", End::Reset)).counters(&["drop_tcp_bad_rst"]),
        ),
        offline_only(
            "fake-rst-benign",
            TWIN,
            |c, _| {
                let b = base(c);
                c.data(Up, b"att").segment(Up, b + 1000, RST, b"").data(Up, b"une");
            },
            |o| o.expect(Expect::Benign(b"attune")).counters(&["drop_tcp_bad_rst"]).zero(&["drop_rule"]),
        ),
        // A real RST ends the connection: nothing after it reaches the server.
        case(
            "real-rst-benign",
            |c, _| {
                c.data(Up, b"att").rst(Up).data(Up, b"ack");
            },
            |o| o.expect(Expect::Benign(b"att")).counters(&["drop_tcp_closed"]).zero(&["drop_rule"]),
            Netns::benign((b"att", End::Reset)).counters(&["drop_tcp_closed"]).zero(&["drop_rule"]),
        ),
        // Urgent pointer 1: the urgent byte is `X`. Without SO_OOBINLINE
        // Linux's read() skips it; sluice clears URG so the endpoint reads
        // every byte inline, as rules do.
        case(
            "urgent",
            |c, end| {
                let b = base(c);
                c.data(Up, b"att");
                urgent_segment(c, b + 3, 1, b"Xack");
                end.fin_at(c, b + 7);
            },
            |o| {
                o.expect(Expect::Attack(b"attXack"))
                    .strict()
                    .counters(&["tcp_urgent_cleared", "packets_modified"])
                    .zero(&["drop_rule"])
            },
            Netns::attack((b"attack", End::Eof), (b"attXack", End::Eof))
                .strict()
                .counters(&["tcp_urgent_cleared", "packets_modified"])
                .zero(&["drop_rule"]),
        ),
        offline_only(
            "urgent-benign",
            TWIN,
            |c, _| {
                let b = base(c);
                c.data(Up, b"har");
                urgent_segment(c, b + 3, 1, b"Xmless");
            },
            |o| {
                o.expect(Expect::Normalised { plain: b"harmless", filtered: b"harXmless" })
                    .strict()
                    .counters(&["tcp_urgent_cleared", "packets_modified"])
                    .zero(&["drop_rule"])
            },
        ),
    ]
}

/// One connection's data in fragments (`sizes` as `fragment` takes them,
/// identification 99), then the end of the stream.
fn fragmented(c: &mut Conversation, end: &Ending, payload: &[u8], sizes: &[usize]) {
    let seq = base(c);
    let whole = c.build(Up, seq, ACK | PSH, &[], payload);
    for f in fragment(&whole, sizes, 99) {
        c.push(f);
    }
    end.fin_at(c, seq + payload.len() as u32);
}

const FRAGMENTED: &[u8] = b"........attack........";
const FRAGMENTED6: &[u8] = b"v6 attack in pieces, and some more";

fn fragments() -> Vec<Case> {
    let reassembled = &["ip_datagrams_reassembled"];
    vec![
        case(
            "fragments",
            |c, end| fragmented(c, end, FRAGMENTED, &[24, 16]),
            |o| o.expect(Expect::Attack(b"")).counters(&["ip_datagrams_reassembled"]),
            Netns::attack((FRAGMENTED, End::Eof), (b"", End::Reset)).counters(reassembled),
        ),
        offline_only(
            "fragments-benign",
            TWIN,
            |c, end| fragmented(c, end, b"........harmless........", &[24, 16]),
            |o| {
                o.expect(Expect::Benign(b"........harmless........"))
                    .counters(&["ip_datagrams_reassembled"])
                    .zero(&["drop_rule", "drop_fragment", "drop_fragment_overlap"])
            },
        ),
        // Overlapping fragments with other bytes. Same length, so the two
        // versions' fragments line up. The evil TCP header (fragment 0) only
        // checksums with the evil middle fragment: an endpoint keeping the
        // last copy of an overlap reads the attack; one keeping the first
        // discards the datagram.
        offline_only(
            "fragments-overlap-conflict",
            "offline only: partially overlapping fragments make Linux drop the whole datagram \
             (RFC 5722), so against it the case proves nothing; the model's last-copy policy reads it",
            |c, _| {
                let seq = base(c);
                let benign = c.build(Up, seq, ACK | PSH, &[], b"................................");
                let evil = c.build(Up, seq, ACK | PSH, &[], b"..............attack............");
                let good = fragment(&benign, &[24, 16], 7);
                let bad = fragment(&evil, &[24, 16], 7);
                c.push(bad[0].clone()).push(good[1].clone()).push(bad[1].clone()).push(bad[2].clone());
            },
            |o| o.expect(Expect::Attack(b"")).strict().counters(&["drop_fragment_overlap"]),
        ),
        // Exact duplicates of fragment 1 with other bytes, either copy valid,
        // then the benign segment resent whole. Linux discards a later
        // fragment with exactly the same offset and length as a held one
        // (inet_frag_queue_insert: IPFRAG_DUP) and keeps the first. Evil
        // first: Linux reads the attack. Good first: Linux reads the benign
        // copy, an endpoint keeping the last copy the attack. Either way
        // sluice drops the datagram (it never guesses the endpoint's policy)
        // and every endpoint reads the benign resend.
        case(
            "fragments-overlap-evil-first",
            |c, _| overlapping_fragments(c, true),
            |o| o.expect(Expect::Attack(OVERLAP_GOOD)).strict().counters(&["drop_fragment_overlap"]),
            Netns::attack((crate::harness::craft::OVERLAP_EVIL, End::Eof), (OVERLAP_GOOD, End::Eof))
                .strict()
                .counters(&["drop_fragment_overlap"]),
        ),
        case(
            "fragments-overlap-good-first",
            |c, _| overlapping_fragments(c, false),
            |o| o.expect(Expect::Attack(OVERLAP_GOOD)).strict().counters(&["drop_fragment_overlap"]),
            Netns::benign((OVERLAP_GOOD, End::Eof)).strict().counters(&["drop_fragment_overlap"]),
        ),
        // IPv6, in fragments. The first fragment holds the whole TCP header
        // (RFC 8200 4.5: Linux discards a first fragment without the
        // upper-layer header, and so does the model).
        case(
            "ipv6-fragments",
            |c, end| fragmented(c, end, FRAGMENTED6, &[32, 8]),
            |o| o.expect(Expect::Attack(b"")).counters(&["ip_datagrams_reassembled"]),
            Netns::attack((FRAGMENTED6, End::Eof), (b"", End::Reset)).counters(reassembled),
        )
        .v6(),
        offline_only(
            "ipv6-fragments-benign",
            TWIN,
            |c, end| fragmented(c, end, b"v6 harmless pieces, and some more", &[32, 8]),
            |o| {
                o.expect(Expect::Benign(b"v6 harmless pieces, and some more"))
                    .counters(&["ip_datagrams_reassembled"])
                    .zero(&["drop_rule", "drop_fragment", "drop_fragment_overlap"])
            },
        )
        .v6(),
    ]
}

/// A case whose client ISN is 2^32 - 3 (offline the server's is 10): the
/// data starts at 2^32 - 2, "att" spans the wrap.
fn wrapping(mut c: Case) -> Case {
    c.conns[0].isn = u32::MAX - 2;
    c.conns[0].server_isn = 10;
    c
}

fn sequence_and_syn() -> Vec<Case> {
    vec![
        // Sequence numbers across 2^32, with reordering around the wrap.
        wrapping(case(
            "sequence-wrap",
            |c, end| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"ack").segment(Up, b, ACK | PSH, b"att");
                end.fin_at(c, b + 6);
            },
            |o| o.expect(Expect::Attack(b"")),
            Netns::attack((b"attack", End::Eof), (b"", End::Reset)),
        )),
        wrapping(offline_only(
            "sequence-wrap-benign",
            TWIN,
            |c, _| {
                let b = base(c);
                c.segment(Up, b + 3, ACK | PSH, b"mless").segment(Up, b, ACK | PSH, b"har");
            },
            |o| {
                o.expect(Expect::Benign(b"harmless"))
                    .counters(&["tcp_out_of_order_segments"])
                    .zero(&["drop_rule"])
            },
        )),
        // SYN carrying the attack (as a TCP Fast Open client would); without
        // a TFO cookie the server ignores it and the client sends it again.
        offline_only(
            "syn-with-data",
            "offline only: the capture holds a SYN with data that the server never acknowledges, \
             then a second handshake; the crafted client makes one handshake per connection",
            |_, _| {},
            |o| o.expect(Expect::Attack(b"")),
        )
        .capture(|| {
            let mut c = offline_conv(false);
            let isn = c.next_seq(Up);
            let syn = c.build(Up, isn, SYN, &[], b"attack");
            c.push(syn);
            c.handshake().send(Up, b"attack");
            c.into_packets()
        }),
        // The SYN's data is ignored by the server (Linux without a TFO
        // cookie), so the first data segment may carry other bytes at the
        // same sequence numbers: sluice recorded the SYN's bytes, refuses
        // the other bytes, passes the matching resend.
        with_syn_payload(
            b"harmless",
            case(
                "syn-with-data-other-bytes",
                |c, end| {
                    let b = base(c);
                    c.segment(Up, b, ACK | PSH, b"attack!!").segment(Up, b, ACK | PSH, b"harmless");
                    end.fin_at(c, b + 8);
                },
                |o| o.expect(Expect::Attack(b"harmless")).strict().counters(&["drop_tcp_overlap_conflict"]),
                Netns::attack((b"attack!!", End::Eof), (b"harmless", End::Eof))
                    .strict()
                    .counters(&["drop_tcp_overlap_conflict"]),
            ),
        ),
        with_syn_payload(
            b"harmless",
            offline_only(
                "syn-with-data-benign",
                TWIN,
                |c, _| {
                    let b = base(c);
                    c.segment(Up, b, ACK | PSH, b"harmless");
                },
                |o| o.expect(Expect::Benign(b"harmless")).zero(&["drop_rule", "drop_tcp_overlap_conflict"]),
            ),
        ),
    ]
}

fn with_syn_payload(payload: &'static [u8], mut c: Case) -> Case {
    c.conns[0].syn_payload = payload;
    c
}

/// A new SYN on the 4-tuple after an orderly close (`close`) or after an
/// RST, then `second` on the new connection (ISNs 900,000 and, offline, 77).
fn reused(name: &'static str, close: bool, second: Script) -> Case {
    let first: Script = if close {
        // FIN, the server's ACK and FIN, the last ACK.
        |c, _| {
            c.send(Up, b"first").close();
        }
    } else {
        |c, _| {
            c.data(Up, b"first").rst(Up);
        }
    };
    let mut c = case(name, first, |o| o, Netns::benign((b"", End::Eof)));
    c.conns.push(Conn { isn: 900_000, server_isn: 77, syn_payload: b"", play: Play::Script(second) });
    c
}

fn reuse_and_limits() -> Vec<Case> {
    let first_end = |close: bool| if close { End::Eof } else { End::Reset };
    let attack = |close: bool| {
        Netns::reads(
            vec![(b"first", first_end(close)), (b"second attack", End::Eof)],
            vec![(b"first", first_end(close)), (b"", End::Reset)],
        )
        .counters(&["drop_rule"])
    };
    let second_attack: Script = |c, end| {
        c.send(Up, b"second attack");
        end.fin(c);
    };
    let second: Script = |c, _| {
        c.send(Up, b"second");
    };
    let twin = |c: Case| Case { netns: None, only: TWIN, ..c };
    vec![
        Case {
            offline: Some(|o| o.expect(Expect::Attack(b"first")).counters(&["drop_rule"])),
            netns: Some(attack(true)),
            ..reused("reuse-after-close", true, second_attack)
        },
        twin(Case {
            offline: Some(|o| o.expect(Expect::Benign(b"firstsecond")).zero(&["drop_rule"])),
            ..reused("reuse-after-close-benign", true, second)
        }),
        Case {
            offline: Some(|o| o.expect(Expect::Attack(b"first")).counters(&["drop_rule"])),
            netns: Some(attack(false)),
            ..reused("reuse-after-reset", false, second_attack)
        },
        twin(Case {
            offline: Some(|o| o.expect(Expect::Benign(b"firstsecond")).zero(&["drop_rule"])),
            ..reused("reuse-after-reset-benign", false, second)
        }),
        // Many out-of-order islands: past the limit segments are dropped, and
        // the connection still works once the sender fills the gap in order.
        offline_only(
            "ooo-limit-benign",
            "offline only: it needs an engine limit (8 out-of-order segments); the netns suite's \
             resource_limits test floods the limits of a running sluice",
            |c, _| {
                let b = base(c);
                for i in 0..20u32 {
                    c.segment(Up, b + 100 + 10 * i, ACK | PSH, b"x");
                }
                c.data(Up, b"benign stream");
            },
            |o| {
                o.expect(Expect::Benign(b"benign stream"))
                    .engine(EngineConfig { max_ooo_segments: 8, ..EngineConfig::default() })
                    .counters(&["drop_stream_buffer_full"])
                    .zero(&["drop_rule"])
            },
        ),
    ]
}

/// The receive-window cases' offline captures, whose SYN-ACK states the
/// window (the netns suite's live scripts read the kernel's).
pub(crate) mod window_captures {
    use super::*;
    use crate::harness::{WINDOW_GAP, WINDOW_LEAD};

    /// A segment straddling the right edge (the SYN-ACK grants 5 bytes:
    /// "att" and "ac").
    pub(crate) fn out_of_window() -> Vec<TimedPacket> {
        let mut c = opened(b"", 5);
        let base = c.next_seq(Up);
        c.data(Up, b"att").segment(Up, base + 3, ACK | PSH, b"ack!!");
        c.into_packets()
    }

    /// The straddling segment with harmless bytes; the server acknowledges
    /// what a trimming endpoint kept and the client retransmits it.
    pub(crate) fn out_of_window_straddle_benign() -> Vec<TimedPacket> {
        let mut c = opened(b"", 5);
        let base = c.next_seq(Up);
        c.data(Up, b"har").segment(Up, base + 3, ACK | PSH, b"mless!!");
        server_ack(&mut c, base + 5, 1);
        c.segment(Up, base + 3, ACK | PSH, b"mless!!");
        c.into_packets()
    }

    /// `ack` out of order exactly at the right edge (3 bytes on), `att`,
    /// then `une` where `ack` was.
    pub(crate) fn out_of_window_edge_benign() -> Vec<TimedPacket> {
        let mut c = opened(b"", 3);
        let base = c.next_seq(Up);
        c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
        server_ack(&mut c, base + 3, 1);
        c.segment(Up, base + 3, ACK | PSH, b"une");
        c.into_packets()
    }

    /// `att` fills the window, the server closes it, `ack` goes into the
    /// closed window, the window opens, `une` takes its place.
    pub(crate) fn zero_window_benign() -> Vec<TimedPacket> {
        let mut c = opened(b"", 3);
        let base = c.next_seq(Up);
        c.data(Up, b"att");
        server_ack(&mut c, base + 3, 0);
        c.segment(Up, base + 3, ACK | PSH, b"ack");
        server_ack(&mut c, base + 3, 1);
        c.segment(Up, base + 3, ACK | PSH, b"une");
        c.into_packets()
    }

    /// The SYN-ACK grants 4096 bytes (never scaled), the server's later
    /// ACKs carry a window field of 63 (8064 bytes at scale 7); a segment
    /// 2000 bytes ahead after 5600 acknowledged bytes.
    pub(crate) fn window_scaled_benign() -> Vec<TimedPacket> {
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
        c.into_packets()
    }

    /// What the endpoint reads in [`window_scaled_benign`].
    pub(crate) fn window_scaled_reads() -> &'static [u8] {
        let mut read = vec![b'.'; WINDOW_LEAD + WINDOW_GAP];
        read.extend_from_slice(b"tail");
        Box::leak(read.into_boxed_slice())
    }
}
