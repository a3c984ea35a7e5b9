//! TCP sequence numbers with wrap-aware comparisons (RFC 793 / RFC 1982 serial
//! arithmetic), so sequence comparisons cannot be written wrong by accident.
//!
//! `SeqNumber` deliberately implements neither `Ord` nor `PartialOrd`: serial
//! order is not total (`a` before `b` before `c` before `a` is possible), so
//! `<`, `sort` and `BTreeMap` keys would be wrong in ways the compiler would
//! not catch. Comparisons are spelled out (`before`, `after`, ...), and
//! anything that needs a total order (sorted queues, ranges) works on u64
//! stream offsets, converted from sequence numbers in one place
//! (`tcp::stream`).

use std::fmt;
use std::ops::{Add, Sub};

/// A 32-bit TCP sequence number. `a.before(b)` means "a comes before b"
/// modulo 2^32: the distance from `a` forward to `b` is less than 2^31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Whether `self` comes strictly before `other` (serial order, RFC 1982).
    pub fn before(self, other: SeqNumber) -> bool {
        self.diff(other) < 0
    }

    /// Whether `self` comes strictly after `other`.
    pub fn after(self, other: SeqNumber) -> bool {
        self.diff(other) > 0
    }

    /// Whether `self` is `other` or comes before it.
    pub fn at_or_before(self, other: SeqNumber) -> bool {
        self.diff(other) <= 0
    }

    /// Whether `self` is `other` or comes after it.
    pub fn at_or_after(self, other: SeqNumber) -> bool {
        self.diff(other) >= 0
    }

    /// The number of bytes from `earlier` forward to `self`, if `self` is not
    /// before `earlier`.
    pub fn distance_from(self, earlier: SeqNumber) -> Option<u32> {
        if self.at_or_after(earlier) {
            Some(self.0.wrapping_sub(earlier.0))
        } else {
            None
        }
    }

    /// Signed distance `self - other`, wrap-aware.
    pub fn diff(self, other: SeqNumber) -> i64 {
        i64::from(self.0.wrapping_sub(other.0) as i32)
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs))
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_wraps() {
        let a = SeqNumber(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b.0, 9);
        assert!(a.before(b));
        assert!(b.after(a));
        assert!(!b.before(a));
        assert!(a.at_or_before(b) && a.at_or_before(a));
        assert!(b.at_or_after(a) && !a.at_or_after(b));
        assert_eq!(b.distance_from(a), Some(20));
        assert_eq!(a.distance_from(b), None);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
    }

    #[test]
    fn half_way_apart_each_is_before_the_other() {
        // 2^31 apart: the serial order is undefined (RFC 1982 section 3.2);
        // as i32 the distance is negative both ways, so each is "before" the
        // other. This is why SeqNumber has no Ord.
        let a = SeqNumber(0);
        let b = SeqNumber(1 << 31);
        assert!(a.before(b) && b.before(a));
    }

    #[test]
    fn plain_ordering() {
        assert!(SeqNumber(1).before(SeqNumber(2)));
        assert!(!SeqNumber(5).before(SeqNumber(5)) && !SeqNumber(5).after(SeqNumber(5)));
        assert!(SeqNumber(5).at_or_before(SeqNumber(5)) && SeqNumber(5).at_or_after(SeqNumber(5)));
        assert_eq!(SeqNumber(0) - 1, SeqNumber(u32::MAX));
    }
}
