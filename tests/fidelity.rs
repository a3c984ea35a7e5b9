//! Stream fidelity, offline: the adversarial cases of `docs/stream-fidelity.md`
//! as pcap tests. Each case is a crafted capture; `sluice pcap` runs it with a
//! rule that resets on the bytes `attack`. A model of a receiving endpoint
//! (Linux's default stream semantics, with either overlap policy) then reads
//! the client's bytes out of the input capture and out of sluice's output:
//!
//! * attack variants: the model reads `attack` from the input (the case is
//!   real) and never from the output;
//! * benign variants: the model reads exactly the benign bytes from the output.
//!
//! Inputs and expected outputs are committed under `tests/fidelity/<case>/`
//! (`SLUICE_BLESS=1 cargo test --test fidelity` rewrites them) and compared
//! byte for byte, so behaviour changes show up in review.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sluice::capture::pcap::PcapSource;
use sluice::config::EngineConfig;
use sluice::flow::Direction::Up;
use sluice::ip::fragment::fragment;
use sluice::offline::{self, OfflineOptions};
use sluice::pcapgen::{write_pcap_file, Conversation, Framing, TimedPacket};
use sluice::wire::tcp_flags::{ACK, PSH, RST, SYN, URG};
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
    /// The input delivers `attack` to the model endpoint; the output must not.
    Attack,
    /// The output must deliver exactly these client bytes.
    Benign(&'static [u8]),
}

struct Case {
    name: &'static str,
    packets: Vec<TimedPacket>,
    expect: Expect,
    engine: EngineConfig,
}

fn case(name: &'static str, c: Conversation, expect: Expect) -> Case {
    Case { name, packets: c.into_packets(), expect, engine: EngineConfig::default() }
}

/// Adds a segment with a custom urgent pointer (the builder has none).
fn urgent_segment(c: &mut Conversation, seq: SeqNumber, urgent: u16, payload: &[u8]) {
    let p = c.build(Up, seq, ACK | PSH | URG, &[], payload);
    let mut p = p;
    let d = decode(&p).unwrap();
    let t = d.tcp().unwrap().clone();
    let (src, dst) = (d.ip.src, d.ip.dst);
    p[t.offset + 18..t.offset + 20].copy_from_slice(&urgent.to_be_bytes());
    p[t.offset + 16..t.offset + 18].copy_from_slice(&[0, 0]);
    let c16 = checksum::transport(src, dst, proto::TCP, &p[t.offset..]);
    p[t.offset + 16..t.offset + 18].copy_from_slice(&c16.to_be_bytes());
    c.push(p);
}

/// Corrupts a packet's TCP checksum.
fn bad_checksum(mut p: Vec<u8>) -> Vec<u8> {
    let d = decode(&p).unwrap();
    let off = d.tcp().unwrap().offset + 16;
    p[off] ^= 0x55;
    p
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // Segmentation: one byte per segment.
    let mut c = conv();
    c.handshake();
    for b in b"an attack, bytewise" {
        c.send(Up, &[*b]);
    }
    out.push(case("segmented-bytewise", c, Expect::Attack));
    let mut c = conv();
    c.handshake();
    for b in b"harmless bytes" {
        c.send(Up, &[*b]);
    }
    out.push(case("segmented-bytewise-benign", c, Expect::Benign(b"harmless bytes")));

    // Reordering: the second half first; gap closed late.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack!").segment(Up, base, ACK | PSH, b"att");
    out.push(case("reordered", c, Expect::Attack));
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ing!").segment(Up, base + 3, ACK | PSH, b"ing!");
    c.segment(Up, base, ACK | PSH, b"sor");
    out.push(case("reordered-duplicated-benign", c, Expect::Benign(b"soring!")));

    // Out-of-order overlap with other bytes: whichever copy the endpoint
    // keeps, rules must have seen it.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base + 3, ACK | PSH, b"ume").segment(
        Up,
        base,
        ACK | PSH,
        b"att",
    );
    out.push(case("ooo-overlap-conflict", c, Expect::Attack));
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ume").segment(Up, base + 3, ACK | PSH, b"ack").segment(
        Up,
        base,
        ACK | PSH,
        b"att",
    );
    out.push(case("ooo-overlap-conflict-last", c, Expect::Attack));

    // Retransmission of delivered, unacknowledged bytes with other content.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"attune").segment(Up, base + 3, ACK | PSH, b"ack");
    out.push(case("retransmit-other-bytes", c, Expect::Benign(b"attune")));
    // ...and after the receiver acknowledged them.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.send(Up, b"attune").segment(Up, base + 3, ACK | PSH, b"ack");
    out.push(case("retransmit-after-ack", c, Expect::Benign(b"attune")));

    // Bad TCP checksum: the endpoint discards the segment.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    let bad = bad_checksum(c.build(Up, base + 3, ACK | PSH, &[], b"une"));
    c.data(Up, b"att");
    c.push(bad);
    c.data(Up, b"ack");
    out.push(case("bad-checksum", c, Expect::Attack));
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    let bad = bad_checksum(c.build(Up, base + 3, ACK | PSH, &[], b"ack"));
    c.data(Up, b"att");
    c.push(bad);
    c.data(Up, b"une");
    out.push(case("bad-checksum-benign", c, Expect::Benign(b"attune")));

    // Outside the receive window (the server advertised 65535 << 7 after
    // the handshake; the segment starts far beyond it).
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 3 + 100_000_000, ACK | PSH, b"ack").data(Up, b"une");
    out.push(case("out-of-window-benign", c, Expect::Benign(b"attune")));

    // Missing ACK flag in an established connection.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 3, PSH, b"ack").data(Up, b"une");
    out.push(case("no-ack-flag-benign", c, Expect::Benign(b"attune")));

    // A fake RST (wrong sequence number) must not stop inspection.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 1000, RST, b"").data(Up, b"ack");
    out.push(case("fake-rst", c, Expect::Attack));
    // A real RST ends the connection: nothing after it reaches the server.
    let mut c = conv();
    c.handshake();
    c.data(Up, b"att").rst(Up).data(Up, b"ack");
    out.push(case("real-rst-benign", c, Expect::Benign(b"att")));

    // Urgent data: Linux hides the urgent byte from read(); sluice clears
    // URG so the endpoint reads every byte inline, as rules do.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"att");
    urgent_segment(&mut c, base + 3, 1, b"Xack");
    out.push(case("urgent", c, Expect::Attack));

    // IP fragments, and overlapping fragments with other bytes.
    let mut c = conv();
    c.handshake();
    let seq = c.next_seq(Up);
    let whole = c.build(Up, seq, ACK | PSH, &[], b"........attack........");
    for f in fragment(&whole, &[24, 16], 99) {
        c.push(f);
    }
    out.push(case("fragments", c, Expect::Attack));
    let mut c = conv();
    c.handshake();
    let seq = c.next_seq(Up);
    // Same length, so the two versions' fragments line up. The evil TCP
    // header (fragment 0) only checksums with the evil middle fragment: an
    // endpoint keeping the last copy of an overlap reads the attack.
    let benign = c.build(Up, seq, ACK | PSH, &[], b"................................");
    let evil = c.build(Up, seq, ACK | PSH, &[], b"..............attack............");
    let good = fragment(&benign, &[24, 16], 7);
    let bad = fragment(&evil, &[24, 16], 7);
    c.push(bad[0].clone()).push(good[1].clone()).push(bad[1].clone()).push(bad[2].clone());
    out.push(case("fragments-overlap-conflict", c, Expect::Attack));

    // IPv6, in fragments.
    let mut c = conv6();
    c.handshake();
    let seq = c.next_seq(Up);
    let whole = c.build(Up, seq, ACK | PSH, &[], b"v6 attack in pieces");
    for f in fragment(&whole, &[16, 8], 5) {
        c.push(f);
    }
    out.push(case("ipv6-fragments", c, Expect::Attack));

    // Sequence numbers across 2^32, with reordering around the wrap.
    let mut c = conv().isn(u32::MAX - 2, 10);
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
    out.push(case("sequence-wrap", c, Expect::Attack));

    // SYN carrying the attack (as a TCP Fast Open client would); without a
    // TFO cookie the server ignores it and the client sends it again.
    let mut c = conv();
    let isn = c.next_seq(Up);
    let syn = c.build(Up, isn, SYN, &[], b"attack");
    c.push(syn);
    c.handshake().send(Up, b"attack");
    out.push(case("syn-with-data", c, Expect::Attack));

    // Connection reuse after an orderly close: the new connection is inspected.
    let mut c = conv();
    c.handshake().send(Up, b"first").close();
    let mut c2 = conv().isn(900_000, 77).at(sluice::time::Timestamp(c.packets().last().unwrap().0 .0 + 1000));
    c2.handshake().send(Up, b"second attack");
    let mut packets = c.into_packets();
    packets.extend(c2.into_packets());
    out.push(Case {
        name: "reuse-after-close",
        packets,
        expect: Expect::Attack,
        engine: EngineConfig::default(),
    });

    // Many out-of-order islands: past the limit segments are dropped, and the
    // connection still works once the sender fills the gap in order.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    for i in 0..20u32 {
        c.segment(Up, base + 100 + 10 * i, ACK | PSH, b"x");
    }
    c.data(Up, b"benign stream");
    let engine = EngineConfig { max_ooo_segments: 8, ..EngineConfig::default() };
    out.push(Case {
        name: "ooo-limit-benign",
        packets: c.into_packets(),
        expect: Expect::Benign(b"benign stream"),
        engine,
    });

    out
}

// ---------------------------------------------------------------- endpoint model

#[derive(Clone, Copy, Debug)]
enum Overlap {
    FirstWins,
    LastWins,
}

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

    fn segment(&mut self, policy: Overlap, seq: SeqNumber, data: &[u8], urgent: Option<usize>) {
        let start = self.offset(seq);
        if let Some(u) = urgent {
            // Linux default (no SO_OOBINLINE): the urgent byte is not read.
            self.urgent.push((start + u as i64).max(0) as u64);
        }
        for (i, &b) in data.iter().enumerate() {
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
            match policy {
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

/// Reads an IP-level capture as the server would: reassembles fragments,
/// discards bad checksums and segments without ACK, honours RSTs at rcv_nxt.
/// Returns the bytes each connection's application read, concatenated.
fn endpoint_reads(packets: &[Vec<u8>], policy: Overlap) -> Vec<u8> {
    let mut frags: HashMap<(IpAddr, u32), Vec<Fragment>> = HashMap::new();
    let mut conns: Vec<((IpAddr, u16), Endpoint)> = Vec::new();
    for raw in packets {
        let Ok(d) = decode(raw) else { continue };
        let whole;
        let d = if let Some(f) = d.ip.fragment {
            let list = frags.entry((d.ip.src, f.id)).or_default();
            list.push((f.offset, d.ip_payload().to_vec(), f.more, raw[..d.ip.header_len].to_vec()));
            match reassemble(list, policy) {
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
        if t.dst_port != 80 || !checksum::transport_ok(d.ip.src, d.ip.dst, proto::TCP, d.l4_bytes()) {
            continue;
        }
        let key = (d.ip.src, t.src_port);
        if t.has(SYN) {
            // Linux without a TFO cookie ignores data on a SYN.
            conns.push((key, Endpoint { first: Some(t.seq + 1), ..Endpoint::default() }));
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
    for policy in [Overlap::FirstWins, Overlap::LastWins] {
        let reads_out = endpoint_reads(&after, policy);
        let contains = |v: &[u8]| v.windows(ATTACK.len()).any(|w| w == ATTACK);
        match case.expect {
            Expect::Attack => {
                assert!(
                    !contains(&reads_out),
                    "{} ({policy:?}): the endpoint read attack bytes through sluice: {:?}",
                    case.name,
                    String::from_utf8_lossy(&reads_out)
                );
            }
            Expect::Benign(want) => {
                assert_eq!(
                    String::from_utf8_lossy(&reads_out),
                    String::from_utf8_lossy(want),
                    "{} ({policy:?}): benign bytes must arrive intact",
                    case.name
                );
            }
        }
    }
    if let Expect::Attack = case.expect {
        let real = [Overlap::FirstWins, Overlap::LastWins]
            .iter()
            .any(|p| endpoint_reads(&before, *p).windows(ATTACK.len()).any(|w| w == ATTACK));
        assert!(
            real,
            "{}: without sluice no endpoint model reads the attack; the case proves nothing",
            case.name
        );
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
        panic!("{}: no fixture; run SLUICE_BLESS=1 cargo test --test fidelity", case.name)
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

#[test]
fn adversarial_cases_offline() {
    let all = cases();
    assert!(all.len() >= 20);
    for c in &all {
        run_case(c);
    }
}

#[test]
fn endpoint_model_reads_attacks_in_raw_input() {
    // The model itself must see through each disguise, or the test above
    // would pass for the wrong reason.
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
    let pkts: Vec<Vec<u8>> = c.into_packets().into_iter().map(|p| p.1).collect();
    assert_eq!(endpoint_reads(&pkts, Overlap::FirstWins), b"attack");
}
