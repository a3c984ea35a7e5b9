//! Where packets enter a worker: batches read from the queue's socket. The
//! socket is behind a trait so that the order of reads and waits, which
//! decides how many system calls a packet costs, can be tested without a
//! kernel.
//!
//! A worker reads without blocking until the socket is empty or the batch is
//! full. Only when the last read found the socket empty does the next batch
//! start by sending the batched verdicts and sleeping in `poll`; after a full
//! batch it reads again at once. The packet that ends a wait is a batch of
//! one, whose verdict goes out before the read that finds the socket empty:
//! under light load a lone packet waits for one read, not two. That is still
//! a read, the read that finds the socket empty, the verdict and the poll:
//! the four calls a minimal accept-everything loop makes per packet.

use std::io;
use std::time::Duration;

use crate::capture::nfqueue::{NfQueue, QueuedPacket};

/// Where packets come from (see the module comment).
pub(super) trait Ingress {
    /// A packet already received or readable now; `None` if the socket is empty.
    fn recv_ready(&mut self) -> io::Result<Option<QueuedPacket>>;
    /// Sends the batched verdicts, then waits at most `timeout` for a
    /// packet to read; false on timeout.
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool>;
}

impl Ingress for NfQueue {
    fn recv_ready(&mut self) -> io::Result<Option<QueuedPacket>> {
        NfQueue::recv_ready(self)
    }

    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        NfQueue::wait_readable(self, timeout)
    }
}

/// Reads batches, remembering whether the last read found the socket empty.
#[derive(Debug)]
pub(super) struct BatchReader {
    socket_empty: bool,
}

impl BatchReader {
    /// A reader whose first batch starts with a wait.
    pub(super) fn new() -> Self {
        BatchReader { socket_empty: true }
    }

    /// Appends up to `max` packets to `batch` (empty when `timeout` passed
    /// with nothing to read). On an error, `batch` keeps what was read
    /// before it, which still needs its verdicts.
    pub(super) fn next_batch(
        &mut self,
        ingress: &mut impl Ingress,
        batch: &mut Vec<QueuedPacket>,
        max: usize,
        timeout: Duration,
    ) -> io::Result<()> {
        if self.socket_empty {
            if !ingress.wait_readable(timeout)? {
                // Timed out: the socket is still empty, so the next call waits again.
                return Ok(());
            }
            // The first packet after a wait is a batch of its own: finding
            // out whether another follows costs a read, which can wait
            // until this one's verdict is out (a lone packet's latency).
            let first = ingress.recv_ready();
            self.socket_empty = !matches!(first, Ok(Some(_)));
            if let Some(p) = first? {
                batch.push(p);
            }
            return Ok(());
        }
        while batch.len() < max {
            match ingress.recv_ready() {
                Ok(Some(p)) => batch.push(p),
                Ok(None) => {
                    self.socket_empty = true;
                    return Ok(());
                }
                Err(e) => {
                    self.socket_empty = true;
                    return Err(e);
                }
            }
        }
        self.socket_empty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// What a test socket does when it is read or waited on.
    enum Step {
        Packet(u32),
        Empty,
        Fail,
        Readable,
        Timeout,
    }

    /// A socket that plays `steps` in order and records each call.
    struct Scripted {
        steps: VecDeque<Step>,
        calls: Vec<&'static str>,
    }

    impl Scripted {
        fn new(steps: impl IntoIterator<Item = Step>) -> Self {
            Scripted { steps: steps.into_iter().collect(), calls: Vec::new() }
        }
    }

    impl Ingress for Scripted {
        fn recv_ready(&mut self) -> io::Result<Option<QueuedPacket>> {
            self.calls.push("read");
            match self.steps.pop_front() {
                Some(Step::Packet(id)) => Ok(Some(QueuedPacket {
                    id,
                    payload: Vec::new(),
                    checksum_not_ready: false,
                    checksum_verified: false,
                    gso: false,
                    original_len: 0,
                    mark: 0,
                })),
                Some(Step::Empty) => Ok(None),
                Some(Step::Fail) => Err(io::Error::other("test failure")),
                _ => panic!("read where the script expects a wait; calls so far: {:?}", self.calls),
            }
        }

        fn wait_readable(&mut self, _: Duration) -> io::Result<bool> {
            self.calls.push("wait");
            match self.steps.pop_front() {
                Some(Step::Readable) => Ok(true),
                Some(Step::Timeout) => Ok(false),
                _ => panic!("wait where the script expects a read; calls so far: {:?}", self.calls),
            }
        }
    }

    fn ids(batch: &[QueuedPacket]) -> Vec<u32> {
        batch.iter().map(|p| p.id).collect()
    }

    const T: Duration = Duration::from_millis(100);

    #[test]
    fn light_load_costs_two_reads_and_one_wait_per_packet() {
        use Step::*;
        let mut s = Scripted::new([Readable, Packet(1), Empty, Readable, Packet(2), Empty]);
        let mut r = BatchReader::new();
        let mut batch = Vec::new();
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        // The packet after a wait comes alone: no read before its verdict.
        assert_eq!(ids(&batch), [1]);
        assert_eq!(s.calls, ["wait", "read"]);
        batch.clear();
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        assert!(batch.is_empty());
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        assert_eq!(ids(&batch), [2]);
        batch.clear();
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        // No read of the socket known to be empty before the wait.
        assert_eq!(s.calls, ["wait", "read", "read", "wait", "read", "read"]);
    }

    #[test]
    fn after_a_full_batch_the_next_one_reads_at_once() {
        use Step::*;
        let mut s = Scripted::new([Readable, Packet(1), Packet(2), Packet(3), Packet(4), Empty, Readable]);
        let mut r = BatchReader::new();
        let mut batch = Vec::new();
        r.next_batch(&mut s, &mut batch, 2, T).unwrap();
        assert_eq!(ids(&batch), [1]);
        batch.clear();
        r.next_batch(&mut s, &mut batch, 2, T).unwrap();
        assert_eq!(ids(&batch), [2, 3]);
        batch.clear();
        r.next_batch(&mut s, &mut batch, 2, T).unwrap();
        assert_eq!(ids(&batch), [4]);
        assert_eq!(s.calls, ["wait", "read", "read", "read", "read", "read"]);
    }

    #[test]
    fn a_timeout_leaves_the_socket_known_empty() {
        use Step::*;
        let mut s = Scripted::new([Timeout, Timeout, Readable, Packet(7)]);
        let mut r = BatchReader::new();
        let mut batch = Vec::new();
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        assert!(batch.is_empty());
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        assert_eq!(ids(&batch), [7]);
        assert_eq!(s.calls, ["wait", "wait", "wait", "read"]);
    }

    #[test]
    fn a_failed_read_keeps_the_packets_read_before_it_and_waits_next() {
        use Step::*;
        let mut s = Scripted::new([Readable, Packet(4), Packet(5), Fail, Readable, Packet(6), Empty]);
        let mut r = BatchReader::new();
        let mut batch = Vec::new();
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        assert_eq!(ids(&batch), [4]);
        batch.clear();
        assert!(r.next_batch(&mut s, &mut batch, 32, T).is_err());
        assert_eq!(ids(&batch), [5]);
        batch.clear();
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        assert_eq!(ids(&batch), [6]);
        assert_eq!(s.calls, ["wait", "read", "read", "read", "wait", "read"]);
    }

    #[test]
    fn a_failed_first_read_after_a_wait_waits_next() {
        use Step::*;
        let mut s = Scripted::new([Readable, Fail, Readable, Packet(1)]);
        let mut r = BatchReader::new();
        let mut batch = Vec::new();
        assert!(r.next_batch(&mut s, &mut batch, 32, T).is_err());
        assert!(batch.is_empty());
        r.next_batch(&mut s, &mut batch, 32, T).unwrap();
        assert_eq!(ids(&batch), [1]);
        assert_eq!(s.calls, ["wait", "read", "wait", "read"]);
    }
}
