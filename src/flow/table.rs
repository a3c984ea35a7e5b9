//! The flow table: flows by normalised key, with a bounded size.
//!
//! When the table is full, a new flow takes the place of the oldest flow that
//! is not an established connection (half-open, closing, closed, dropped, or a
//! UDP flow): a SYN flood then only churns through its own half-open entries,
//! while established connections keep theirs. If no such flow exists, the new
//! flow's packet is dropped. Candidates are kept in creation order in a queue
//! with lazy deletion, so eviction is amortised O(1).

use std::collections::{HashMap, VecDeque};

use ahash::RandomState;

use super::key::FlowKey;
use crate::time::Timestamp;

/// Unique id of a flow within one engine's run (also what rules see as the
/// flow's identity).
pub type FlowId = u64;

/// What the table needs to know of an entry.
pub trait FlowEntry {
    /// The flow's id.
    fn id(&self) -> FlowId;
    /// May this flow be evicted to make room?
    fn evictable(&self) -> bool;
    /// When the flow should expire if no packet refreshes it.
    fn deadline(&self) -> Timestamp;
}

/// Flows by key.
#[derive(Debug)]
pub struct FlowTable<F> {
    /// Keys come from the network: a keyed hash with a random seed (ahash)
    /// keeps an attacker from aiming flows at one bucket, at a fraction of
    /// SipHash's cost.
    flows: HashMap<FlowKey, F, RandomState>,
    /// Eviction candidates in creation order (may hold stale entries).
    order: VecDeque<(FlowKey, FlowId)>,
    max: usize,
    next_id: FlowId,
}

impl<F: FlowEntry> FlowTable<F> {
    /// A table holding at most `max` flows.
    pub fn new(max: usize) -> Self {
        FlowTable {
            flows: HashMap::with_hasher(RandomState::new()),
            order: VecDeque::new(),
            max: max.max(1),
            next_id: 1,
        }
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flow for `key`.
    pub fn get(&self, key: &FlowKey) -> Option<&F> {
        self.flows.get(key)
    }

    /// The flow for `key`, mutably.
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut F> {
        self.flows.get_mut(key)
    }

    /// Every flow, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &F)> {
        self.flows.iter()
    }

    /// A fresh id for a flow about to be inserted.
    pub fn next_id(&mut self) -> FlowId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The id the next flow gets (a sharded driver numbers flows by input position).
    pub fn set_next_id(&mut self, id: FlowId) {
        self.next_id = id;
    }

    /// Makes room for one more flow. Returns the evicted flow, if one had to
    /// go, or `Err(())` if the table is full of established connections.
    #[allow(clippy::result_unit_err)]
    pub fn make_room(&mut self) -> Result<Option<(FlowKey, F)>, ()> {
        if self.flows.len() < self.max {
            return Ok(None);
        }
        // Each queue entry is looked at once per push, so this is amortised O(1).
        let mut budget = self.order.len();
        while let Some((key, id)) = self.order.pop_front() {
            match self.flows.get(&key) {
                Some(f) if f.id() == id && f.evictable() => {
                    return Ok(self.flows.remove(&key).map(|f| (key, f)));
                }
                Some(f) if f.id() == id => {
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

    /// Inserts a flow (after [`FlowTable::make_room`]).
    pub fn insert(&mut self, key: FlowKey, flow: F) {
        self.order.push_back((key, flow.id()));
        self.flows.insert(key, flow);
    }

    /// Marks a flow as an eviction candidate again (it stopped being established).
    pub fn requeue(&mut self, key: FlowKey, id: FlowId) {
        self.order.push_back((key, id));
        if self.order.len() > 4 * self.max + 1024 {
            // Drop stale entries so the queue stays proportional to the table.
            let flows = &self.flows;
            self.order.retain(|(k, i)| flows.get(k).is_some_and(|f| f.id() == *i));
        }
    }

    /// Removes a flow.
    pub fn remove(&mut self, key: &FlowKey) -> Option<F> {
        self.flows.remove(key)
    }

    /// Removes and returns every flow whose deadline is at or before `now`,
    /// in creation order (by id). The table's hash has a random seed, so
    /// without the sort flows ending in one tick would end in a different
    /// order on every run, and offline runs would not be reproducible.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(FlowKey, F)> {
        let keys: Vec<FlowKey> =
            self.flows.iter().filter(|(_, f)| f.deadline() <= now).map(|(k, _)| *k).collect();
        let mut gone: Vec<(FlowKey, F)> =
            keys.into_iter().filter_map(|k| self.flows.remove(&k).map(|f| (k, f))).collect();
        gone.sort_by_key(|(_, f)| f.id());
        gone
    }

    /// Removes and returns every flow (shutdown).
    pub fn drain(&mut self) -> Vec<(FlowKey, F)> {
        self.order.clear();
        let mut all: Vec<(FlowKey, F)> = self.flows.drain().collect();
        all.sort_by_key(|(_, f)| f.id());
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::{Endpoint, L4Proto};

    struct F {
        id: FlowId,
        est: bool,
        dl: u64,
    }
    impl FlowEntry for F {
        fn id(&self) -> FlowId {
            self.id
        }
        fn evictable(&self) -> bool {
            !self.est
        }
        fn deadline(&self) -> Timestamp {
            Timestamp(self.dl)
        }
    }

    fn key(port: u16) -> FlowKey {
        let a = Endpoint { addr: "10.0.0.1".parse().unwrap(), port };
        let b = Endpoint { addr: "10.0.0.2".parse().unwrap(), port: 80 };
        FlowKey::of(L4Proto::Tcp, a, b).0
    }

    #[test]
    fn evicts_oldest_non_established() {
        let mut t = FlowTable::new(3);
        for (p, est) in [(1, true), (2, false), (3, false)] {
            t.make_room().unwrap();
            let id = t.next_id();
            t.insert(key(p), F { id, est, dl: 10 });
        }
        let (k, f) = t.make_room().unwrap().expect("evicted one");
        assert_eq!(k, key(2));
        assert_eq!(f.id, 2);
        let id = t.next_id();
        t.insert(key(4), F { id, est: true, dl: 10 });
        assert_eq!(t.make_room().unwrap().map(|(k, _)| k), Some(key(3)));
        t.insert(key(5), F { id: 9, est: true, dl: 10 });
        assert!(t.make_room().is_err(), "full of established flows");
    }

    #[test]
    fn expires_by_deadline() {
        let mut t = FlowTable::new(10);
        t.insert(key(1), F { id: 1, est: true, dl: 5 });
        t.insert(key(2), F { id: 2, est: true, dl: 50 });
        let gone = t.expire(Timestamp(10));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, key(1));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn flows_expiring_together_come_out_in_creation_order() {
        let mut t = FlowTable::new(100);
        for p in 1..=64u16 {
            let id = t.next_id();
            t.insert(key(p), F { id, est: true, dl: 5 });
        }
        let ids: Vec<FlowId> = t.expire(Timestamp(10)).into_iter().map(|(_, f)| f.id).collect();
        assert_eq!(ids, (1..=64).collect::<Vec<_>>());
    }
}
