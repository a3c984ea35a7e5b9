//! TCP sequence numbers with wrap-aware ordering (RFC 793 / RFC 1982 serial
//! arithmetic), so sequence comparisons cannot be written wrong by accident.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Sub};

/// A 32-bit TCP sequence number. `a < b` means "a comes before b" modulo 2^32:
/// the distance from `a` forward to `b` is less than 2^31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The number of bytes from `earlier` forward to `self`, if `self` is not
    /// before `earlier`.
    pub fn distance_from(self, earlier: SeqNumber) -> Option<u32> {
        if self >= earlier {
            Some(self.0.wrapping_sub(earlier.0))
        } else {
            None
        }
    }

    /// Signed distance `self - other`, wrap-aware.
    pub fn diff(self, other: SeqNumber) -> i64 {
        i64::from(self.0.wrapping_sub(other.0) as i32)
    }

    /// The later of two sequence numbers.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self >= other {
            self
        } else {
            other
        }
    }

    /// The earlier of two sequence numbers.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self <= other {
            self
        } else {
            other
        }
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SeqNumber {
    // Not a total order over all of u32 (no serial-number order is), but it is
    // consistent for any two numbers less than 2^31 apart, which is all TCP
    // ever compares within one window.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.wrapping_sub(other.0) as i32).cmp(&0)
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
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.distance_from(a), Some(20));
        assert_eq!(a.distance_from(b), None);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    #[test]
    fn plain_ordering() {
        assert!(SeqNumber(1) < SeqNumber(2));
        assert_eq!(SeqNumber(5).cmp(&SeqNumber(5)), Ordering::Equal);
        assert_eq!(SeqNumber(0) - 1, SeqNumber(u32::MAX));
    }
}
