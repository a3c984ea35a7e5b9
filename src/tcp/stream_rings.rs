//! Rings that streams let go of, kept for the next stream that needs one
//! of the same size.
//!
//! A stream's ring exists only while the stream holds bytes (an idle
//! connection keeps none, see [`super::stream::Stream`]). On bulk traffic
//! that means a ring is made for nearly every data segment and freed at
//! the acknowledgment that follows, and the ring grows from 2 KiB through
//! every power of two to the window each time: allocating and zero-filling
//! rings cost more than copying the bytes into them. Freed rings up to
//! [`MAX_KEPT`] bytes are kept here instead, a few of each size, per
//! thread (each worker has its own engine), and handed out again without
//! being zeroed.
//!
//! A reused ring still holds bytes of the stream that had it before. That
//! is never seen: a stream reads only offsets it has filled itself (what
//! it delivers, and the held bytes it compares a retransmission with; both
//! are in its `filled` set), exactly as it never reads the zeroes of a new
//! ring.
//!
//! Memory: at most [`PER_SIZE`] rings of each size from 2 KiB to
//! [`MAX_KEPT`] (4 MiB, the default `--max-stream-buffer`), and at most
//! [`KEPT_BYTES`] (16 MiB) in all, per thread. Bulk transfers inline (GSO
//! packets of 64 KiB, windows of megabytes) grow rings past 256 KiB:
//! before those were kept too, making and zero-filling them took 10% of a
//! queue thread's time with a `receive_data` rule.

use std::cell::RefCell;

/// Smallest ring a stream makes (and the smallest kept).
pub(super) const MIN_RING: usize = 2048;
/// Sizes kept: 2 KiB, 4 KiB, ... up to [`MAX_KEPT`].
const SIZES: usize = 12;
/// Largest ring kept; larger ones are freed.
pub(super) const MAX_KEPT: usize = MIN_RING << (SIZES - 1);
/// Rings kept of each size.
pub(super) const PER_SIZE: usize = 8;
/// Bytes kept in all.
pub(super) const KEPT_BYTES: usize = 16 << 20;

/// The rings a thread keeps, by size, and their bytes.
struct Spare {
    rings: [Vec<Vec<u8>>; SIZES],
    bytes: usize,
}

thread_local! {
    static SPARE: RefCell<Spare> =
        const { RefCell::new(Spare { rings: [const { Vec::new() }; SIZES], bytes: 0 }) };
}

/// Which size a ring of `len` bytes is, if it is one kept.
fn size_of(len: usize) -> Option<usize> {
    if !len.is_power_of_two() || !(MIN_RING..=MAX_KEPT).contains(&len) {
        return None;
    }
    Some((len.trailing_zeros() - MIN_RING.trailing_zeros()) as usize)
}

/// A ring of `len` bytes (a power of two): a kept one if there is one
/// (holding old bytes), else a new one.
pub(super) fn take(len: usize) -> Vec<u8> {
    take_kept(len).unwrap_or_else(|| vec![0; len])
}

/// A kept ring of `len` bytes, if there is one (holding old bytes).
pub(super) fn take_kept(len: usize) -> Option<Vec<u8>> {
    let s = size_of(len)?;
    SPARE
        .try_with(|spare| {
            let mut spare = spare.borrow_mut();
            let ring = spare.rings[s].pop()?;
            spare.bytes -= ring.len();
            Some(ring)
        })
        .ok()
        .flatten()
}

/// A ring a stream no longer needs: kept if there is room, else freed.
pub(super) fn give(ring: Vec<u8>) {
    let Some(s) = size_of(ring.len()) else { return };
    // At thread exit the spare rings are gone already: the ring is freed.
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.rings[s].len() < PER_SIZE && spare.bytes + ring.len() <= KEPT_BYTES {
            spare.bytes += ring.len();
            spare.rings[s].push(ring);
        }
    });
}

/// Rings kept on this thread, for tests.
#[cfg(test)]
pub(super) fn kept(len: usize) -> usize {
    size_of(len).map_or(0, |s| SPARE.with(|spare| spare.borrow().rings[s].len()))
}

/// Bytes kept on this thread, for tests.
#[cfg(test)]
pub(super) fn kept_bytes() -> usize {
    SPARE.with(|spare| spare.borrow().bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_kept_by_size_and_bounded() {
        // Tests share threads: start from what this thread holds.
        let before = kept(4096);
        let mut ring = take(4096);
        assert_eq!(ring.len(), 4096);
        ring[0] = 7;
        let ptr = ring.as_ptr();
        give(ring);
        assert_eq!(kept(4096), (before + 1).min(PER_SIZE));
        if before < PER_SIZE {
            let again = take(4096);
            assert_eq!(again.as_ptr(), ptr, "the kept ring is handed out again");
            give(again);
        }
        for _ in 0..PER_SIZE + 3 {
            give(vec![0; 4096]);
        }
        assert_eq!(kept(4096), PER_SIZE, "at most PER_SIZE rings of a size");
        give(vec![0; MAX_KEPT * 2]);
        give(vec![0; 3000]);
        assert_eq!((kept(MAX_KEPT * 2), kept(3000)), (0, 0), "other sizes are freed");
        assert_eq!(take(MAX_KEPT * 2).len(), MAX_KEPT * 2);
    }

    #[test]
    fn large_rings_are_kept_within_the_byte_budget() {
        let big = MAX_KEPT;
        while kept(big) > 0 {
            drop(take(big));
        }
        let room = (KEPT_BYTES - kept_bytes()) / big;
        for _ in 0..room + 2 {
            give(vec![0; big]);
        }
        assert_eq!(kept(big), room.min(PER_SIZE), "kept while they fit");
        assert!(kept_bytes() <= KEPT_BYTES);
        let before = kept_bytes();
        let ring = take_kept(big).unwrap();
        assert_eq!(kept_bytes(), before - big);
        give(ring);
        assert_eq!(kept_bytes(), before);
        while kept(big) > 0 {
            drop(take(big));
        }
    }
}
