//! A set of disjoint, sorted byte ranges over 64-bit stream offsets: which
//! parts of a stream's buffer hold bytes. Few ranges exist at a time (the
//! in-order run plus a bounded number of out-of-order islands), so a sorted
//! vector beats a tree.

use std::ops::Range;

/// Disjoint, non-adjacent, sorted ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    /// An empty set.
    pub const fn new() -> Self {
        RangeSet { ranges: Vec::new() }
    }

    /// The ranges, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Range<u64>> {
        self.ranges.iter()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The end of the last range.
    pub fn end(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.end)
    }

    /// Adds `r`, merging with overlapping or adjacent ranges.
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        if let Some(last) = self.ranges.last_mut() {
            // The common case: data extending the last run in order.
            if r.start >= last.start && r.start <= last.end {
                last.end = last.end.max(r.end);
                return;
            }
        }
        // First range whose end reaches r.start (adjacent counts).
        let i = self.ranges.partition_point(|x| x.end < r.start);
        let mut j = i;
        let mut merged = r;
        while j < self.ranges.len() && self.ranges[j].start <= merged.end {
            merged.start = merged.start.min(self.ranges[j].start);
            merged.end = merged.end.max(self.ranges[j].end);
            j += 1;
        }
        self.ranges.splice(i..j, std::iter::once(merged));
    }

    /// Removes everything below `offset`.
    pub fn remove_below(&mut self, offset: u64) {
        let i = self.ranges.partition_point(|x| x.end <= offset);
        self.ranges.drain(..i);
        if let Some(first) = self.ranges.first_mut() {
            first.start = first.start.max(offset);
        }
    }

    /// The end of the run that contains `offset` (or `offset` itself if no
    /// range contains it): how far bytes are contiguous from `offset`.
    pub fn contiguous_end(&self, offset: u64) -> u64 {
        let i = self.ranges.partition_point(|x| x.end < offset);
        match self.ranges.get(i) {
            Some(r) if r.start <= offset => r.end,
            _ => offset,
        }
    }

    /// The parts of `r` that are in the set.
    pub fn intersections(&self, r: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let i = self.ranges.partition_point(|x| x.end <= r.start);
        self.ranges[i..]
            .iter()
            .take_while(move |x| x.start < r.end)
            .map(move |x| x.start.max(r.start)..x.end.min(r.end))
    }

    /// Number of ranges that start at or after `offset`.
    pub fn count_from(&self, offset: u64) -> usize {
        self.ranges.len() - self.ranges.partition_point(|x| x.start < offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..25);
        assert_eq!(s.iter().cloned().collect::<Vec<_>>(), vec![10..25, 30..40]);
        s.insert(5..35);
        assert_eq!(s.iter().cloned().collect::<Vec<_>>(), vec![5..40]);
        s.insert(50..50);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn contiguous_and_intersections() {
        let mut s = RangeSet::new();
        s.insert(0..10);
        s.insert(12..20);
        assert_eq!(s.contiguous_end(0), 10);
        assert_eq!(s.contiguous_end(10), 10);
        assert_eq!(s.contiguous_end(15), 20);
        assert_eq!(s.intersections(5..14).collect::<Vec<_>>(), vec![5..10, 12..14]);
        assert_eq!(s.count_from(10), 1);
        s.remove_below(15);
        assert_eq!(s.iter().cloned().collect::<Vec<_>>(), vec![15..20]);
    }
}
