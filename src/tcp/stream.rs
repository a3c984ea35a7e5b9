//! One direction of a TCP connection: the record of every byte sluice let
//! through towards the receiver, and in-order delivery to rules.
//!
//! Offsets are 64-bit positions in the stream (0 is the byte after the SYN),
//! so nothing here can get sequence wrap wrong; [`Stream::offset_of`] is the
//! single place where a 32-bit sequence number becomes an offset.
//!
//! The buffer holds bytes from the receiver's last acknowledgment up to the
//! highest byte accepted. Bytes below [`Stream::delivered`] were delivered to
//! rules; above it sit out-of-order islands, delivered when the gap closes.
//! Any later segment overlapping buffered bytes must carry the same bytes, or
//! it is refused: the receiver holds (or may hold) the first copy, and only
//! the bytes rules saw may ever reach the application. Bytes the receiver has
//! acknowledged are released; retransmissions of them are harmless, since the
//! receiver discards data it has acknowledged.

use std::ops::Range;

use super::ranges::RangeSet;
use crate::stats::Counter;
use crate::wire::SeqNumber;

/// Per-stream limits.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Most bytes buffered (unacknowledged plus out-of-order).
    pub max_buffer: usize,
    /// Most out-of-order islands.
    pub max_islands: usize,
}

/// How a segment fits the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Nothing new: every byte was already acknowledged or is a same-content
    /// retransmission of buffered bytes.
    Duplicate,
    /// The segment adds bytes (or a FIN).
    New,
}

/// One direction's byte record.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Sequence number of offset 0.
    base: SeqNumber,
    /// Receiver acknowledged everything below this offset; `buf[head]` is this offset.
    acked: u64,
    /// Bytes below this offset were delivered to rules.
    delivered: u64,
    buf: Vec<u8>,
    head: usize,
    /// Which offsets at or above `acked` hold bytes.
    filled: RangeSet,
    /// Offset of the FIN, once seen.
    fin: Option<u64>,
}

impl Stream {
    /// A stream whose first byte has sequence number `first`.
    pub fn new(first: SeqNumber) -> Self {
        Stream {
            base: first,
            acked: 0,
            delivered: 0,
            buf: Vec::new(),
            head: 0,
            filled: RangeSet::new(),
            fin: None,
        }
    }

    /// The stream offset of `seq`, wrap-aware relative to the delivery point
    /// (a segment is never 2^31 bytes away from it). Negative for sequence
    /// numbers before the first byte (the SYN).
    pub fn offset_of(&self, seq: SeqNumber) -> i64 {
        let next = self.seq_at(self.delivered);
        self.delivered as i64 + seq.diff(next)
    }

    /// The sequence number at `offset`.
    pub fn seq_at(&self, offset: u64) -> SeqNumber {
        self.base + (offset as u32)
    }

    /// Next offset to deliver: what the receiver's `rcv_nxt` is, as far as
    /// sluice knows.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Offset up to which the receiver acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Highest offset holding accepted bytes (or the delivery point).
    pub fn highest(&self) -> u64 {
        self.filled.end().unwrap_or(self.delivered).max(self.delivered)
    }

    /// Offset of the FIN, if seen.
    pub fn fin(&self) -> Option<u64> {
        self.fin
    }

    /// True once every byte up to the FIN was delivered.
    pub fn fin_delivered(&self) -> bool {
        self.fin == Some(self.delivered)
    }

    /// Bytes held in memory.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Out-of-order islands above the delivery point.
    pub fn islands(&self) -> usize {
        self.filled.count_from(self.delivered + 1)
    }

    /// Checks a segment carrying `data` at `start` (and a FIN after it if
    /// `fin`) without changing anything. `Err` names the drop reason.
    pub fn check(&self, start: u64, data: &[u8], fin: bool, limits: StreamLimits) -> Result<Fit, Counter> {
        if data.is_empty() && !fin {
            // A pure ACK carries nothing for this stream (its sequence number
            // may sit one past the FIN).
            return Ok(Fit::Duplicate);
        }
        let end = start + data.len() as u64;
        if let Some(f) = self.fin {
            if end > f {
                return Err(Counter::DropAfterFin);
            }
            if fin && end != f {
                return Err(Counter::DropOverlapConflict);
            }
        }
        if fin && self.highest() > end {
            // A FIN below bytes already accepted would truncate what the
            // receiver may already hold.
            return Err(Counter::DropOverlapConflict);
        }
        let lo = start.max(self.acked);
        if lo >= end {
            let new_fin = fin && self.fin.is_none();
            return Ok(if new_fin { Fit::New } else { Fit::Duplicate });
        }
        let mut covered = 0u64;
        for r in self.filled.intersections(lo..end) {
            let have = self.bytes(r.clone());
            let got = &data[(r.start - start) as usize..(r.end - start) as usize];
            if have != got {
                return Err(Counter::DropOverlapConflict);
            }
            covered += r.end - r.start;
        }
        if covered == end - lo {
            let new_fin = fin && self.fin.is_none();
            return Ok(if new_fin { Fit::New } else { Fit::Duplicate });
        }
        let new_high = self.highest().max(end);
        if (new_high - self.acked) as usize > limits.max_buffer {
            return Err(Counter::DropStreamLimit);
        }
        if lo > self.delivered && self.islands() >= limits.max_islands {
            // Would open one more island, unless it overlaps or touches one.
            let touches = self.filled.intersections(lo - 1..end + 1).next().is_some();
            if !touches {
                return Err(Counter::DropStreamLimit);
            }
        }
        Ok(Fit::New)
    }

    /// How many bytes committing this segment would add to memory.
    pub fn growth(&self, start: u64, data_len: usize) -> usize {
        let end = start + data_len as u64;
        end.saturating_sub(self.highest().max(self.acked)) as usize
    }

    /// Records a segment that passed [`Stream::check`]. Returns the range that
    /// became deliverable (the delivery point moves past it).
    pub fn commit(&mut self, start: u64, data: &[u8], fin: bool) -> Option<Range<u64>> {
        let end = start + data.len() as u64;
        let lo = start.max(self.acked);
        if lo < end {
            let idx = self.head + (lo - self.acked) as usize;
            let src = &data[(lo - start) as usize..];
            if idx == self.buf.len() {
                // The common case: in-order bytes appended at the end.
                self.buf.extend_from_slice(src);
            } else {
                if self.buf.len() < idx + src.len() {
                    self.buf.resize(idx + src.len(), 0);
                }
                // Buffered bytes in this range are equal (checked), so a plain
                // copy is right for them too.
                self.buf[idx..idx + src.len()].copy_from_slice(src);
            }
            self.filled.insert(lo..end);
        }
        if fin {
            self.fin = Some(end);
        }
        let new_end = self.filled.contiguous_end(self.delivered);
        if new_end > self.delivered {
            let r = self.delivered..new_end;
            self.delivered = new_end;
            Some(r)
        } else {
            None
        }
    }

    /// Moves the delivery point back to `offset` (not below what the receiver
    /// acknowledged): the packet that made those bytes deliverable was dropped,
    /// so the receiver does not have them, and their next copy must go through
    /// rules again. The bytes stay recorded: out-of-order parts may already sit
    /// at the receiver, and any new copy must still match them.
    pub fn undeliver(&mut self, offset: u64) {
        self.delivered = offset.clamp(self.acked, self.delivered);
    }

    /// True if data at `start..start+len` carries the byte at the delivery
    /// point: the segment that can make held-back bytes deliverable.
    pub fn covers_delivery_point(&self, start: u64, len: usize) -> bool {
        start <= self.delivered && self.delivered < start + len as u64
    }

    /// Bytes in `r` (which must be buffered: at or above `acked`).
    pub fn bytes(&self, r: Range<u64>) -> &[u8] {
        if r.start < self.acked {
            // Released already; never hand out bytes from the wrong offset.
            return &[];
        }
        let s = self.head + (r.start - self.acked) as usize;
        let e = self.head + (r.end.saturating_sub(self.acked)) as usize;
        self.buf.get(s..e).unwrap_or(&[])
    }

    /// The connection is over for sluice (reset, or dropped by a rule): no
    /// byte held will be delivered or compared again. Frees them all, as
    /// if the receiver had acknowledged everything delivered; returns the
    /// number of bytes freed.
    pub fn release(&mut self) -> usize {
        let n = self.buffered();
        self.buf = Vec::new();
        self.head = 0;
        self.acked = self.delivered;
        self.filled = RangeSet::new();
        n
    }

    /// The receiver acknowledged everything below `offset`: release it.
    /// Returns the number of bytes freed.
    pub fn ack(&mut self, offset: u64) -> usize {
        let offset = offset.min(self.delivered);
        if offset <= self.acked {
            return 0;
        }
        let n = ((offset - self.acked) as usize).min(self.buffered());
        self.head += n;
        self.acked = offset;
        self.filled.remove_below(offset);
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head >= 64 * 1024 && self.head * 2 >= self.buf.len() {
            // Amortised compaction: each byte moves at most once per halving.
            self.buf.drain(..self.head);
            self.head = 0;
        }
        if self.buf.capacity() > 1 << 20 && self.buf.capacity() > 4 * self.buf.len() {
            self.buf.shrink_to(self.buf.len() * 2);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: StreamLimits = StreamLimits { max_buffer: 1 << 20, max_islands: 8 };

    fn put(s: &mut Stream, start: u64, data: &[u8]) -> Result<Option<Vec<u8>>, Counter> {
        s.check(start, data, false, LIM)?;
        Ok(s.commit(start, data, false).map(|r| s.bytes(r).to_vec()))
    }

    #[test]
    fn in_order_and_gap() {
        let mut s = Stream::new(SeqNumber(1000));
        assert_eq!(put(&mut s, 0, b"abc").unwrap(), Some(b"abc".to_vec()));
        assert_eq!(put(&mut s, 6, b"ghi").unwrap(), None);
        assert_eq!(s.islands(), 1);
        assert_eq!(put(&mut s, 3, b"def").unwrap(), Some(b"defghi".to_vec()));
        assert_eq!(s.delivered(), 9);
    }

    #[test]
    fn conflicting_overlap_refused_same_accepted() {
        let mut s = Stream::new(SeqNumber(0));
        put(&mut s, 0, b"hello").unwrap();
        assert_eq!(put(&mut s, 2, b"LLo!"), Err(Counter::DropOverlapConflict));
        assert_eq!(put(&mut s, 2, b"llo!").unwrap(), Some(b"!".to_vec()));
        assert_eq!(s.check(0, b"hello", false, LIM), Ok(Fit::Duplicate));
    }

    #[test]
    fn acked_bytes_released_and_not_compared() {
        let mut s = Stream::new(SeqNumber(0));
        put(&mut s, 0, b"hello").unwrap();
        assert_eq!(s.ack(5), 5);
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.check(0, b"XXXXX", false, LIM), Ok(Fit::Duplicate));
        assert_eq!(put(&mut s, 3, b"XXyy").unwrap(), Some(b"yy".to_vec()));
    }

    #[test]
    fn offset_of_wraps() {
        let mut s = Stream::new(SeqNumber(u32::MAX - 1));
        assert_eq!(s.offset_of(SeqNumber(u32::MAX - 2)), -1);
        put(&mut s, 0, b"abcd").unwrap();
        assert_eq!(s.offset_of(SeqNumber(2)), 4);
        assert_eq!(s.seq_at(4), SeqNumber(2));
    }

    #[test]
    fn fin_rules() {
        let mut s = Stream::new(SeqNumber(0));
        s.check(0, b"ab", true, LIM).unwrap();
        s.commit(0, b"ab", true);
        assert!(s.fin_delivered());
        assert_eq!(s.check(2, b"c", false, LIM), Err(Counter::DropAfterFin));
        assert_eq!(s.check(0, b"a", true, LIM), Err(Counter::DropOverlapConflict));
        assert_eq!(s.check(0, b"ab", true, LIM), Ok(Fit::Duplicate));
    }

    #[test]
    fn limits() {
        let lim = StreamLimits { max_buffer: 10, max_islands: 1 };
        let mut s = Stream::new(SeqNumber(0));
        assert_eq!(s.check(5, b"0123456789", false, lim), Err(Counter::DropStreamLimit));
        s.check(2, b"x", false, lim).unwrap();
        s.commit(2, b"x", false);
        assert_eq!(s.check(5, b"y", false, lim), Err(Counter::DropStreamLimit));
        assert_eq!(s.check(3, b"y", false, lim), Ok(Fit::New));
    }
}
