//! Property test of stream reassembly against a model of the receiving
//! endpoint: whatever segmentation, reordering, duplication, conflicting
//! overlap, loss after sluice and sequence wrap the generator picks, the bytes
//! the endpoint's application reads are always a prefix of the bytes rules
//! saw, for receivers that resolve out-of-order overlaps either way (strict
//! receiver policy). Under the Linux policy, a model of Linux's receive queue
//! (written apart from sluice's, segment by segment as
//! `tcp_data_queue_ofo` / `tcp_ofo_queue` handle them) reads exactly the
//! bytes rules saw, conflicting overlaps included, as long as every packet
//! sluice lets through arrives.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tests::{strict_config, Conv, Harness, Script};
use super::Verdict;
use crate::wire::tcp_flags::ACK;
use crate::wire::SeqNumber;

/// How the modelled receiver resolves overlapping out-of-order data.
#[derive(Debug, Clone, Copy)]
enum Overlap {
    FirstWins,
    LastWins,
}

/// A receiver's buffer: in-order bytes go to the application; out-of-order
/// bytes wait in a per-offset store until the gap closes.
struct Receiver {
    policy: Overlap,
    app: Vec<u8>,
    ooo: BTreeMap<u64, u8>,
}

impl Receiver {
    fn new(policy: Overlap) -> Self {
        Receiver { policy, app: Vec::new(), ooo: BTreeMap::new() }
    }

    fn rcv_nxt(&self) -> u64 {
        self.app.len() as u64
    }

    fn segment(&mut self, start: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let off = start + i as u64;
            if off < self.rcv_nxt() {
                continue;
            }
            if off == self.rcv_nxt() {
                // In-order bytes are taken from the segment itself.
                self.app.push(b);
                self.ooo.remove(&off);
                continue;
            }
            match self.policy {
                Overlap::FirstWins => {
                    self.ooo.entry(off).or_insert(b);
                }
                Overlap::LastWins => {
                    self.ooo.insert(off, b);
                }
            }
        }
        while let Some(b) = self.ooo.remove(&self.rcv_nxt()) {
            self.app.push(b);
        }
    }
}

/// Linux's receive path, segment by segment: the out-of-order queue keeps
/// whole segments (no coalescing), in-order data is taken from the segment
/// and then the queue is drained in sequence order.
#[derive(Default)]
struct LinuxReceiver {
    app: Vec<u8>,
    /// Queued segments: (start, bytes), sorted by start.
    ofo: Vec<(u64, Vec<u8>)>,
}

impl LinuxReceiver {
    fn rcv_nxt(&self) -> u64 {
        self.app.len() as u64
    }

    fn segment(&mut self, start: u64, data: &[u8]) {
        let end = start + data.len() as u64;
        if end <= self.rcv_nxt() {
            return;
        }
        if start <= self.rcv_nxt() {
            // tcp_data_queue: in order; bytes below rcv_nxt are skipped by
            // tcp_recvmsg.
            let skip = (self.rcv_nxt() - start) as usize;
            self.app.extend_from_slice(&data[skip..]);
            self.drain();
            return;
        }
        // tcp_data_queue_ofo.
        let floor = self.ofo.iter().rposition(|(s, _)| *s <= start);
        let mut at = floor.map_or(0, |i| i + 1);
        if let Some(i) = floor {
            let (fs, fb) = &self.ofo[i];
            let fend = fs + fb.len() as u64;
            if start < fend && end <= fend {
                return; // all the bits are present
            }
            if *fs == start {
                self.ofo.remove(i); // replaced
                at = i;
            }
        }
        self.ofo.insert(at, (start, data.to_vec()));
        // merge_right: remove later segments the new one covers.
        while at + 1 < self.ofo.len() {
            let (s1, b1) = &self.ofo[at + 1];
            if s1 + b1.len() as u64 > end {
                break;
            }
            self.ofo.remove(at + 1);
        }
    }

    /// tcp_ofo_queue.
    fn drain(&mut self) {
        while let Some((s, b)) = self.ofo.first() {
            if *s > self.rcv_nxt() {
                break;
            }
            let (s, b) = (*s, b.clone());
            self.ofo.remove(0);
            let end = s + b.len() as u64;
            if end > self.rcv_nxt() {
                let skip = (self.rcv_nxt() - s) as usize;
                self.app.extend_from_slice(&b[skip..]);
            }
        }
    }
}

/// Linux policy: the model reads exactly what rules saw, after every packet.
fn run_linux(isn: u32, data: &[u8], segs: &[Seg], batch: usize) -> Result<(), TestCaseError> {
    let mut h = Harness::new(Script { stream_only: batch > 1, ..Script::default() });
    let mut c = Conv::new(isn, 7);
    for p in c.handshake() {
        prop_assert_eq!(h.send(&p).0, Verdict::Accept);
    }
    let base = c.cseq;
    let mut rx = LinuxReceiver::default();
    let all = with_complete_tail(data, segs);
    for chunk in all.chunks(batch.max(1)) {
        let mut packets = Vec::new();
        let mut meta = Vec::new();
        for s in chunk {
            let bytes = payload(data, s);
            packets.push(c.seg(true, base + s.start as u32, ACK, &bytes));
            meta.push(Some((s.start, bytes)));
            if s.ack_after {
                let ack = c.seg(false, c.sseq, ACK, b"");
                packets.push(with_ack(&ack, base + rx.rcv_nxt() as u32));
                meta.push(None);
            }
        }
        let (verdicts, _) = h.send_batch(&packets);
        for (v, m) in verdicts.iter().zip(&meta) {
            if let (Verdict::Accept, Some((start, bytes))) = (v, m) {
                rx.segment(*start as u64, bytes);
            }
        }
        let rules = &h.engine.inspector().up;
        prop_assert!(
            *rules == rx.app,
            "linux: the application read {} bytes, rules saw {}; first difference at {:?}",
            rx.app.len(),
            rules.len(),
            rules.iter().zip(&rx.app).position(|(a, b)| a != b)
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Seg {
    start: usize,
    len: usize,
    corrupt: bool,
    lost_after_sluice: bool,
    ack_after: bool,
}

fn seg_strategy(n: usize) -> impl Strategy<Value = Seg> {
    (0..n, 1..200usize, prop::bool::weighted(0.2), prop::bool::weighted(0.1), prop::bool::weighted(0.3))
        .prop_map(move |(start, len, corrupt, lost_after_sluice, ack_after)| Seg {
            start,
            len: len.min(n - start),
            corrupt,
            lost_after_sluice,
            ack_after,
        })
}

fn scenario() -> impl Strategy<Value = (u32, Vec<u8>, Vec<Seg>)> {
    (any::<u32>(), prop::collection::vec(any::<u8>(), 1..1500)).prop_flat_map(|(isn, data)| {
        let n = data.len();
        (Just(isn), Just(data), prop::collection::vec(seg_strategy(n), 1..60))
    })
}

/// The generated segments, then the whole stream in order, twice, so every
/// scenario ends with the stream complete (where no conflict prevents it).
fn with_complete_tail(data: &[u8], segs: &[Seg]) -> Vec<Seg> {
    let tail = (0..data.len()).step_by(700).map(|s| Seg {
        start: s,
        len: 700.min(data.len() - s),
        corrupt: false,
        lost_after_sluice: false,
        ack_after: true,
    });
    segs.iter().cloned().chain(tail.clone()).chain(tail).collect()
}

/// A segment's bytes: the stream's, or other bytes for a corrupt copy.
fn payload(data: &[u8], s: &Seg) -> Vec<u8> {
    let mut bytes = data[s.start..s.start + s.len].to_vec();
    if s.corrupt {
        for b in &mut bytes {
            *b ^= 0x5a;
        }
    }
    bytes
}

fn run(isn: u32, data: &[u8], segs: &[Seg], policy: Overlap) -> Result<(), TestCaseError> {
    let mut h = Harness::with_config(strict_config(), Script::default());
    let mut c = Conv::new(isn, 7);
    for p in c.handshake() {
        prop_assert_eq!(h.send(&p).0, Verdict::Accept);
    }
    let base = c.cseq;
    let mut rx = Receiver::new(policy);
    let all = with_complete_tail(data, segs);
    for s in &all {
        let bytes = payload(data, s);
        let p = c.seg(true, base + s.start as u32, ACK, &bytes);
        let (verdict, _) = h.send(&p);
        if verdict == Verdict::Accept && !s.lost_after_sluice {
            rx.segment(s.start as u64, &bytes);
        }
        let rules = &h.engine.inspector().up;
        prop_assert!(
            rules.starts_with(&rx.app),
            "application read bytes rules did not see: app {} bytes, rules {} bytes",
            rx.app.len(),
            rules.len()
        );
        if s.ack_after {
            // The receiver acknowledges what it really has.
            let ack = c.seg(false, c.sseq, ACK, b"");
            let ack = with_ack(&ack, base + rx.rcv_nxt() as u32);
            prop_assert_eq!(h.send(&ack).0, Verdict::Accept);
        }
    }
    Ok(())
}

/// The same scenario fed in batches (as NFQUEUE hands packets over under
/// load), with rules hooking only stream events so chunks coalesce.
fn run_batched(
    isn: u32,
    data: &[u8],
    segs: &[Seg],
    batch: usize,
    policy: Overlap,
) -> Result<(), TestCaseError> {
    let mut h = Harness::with_config(strict_config(), Script { stream_only: true, ..Script::default() });
    let mut c = Conv::new(isn, 7);
    for p in c.handshake() {
        prop_assert_eq!(h.send(&p).0, Verdict::Accept);
    }
    let base = c.cseq;
    let mut rx = Receiver::new(policy);
    let all = with_complete_tail(data, segs);
    for chunk in all.chunks(batch.max(1)) {
        let mut packets = Vec::new();
        let mut meta = Vec::new();
        for s in chunk {
            let bytes = payload(data, s);
            packets.push(c.seg(true, base + s.start as u32, ACK, &bytes));
            meta.push(Some((s.start, bytes, s.lost_after_sluice)));
            if s.ack_after {
                let ack = c.seg(false, c.sseq, ACK, b"");
                packets.push(with_ack(&ack, base + rx.rcv_nxt() as u32));
                meta.push(None);
            }
        }
        let (verdicts, _) = h.send_batch(&packets);
        for (v, m) in verdicts.iter().zip(&meta) {
            if let (Verdict::Accept, Some((start, bytes, false))) = (v, m) {
                rx.segment(*start as u64, bytes);
            }
        }
        let rules = &h.engine.inspector().up;
        prop_assert!(
            rules.starts_with(&rx.app),
            "batched: application read bytes rules did not see: app {} bytes, rules {} bytes",
            rx.app.len(),
            rules.len()
        );
    }
    Ok(())
}

/// Rewrites the acknowledgment number of a built IPv4 TCP segment.
fn with_ack(p: &[u8], ack: SeqNumber) -> Vec<u8> {
    let d = crate::wire::decode(p).expect("own packet decodes");
    let t = d.tcp().expect("tcp");
    let mut seg = crate::wire::forge::TcpSegment::new(d.ip.src, t.src_port, d.ip.dst, t.dst_port);
    seg.seq = t.seq;
    seg.ack = ack;
    seg.flags = t.flags;
    seg.build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn endpoint_reads_only_inspected_bytes_first_wins((isn, data, segs) in scenario()) {
        run(isn, &data, &segs, Overlap::FirstWins)?;
    }

    #[test]
    fn endpoint_reads_only_inspected_bytes_last_wins((isn, data, segs) in scenario()) {
        run(isn, &data, &segs, Overlap::LastWins)?;
    }

    #[test]
    fn batched_endpoint_reads_only_inspected_bytes((isn, data, segs) in scenario(), batch in 1..12usize, last in any::<bool>()) {
        let policy = if last { Overlap::LastWins } else { Overlap::FirstWins };
        run_batched(isn, &data, &segs, batch, policy)?;
    }

    #[test]
    fn linux_endpoint_reads_exactly_the_inspected_bytes((isn, data, segs) in scenario(), batch in 1..6usize) {
        run_linux(isn, &data, &segs, batch)?;
    }

    #[test]
    fn clean_stream_is_delivered_whole((isn, data, segs) in scenario()) {
        // Without corruption or loss, any arrival order delivers the exact stream.
        let segs: Vec<Seg> = segs.into_iter().map(|s| Seg { corrupt: false, lost_after_sluice: false, ..s }).collect();
        let mut h = Harness::new(Script::default());
        let mut c = Conv::new(isn, 7);
        for p in c.handshake() {
            h.send(&p);
        }
        let base = c.cseq;
        for s in segs.iter().chain(std::iter::once(&Seg { start: 0, len: data.len(), corrupt: false, lost_after_sluice: false, ack_after: false })) {
            let p = c.seg(true, base + s.start as u32, ACK, &data[s.start..s.start + s.len]);
            prop_assert_eq!(h.send(&p).0, Verdict::Accept);
        }
        prop_assert_eq!(&h.engine.inspector().up, &data);
    }
}
