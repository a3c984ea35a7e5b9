//! Where what the engine emits leaves a worker: verdicts to the queue and
//! forged packets to the raw socket, in the engine's order. The two are
//! behind a trait so that their order can be tested without a kernel.

use std::sync::atomic::Ordering;

use crate::capture::nfqueue::{NfQueue, QueueVerdict};
use crate::engine::{Emitted, Verdict};
use crate::inject::raw::RawInjector;

use super::driver_stats::DriverStats;
use super::unverdicted::Unverdicted;

/// Where emitted items leave the worker (see the module comment).
pub(super) trait Egress {
    /// Gives a packet its verdict (the queue may batch it).
    fn verdict(&mut self, id: u32, v: &Verdict);
    /// Accepts a packet by sending it through its hook again with `mark`
    /// (`--bypass`: the rules before the queue rule then accept its
    /// connection in the kernel).
    fn repeat_marked(&mut self, id: u32, mark: u32);
    /// Sends every batched verdict now.
    fn flush_verdicts(&mut self);
    /// Sends a forged packet.
    fn inject(&mut self, packet: &[u8]);
}

/// The real egress: the bound queue and the raw socket.
pub(super) struct Wire<'a> {
    pub(super) queue: &'a mut NfQueue,
    pub(super) injector: &'a RawInjector,
    pub(super) driver: &'a DriverStats,
}

impl Egress for Wire<'_> {
    fn verdict(&mut self, id: u32, v: &Verdict) {
        send_verdict(self.queue, self.driver, id, v);
    }

    fn repeat_marked(&mut self, id: u32, mark: u32) {
        send_queue_verdict(self.queue, self.driver, id, QueueVerdict::RepeatMarked(mark));
    }

    fn flush_verdicts(&mut self) {
        if let Err(e) = self.queue.flush_verdicts() {
            self.driver.verdict_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(queue = self.queue.queue_num(), "verdicts could not be sent: {e}");
        }
    }

    fn inject(&mut self, packet: &[u8]) {
        self.injector.send(packet);
    }
}

/// Sends `items` in order, emptying the list (its capacity stays for the
/// next batch). A verdict for an id that has none pending is ignored. An
/// accept for a packet listed in `bypass` (id, mark) is sent as a repeat
/// with that mark.
pub(super) fn send_emitted(
    items: &mut Vec<Emitted>,
    unverdicted: &mut Unverdicted,
    bypass: &[(u32, u32)],
    egress: &mut impl Egress,
) {
    for item in items.drain(..) {
        match item {
            Emitted::Forged(bytes) => {
                // A forged reset must not overtake the verdicts emitted
                // before it: sent ahead of data the receiver has not got
                // yet, its sequence number would not be the receiver's
                // next, and a challenge ACK would answer it, not a reset.
                egress.flush_verdicts();
                egress.inject(&bytes);
            }
            Emitted::Verdict(id, v) => {
                let Some(id) = u32::try_from(id).ok().filter(|id| unverdicted.take(*id)) else {
                    tracing::warn!(id, "engine gave a verdict for a packet without one pending; ignored");
                    continue;
                };
                match (&v, bypass.iter().find(|(b, _)| *b == id)) {
                    (Verdict::Accept, Some(&(_, mark))) => egress.repeat_marked(id, mark),
                    _ => egress.verdict(id, &v),
                }
            }
        }
    }
}

pub(super) fn send_verdict(queue: &mut NfQueue, driver: &DriverStats, id: u32, v: &Verdict) {
    let qv = match v {
        Verdict::Accept => QueueVerdict::Accept,
        Verdict::Drop => QueueVerdict::Drop,
        Verdict::AcceptModified(bytes) => QueueVerdict::AcceptModified(bytes),
    };
    send_queue_verdict(queue, driver, id, qv);
}

fn send_queue_verdict(queue: &mut NfQueue, driver: &DriverStats, id: u32, qv: QueueVerdict<'_>) {
    let mut result = queue.verdict(id, qv);
    match (&result, qv) {
        // Fail closed: a modified packet that cannot be sent is dropped.
        (Err(e), QueueVerdict::AcceptModified(_)) => {
            tracing::warn!(id, "modified verdict failed ({e}); dropping the packet");
            result = queue.verdict(id, QueueVerdict::Drop);
        }
        // A bypass is only a shortcut: the packet is accepted without it.
        (Err(e), QueueVerdict::RepeatMarked(_)) => {
            tracing::warn!(id, "bypass verdict failed ({e}); accepting the packet");
            result = queue.verdict(id, QueueVerdict::Accept);
        }
        _ => {}
    }
    match result {
        Ok(()) => {
            driver.verdicts.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            driver.verdict_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id, "verdict failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue that batches verdicts as NfQueue does: the kernel sees them
    /// only at a flush. Each injected packet records what the kernel had seen.
    #[derive(Default)]
    struct Recorder {
        batched: Vec<(u32, Verdict)>,
        kernel: Vec<(u32, Verdict)>,
        injected: Vec<(Vec<u8>, Vec<u32>)>,
        marked: Vec<(u32, u32)>,
    }

    impl Egress for Recorder {
        fn verdict(&mut self, id: u32, v: &Verdict) {
            self.batched.push((id, v.clone()));
        }
        fn repeat_marked(&mut self, id: u32, mark: u32) {
            self.marked.push((id, mark));
        }
        fn flush_verdicts(&mut self) {
            self.kernel.append(&mut self.batched);
        }
        fn inject(&mut self, packet: &[u8]) {
            let seen = self.kernel.iter().map(|(id, _)| *id).collect();
            self.injected.push((packet.to_vec(), seen));
        }
    }

    #[test]
    fn a_forged_packet_leaves_after_the_verdicts_emitted_before_it() {
        let mut unverdicted = Unverdicted::new(32);
        unverdicted.begin_batch([1, 2, 3, 4]);
        let mut items = vec![
            Emitted::Verdict(1, Verdict::Accept),
            Emitted::Verdict(2, Verdict::Accept),
            Emitted::Forged(vec![0x45, 1]),
            Emitted::Verdict(3, Verdict::Drop),
            Emitted::Forged(vec![0x45, 2]),
            Emitted::Verdict(4, Verdict::Drop),
        ];
        let mut rec = Recorder::default();
        send_emitted(&mut items, &mut unverdicted, &[], &mut rec);
        assert!(items.is_empty());
        assert_eq!(rec.injected, vec![(vec![0x45, 1], vec![1, 2]), (vec![0x45, 2], vec![1, 2, 3])]);
        // The last verdict waits in the batch for the next flush.
        assert_eq!(rec.batched, vec![(4, Verdict::Drop)]);
        assert_eq!(rec.kernel, vec![(1, Verdict::Accept), (2, Verdict::Accept), (3, Verdict::Drop)]);
    }

    #[test]
    fn a_verdict_without_a_pending_packet_is_ignored() {
        let mut unverdicted = Unverdicted::new(32);
        unverdicted.begin_batch([7]);
        // 8 was never received, 7 gets a second verdict, and an id above
        // u32 cannot be the kernel's.
        let mut items = vec![
            Emitted::Verdict(8, Verdict::Accept),
            Emitted::Verdict(7, Verdict::Accept),
            Emitted::Verdict(7, Verdict::Drop),
            Emitted::Verdict(u64::from(u32::MAX) + 8, Verdict::Drop),
        ];
        let mut rec = Recorder::default();
        send_emitted(&mut items, &mut unverdicted, &[], &mut rec);
        assert_eq!(rec.batched, vec![(7, Verdict::Accept)]);
        assert!(rec.injected.is_empty());
    }

    #[test]
    fn an_accept_listed_for_bypass_is_sent_marked() {
        let mut unverdicted = Unverdicted::new(32);
        unverdicted.begin_batch([1, 2, 3]);
        let mut items = vec![
            Emitted::Verdict(1, Verdict::Accept),
            Emitted::Verdict(2, Verdict::Accept),
            Emitted::Verdict(3, Verdict::Drop),
        ];
        let mut rec = Recorder::default();
        // 2 is marked; 3 is listed too, but a drop stays a drop.
        send_emitted(&mut items, &mut unverdicted, &[(2, 0x100_0010), (3, 0x100_0000)], &mut rec);
        assert_eq!(rec.marked, vec![(2, 0x100_0010)]);
        assert_eq!(rec.batched, vec![(1, Verdict::Accept), (3, Verdict::Drop)]);
    }
}
