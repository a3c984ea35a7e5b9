//! The flow table's timer wheel: which flows to look at when expiring.
//!
//! A flow's deadline moves on every packet, and the table is not told
//! (the engine writes it in the flow). So a flow is not filed at its
//! deadline but at a *visit*: when visited, a flow past its deadline
//! expires, any other is filed again. For no flow to expire late, a visit
//! must come no later than any deadline the flow may have by then. Every
//! deadline is set to at least the shortest timeout (the *horizon*) after
//! the packet time it is set at, and that time is not before the last
//! expiry run; so a visit at most a horizon after the last run, and not
//! after the flow's current deadline, is never late. Each flow is visited a
//! few times per timeout instead of once per expiry run (which scanned the
//! whole table every second of packet time).
//!
//! Buckets are one second of packet time wide, in a ring longer than the
//! horizon (which is capped, so the ring stays small). Each bucket is an
//! intrusive doubly linked list through the table's slots (8 bytes per
//! flow), so a flow leaves its bucket in O(1) when it is removed.

use std::time::Duration;

use crate::time::Timestamp;

/// No slot.
pub(super) const NIL: u32 = u32::MAX;
/// Marks a `prev` link that names a bucket (the slot is its list's head).
const HEAD: u32 = 1 << 31;
/// Width of a bucket, in microseconds of packet time.
const GRAIN_MICROS: u64 = 1_000_000;
/// Longest wait between two visits of a flow.
const MAX_HORIZON: Duration = Duration::from_secs(64);
/// Buckets in the ring: more than the horizon spans.
const BUCKETS: usize = 128;

/// A slot's neighbours in its bucket's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Link {
    /// The previous slot, or `HEAD | bucket` for a list's head, or [`NIL`]
    /// when not in any list.
    pub(super) prev: u32,
    /// The next slot, or [`NIL`].
    pub(super) next: u32,
}

impl Default for Link {
    fn default() -> Self {
        Link { prev: NIL, next: NIL }
    }
}

/// The wheel: the head slot of each bucket's list.
#[derive(Debug)]
pub(super) struct Timers {
    heads: Box<[u32; BUCKETS]>,
    /// Longest wait between visits, in microseconds.
    horizon: u64,
    /// Packet time of the latest expiry run (none yet: the first one visits
    /// every bucket).
    clock: Option<Timestamp>,
}

/// The buckets one expiry run visits, in order (ring positions).
#[derive(Debug, Clone, Copy)]
pub(super) struct Due {
    next: u64,
    left: u64,
}

impl Iterator for Due {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let b = (self.next % BUCKETS as u64) as usize;
        self.next += 1;
        self.left -= 1;
        Some(b)
    }
}

fn bucket_of(t: Timestamp) -> u64 {
    t.0 / GRAIN_MICROS
}

impl Timers {
    /// A wheel for deadlines set at least `shortest_timeout` ahead.
    pub(super) fn new(shortest_timeout: Duration) -> Self {
        let horizon = shortest_timeout.min(MAX_HORIZON).as_micros() as u64;
        Timers { heads: Box::new([NIL; BUCKETS]), horizon, clock: None }
    }

    /// The bucket to file a flow with `deadline` in: its next visit.
    pub(super) fn bucket_for(&self, deadline: Timestamp) -> usize {
        let Some(clock) = self.clock else { return 0 };
        let visit = deadline.0.min(clock.0.saturating_add(self.horizon));
        (bucket_of(Timestamp(visit)).max(bucket_of(clock)) % BUCKETS as u64) as usize
    }

    /// Starts an expiry run at `now`: the buckets to visit. Flows filed
    /// during the run are filed from `now` on.
    pub(super) fn start(&mut self, now: Timestamp) -> Due {
        let due = match self.clock {
            None => Due { next: 0, left: BUCKETS as u64 },
            // Packet time went back: only the current bucket can hold flows due.
            Some(c) if now < c => Due { next: bucket_of(c), left: 1 },
            // The current bucket again (flows due later in its second stay in it).
            Some(c) => {
                let span = bucket_of(now) - bucket_of(c) + 1;
                Due { next: bucket_of(c), left: span.min(BUCKETS as u64) }
            }
        };
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
        due
    }

    /// Empties `bucket`, returning its former head (the rest follows by `next`).
    pub(super) fn detach(&mut self, bucket: usize) -> u32 {
        std::mem::replace(&mut self.heads[bucket], NIL)
    }

    /// Makes `s` the head of `bucket`; returns the former head.
    pub(super) fn push(&mut self, bucket: usize, s: u32) -> u32 {
        std::mem::replace(&mut self.heads[bucket], s)
    }

    /// Sets the head of `bucket`.
    pub(super) fn set_head(&mut self, bucket: usize, s: u32) {
        self.heads[bucket] = s;
    }

    /// The `prev` link of the head of `bucket`.
    pub(super) fn head_tag(bucket: usize) -> u32 {
        HEAD | bucket as u32
    }

    /// The bucket a `prev` link names, if it names one.
    pub(super) fn tagged_bucket(prev: u32) -> Option<usize> {
        (prev != NIL && prev & HEAD != 0).then_some((prev & !HEAD) as usize)
    }

    /// Forgets every list (the table was emptied).
    pub(super) fn clear(&mut self) {
        self.heads.fill(NIL);
    }
}
