//! Whether a direction's held stream bytes are getting anywhere: the
//! engine resets connections whose bytes are stuck when stream memory runs
//! out (see `engine/reclaim.rs`).

use std::time::Duration;

use super::Stream;
use crate::time::Timestamp;

/// How long held bytes must have made no progress before their connection
/// may be reset to free memory.
pub const STUCK_AFTER: Duration = Duration::from_secs(1);

/// Progress of one direction's held bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// The acknowledged offset last seen.
    acked: u64,
    /// Since when the held bytes wait for an acknowledgement: set when bytes
    /// start being held and each time the acknowledged offset moves.
    waiting_since: Option<Timestamp>,
    /// Since when out-of-order islands have stood without all being filled.
    islands_since: Option<Timestamp>,
}

impl Progress {
    /// Records the stream's state after a segment of either direction (an
    /// ACK from the receiver moves the sender's stream).
    pub fn update(&mut self, s: &Stream, now: Timestamp) {
        let acked = s.acked();
        self.waiting_since = match self.waiting_since {
            _ if s.buffered() == 0 => None,
            Some(t) if acked == self.acked => Some(t),
            _ => Some(now),
        };
        self.acked = acked;
        self.islands_since = if s.islands() > 0 { Some(self.islands_since.unwrap_or(now)) } else { None };
    }

    /// True if nothing is held or waiting: the state of a fresh `Progress`
    /// as far as [`Progress::update`] and [`Progress::stuck`] can tell.
    pub fn idle(&self) -> bool {
        self.waiting_since.is_none() && self.islands_since.is_none()
    }

    /// True if the held bytes have made no progress since `STUCK_AFTER`
    /// before `now`.
    pub fn stuck(&self, now: Timestamp) -> bool {
        let since = [self.waiting_since, self.islands_since].into_iter().flatten().min();
        since.is_some_and(|t| t.saturating_add(STUCK_AFTER) <= now)
    }
}
