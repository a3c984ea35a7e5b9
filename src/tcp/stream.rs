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
//! Under the strict policy any later segment overlapping buffered bytes must
//! carry the same bytes, or it is refused: the receiver holds (or may hold)
//! the first copy, and only the bytes rules saw may ever reach the
//! application. Under the Linux policy the out-of-order region follows
//! Linux's queue instead ([`super::ofo`]): a conflicting copy is taken where
//! Linux would take it and the record holds the bytes Linux will deliver;
//! bytes already delivered are still never replaced (if their packet was
//! lost past sluice, the receiver would take the other copy). Bytes the
//! receiver has acknowledged are released; retransmissions of them are
//! harmless, since the receiver discards data it has acknowledged.

use std::ops::Range;

use super::ofo::{OfoPlan, OfoQueue};
use super::ranges::RangeSet;
use super::stream_rings::{self, MIN_RING};
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
    /// Linux receiver: the segment overlaps held bytes with other bytes, and
    /// sluice predicts which copy Linux delivers (the record holds it).
    Resolved,
}

/// A ring this large is shrunk once its bytes fill less than a sixteenth of it.
const SHRINK_ABOVE: usize = 1 << 20;

/// One direction's byte record.
///
/// The bytes live in a ring indexed by stream offset (offset `o` sits at
/// `o mod len`): releasing acknowledged bytes only moves `acked`, and a bulk
/// transfer's window never has to be shifted down to the front of a buffer.
///
/// The ring and what describes its bytes ([`Buffers`]) exist only while the
/// stream holds bytes: allocated with the first, freed when the receiver
/// has acknowledged the last. An idle connection (most of a full flow
/// table) holds none of it. Freed rings are kept for reuse, a few of each
/// size per thread ([`super::stream_rings`]): rings come and go with nearly
/// every segment of a bulk transfer.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Sequence number of offset 0.
    base: SeqNumber,
    /// Receiver acknowledged everything below this offset.
    acked: u64,
    /// Bytes below this offset were delivered to rules.
    delivered: u64,
    /// End of the highest byte held (`acked` when none is).
    end: u64,
    /// Offset of the FIN, once seen.
    fin: Mark,
    /// Offset of the urgent byte the receiving application's `read()` skips
    /// (Linux `tp->urg_seq` without `SO_OOBINLINE`).
    urgent: Mark,
    /// Overlaps follow Linux's out-of-order queue (else strict: conflicting
    /// overlaps refused).
    linux: bool,
    /// log2 of the size of the last ring this stream let go of (0: none):
    /// see [`Stream::reserve`].
    last_ring: u8,
    /// The held bytes, while there are any.
    bufs: Option<Box<Buffers>>,
}

/// What a stream keeps only while it holds bytes.
#[derive(Debug, Clone, Default)]
struct Buffers {
    /// Bytes from `acked` to `end`; empty or a power of two long, never
    /// shorter than `end - acked`.
    ring: Vec<u8>,
    /// Which offsets at or above `acked` hold bytes.
    filled: RangeSet,
    /// Linux's out-of-order queue above `delivered` (Linux policy only).
    ofo: OfoQueue,
    /// End of the last segment with data committed (GRO may join the next
    /// one starting there to it). With no byte held, every later segment
    /// starts at or beyond `end`, past it, so it is not needed then.
    last_end: Option<u64>,
}

impl Drop for Buffers {
    fn drop(&mut self) {
        stream_rings::give(std::mem::take(&mut self.ring));
    }
}

/// An optional stream offset in 8 bytes instead of an `Option`'s 16 (a
/// million connections hold four each): `u64::MAX` stands for none, an
/// offset no stream reaches (16 EiB in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark(u64);

impl Mark {
    const NONE: Mark = Mark(u64::MAX);

    fn of(offset: Option<u64>) -> Mark {
        offset.map_or(Mark::NONE, Mark)
    }

    fn get(self) -> Option<u64> {
        (self != Mark::NONE).then_some(self.0)
    }
}

/// The ranges and queue of a stream holding no bytes.
static NO_RANGES: RangeSet = RangeSet::new();
static NO_OFO: OfoQueue = OfoQueue::new();

/// Whether a segment is sure to reach the receiver, as far as sluice can
/// tell. A conflicting overlap is only resolved as Linux would resolve it
/// when every copy involved reaches the receiver: a copy sent so that it
/// expires past sluice (a lower TTL than the connection's handshake, the
/// classic insertion) would leave the receiver with the other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Nothing suggests it may not arrive.
    Sure,
    /// It may expire before the receiver: it never wins a conflict, and no
    /// conflict is predicted against its bytes.
    Doubtful,
}

/// How a segment's bytes meet bytes already held (see [`Stream::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meet {
    /// Every overlapping byte is the same.
    Agree,
    /// Some byte differs.
    Conflict,
}

impl Stream {
    /// A stream whose first byte has sequence number `first`.
    pub fn new(first: SeqNumber) -> Self {
        Stream {
            base: first,
            acked: 0,
            delivered: 0,
            end: 0,
            fin: Mark::NONE,
            urgent: Mark::NONE,
            linux: false,
            last_ring: 0,
            bufs: None,
        }
    }

    /// A stream towards a receiver modelled as Linux (`linux`) or strictly.
    pub fn with_policy(first: SeqNumber, linux: bool) -> Self {
        Stream { linux, ..Stream::new(first) }
    }

    /// From now on, conflicting overlaps are refused (strict policy).
    pub fn make_strict(&mut self) {
        self.linux = false;
        if let Some(b) = self.bufs.as_mut() {
            b.ofo.clear();
        }
        self.tidy();
    }

    /// True if overlaps follow Linux's out-of-order queue.
    pub fn linux(&self) -> bool {
        self.linux
    }

    /// Linux's out-of-order queue as sluice predicts it (Linux policy).
    pub fn ofo(&self) -> Option<&OfoQueue> {
        self.linux.then(|| self.bufs.as_ref().map_or(&NO_OFO, |b| &b.ofo))
    }

    /// Which offsets at or above `acked` hold bytes.
    fn filled(&self) -> &RangeSet {
        self.bufs.as_ref().map_or(&NO_RANGES, |b| &b.filled)
    }

    /// The ring (empty while no byte is held).
    fn ring(&self) -> &[u8] {
        self.bufs.as_ref().map_or(&[], |b| &b.ring)
    }

    fn last_end(&self) -> Option<u64> {
        self.bufs.as_ref().and_then(|b| b.last_end)
    }

    /// The buffers, made on first use.
    fn bufs(&mut self) -> &mut Buffers {
        self.bufs.get_or_insert_with(Default::default)
    }

    /// Frees the buffers once they hold nothing.
    fn tidy(&mut self) {
        let idle = |b: &Buffers| b.filled.is_empty() && b.ofo.is_empty();
        if self.end == self.acked && self.bufs.as_deref().is_some_and(idle) {
            self.last_ring = self.ring().len().trailing_zeros() as u8;
            self.bufs = None;
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
        self.filled().end().unwrap_or(self.delivered).max(self.delivered)
    }

    /// Offset of the FIN, if seen.
    pub fn fin(&self) -> Option<u64> {
        self.fin.get()
    }

    /// True once every byte up to the FIN was delivered.
    pub fn fin_delivered(&self) -> bool {
        self.fin.get() == Some(self.delivered)
    }

    /// Bytes held in memory.
    pub fn buffered(&self) -> usize {
        (self.end - self.acked) as usize
    }

    /// Out-of-order islands above the delivery point.
    pub fn islands(&self) -> usize {
        self.filled().count_from(self.delivered + 1)
    }

    /// Checks a segment carrying `data` at `start` (and a FIN after it if
    /// `fin`) without changing anything. `Err` names the drop reason.
    pub fn check(&self, start: u64, data: &[u8], fin: bool, limits: StreamLimits) -> Result<Fit, Counter> {
        self.check_reaching(start, data, fin, limits, Reach::Sure)
    }

    /// [`Stream::check`] for a segment that may not reach the receiver.
    pub fn check_reaching(
        &self,
        start: u64,
        data: &[u8],
        fin: bool,
        limits: StreamLimits,
        reach: Reach,
    ) -> Result<Fit, Counter> {
        if data.is_empty() && !fin {
            // A pure ACK carries nothing for this stream (its sequence number
            // may sit one past the FIN).
            return Ok(Fit::Duplicate);
        }
        let end = start + data.len() as u64;
        if let Some(f) = self.fin.get() {
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
            let new_fin = fin && self.fin.get().is_none();
            return Ok(if new_fin { Fit::New } else { Fit::Duplicate });
        }
        // Bytes already delivered to rules: another copy is always refused
        // (under either policy: if the packet that carried them was lost
        // past sluice, the receiver would take the other copy).
        let split = self.delivered.clamp(lo, end);
        let (before, mut covered) = self.meet(lo..split, start, data);
        if before == Meet::Conflict {
            return Err(Counter::DropOverlapConflict);
        }
        let (after, ahead) = self.meet(split..end, start, data);
        covered += ahead;
        let mut changes = false;
        match self.ofo() {
            None if after == Meet::Conflict => return Err(Counter::DropOverlapConflict),
            Some(_) if after == Meet::Conflict && reach == Reach::Doubtful => {
                return Err(Counter::DropOverlapConflict);
            }
            None => {}
            // In order: these bytes win over queued ones (tcp_data_queue
            // queues them before tcp_ofo_queue runs).
            Some(_) if start <= self.delivered => changes = after == Meet::Conflict,
            Some(q) => match q.plan(start..end, self.last_end() == Some(start)) {
                OfoPlan::Discard if after == Meet::Conflict => return Err(Counter::DropOverlapConflict),
                OfoPlan::Discard => return Ok(Fit::Duplicate),
                OfoPlan::Queue { certain: false, .. } if after == Meet::Conflict => {
                    // Linux's choice depends on coalescing sluice cannot see.
                    return Err(Counter::DropOverlapConflict);
                }
                OfoPlan::Queue { wins, joins, .. } => {
                    changes = self.meet(wins, start, data).0 == Meet::Conflict;
                    if joins.is_none() && q.len() >= 2 * limits.max_islands {
                        return Err(Counter::DropStreamLimit);
                    }
                }
            },
        }
        if after == Meet::Conflict && !changes && covered == end - lo {
            // Queued, but every byte of it loses to a lower queued copy.
            return Ok(Fit::Resolved);
        }
        if covered == end - lo && !changes {
            let new_fin = fin && self.fin.get().is_none();
            return Ok(if new_fin { Fit::New } else { Fit::Duplicate });
        }
        let new_high = self.highest().max(end);
        if (new_high - self.acked) as usize > limits.max_buffer {
            return Err(Counter::DropStreamLimit);
        }
        if lo > self.delivered && self.islands() >= limits.max_islands {
            // Would open one more island, unless it overlaps or touches one.
            let touches = self.filled().intersections(lo - 1..end + 1).next().is_some();
            if !touches {
                return Err(Counter::DropStreamLimit);
            }
        }
        Ok(if after == Meet::Conflict { Fit::Resolved } else { Fit::New })
    }

    /// Compares `data` (which starts at `start`) with the bytes held in `r`:
    /// whether they agree, and how many bytes of `r` are held.
    fn meet(&self, r: Range<u64>, start: u64, data: &[u8]) -> (Meet, u64) {
        let mut covered = 0;
        if r.start >= r.end {
            return (Meet::Agree, 0);
        }
        for h in self.filled().intersections(r) {
            let (a, b) = self.slices(h.clone());
            let got = &data[(h.start - start) as usize..(h.end - start) as usize];
            if got.get(..a.len()) != Some(a) || got.get(a.len()..) != Some(b) {
                return (Meet::Conflict, covered);
            }
            covered += h.end - h.start;
        }
        (Meet::Agree, covered)
    }

    /// How many bytes committing this segment would add to memory.
    pub fn growth(&self, start: u64, data_len: usize) -> usize {
        let end = start + data_len as u64;
        end.saturating_sub(self.highest().max(self.acked)) as usize
    }

    /// Records a segment that passed [`Stream::check`]. Returns the range that
    /// became deliverable (the delivery point moves past it).
    pub fn commit(&mut self, start: u64, data: &[u8], fin: bool) -> Option<Range<u64>> {
        self.commit_reaching(start, data, fin, Reach::Sure)
    }

    /// [`Stream::commit`] for a segment checked with [`Stream::check_reaching`].
    pub fn commit_reaching(
        &mut self,
        start: u64,
        data: &[u8],
        fin: bool,
        reach: Reach,
    ) -> Option<Range<u64>> {
        let end = start + data.len() as u64;
        let lo = start.max(self.acked);
        if lo < end {
            // Where this segment's bytes are the ones the receiver reads.
            let (linux, delivered) = (self.linux, self.delivered);
            let b = self.bufs();
            let from = match &mut b.ofo {
                _ if !linux => lo,
                q if start > delivered => {
                    let after = b.last_end == Some(start);
                    let plan = q.plan(start..end, after);
                    q.apply(start..end, &plan, after || reach == Reach::Doubtful);
                    match plan {
                        OfoPlan::Discard => end,
                        OfoPlan::Queue { wins, .. } => wins.start,
                    }
                }
                q => {
                    q.in_order(end);
                    lo
                }
            };
            self.reserve(end);
            // Bytes that were compared and agree are rewritten unchanged.
            if from < end {
                self.write_at(from, &data[(from - start) as usize..]);
            }
            self.end = self.end.max(end);
            let b = self.bufs();
            b.filled.insert(lo..end);
            b.last_end = Some(end);
        }
        if fin {
            self.fin = Mark(end);
        }
        let new_end = self.filled().contiguous_end(self.delivered);
        if new_end > self.delivered {
            if let Some(b) = self.bufs.as_mut() {
                b.ofo.consume_to(new_end);
            }
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
        let was = self.delivered;
        self.delivered = offset.clamp(self.acked, self.delivered);
        if was != self.delivered {
            // The receiver's out-of-order queue still holds what sluice had
            // moved past; its exact segments are no longer known.
            let held: Vec<Range<u64>> = self.filled().intersections(self.delivered..u64::MAX).collect();
            if let Some(b) = self.bufs.as_mut().filter(|_| self.linux) {
                b.ofo.rebuild(held.into_iter());
            }
        }
    }

    /// Records an urgent byte at `offset`, which the application's `read()`
    /// skips (it replaces an earlier one, as Linux's single `urg_seq` does).
    pub fn set_urgent(&mut self, offset: u64) {
        self.urgent = Mark(offset);
    }

    /// The offset of the urgent byte `read()` skips, if any.
    pub fn urgent(&self) -> Option<u64> {
        self.urgent.get()
    }

    /// Puts back the urgent byte as it was before a packet that rules then
    /// dropped (the receiver never saw its urgent pointer).
    pub fn restore_urgent(&mut self, urgent: Option<u64>) {
        self.urgent = Mark::of(urgent);
    }

    /// The bytes in `r` as the application reads them: [`Stream::bytes_in`]
    /// without the urgent byte (see [`Stream::set_urgent`]).
    pub fn read_bytes<'a>(&'a self, r: Range<u64>, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        match self.urgent.get() {
            Some(u) if r.contains(&u) => {
                let (a, b) = self.slices(r.clone());
                let cut = (u - r.start) as usize;
                scratch.clear();
                scratch.extend(a.iter().chain(b).enumerate().filter(|(i, _)| *i != cut).map(|(_, x)| *x));
                scratch
            }
            _ => self.bytes_in(r, scratch),
        }
    }

    /// True if data at `start..start+len` carries the byte at the delivery
    /// point: the segment that can make held-back bytes deliverable.
    pub fn covers_delivery_point(&self, start: u64, len: usize) -> bool {
        start <= self.delivered && self.delivered < start + len as u64
    }

    /// Bytes in `r` (which must be buffered: at or above `acked`), as the
    /// ring holds them: in two parts when `r` wraps around its end. Bytes
    /// already released give nothing: never bytes from the wrong offset.
    pub fn slices(&self, r: Range<u64>) -> (&[u8], &[u8]) {
        if r.start < self.acked || r.end > self.end || r.start >= r.end {
            return (&[], &[]);
        }
        let n = (r.end - r.start) as usize;
        let i = self.index(r.start);
        let ring = self.ring();
        let first = n.min(ring.len() - i);
        (&ring[i..i + first], &ring[..n - first])
    }

    /// Bytes in `r` in one slice: straight from the ring, or, when `r`
    /// wraps, joined in `scratch` (once per trip around the ring).
    pub fn bytes_in<'a>(&'a self, r: Range<u64>, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        match self.slices(r) {
            (a, []) => a,
            (a, b) => {
                scratch.clear();
                scratch.extend_from_slice(a);
                scratch.extend_from_slice(b);
                scratch
            }
        }
    }

    /// Where offset `o` sits in the ring (which must not be empty).
    fn index(&self, o: u64) -> usize {
        // The ring's length is a power of two: the low bits are `o mod len`.
        (o as usize) & (self.ring().len() - 1)
    }

    /// Copies `data` to offsets `at..`, which the ring has room for.
    fn write_at(&mut self, at: u64, data: &[u8]) {
        let i = self.index(at);
        let ring = &mut self.bufs().ring;
        let first = data.len().min(ring.len() - i);
        ring[i..i + first].copy_from_slice(&data[..first]);
        ring[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Makes room for bytes up to offset `end`.
    ///
    /// A stream with no ring starts with one the size of its last if one of
    /// that size is kept ([`stream_rings`]): the next flight of a bulk
    /// transfer would otherwise grow its ring through every power of two
    /// again, copying its bytes about twice over. Only a kept ring is taken
    /// for that, never a new one, so it adds no memory beyond the few kept
    /// per thread.
    fn reserve(&mut self, end: u64) {
        let need = (end - self.acked) as usize;
        if need > self.ring().len() {
            let len = need.next_power_of_two().max(MIN_RING);
            let last = 1usize.checked_shl(u32::from(self.last_ring)).unwrap_or(0);
            if self.ring().is_empty() && last > len {
                if let Some(ring) = stream_rings::take_kept(last) {
                    self.bufs().ring = ring;
                    return;
                }
            }
            self.resize(len);
        }
    }

    /// Moves the held bytes into a ring of `len` bytes (a power of two).
    fn resize(&mut self, len: usize) {
        let old = std::mem::replace(&mut self.bufs().ring, stream_rings::take(len));
        if !old.is_empty() && self.end != self.acked {
            let mask = old.len() - 1;
            let n = (self.end - self.acked) as usize;
            let i = (self.acked as usize) & mask;
            let first = n.min(old.len() - i);
            self.write_at(self.acked, &old[i..i + first]);
            self.write_at(self.acked + first as u64, &old[..n - first]);
        }
        stream_rings::give(old);
    }

    /// The connection is over for sluice (reset, or dropped by a rule): no
    /// byte held will be delivered or compared again. Frees them all, as
    /// if the receiver had acknowledged everything delivered; returns the
    /// number of bytes freed.
    pub fn release(&mut self) -> usize {
        let n = self.buffered();
        self.bufs = None;
        self.acked = self.delivered;
        self.end = self.acked;
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
        self.acked = offset;
        self.end = self.end.max(offset);
        if let Some(b) = self.bufs.as_mut() {
            b.filled.remove_below(offset);
        }
        // A large ring shrinks only when it is mostly idle: to a quarter.
        // Shrinking to just what is held would make the next window grow it
        // again, copying. When every byte is acknowledged, it goes.
        let held = self.buffered();
        let len = self.ring().len();
        if held > 0 && len > SHRINK_ABOVE && held * 16 < len {
            self.resize(len / 4);
        }
        self.tidy();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: StreamLimits = StreamLimits { max_buffer: 1 << 20, max_islands: 8 };

    fn put(s: &mut Stream, start: u64, data: &[u8]) -> Result<Option<Vec<u8>>, Counter> {
        s.check(start, data, false, LIM)?;
        Ok(s.commit(start, data, false).map(|r| s.bytes_in(r, &mut Vec::new()).to_vec()))
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
    #[test]
    fn ring_wraps_grows_and_shrinks_keeping_every_byte() {
        let lim = StreamLimits { max_buffer: 1 << 22, max_islands: 8 };
        let src: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut s = Stream::new(SeqNumber(5));
        let mut scratch = Vec::new();
        let (mut at, mut joined) = (0usize, 0);
        // Windows of 1,500 bytes acked in steps: offsets wrap the 2 KiB ring.
        for step in [700usize, 1500, 333] {
            for _ in 0..50 {
                let seg = &src[at..at + step];
                s.check(at as u64, seg, false, lim).unwrap();
                let r = s.commit(at as u64, seg, false).unwrap();
                let (_, b) = s.slices(r.clone());
                joined += usize::from(!b.is_empty());
                assert_eq!(s.bytes_in(r, &mut scratch), seg);
                at += step;
                s.ack(at as u64 - 1000.min(at as u64));
            }
        }
        assert!(joined > 0, "some chunk must have wrapped the ring");
        // Grow while wrapped: 1.2 MB unacknowledged, then compare it all.
        let from = s.acked() as usize;
        let seg = &src[at..at + 1_200_000];
        s.check(at as u64, seg, false, lim).unwrap();
        s.commit(at as u64, seg, false).unwrap();
        at += seg.len();
        assert_eq!(s.bytes_in(from as u64..at as u64, &mut scratch), &src[from..at]);
        assert_eq!(s.ring().len(), 1 << 21);
        // A same-content retransmission spanning the wrap is a duplicate;
        // one changed byte is a conflict.
        assert_eq!(s.check(from as u64, &src[from..at], false, lim), Ok(Fit::Duplicate));
        let mut bad = src[from..at].to_vec();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        assert_eq!(s.check(from as u64, &bad, false, lim), Err(Counter::DropOverlapConflict));
        // Acknowledging nearly everything shrinks the ring to a quarter,
        // bytes intact; the ring goes when everything is acked.
        s.ack(at as u64 - 100);
        assert_eq!(s.ring().len(), 1 << 19);
        assert_eq!(s.bytes_in(at as u64 - 100..at as u64, &mut scratch), &src[at - 100..at]);
        assert_eq!(s.buffered(), 100);
        s.ack(at as u64);
        assert_eq!((s.ring().len(), s.buffered()), (0, 0));
        assert!(s.bufs.is_none(), "no buffers left on an idle stream");
        // A large ring is freed when everything is acknowledged.
        let seg = &src[at..at + 1_200_000];
        s.check(at as u64, seg, false, lim).unwrap();
        s.commit(at as u64, seg, false).unwrap();
        assert_eq!(s.ring().len(), 1 << 21);
        s.ack((at + seg.len()) as u64);
        assert_eq!((s.ring().len(), s.buffered()), (0, 0));
    }

    #[test]
    fn buffers_live_only_while_bytes_are_held() {
        let mut s = Stream::with_policy(SeqNumber(0), true);
        assert!(s.bufs.is_none(), "a new stream holds nothing");
        put(&mut s, 0, b"hello").unwrap();
        // An island: held out of order, not freed by acknowledging the rest.
        put(&mut s, 10, b"world").unwrap();
        assert_eq!(s.ofo().map(OfoQueue::len), Some(1));
        s.ack(5);
        assert!(s.bufs.is_some(), "the island is still held");
        assert_eq!(put(&mut s, 5, b", you").unwrap(), Some(b", youworld".to_vec()));
        assert!(s.ofo().is_some_and(OfoQueue::is_empty));
        s.ack(14);
        assert!(s.bufs.is_some(), "one byte unacknowledged");
        s.ack(15);
        assert!(s.bufs.is_none(), "every byte acknowledged: the buffers are freed");
        assert_eq!((s.buffered(), s.delivered(), s.highest()), (0, 15, 15));
        // The stream goes on after them, and duplicates of freed bytes are still recognised.
        assert_eq!(s.check(0, b"hello", false, LIM), Ok(Fit::Duplicate));
        assert_eq!(put(&mut s, 15, b"!").unwrap(), Some(b"!".to_vec()));
        assert_eq!(s.release(), 1);
        assert!(s.bufs.is_none(), "released");
    }

    #[test]
    fn a_reused_ring_shows_only_the_new_streams_bytes() {
        // A ring full of another stream's bytes goes back to the spare rings
        // (emptied first: tests share threads)...
        while stream_rings::kept(MIN_RING) > 0 {
            drop(stream_rings::take(MIN_RING));
        }
        let mut old = Stream::new(SeqNumber(0));
        put(&mut old, 0, &[0xAA; 1500]).unwrap();
        let ring = old.ring().as_ptr();
        old.ack(1500);
        assert!(old.bufs.is_none());
        assert_eq!(stream_rings::kept(MIN_RING), 1);
        // ...and the next stream's first 2 KiB ring is that one. Bytes
        // arrive out of order around a hole, then fill it.
        let mut s = Stream::with_policy(SeqNumber(9), true);
        assert_eq!(put(&mut s, 100, &[2; 900]).unwrap(), None);
        assert_eq!(s.ring().as_ptr(), ring, "the spare ring is reused");
        let mut want = vec![1; 100];
        want.extend_from_slice(&[2; 900]);
        assert_eq!(put(&mut s, 0, &want[..100]).unwrap(), Some(want.clone()));
        assert_eq!(s.bytes_in(0..1000, &mut Vec::new()), &want[..]);
        // A retransmission is compared with the held bytes, not the old ones.
        assert_eq!(s.check(0, &want, false, LIM), Ok(Fit::Duplicate));
        assert_eq!(s.check(0, &[0xAA; 1000], false, LIM), Err(Counter::DropOverlapConflict));
    }

    /// A stream whose first 1,500 bytes (of `len` source bytes) were
    /// delivered and acknowledged: the next ones start near the end of the
    /// 2 KiB ring.
    fn acked_1500(len: u32) -> (Stream, Vec<u8>) {
        let mut s = Stream::new(SeqNumber(0));
        let src: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        put(&mut s, 0, &src[..1500]).unwrap();
        s.ack(1500);
        (s, src)
    }

    #[test]
    fn islands_across_the_wrap() {
        let (mut s, src) = acked_1500(8000);
        // An island past the ring's end, then the gap before it.
        assert_eq!(put(&mut s, 2500, &src[2500..3400]).unwrap(), None);
        assert_eq!(s.buffered(), 1900);
        assert_eq!(put(&mut s, 1500, &src[1500..2500]).unwrap(), Some(src[1500..3400].to_vec()));
        assert_eq!(s.check(2000, &src[2000..3000], false, LIM), Ok(Fit::Duplicate));
    }

    #[test]
    fn growing_a_wrapped_ring_keeps_both_parts() {
        let (mut s, src) = acked_1500(5000);
        // Held bytes 1500..2500 wrap the 2 KiB ring; 2500..5000 makes it grow.
        put(&mut s, 1500, &src[1500..2500]).unwrap();
        assert!(!s.slices(1500..2500).1.is_empty());
        put(&mut s, 2500, &src[2500..]).unwrap();
        assert_eq!(s.ring().len(), 4096);
        assert_eq!(s.bytes_in(1500..5000, &mut Vec::new()), &src[1500..]);
    }

    #[test]
    fn the_next_flight_starts_in_a_ring_the_size_of_the_last() {
        let big = 64 << 10;
        while stream_rings::kept(big) > 0 {
            drop(stream_rings::take(big));
        }
        let src: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = Stream::new(SeqNumber(0));
        // A 40 KB flight grows the ring to 64 KiB, then is acknowledged.
        for at in (0..40_000).step_by(1000) {
            put(&mut s, at as u64, &src[at..at + 1000]).unwrap();
        }
        assert_eq!(s.ring().len(), big);
        let ring = s.ring().as_ptr();
        s.ack(40_000);
        assert!(s.bufs.is_none());
        // The next flight's first segment gets that ring back, not 2 KiB.
        put(&mut s, 40_000, &src[40_000..41_000]).unwrap();
        assert_eq!((s.ring().len(), s.ring().as_ptr()), (big, ring));
        assert_eq!(s.bytes_in(40_000..41_000, &mut Vec::new()), &src[40_000..41_000]);
        // With no such ring kept, a new one is made as small as the need.
        s.ack(41_000);
        drop(stream_rings::take(big));
        put(&mut s, 41_000, &src[41_000..42_000]).unwrap();
        assert_eq!(s.ring().len(), MIN_RING);
    }
}
