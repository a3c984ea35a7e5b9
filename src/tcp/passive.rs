//! One direction of a TCP connection seen from a tap (`sluice pcap
//! --passive`): the bytes a sender sent, delivered to rules when the
//! receiver acknowledges them, as Sniffer::Connection and Net::Inspect do.
//!
//! Nothing here rejects a segment: the capture shows what the endpoints
//! did. Captured bytes are held by stream offset until the receiver's ACK
//! covers them; acknowledged bytes that are missing from the capture are a
//! [`Piece::Gap`] (never filled with invented bytes) and the stream goes on
//! after it. Overlaps are resolved as the inline receiver model (Linux)
//! resolves them: bytes that reached the receiver in order stay; a segment
//! arriving in order wins over out-of-order bytes it covers; out-of-order
//! segments follow Linux's out-of-order queue ([`OfoQueue`]: a segment
//! inside a queued one is dropped, one starting at the same offset and
//! ending later replaces it, the lower-starting copy wins a partial
//! overlap). Each byte whose losing copy differs counts as a conflict.
//!
//! Offsets count from the first byte after the SYN (or, picked up
//! midstream, from the first sequence number seen for the direction);
//! sequence arithmetic is relative to the delivery point, so streams longer
//! than 4 GiB and sequence wrap are handled.

use std::collections::BTreeMap;
use std::ops::Range;

use super::ofo::{OfoPlan, OfoQueue};
use crate::wire::SeqNumber;

/// How far past the last captured byte an ACK may reach and still be taken
/// as evidence (larger jumps are broken or forged ACKs, ignored and counted).
pub const MAX_ACK_AHEAD: u64 = 1 << 30;

/// What the rules get from a direction, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Captured bytes, starting at this stream offset.
    Data {
        /// Stream offset of the first byte.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Bytes the sender sent (acknowledged, or followed by captured bytes)
    /// that are missing from the capture.
    Gap {
        /// Stream offset of the first missing byte.
        offset: u64,
        /// Number of missing bytes.
        len: u64,
    },
}

/// What one segment added to a direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentFit {
    /// Bytes recorded for the first time.
    pub new: u64,
    /// Bytes that repeat recorded ones with the same content.
    pub repeated: u64,
    /// Bytes that overlap recorded ones with other content (not delivered).
    pub conflicting: u64,
    /// Bytes before the delivery point (already delivered or skipped as a
    /// gap; a retransmission, not compared).
    pub old: u64,
}

/// One direction's stream, as seen from a tap.
#[derive(Debug, Default)]
pub struct PassiveStream {
    /// Sequence number of stream offset 0, once known.
    base: Option<SeqNumber>,
    /// Everything before this offset was delivered (or reported as a gap).
    delivered: u64,
    /// Captured bytes not delivered yet, by offset, never overlapping.
    held: BTreeMap<u64, Vec<u8>>,
    held_bytes: usize,
    /// Offset right after the last captured byte.
    captured_end: u64,
    /// Offset of the sender's FIN, once seen.
    fin_at: Option<u64>,
    /// Offset up to which bytes reached the receiver in order, as far as
    /// the capture shows (its `rcv_nxt`).
    edge: u64,
    /// The receiver's out-of-order queue above `edge`.
    ofo: OfoQueue,
}

impl PassiveStream {
    /// The sender's SYN (sequence number `isn`): offset 0 is the byte after it.
    pub fn syn(&mut self, isn: SeqNumber) {
        if self.base.is_none() {
            self.base = Some(isn + 1);
        }
    }

    /// True once the stream's sequence space is anchored.
    pub fn anchored(&self) -> bool {
        self.base.is_some()
    }

    /// Bytes held, waiting for an acknowledgment.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Offset up to which everything was delivered or reported.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The sequence number of stream offset `delivered` (where the receiver
    /// stands, as far as the capture shows), once anchored.
    pub fn delivered_seq(&self) -> Option<SeqNumber> {
        self.base.map(|b| b + self.delivered as u32)
    }

    /// True if the sender's FIN was seen and everything up to it delivered.
    pub fn finished(&self) -> bool {
        self.fin_at.is_some_and(|f| self.delivered >= f)
    }

    /// The stream offset of `seq`, relative to the delivery point (negative:
    /// before it). Unanchored streams are anchored at `seq`.
    fn offset_of(&mut self, seq: SeqNumber) -> i64 {
        let base = *self.base.get_or_insert(seq);
        let at = base + self.delivered as u32;
        self.delivered as i64 + seq.diff(at)
    }

    /// Records a segment's payload (`seq` is the sequence number of its
    /// first payload byte) and its FIN.
    pub fn segment(&mut self, seq: SeqNumber, payload: &[u8], fin: bool) -> SegmentFit {
        let mut fit = SegmentFit::default();
        let start = self.offset_of(seq);
        let end = start + payload.len() as i64;
        if fin && end >= 0 && self.fin_at.is_none() {
            self.fin_at = Some(end as u64);
        }
        let delivered = self.delivered as i64;
        if end <= delivered {
            fit.old = payload.len() as u64;
            return fit;
        }
        let skip = (delivered - start).max(0);
        fit.old = skip as u64;
        let start = (start + skip) as u64;
        let bytes = &payload[skip as usize..];
        self.insert(start, bytes, &mut fit);
        self.captured_end = self.captured_end.max(start + bytes.len() as u64);
        fit
    }

    /// Records `bytes` at `start` as the receiver would keep them.
    fn insert(&mut self, start: u64, bytes: &[u8], fit: &mut SegmentFit) {
        let end = start + bytes.len() as u64;
        let part = |r: Range<u64>| &bytes[(r.start - start) as usize..(r.end - start) as usize];
        if start <= self.edge {
            // In order (tcp_data_queue): bytes already in order stay; from
            // the edge on, this copy wins over queued ones (tcp_ofo_queue
            // skips what it covers).
            let split = self.edge.min(end);
            self.keep(start, part(start..split), fit);
            if end > split {
                self.replace(split, part(split..end), fit);
                self.ofo.in_order(end);
                self.advance_edge(end);
            }
            return;
        }
        match self.ofo.plan(start..end, false) {
            OfoPlan::Discard => self.keep(start, bytes, fit),
            plan @ OfoPlan::Queue { .. } => {
                let OfoPlan::Queue { wins, .. } = &plan else { return };
                let wins = wins.clone();
                self.keep(start, part(start..wins.start), fit);
                if !wins.is_empty() {
                    self.replace(wins.start, part(wins.clone()), fit);
                }
                self.ofo.apply(start..end, &plan, false);
            }
        }
    }

    /// Bytes in order reached `end`: the edge moves on over the held bytes
    /// now contiguous, which leave the out-of-order queue.
    fn advance_edge(&mut self, end: u64) {
        self.edge = self.edge.max(end);
        while let Some((&o, b)) = self.held.range(..=self.edge).next_back() {
            let b_end = o + b.len() as u64;
            if b_end <= self.edge {
                break;
            }
            self.edge = b_end;
        }
        self.ofo.consume_to(self.edge);
    }

    /// Inserts `bytes` at `start`, keeping recorded bytes where they overlap.
    fn keep(&mut self, start: u64, bytes: &[u8], fit: &mut SegmentFit) {
        let end = start + bytes.len() as u64;
        let mut cursor = start;
        let mut new_parts: Vec<(u64, Vec<u8>)> = Vec::new();
        for (o, rec) in self.overlapping(start..end) {
            let rec_end = o + rec.len() as u64;
            if o > cursor {
                new_parts.push((cursor, bytes[(cursor - start) as usize..(o - start) as usize].to_vec()));
            }
            let from = o.max(start);
            let to = rec_end.min(end);
            let mine = &bytes[(from - start) as usize..(to - start) as usize];
            let theirs = &rec[(from - o) as usize..(to - o) as usize];
            count_overlap(mine, theirs, fit);
            cursor = cursor.max(to);
        }
        if cursor < end {
            new_parts.push((cursor, bytes[(cursor - start) as usize..].to_vec()));
        }
        for (o, b) in new_parts {
            fit.new += b.len() as u64;
            self.held_bytes += b.len();
            self.held.insert(o, b);
        }
    }

    /// Inserts `bytes` at `start`, replacing recorded bytes where they
    /// overlap (the parts of recorded pieces outside stay).
    fn replace(&mut self, start: u64, bytes: &[u8], fit: &mut SegmentFit) {
        let end = start + bytes.len() as u64;
        let mut covered = 0u64;
        for (o, rec) in self.overlapping(start..end) {
            let Some(rec) = self.held.remove(&o).filter(|r| r.len() == rec.len()) else { continue };
            self.held_bytes -= rec.len();
            let rec_end = o + rec.len() as u64;
            let (from, to) = (o.max(start), rec_end.min(end));
            count_overlap(
                &bytes[(from - start) as usize..(to - start) as usize],
                &rec[(from - o) as usize..(to - o) as usize],
                fit,
            );
            covered += to - from;
            if o < start {
                self.held_bytes += (start - o) as usize;
                self.held.insert(o, rec[..(start - o) as usize].to_vec());
            }
            if rec_end > end {
                self.held_bytes += (rec_end - end) as usize;
                self.held.insert(end, rec[(end - o) as usize..].to_vec());
            }
        }
        fit.new += bytes.len() as u64 - covered;
        self.held_bytes += bytes.len();
        self.held.insert(start, bytes.to_vec());
    }

    /// The recorded pieces that overlap `r`, in order (copied out).
    fn overlapping(&self, r: Range<u64>) -> Vec<(u64, Vec<u8>)> {
        let first = self.held.range(..r.start).next_back().filter(|(o, b)| *o + b.len() as u64 > r.start);
        first.into_iter().chain(self.held.range(r.start..r.end)).map(|(o, b)| (*o, b.clone())).collect()
    }

    /// The receiver acknowledged everything before `ack`: the pieces now
    /// delivered (captured bytes joined where contiguous, and gaps). An ACK
    /// too far past the captured bytes is ignored (`None`).
    pub fn acknowledge(&mut self, ack: SeqNumber) -> Option<Vec<Piece>> {
        if self.base.is_none() {
            // The receiver speaks before the sender's bytes are seen: the
            // stream (picked up midstream) starts where it stands.
            self.base = Some(ack);
            return Some(Vec::new());
        }
        let offset = self.offset_of(ack);
        if offset <= self.delivered as i64 {
            return Some(Vec::new());
        }
        let mut upto = offset as u64;
        if upto > self.captured_end.saturating_add(MAX_ACK_AHEAD) {
            return None;
        }
        if let Some(f) = self.fin_at {
            // The FIN takes one sequence number but is no byte.
            upto = upto.min(f);
        }
        Some(self.take(upto))
    }

    /// Everything captured and not delivered yet (end of connection or of
    /// the capture): bytes never acknowledged, with the holes between them
    /// as gaps.
    pub fn flush(&mut self) -> Vec<Piece> {
        self.take(self.captured_end)
    }

    /// Delivers the oldest held bytes, acknowledged or not, until at most
    /// `limit` bytes are held (a receiver whose ACKs the capture lacks must
    /// not hold memory for ever).
    pub fn force(&mut self, limit: usize) -> Vec<Piece> {
        let mut pieces = Vec::new();
        while self.held_bytes > limit {
            let Some((&o, b)) = self.held.iter().next() else { break };
            let upto = o + b.len() as u64;
            pieces.extend(self.take(upto));
        }
        pieces
    }

    /// Delivers [delivered, upto).
    fn take(&mut self, upto: u64) -> Vec<Piece> {
        let mut pieces: Vec<Piece> = Vec::new();
        self.take_pieces(upto, &mut pieces);
        if self.delivered > self.edge {
            // Acknowledged bytes the capture lacks: the receiver has them in order.
            self.advance_edge(self.delivered);
        }
        pieces
    }

    fn take_pieces(&mut self, upto: u64, pieces: &mut Vec<Piece>) {
        while self.delivered < upto {
            let next = self.held.first_key_value().map(|(o, _)| *o).filter(|o| *o < upto);
            match next {
                Some(o) if o > self.delivered => {
                    pieces.push(Piece::Gap { offset: self.delivered, len: o - self.delivered });
                    self.delivered = o;
                }
                Some(o) => {
                    let Some(mut bytes) = self.held.remove(&o) else { break };
                    let end = o + bytes.len() as u64;
                    if end > upto {
                        let rest = bytes.split_off((upto - o) as usize);
                        self.held.insert(upto, rest);
                    }
                    self.held_bytes -= bytes.len();
                    self.delivered = o + bytes.len() as u64;
                    match pieces.last_mut() {
                        Some(Piece::Data { offset, bytes: prev }) if *offset + prev.len() as u64 == o => {
                            prev.extend_from_slice(&bytes);
                        }
                        _ => pieces.push(Piece::Data { offset: o, bytes }),
                    }
                }
                None => {
                    pieces.push(Piece::Gap { offset: self.delivered, len: upto - self.delivered });
                    self.delivered = upto;
                }
            }
        }
    }
}

/// Counts the bytes of an overlap: the same (a repeat) or not (a conflict).
fn count_overlap(mine: &[u8], theirs: &[u8], fit: &mut SegmentFit) {
    let same = mine.iter().zip(theirs).filter(|(a, b)| a == b).count() as u64;
    fit.repeated += same;
    fit.conflicting += mine.len() as u64 - same;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(offset: u64, b: &[u8]) -> Piece {
        Piece::Data { offset, bytes: b.to_vec() }
    }

    fn gap(offset: u64, len: u64) -> Piece {
        Piece::Gap { offset, len }
    }

    #[test]
    fn delivered_on_ack_with_gaps_for_missing_acknowledged_bytes() {
        let mut s = PassiveStream::default();
        s.syn(SeqNumber(99));
        s.segment(SeqNumber(100), b"hello ", false);
        // " world" (106..112) is missing from the capture.
        s.segment(SeqNumber(112), b"again", false);
        assert_eq!(s.acknowledge(SeqNumber(103)), Some(vec![data(0, b"hel")]));
        assert_eq!(s.acknowledge(SeqNumber(117)), Some(vec![data(3, b"lo "), gap(6, 6), data(12, b"again")]));
        // Acknowledged beyond the capture: a gap at the end.
        assert_eq!(s.acknowledge(SeqNumber(120)), Some(vec![gap(17, 3)]));
        assert_eq!(s.held_bytes(), 0);
    }

    /// The stream as the receiver reads it after `segments` (seq, bytes)
    /// and an ACK of everything, with the fits of the segments.
    fn read(segments: &[(u32, &[u8])]) -> (Vec<u8>, Vec<(u64, u64, u64)>) {
        let mut s = PassiveStream::default();
        s.syn(SeqNumber(0));
        let fits = segments
            .iter()
            .map(|(seq, b)| {
                let f = s.segment(SeqNumber(*seq), b, false);
                (f.new, f.repeated, f.conflicting)
            })
            .collect();
        let mut out = Vec::new();
        for p in s.acknowledge(SeqNumber(100)).unwrap_or_default() {
            if let Piece::Data { bytes, .. } = p {
                out.extend(bytes);
            }
        }
        (out, fits)
    }

    #[test]
    fn overlaps_resolve_as_linux_reads_them() {
        // In-order data wins over the out-of-order bytes it covers.
        let (got, fits) = read(&[(3, b"cde"), (1, b"abXdefg")]);
        assert_eq!(got, b"abXdefg");
        assert_eq!(fits[1], (4, 2, 1));
        // Bytes already in order stay.
        let (got, fits) = read(&[(1, b"abc"), (1, b"aXc")]);
        assert_eq!(got, b"abc");
        assert_eq!(fits[1], (0, 2, 1));
        // Out of order, same start and longer: the later copy replaces.
        assert_eq!(read(&[(3, b"cd"), (3, b"XYZ"), (1, b"ab")]).0, b"abXYZ");
        // Out of order, inside a queued segment: dropped, the old bytes stay.
        assert_eq!(read(&[(3, b"cdef"), (4, b"X"), (1, b"ab")]).0, b"abcdef");
        // Partial overlaps: the lower-starting copy wins, whichever came first.
        assert_eq!(read(&[(3, b"cde"), (5, b"XYZ"), (1, b"ab")]).0, b"abcdeYZ");
        assert_eq!(read(&[(5, b"efg"), (3, b"cdXY"), (1, b"ab")]).0, b"abcdXYg");
        // A segment covering queued ones removes them.
        assert_eq!(read(&[(4, b"d"), (6, b"f"), (3, b"CDEFG"), (1, b"ab")]).0, b"abCDEFG");
    }

    #[test]
    fn bytes_before_the_delivery_point_are_old() {
        let mut s = PassiveStream::default();
        s.syn(SeqNumber(0));
        s.segment(SeqNumber(1), b"abcdefg", false);
        assert_eq!(s.acknowledge(SeqNumber(8)), Some(vec![data(0, b"abcdefg")]));
        let fit = s.segment(SeqNumber(5), b"zz", false);
        assert_eq!(fit.old, 2);
    }

    #[test]
    fn sequence_wrap_and_midstream_anchor() {
        let mut s = PassiveStream::default();
        // Picked up midstream: the receiver's ACK anchors the stream.
        assert_eq!(s.acknowledge(SeqNumber(u32::MAX - 1)), Some(vec![]));
        s.segment(SeqNumber(u32::MAX - 1), b"wrap", false);
        assert_eq!(s.acknowledge(SeqNumber(2)), Some(vec![data(0, b"wrap")]));
        assert!(s.acknowledge(SeqNumber(2 + (MAX_ACK_AHEAD as u32) + 10)).is_none(), "absurd ACK ignored");
    }

    #[test]
    fn fin_is_no_byte_and_flush_reports_holes() {
        let mut s = PassiveStream::default();
        s.syn(SeqNumber(0));
        s.segment(SeqNumber(1), b"ab", false);
        s.segment(SeqNumber(5), b"ef", true);
        assert_eq!(s.acknowledge(SeqNumber(8)), Some(vec![data(0, b"ab"), gap(2, 2), data(4, b"ef")]));
        assert!(s.finished());
        let mut t = PassiveStream::default();
        t.syn(SeqNumber(0));
        t.segment(SeqNumber(1), b"ab", false);
        t.segment(SeqNumber(5), b"ef", false);
        assert_eq!(t.flush(), vec![data(0, b"ab"), gap(2, 2), data(4, b"ef")]);
    }

    #[test]
    fn force_delivers_the_oldest_bytes_over_the_limit() {
        let mut s = PassiveStream::default();
        s.syn(SeqNumber(0));
        s.segment(SeqNumber(1), b"aaaa", false);
        s.segment(SeqNumber(9), b"bbbb", false);
        assert_eq!(s.force(4), vec![data(0, b"aaaa")]);
        assert_eq!(s.force(4), vec![]);
        assert_eq!(s.held_bytes(), 4);
    }
}
