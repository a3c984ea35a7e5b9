//! The inline driver's own counters: what happened between the queue and
//! the engine, which the engine's counters cannot see.

use std::sync::atomic::AtomicU64;

/// The driver's own counters (what the engine cannot see).
#[derive(Debug, Default)]
pub struct DriverStats {
    /// Packets received from the queue.
    pub received: AtomicU64,
    /// Verdicts sent.
    pub verdicts: AtomicU64,
    /// Verdicts the kernel refused or that could not be sent.
    pub verdict_errors: AtomicU64,
    /// Packets still without a verdict when the worker ended (should stay 0).
    pub unverdicted: AtomicU64,
    /// Failed receives.
    pub recv_errors: AtomicU64,
    /// Receives that found a packet while busy polling (`--busy-poll`).
    pub busy_poll_hits: AtomicU64,
}
