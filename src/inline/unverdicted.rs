//! The packets a worker received and has not given a verdict yet, so that
//! each gets exactly one: a verdict for an id not in here is refused. The
//! bookkeeping is [`crate::verdict_book::VerdictBook`] (shared with
//! `sluice pcap`); this is its NFQUEUE face, with the queue's 32-bit ids.

use crate::verdict_book::VerdictBook;

/// Ids waiting for their verdict.
#[derive(Debug)]
pub struct Unverdicted {
    book: VerdictBook<()>,
}

impl Unverdicted {
    /// Nothing waiting; room for batches of `batch` packets.
    pub fn new(batch: usize) -> Self {
        Unverdicted { book: VerdictBook::new(batch) }
    }

    /// A batch starts: its ids wait for verdicts.
    pub fn begin_batch(&mut self, ids: impl IntoIterator<Item = u32>) {
        self.book.begin_batch(ids.into_iter().map(|id| (u64::from(id), ())));
    }

    /// The batch is done: its ids still waiting are held.
    pub fn end_batch(&mut self) {
        self.book.end_batch();
    }

    /// Takes `id` off the waiting packets; false if it was not waiting
    /// (a second verdict for one packet, which must not be sent).
    pub fn take(&mut self, id: u32) -> bool {
        self.book.take(u64::from(id)).is_some()
    }

    /// Removes and returns every id still waiting (shutdown).
    pub fn drain(&mut self) -> Vec<u32> {
        // Every id in the book came in as a u32.
        self.book.drain().into_iter().filter_map(|(id, ())| u32::try_from(id).ok()).collect()
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
