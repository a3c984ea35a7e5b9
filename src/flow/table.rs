//! The flow table: flows by normalised key, with a bounded size.
//!
//! When the table is full, a new flow takes the place of the oldest flow that
//! is not an established connection (half-open, closing, closed, dropped, or a
//! UDP flow): a SYN flood then only churns through its own half-open entries,
//! while established connections keep theirs. If no such flow exists, the new
//! flow's packet is dropped. Candidates are kept in creation order in a queue
//! with lazy deletion, so eviction is amortised O(1).
//!
//! Memory is what bounds the table's size, so each flow is stored once: in a
//! slot of a chunked slab, which holds the flow (and its key, which the flow
//! carries) and its timer links. The hash index holds only slot numbers (4
//! bytes each), the eviction queue 8 bytes per candidate. Expiry walks a
//! timer wheel ([`super::timers`]), so its cost follows the flows that are
//! due, not the table's size.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::Duration;

use ahash::RandomState;
use hashbrown::HashTable;

use super::key::FlowKey;
use super::timers::{Link, Timers, NIL};
use crate::time::Timestamp;

/// Unique id of a flow within one engine's run (also what rules see as the
/// flow's identity).
pub type FlowId = u64;

/// What the table needs to know of an entry.
pub trait FlowEntry {
    /// The flow's key (stored in the entry, so the table holds it once).
    fn key(&self) -> &FlowKey;
    /// The flow's id.
    fn id(&self) -> FlowId;
    /// May this flow be evicted to make room?
    fn evictable(&self) -> bool;
    /// When the flow should expire if no packet refreshes it.
    fn deadline(&self) -> Timestamp;
}

/// Index entries made room for at the first insert (up to the table's
/// size): no rehash pauses while the table fills, for 5 bytes per entry
/// (10 MB at a million flows, of which only the control bytes are touched
/// before the flows come).
const INDEX_PRESIZE_MAX: usize = 1 << 22;

/// Slots per slab chunk: the slab grows a chunk at a time, never copying
/// the flows it holds (no pause while a million flows move).
const CHUNK: usize = 4096;

/// One place in the slab.
#[derive(Debug)]
enum Slot<F> {
    /// A flow, and its place in the timer wheel.
    Taken { flow: F, link: Link },
    /// Free; the next free slot.
    Free { next: u32 },
}

/// An eviction candidate: its slot, and the low 32 bits of the id of the
/// flow it was queued for (a later flow in the same slot is another one).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    slot: u32,
    id: u32,
}

/// Flows by key.
#[derive(Debug)]
pub struct FlowTable<F> {
    /// Keys come from the network: a keyed hash with a random seed (ahash)
    /// keeps an attacker from aiming flows at one bucket, at a fraction of
    /// SipHash's cost.
    hasher: RandomState,
    /// The slot of each flow, by the hash of its key.
    index: HashTable<u32>,
    /// The slot last found: one packet looks its flow up several times.
    recent: Cell<u32>,
    /// The flows, in chunks of [`CHUNK`] slots.
    chunks: Vec<Vec<Slot<F>>>,
    /// First free slot ([`NIL`]: none).
    free: u32,
    len: usize,
    /// Eviction candidates in creation order (may hold stale entries).
    order: VecDeque<Candidate>,
    timers: Timers,
    max: usize,
    next_id: FlowId,
    /// Flows looked at by expiry runs (tests check it follows the flows due).
    #[cfg(test)]
    visits: u64,
}

impl<F: FlowEntry> FlowTable<F> {
    /// A table holding at most `max` flows, whose deadlines are only ever set
    /// to at least `shortest_timeout` after the packet time of setting them
    /// (that bound lets expiry visit each flow a few times per timeout
    /// instead of scanning the table; see [`super::timers`]).
    pub fn new(max: usize, shortest_timeout: Duration) -> Self {
        FlowTable {
            hasher: RandomState::new(),
            index: HashTable::new(),
            recent: Cell::new(NIL),
            chunks: Vec::new(),
            free: NIL,
            len: 0,
            order: VecDeque::new(),
            timers: Timers::new(shortest_timeout),
            // Slot numbers are 31-bit (the wheel tags heads with the top bit).
            max: max.clamp(1, (NIL >> 1) as usize),
            next_id: 1,
            #[cfg(test)]
            visits: 0,
        }
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The flow for `key`.
    pub fn get(&self, key: &FlowKey) -> Option<&F> {
        self.find(key).and_then(|s| self.flow(s))
    }

    /// The flow for `key`, mutably.
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut F> {
        let s = self.find(key)?;
        match self.slot_mut(s) {
            Slot::Taken { flow, .. } => Some(flow),
            Slot::Free { .. } => None,
        }
    }

    /// Every flow, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &F)> {
        self.chunks.iter().flatten().filter_map(|s| match s {
            Slot::Taken { flow, .. } => Some((flow.key(), flow)),
            Slot::Free { .. } => None,
        })
    }

    /// A fresh id for a flow about to be inserted.
    pub fn next_id(&mut self) -> FlowId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The id the next flow gets (a sharded driver numbers flows by input
    /// position), unless ids already went past it: ids never repeat.
    pub fn set_next_id(&mut self, id: FlowId) {
        self.next_id = self.next_id.max(id);
    }

    /// Makes room for one more flow. Returns the evicted flow, if one had to
    /// go, or `Err(())` if the table is full of established connections.
    #[allow(clippy::result_unit_err)]
    pub fn make_room(&mut self) -> Result<Option<(FlowKey, F)>, ()> {
        if self.len < self.max {
            return Ok(None);
        }
        // Each queue entry is looked at once per push, so this is amortised O(1).
        let mut budget = self.order.len();
        while let Some(c) = self.order.pop_front() {
            match self.flow(c.slot) {
                Some(f) if f.id() as u32 == c.id && f.evictable() => {
                    return Ok(self.take(c.slot).map(|f| (*f.key(), f)));
                }
                Some(f) if f.id() as u32 == c.id => {
                    // Established now; it is queued again when it stops being so.
                    budget = budget.saturating_sub(1);
                }
                _ => budget = budget.saturating_sub(1),
            }
            if budget == 0 {
                break;
            }
        }
        Err(())
    }

    /// Makes the index's room (once; the first insert does it otherwise).
    /// A filter in the path of live traffic calls it before the first
    /// packet: the room for a million flows took the first packet 1 ms.
    pub fn presize(&mut self) {
        if self.index.capacity() == 0 {
            let chunks = &self.chunks;
            let hasher = &self.hasher;
            let rehash = |&s: &u32| key_at(chunks, s).map_or(0, |k| hasher.hash_one(k));
            self.index.reserve(self.max.min(INDEX_PRESIZE_MAX), rehash);
        }
    }

    /// Inserts a flow (after [`FlowTable::make_room`]); its key must not be
    /// in the table.
    pub fn insert(&mut self, key: FlowKey, flow: F) {
        debug_assert!(key == *flow.key(), "a flow is inserted under its own key");
        if let Some(old) = self.find(&key) {
            // Never two slots for one key: the newer flow replaces the older.
            self.take(old);
        }
        let (id, deadline) = (flow.id(), flow.deadline());
        let slot = self.alloc(flow);
        self.presize();
        let hasher = &self.hasher;
        let chunks = &self.chunks;
        let rehash = |&s: &u32| key_at(chunks, s).map_or(0, |k| hasher.hash_one(k));
        self.index.insert_unique(hasher.hash_one(key), slot, rehash);
        self.recent.set(slot);
        self.len += 1;
        self.order.push_back(Candidate { slot, id: id as u32 });
        self.schedule(slot, deadline);
    }

    /// Marks a flow as an eviction candidate again (it stopped being established).
    pub fn requeue(&mut self, key: FlowKey, id: FlowId) {
        let Some(slot) = self.find(&key) else { return };
        self.order.push_back(Candidate { slot, id: id as u32 });
        if self.order.len() > 4 * self.max + 1024 {
            // Drop stale entries so the queue stays proportional to the table.
            let chunks = &self.chunks;
            self.order.retain(|c| match slot_at(chunks, c.slot) {
                Some(Slot::Taken { flow, .. }) => flow.id() as u32 == c.id,
                _ => false,
            });
        }
    }

    /// Removes a flow.
    pub fn remove(&mut self, key: &FlowKey) -> Option<F> {
        let s = self.find(key)?;
        self.take(s)
    }

    /// Removes and returns every flow whose deadline is at or before `now`,
    /// in creation order (by id), so offline runs are reproducible.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(FlowKey, F)> {
        let mut gone = Vec::new();
        for bucket in self.timers.start(now) {
            let mut s = self.timers.detach(bucket);
            while s != NIL {
                let Some(Slot::Taken { flow, link }) = slot_at_mut(&mut self.chunks, s) else { break };
                let (next, deadline) = (link.next, flow.deadline());
                #[cfg(test)]
                {
                    self.visits += 1;
                }
                if deadline <= now {
                    // Unlinked already (the whole bucket was detached).
                    *link = Link::default();
                    if let Some(f) = self.take(s) {
                        gone.push((*f.key(), f));
                    }
                } else {
                    self.schedule(s, deadline);
                }
                s = next;
            }
        }
        gone.sort_by_key(|(_, f)| f.id());
        gone
    }

    /// Removes and returns every flow (shutdown), in creation order.
    pub fn drain(&mut self) -> Vec<(FlowKey, F)> {
        // Sized at once: a million flows would otherwise be copied at each doubling.
        let mut all: Vec<(FlowKey, F)> = Vec::with_capacity(self.len);
        all.extend(std::mem::take(&mut self.chunks).into_iter().flatten().filter_map(|s| match s {
            Slot::Taken { flow, .. } => Some((*flow.key(), flow)),
            Slot::Free { .. } => None,
        }));
        self.index.clear();
        self.order.clear();
        self.timers.clear();
        self.free = NIL;
        self.len = 0;
        all.sort_by_key(|(_, f)| f.id());
        all
    }

    /// Bytes of one slot (a flow, its key and its timer links): what the
    /// table holds per flow besides its 4-byte index entry and 8-byte
    /// eviction-queue entry.
    pub fn slot_size() -> usize {
        std::mem::size_of::<Slot<F>>()
    }

    fn find(&self, key: &FlowKey) -> Option<u32> {
        let chunks = &self.chunks;
        // A freed or reused slot holds no flow or another key: no need to
        // forget it when its flow goes.
        let recent = self.recent.get();
        if key_at(chunks, recent) == Some(key) {
            return Some(recent);
        }
        let s = self.index.find(self.hasher.hash_one(key), |&s| key_at(chunks, s) == Some(key)).copied()?;
        self.recent.set(s);
        Some(s)
    }

    fn flow(&self, s: u32) -> Option<&F> {
        match slot_at(&self.chunks, s) {
            Some(Slot::Taken { flow, .. }) => Some(flow),
            _ => None,
        }
    }

    fn slot_mut(&mut self, s: u32) -> &mut Slot<F> {
        let (c, i) = split(s);
        &mut self.chunks[c][i]
    }

    /// Puts a flow in a free slot (a new one if none is free).
    fn alloc(&mut self, flow: F) -> u32 {
        let taken = Slot::Taken { flow, link: Link::default() };
        if self.free != NIL {
            let s = self.free;
            if let Slot::Free { next } = std::mem::replace(self.slot_mut(s), taken) {
                self.free = next;
            }
            return s;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let c = self.chunks.len() - 1;
        let chunk = &mut self.chunks[c];
        chunk.push(taken);
        (c * CHUNK + chunk.len() - 1) as u32
    }

    /// Takes the flow out of slot `s`: out of the index and the wheel, the
    /// slot freed.
    fn take(&mut self, s: u32) -> Option<F> {
        let hash = self.hasher.hash_one(self.flow(s)?.key());
        if let Ok(entry) = self.index.find_entry(hash, |&x| x == s) {
            entry.remove();
        }
        self.unlink(s);
        let freed = Slot::Free { next: self.free };
        let Slot::Taken { flow, .. } = std::mem::replace(self.slot_mut(s), freed) else { return None };
        self.free = s;
        self.len -= 1;
        Some(flow)
    }

    /// Files slot `s` in the wheel for a visit at or before `deadline`.
    fn schedule(&mut self, s: u32, deadline: Timestamp) {
        let bucket = self.timers.bucket_for(deadline);
        let head = self.timers.push(bucket, s);
        if head != NIL {
            if let Some(Slot::Taken { link, .. }) = slot_at_mut(&mut self.chunks, head) {
                link.prev = s;
            }
        }
        if let Slot::Taken { link, .. } = self.slot_mut(s) {
            *link = Link { prev: Timers::head_tag(bucket), next: head };
        }
    }

    /// Takes slot `s` out of its wheel bucket.
    fn unlink(&mut self, s: u32) {
        let Some(Slot::Taken { link, .. }) = slot_at_mut(&mut self.chunks, s) else { return };
        let Link { prev, next } = std::mem::take(link);
        if prev == NIL {
            return;
        }
        match Timers::tagged_bucket(prev) {
            Some(bucket) => self.timers.set_head(bucket, next),
            None => {
                if let Some(Slot::Taken { link, .. }) = slot_at_mut(&mut self.chunks, prev) {
                    link.next = next;
                }
            }
        }
        if let Some(Slot::Taken { link, .. }) = slot_at_mut(&mut self.chunks, next) {
            link.prev = prev;
        }
    }
}

/// Chunk and position of slot `s`.
fn split(s: u32) -> (usize, usize) {
    (s as usize / CHUNK, s as usize % CHUNK)
}

fn slot_at<F>(chunks: &[Vec<Slot<F>>], s: u32) -> Option<&Slot<F>> {
    let (c, i) = split(s);
    chunks.get(c)?.get(i)
}

fn slot_at_mut<F>(chunks: &mut [Vec<Slot<F>>], s: u32) -> Option<&mut Slot<F>> {
    let (c, i) = split(s);
    chunks.get_mut(c)?.get_mut(i)
}

fn key_at<F: FlowEntry>(chunks: &[Vec<Slot<F>>], s: u32) -> Option<&FlowKey> {
    match slot_at(chunks, s)? {
        Slot::Taken { flow, .. } => Some(flow.key()),
        Slot::Free { .. } => None,
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
