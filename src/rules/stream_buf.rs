//! The bytes of one stream direction that streamed rules may still read.
//!
//! Each chunk the engine delivers is copied once into a shared, immutable
//! block (unless no iterator needs it, see `pass`); iterators read it by
//! absolute stream offset, and sub-buffers copy what they take
//! (`sub_buffer.rs`), so they stay valid after the stream moved on. The
//! blocks' shares (`Parts`, `each_part`) are what the Rust side reads
//! without a copy (sub-buffers being made, `re:match(iter)` feeding its
//! matcher in `stream_match.rs`). Every iterator (and read-only
//! mark) is a *holder* with a position: blocks wholly before the lowest
//! holder are released. The bytes held are bounded: past `limit`, the
//! stream is marked overflowed and the holders' next reads fail with an
//! error naming the limit (until a release brings it back under), so a rule
//! that never advances cannot make sluice keep a whole connection. A rule
//! that never reads does not see that error: past twice the limit the
//! stream drops its bytes and stays overflowed for good.
//!
//! A holder may also carry a regexp match in progress on its bytes
//! ([`StreamMatch`]): `re:match(iter)` keeps its state here, so sluice can
//! feed it each new chunk without resuming the rule (`stream_match.rs`).

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::match_state::StreamMatch;

/// Bytes shared between the stream and the Rust code reading them.
pub(super) type Block = Arc<[u8]>;

/// A run of bytes made of parts of blocks.
#[derive(Debug, Clone, Default)]
pub(super) struct Parts {
    /// The parts, in order.
    pub parts: Vec<(Block, Range<usize>)>,
    /// Their total length.
    pub len: usize,
}

impl Parts {
    /// The bytes as one vector.
    #[cfg(test)]
    pub(super) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for (b, r) in &self.parts {
            v.extend_from_slice(&b[r.clone()]);
        }
        v
    }
}

/// An iterator's share of a stream.
#[derive(Debug)]
pub(super) struct Holder {
    /// Its position: nothing before it is read again.
    pub pos: u64,
    /// Haka's `iter.meter` (bytes moved over), shared with the cursor so it
    /// survives the holder's release.
    pub meter: Arc<AtomicI64>,
    /// A regexp match running on this holder's bytes.
    pub matching: Option<Box<StreamMatch>>,
}

impl Holder {
    /// Moves to `pos`, counting the move in the meter.
    pub(super) fn seek(&mut self, pos: u64) {
        let delta = pos as i64 - self.pos as i64;
        // Saturating, as a meter set near the limit by a rule must not wrap.
        let add = |m: i64| Some(m.saturating_add(delta));
        let _ = self.meter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, add);
        self.pos = pos;
    }
}

/// Holder ids to holders (few per stream; ids are never reused).
type Holders = HashMap<u64, Holder, ahash::RandomState>;

/// One direction's readable bytes.
#[derive(Debug)]
pub(super) struct StreamBuf {
    /// Retained blocks with the stream offset of their first byte.
    blocks: VecDeque<(u64, Block)>,
    /// Offset just after the last delivered byte.
    end: u64,
    /// No more bytes will come.
    eof: bool,
    /// Holder id → holder.
    holders: Holders,
    next_holder: u64,
    next_serial: u64,
    /// Most bytes that may be held.
    limit: usize,
    overflowed: bool,
    /// Bytes were dropped (held past twice the limit): overflowed for good.
    lost: bool,
}

impl StreamBuf {
    /// An empty stream whose first byte has offset `start`.
    pub(super) fn new(start: u64, limit: usize) -> Self {
        StreamBuf {
            blocks: VecDeque::new(),
            end: start,
            eof: false,
            holders: Holders::default(),
            next_holder: 0,
            next_serial: 0,
            limit,
            overflowed: false,
            lost: false,
        }
    }

    /// Appends delivered bytes.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.lost || self.held() + bytes.len() as u64 > 2 * self.limit as u64 {
            // Nobody read since the limit was passed: memory stays bounded.
            self.lost = true;
            self.overflowed = true;
            self.blocks.clear();
            self.end += bytes.len() as u64;
            return;
        }
        self.blocks.push_back((self.end, Block::from(bytes)));
        self.end += bytes.len() as u64;
        if self.held() > self.limit as u64 {
            self.overflowed = true;
        }
    }

    /// Appends delivered bytes that only holders still behind them need:
    /// copied into a block if one is, else just counted.
    pub(super) fn pass(&mut self, bytes: &[u8]) {
        let needed = self.lowest().is_some_and(|lo| lo < self.end + bytes.len() as u64);
        if needed {
            self.push(bytes);
        } else {
            self.end += bytes.len() as u64;
        }
    }

    /// True if the stream held more than its limit with `extra` more bytes
    /// (or already does).
    pub(super) fn would_overflow(&self, extra: usize) -> bool {
        self.overflowed || self.held() + extra as u64 > self.limit as u64
    }

    /// Marks the end of the stream.
    pub(super) fn finish(&mut self) {
        self.eof = true;
    }

    /// True once the stream ended.
    pub(super) fn is_eof(&self) -> bool {
        self.eof
    }

    /// Offset just after the last byte.
    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// The limit, if it was passed.
    pub(super) fn overflow(&self) -> Option<usize> {
        self.overflowed.then_some(self.limit)
    }

    /// Bytes from the lowest holder to the end.
    fn held(&self) -> u64 {
        self.lowest().map_or(0, |lo| self.end.saturating_sub(lo))
    }

    /// The lowest holder position.
    fn lowest(&self) -> Option<u64> {
        self.holders.values().map(|h| h.pos).min()
    }

    /// A new holder at `pos` whose moves count in `meter`.
    pub(super) fn hold(&mut self, pos: u64, meter: Arc<AtomicI64>) -> u64 {
        let id = self.next_holder;
        self.next_holder += 1;
        self.holders.insert(id, Holder { pos, meter, matching: None });
        id
    }

    /// The position of holder `id`.
    pub(super) fn pos(&self, id: u64) -> Option<u64> {
        self.holders.get(&id).map(|h| h.pos)
    }

    /// Holder `id`.
    pub(super) fn holder_mut(&mut self, id: u64) -> Option<&mut Holder> {
        self.holders.get_mut(&id)
    }

    /// Moves holder `id` to `pos`, counting the move in its meter.
    pub(super) fn seek(&mut self, id: u64, pos: u64) {
        if let Some(h) = self.holders.get_mut(&id) {
            h.seek(pos);
        }
    }

    /// A serial for a new match on this stream (park tokens).
    pub(super) fn next_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    /// Drops holder `id` and the blocks nobody holds any more.
    pub(super) fn release(&mut self, id: u64) {
        self.holders.remove(&id);
        self.trim();
    }

    /// Releases the blocks that lie wholly before every holder.
    pub(super) fn trim(&mut self) {
        let lo = self.lowest().unwrap_or(self.end);
        while let Some((start, b)) = self.blocks.front() {
            if start + b.len() as u64 > lo {
                break;
            }
            self.blocks.pop_front();
        }
        if self.held() <= self.limit as u64 && !self.lost {
            self.overflowed = false;
        }
    }

    /// The retained bytes in `range` (clipped to what is retained).
    pub(super) fn parts(&self, range: Range<u64>) -> Parts {
        let mut out = Parts::default();
        self.each_part(range, |b, r, _| {
            out.len += r.len();
            out.parts.push((b.clone(), r));
        });
        out
    }

    /// Calls `f` on each retained block overlapping `range`, in order, with
    /// the range of its bytes that lies in `range` and whether it is the
    /// last such block.
    pub(super) fn each_part(&self, range: Range<u64>, mut f: impl FnMut(&Block, Range<usize>, bool)) {
        // Blocks are in stream order: skip those wholly before `range`.
        let first = self.blocks.partition_point(|(start, b)| start + b.len() as u64 <= range.start);
        let mut blocks = self.blocks.range(first..).peekable();
        while let Some((start, b)) = blocks.next() {
            if *start >= range.end {
                break;
            }
            let bend = start + b.len() as u64;
            let from = range.start.max(*start) - start;
            let to = range.end.min(bend) - start;
            let last = bend >= range.end || blocks.peek().is_none();
            f(b, from as usize..to as usize, last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_span_blocks_and_survive_release() {
        let mut s = StreamBuf::new(0, 1 << 20);
        let h = s.hold(0, Arc::default());
        s.push(b"hello ");
        s.push(b"wor");
        s.push(b"ld");
        let p = s.parts(3..10);
        assert_eq!(p.to_vec(), b"lo worl");
        s.seek(h, 9);
        s.trim();
        // The first two blocks are gone from the stream, not from the parts.
        assert_eq!(s.parts(0..11).to_vec(), b"ld");
        assert_eq!(p.to_vec(), b"lo worl");
    }

    #[test]
    fn holding_past_the_limit_overflows_until_released() {
        let mut s = StreamBuf::new(100, 8);
        let h = s.hold(100, Arc::default());
        s.push(b"12345");
        assert_eq!(s.overflow(), None);
        s.push(b"6789");
        assert_eq!(s.overflow(), Some(8));
        s.seek(h, 105);
        s.trim();
        assert_eq!(s.overflow(), None);
        s.release(h);
        assert_eq!(s.parts(100..109).len, 0, "nobody holds anything");
    }

    #[test]
    fn passed_bytes_are_kept_only_for_a_holder_behind_them() {
        let mut s = StreamBuf::new(0, 1 << 20);
        let h = s.hold(0, Arc::default());
        s.seek(h, 4);
        s.pass(b"abcd");
        assert_eq!((s.end(), s.blocks.len()), (4, 0), "the holder is past them: not kept");
        s.pass(b"efgh");
        assert_eq!(s.end(), 8);
        assert_eq!(s.parts(4..8).to_vec(), b"efgh", "the holder is behind them: kept");
    }

    #[test]
    fn bytes_held_past_twice_the_limit_are_dropped_and_the_stream_stays_overflowed() {
        let mut s = StreamBuf::new(0, 8);
        let h = s.hold(0, Arc::default());
        s.push(b"12345");
        s.push(b"6789abc");
        assert_eq!((s.overflow(), s.parts(0..12).len), (Some(8), 12), "over the limit, still kept");
        s.push(b"defgh");
        assert_eq!((s.overflow(), s.parts(0..17).len, s.end()), (Some(8), 0, 17), "past twice: dropped");
        s.push(b"ij");
        assert_eq!(s.parts(0..19).len, 0);
        s.seek(h, 19);
        s.trim();
        assert_eq!(s.overflow(), Some(8), "for good");
    }
}
