//! The packets a worker received and has not given a verdict yet, so that
//! each gets exactly one: a verdict for an id not in here is refused.
//!
//! Nearly every verdict is for a packet of the batch being handled, and they
//! come in arrival order, so the batch's ids sit in a short list searched
//! from where the last verdict was found: no hashing per packet. Ids still
//! waiting when the batch ends (held IP fragments) move to a hash set.

use std::collections::HashSet;

/// Ids waiting for their verdict.
#[derive(Debug)]
pub struct Unverdicted {
    /// The current batch's ids in arrival order; `None` once verdicted.
    batch: Vec<Option<u32>>,
    /// Where the next in-order verdict of the batch is expected.
    next: usize,
    /// Ids from earlier batches still waiting.
    held: HashSet<u32, ahash::RandomState>,
}

impl Unverdicted {
    /// Nothing waiting; room for batches of `batch` packets.
    pub fn new(batch: usize) -> Self {
        Unverdicted {
            batch: Vec::with_capacity(batch),
            next: 0,
            held: HashSet::with_hasher(ahash::RandomState::new()),
        }
    }

    /// A batch starts: its ids wait for verdicts.
    pub fn begin_batch(&mut self, ids: impl IntoIterator<Item = u32>) {
        self.end_batch();
        self.batch.extend(ids.into_iter().map(Some));
    }

    /// The batch is done: its ids still waiting are held.
    pub fn end_batch(&mut self) {
        self.held.extend(self.batch.drain(..).flatten());
        self.next = 0;
    }

    /// Takes `id` off the waiting packets; false if it was not waiting
    /// (a second verdict for one packet, which must not be sent).
    pub fn take(&mut self, id: u32) -> bool {
        let n = self.batch.len();
        let from = self.next.min(n);
        for i in (from..n).chain(0..from) {
            if self.batch[i] == Some(id) {
                self.batch[i] = None;
                self.next = i + 1;
                return true;
            }
        }
        self.held.remove(&id)
    }

    /// Removes and returns every id still waiting (shutdown).
    pub fn drain(&mut self) -> Vec<u32> {
        self.end_batch();
        self.held.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_is_taken_once() {
        let mut u = Unverdicted::new(4);
        u.begin_batch([10, 11, 12]);
        assert!(u.take(10));
        assert!(!u.take(10), "second verdict refused");
        assert!(u.take(12), "out of order");
        assert!(u.take(11), "an earlier one after a later one");
        assert!(!u.take(13), "never received");
        u.end_batch();
        assert!(u.drain().is_empty());
    }

    #[test]
    fn ids_left_in_a_batch_are_held_for_later() {
        let mut u = Unverdicted::new(4);
        u.begin_batch([1, 2, 3]);
        assert!(u.take(1));
        u.end_batch();
        // A verdict between batches (timeouts) and one in a later batch.
        assert!(u.take(2));
        u.begin_batch([4, 5]);
        assert!(u.take(4));
        assert!(u.take(3));
        assert!(!u.take(3));
        u.end_batch();
        assert_eq!(u.drain(), vec![5]);
    }

    #[test]
    fn a_verdict_after_the_batch_ended_does_not_index_past_it() {
        // The position of the last in-order verdict outlives the batch.
        let mut u = Unverdicted::new(4);
        u.begin_batch([1, 2, 3, 4]);
        for id in 1..=4 {
            assert!(u.take(id));
        }
        u.end_batch();
        u.begin_batch([]);
        assert!(!u.take(9));
        u.begin_batch([7]);
        assert!(u.take(7));
    }
}
