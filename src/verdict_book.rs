//! The packets a driver handed to the engine that have no verdict yet, so
//! that each gets exactly one: a verdict for a packet not in the book is
//! refused, and whatever is left at the end is known. Both drivers keep
//! one: NFQUEUE workers (the packet's queue id) and `sluice pcap` (the
//! record itself, written when its verdict comes, possibly from a worker
//! thread many records later).
//!
//! Nearly every verdict is for a packet of the batch being handled, and
//! they come in arrival order, so the batch sits in a short list searched
//! from where the last verdict was found: no hashing per packet. Packets
//! still waiting when the batch ends (held IP fragments) move to a map.

use std::collections::HashMap;

use crate::packet_id::PacketId;

/// Packets waiting for their verdict, each with what the driver keeps of it.
#[derive(Debug)]
pub struct VerdictBook<T> {
    /// The current batch in arrival order; `None` once verdicted.
    batch: Vec<Option<(PacketId, T)>>,
    /// Where the next in-order verdict of the batch is expected.
    next: usize,
    /// Packets of earlier batches still waiting.
    held: HashMap<PacketId, T, ahash::RandomState>,
}

impl<T> VerdictBook<T> {
    /// Nothing waiting; room for batches of `batch` packets.
    pub fn new(batch: usize) -> Self {
        VerdictBook {
            batch: Vec::with_capacity(batch),
            next: 0,
            held: HashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    /// A batch starts: its packets wait for verdicts (the last batch ends).
    pub fn begin_batch(&mut self, packets: impl IntoIterator<Item = (PacketId, T)>) {
        self.end_batch();
        self.batch.extend(packets.into_iter().map(Some));
    }

    /// One more packet of the current batch waits for its verdict.
    pub fn wait(&mut self, id: PacketId, packet: T) {
        self.batch.push(Some((id, packet)));
    }

    /// The batch is done: its packets still waiting are held.
    pub fn end_batch(&mut self) {
        // Mostly nothing is left: no reserve, no hashing then.
        for (id, packet) in self.batch.drain(..).flatten() {
            self.held.insert(id, packet);
        }
        self.next = 0;
    }

    /// Takes packet `id` out of the book for its verdict; `None` if it was
    /// not waiting (a second verdict for one packet, which must not count).
    pub fn take(&mut self, id: PacketId) -> Option<T> {
        let n = self.batch.len();
        let from = self.next.min(n);
        for i in (from..n).chain(0..from) {
            if self.batch[i].as_ref().is_some_and(|(waiting, _)| *waiting == id) {
                self.next = i + 1;
                return self.batch[i].take().map(|(_, p)| p);
            }
        }
        self.held.remove(&id)
    }

    /// Number of packets waiting.
    pub fn waiting(&self) -> usize {
        self.held.len() + self.batch.iter().filter(|p| p.is_some()).count()
    }

    /// Removes and returns every packet still waiting, by id (shutdown).
    pub fn drain(&mut self) -> Vec<(PacketId, T)> {
        self.end_batch();
        let mut left: Vec<(PacketId, T)> = self.held.drain().collect();
        left.sort_unstable_by_key(|(id, _)| *id);
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_packet_is_taken_once_with_what_was_kept() {
        let mut b = VerdictBook::new(4);
        b.begin_batch([(10, "a"), (11, "b"), (12, "c")]);
        assert_eq!(b.take(10), Some("a"));
        assert_eq!(b.take(10), None, "second verdict refused");
        assert_eq!(b.take(12), Some("c"), "out of order");
        assert_eq!(b.take(11), Some("b"), "an earlier one after a later one");
        assert_eq!(b.take(13), None, "never received");
        assert_eq!(b.waiting(), 0);
        assert!(b.drain().is_empty());
    }

    #[test]
    fn packets_left_in_a_batch_are_held_for_later() {
        let mut b = VerdictBook::new(4);
        b.begin_batch([(1, ()), (2, ()), (3, ())]);
        assert!(b.take(1).is_some());
        b.end_batch();
        assert_eq!(b.waiting(), 2);
        // A verdict between batches (timeouts) and one in a later batch.
        assert!(b.take(2).is_some());
        b.begin_batch([]);
        b.wait(4, ());
        b.wait(5, ());
        assert!(b.take(4).is_some());
        assert!(b.take(3).is_some());
        assert!(b.take(3).is_none());
        b.end_batch();
        assert_eq!(b.drain(), vec![(5, ())]);
    }

    #[test]
    fn whatever_is_left_drains_in_id_order() {
        let mut b = VerdictBook::new(2);
        for id in [9, 3, 7] {
            b.begin_batch([(id, id * 10)]);
        }
        b.wait(1, 10);
        assert_eq!(b.drain(), vec![(1, 10), (3, 30), (7, 70), (9, 90)]);
    }
}
