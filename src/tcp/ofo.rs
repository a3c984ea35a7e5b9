//! Linux's out-of-order queue, as segment ranges: which copy of overlapping
//! bytes a Linux 6.x receiver hands to the application.
//!
//! Linux keeps out-of-order segments as whole skbs in an rb-tree ordered by
//! sequence number (`tcp_data_queue_ofo` in net/ipv4/tcp_input.c):
//!
//! * a segment whose bytes all lie inside one queued segment is dropped
//!   ("All the bits are present. Drop."), the old bytes stay;
//! * a segment starting where a queued one starts and ending later replaces
//!   it (`rb_replace_node`);
//! * a segment removes the later queued segments it covers entirely
//!   (`merge_right`), and is otherwise inserted, partial overlaps included.
//!
//! When the gap closes, `tcp_ofo_queue` moves the queued segments, in
//! sequence order, to the receive queue whole, advancing `rcv_nxt` past
//! each; `tcp_recvmsg` copies from `copied_seq` on and skips the bytes of a
//! segment below it. So each byte is read from the queued segment with the
//! lowest starting sequence number that holds it. Data arriving in order
//! (`tcp_data_queue`) is queued before `tcp_ofo_queue` runs: bytes in order
//! win over queued ones, which are skipped where they are covered.
//!
//! One thing sluice cannot see: whether Linux (or GRO before it) coalesced a
//! segment into the one ending where it starts (`tcp_ooo_try_coalesce`,
//! `tcp_gro_receive`). A coalesced segment takes the lower starting sequence
//! number, which can change which copy wins. Entries whose boundaries may be
//! such joins are marked *unsure*; a conflicting overlap whose outcome
//! depends on one is not predicted ([`OfoPlan::Queue::certain`] is false) and
//! the caller drops the newcomer, as the strict policy does.
//!
//! This type knows nothing of bytes: it says, for a segment, whether Linux
//! keeps it and which of its bytes win, and the caller compares and copies.
//! Offsets are 64-bit stream offsets.

use std::ops::Range;

/// One queued segment (Linux: one skb in the out-of-order rb-tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfoEntry {
    /// First offset.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// The entry may be several segments Linux coalesced, or its boundaries
    /// are otherwise not known exactly: no conflict is predicted against it.
    pub unsure: bool,
}

/// What Linux does with an out-of-order segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfoPlan {
    /// Dropped: every byte is inside one queued segment (`TCP_OFOMERGE`).
    Discard,
    /// Queued. The segment's own bytes are the ones read in `wins` (the rest
    /// of it lies under queued segments that start lower and win).
    Queue {
        /// Offsets where this segment's bytes are the ones read.
        wins: Range<u64>,
        /// Queued entries this one replaces or covers: removed.
        removes: Range<usize>,
        /// Coalesced into the entry ending where it starts (index), instead
        /// of being inserted on its own.
        joins: Option<usize>,
        /// The outcome does not depend on coalescing sluice cannot see: a
        /// conflicting overlap may be predicted.
        certain: bool,
    },
}

/// The out-of-order queue of one direction: entries sorted by `start`, with
/// starts and ends strictly increasing (no entry lies inside another, which
/// Linux's rules above guarantee too).
#[derive(Debug, Clone, Default)]
pub struct OfoQueue {
    entries: Vec<OfoEntry>,
}

impl OfoQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        OfoQueue { entries: Vec::new() }
    }

    /// Queued entries, in order.
    pub fn entries(&self) -> &[OfoEntry] {
        &self.entries
    }

    /// Number of queued entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What Linux does with an out-of-order segment `seg` (non-empty, above
    /// `rcv_nxt`). `after_previous`: the previous segment sluice let through
    /// in this direction ended exactly at `seg.start`, so GRO may have merged
    /// the two before TCP saw them.
    pub fn plan(&self, seg: Range<u64>, after_previous: bool) -> OfoPlan {
        let (s, e) = (seg.start, seg.end);
        // The floor: the last entry starting at or before `s`. Since ends
        // increase with starts, it is the only one that can contain `seg`.
        let below = self.entries.partition_point(|x| x.start <= s);
        let floor = below.checked_sub(1).map(|i| (i, self.entries[i]));
        if let Some((_, f)) = floor {
            if s < f.end && e <= f.end {
                return OfoPlan::Discard;
            }
        }
        // Entries starting before `s` that reach past it keep their bytes
        // (they are read first); `seg` wins from the furthest such end on.
        let lower = self.entries.partition_point(|x| x.start < s);
        let covered_to = self.entries[..lower].iter().map(|x| x.end).max().unwrap_or(s).max(s);
        let wins = covered_to.min(e)..e;
        // Entries starting at `s` (replaced) or later and ending by `e`
        // (covered: merge_right) are removed.
        let first = match floor {
            Some((i, f)) if f.start == s => i,
            _ => below,
        };
        let last = first + self.entries[first..].iter().take_while(|x| x.end <= e).count();
        let joins = self.entries[..below].iter().position(|x| x.end == s);
        let overlapping = self.entries.iter().filter(|x| x.start < e && s < x.end);
        let unsure = overlapping.clone().any(|x| x.unsure);
        let certain = !unsure && joins.is_none() && !after_previous;
        OfoPlan::Queue { wins, removes: first..last, joins, certain }
    }

    /// Applies a plan made by [`OfoQueue::plan`] for `seg` (nothing else
    /// changed in between).
    pub fn apply(&mut self, seg: Range<u64>, plan: &OfoPlan, after_previous: bool) {
        let OfoPlan::Queue { removes, joins, .. } = plan else { return };
        self.entries.drain(removes.clone());
        match joins {
            Some(i) if *i < removes.start => {
                // Coalesced into the entry ending at seg.start: it grows.
                let j = &mut self.entries[*i];
                j.end = j.end.max(seg.end);
                j.unsure = true;
                self.normalise_from(*i);
            }
            _ => {
                let at = self.entries.partition_point(|x| x.start < seg.start);
                let entry = OfoEntry { start: seg.start, end: seg.end, unsure: after_previous };
                self.entries.insert(at, entry);
                self.normalise_from(at);
            }
        }
    }

    /// Keeps the ordering invariant after entry `i` grew: later entries it
    /// now contains are merged into it (their structure is no longer known).
    fn normalise_from(&mut self, i: usize) {
        while i + 1 < self.entries.len() && self.entries[i + 1].end <= self.entries[i].end {
            self.entries.remove(i + 1);
            self.entries[i].unsure = true;
        }
    }

    /// Data arrived in order up to `end`: entries it covers entirely are
    /// dropped by `tcp_ofo_queue`; the caller then consumes the rest as the
    /// stream becomes contiguous ([`OfoQueue::consume_to`]).
    pub fn in_order(&mut self, end: u64) {
        self.entries.retain(|x| x.end > end);
    }

    /// The application side reached `offset` (`rcv_nxt`): every entry
    /// starting at or before it has moved to the receive queue.
    pub fn consume_to(&mut self, offset: u64) {
        let n = self.entries.partition_point(|x| x.start <= offset);
        self.entries.drain(..n);
    }

    /// Forgets the structure and rebuilds the queue from held ranges,
    /// every entry unsure (after sluice's own view of `rcv_nxt` moved back).
    pub fn rebuild(&mut self, ranges: impl Iterator<Item = Range<u64>>) {
        self.entries = ranges.map(|r| OfoEntry { start: r.start, end: r.end, unsure: true }).collect();
    }

    /// Empties the queue.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(entries: &[(u64, u64)]) -> OfoQueue {
        let mut q = OfoQueue::new();
        for &(s, e) in entries {
            let p = q.plan(s..e, false);
            q.apply(s..e, &p, false);
        }
        q
    }

    fn ranges(q: &OfoQueue) -> Vec<(u64, u64)> {
        q.entries().iter().map(|x| (x.start, x.end)).collect()
    }

    #[test]
    fn a_segment_inside_a_queued_one_is_discarded() {
        // tcp_data_queue_ofo: !after(end_seq, skb1->end_seq) -> drop.
        let q = q(&[(10, 20)]);
        assert_eq!(q.plan(10..20, false), OfoPlan::Discard);
        assert_eq!(q.plan(12..18, false), OfoPlan::Discard);
        assert_eq!(q.plan(15..20, false), OfoPlan::Discard);
    }

    #[test]
    fn same_start_and_longer_replaces() {
        let mut q = q(&[(10, 20)]);
        let p = q.plan(10..25, false);
        assert_eq!(p, OfoPlan::Queue { wins: 10..25, removes: 0..1, joins: None, certain: true });
        q.apply(10..25, &p, false);
        assert_eq!(ranges(&q), [(10, 25)]);
    }

    #[test]
    fn a_covering_segment_removes_the_covered_ones() {
        let mut q = q(&[(10, 14), (16, 20), (22, 30)]);
        let p = q.plan(8..24, false);
        assert_eq!(p, OfoPlan::Queue { wins: 8..24, removes: 0..2, joins: None, certain: true });
        q.apply(8..24, &p, false);
        assert_eq!(ranges(&q), [(8, 24), (22, 30)]);
    }

    #[test]
    fn partial_overlaps_keep_both_and_the_lower_wins() {
        // Lower one first: the queued bytes win where they overlap.
        let mut q1 = q(&[(10, 20)]);
        let p = q1.plan(15..25, false);
        assert_eq!(p, OfoPlan::Queue { wins: 20..25, removes: 1..1, joins: None, certain: true });
        q1.apply(15..25, &p, false);
        assert_eq!(ranges(&q1), [(10, 20), (15, 25)]);
        // Lower one second: the newcomer starts lower, so its bytes win.
        let q2 = q(&[(15, 25)]);
        let p = q2.plan(10..20, false);
        assert_eq!(p, OfoPlan::Queue { wins: 10..20, removes: 0..0, joins: None, certain: true });
    }

    #[test]
    fn every_lower_entry_reaching_in_keeps_its_bytes() {
        // [0,10) and [5,15) queued: a segment at 7 loses to both up to 15.
        let q = q(&[(0, 10), (5, 15)]);
        match q.plan(7..20, false) {
            OfoPlan::Queue { wins, .. } => assert_eq!(wins, 15..20),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn a_possible_coalesce_makes_the_outcome_unsure() {
        // A segment starting where a queued one ends may have been coalesced
        // into it, taking its lower start.
        let q = q(&[(10, 20), (18, 30)]);
        match q.plan(20..35, false) {
            OfoPlan::Queue { certain, joins, .. } => assert_eq!((certain, joins), (false, Some(0))),
            p => panic!("{p:?}"),
        }
        match q.plan(40..45, true) {
            OfoPlan::Queue { certain, .. } => assert!(!certain),
            p => panic!("{p:?}"),
        }
        // Coalesced entries are unsure from then on.
        let mut q = q.clone();
        let p = q.plan(30..35, false);
        q.apply(30..35, &p, false);
        assert!(q.entries().iter().any(|x| x.unsure && x.end == 35));
        match q.plan(31..40, false) {
            OfoPlan::Queue { certain, .. } => assert!(!certain),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn in_order_data_drops_covered_entries_and_consumption_moves_on() {
        let mut q = q(&[(10, 14), (16, 30)]);
        q.in_order(15);
        assert_eq!(ranges(&q), [(16, 30)]);
        q.consume_to(16);
        assert!(q.is_empty());
    }
}
