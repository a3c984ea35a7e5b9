//! Taking stream memory back when the total buffer is full.
//!
//! A direction holds bytes until its receiver acknowledges them (overlap
//! checks need them) and bytes beyond a hole until the hole is filled (rules
//! have not seen them yet). Both are the receiver's or the sender's to
//! prolong: a client that never acknowledges a download, or one that leaves
//! a hole before megabytes of out-of-order data, keeps them held for as long
//! as the connection lives. Enough such connections fill the total buffer,
//! and then every other stream's new data would be dropped.
//!
//! So when a segment does not fit, sluice resets connections whose held
//! bytes are *stuck* (not acknowledged any further, or behind an
//! out-of-order island that has stood, for a second of packet time), the
//! largest holders first, until a sixteenth of the total is free: one large
//! holder or a swarm of small ones. A healthy transfer is never stuck for that long (its
//! receiver acknowledges every round trip and fills holes within a few), so
//! it keeps its bytes, however many. The held bytes cannot be dropped alone:
//! the endpoint already has the out-of-order ones and would deliver them,
//! uninspected, once the hole is filled; resetting both ends ends that.

use std::cmp::Reverse;
use std::time::Duration;

use super::flow::{Fate, Flow};
use super::tcp_path::ResetPoint;
use super::{Engine, Output};
use crate::flow::{Direction, FlowKey};
use crate::inspect::{Action, Context, Inspector};
use crate::stats::Counter;
use crate::tcp::Stream;
use crate::time::Timestamp;

/// How long held bytes must have made no progress before their connection
/// may be reset to free memory.
pub const STUCK_AFTER: Duration = Duration::from_secs(1);

/// How often, at most, the flow table is searched for a connection to reset
/// (the search visits every flow; while nothing is stuck, segments that do not
/// fit are dropped without searching again).
pub const SEARCH_INTERVAL: Duration = Duration::from_millis(100);

/// Bytes one search sets out to free: a sixteenth of the total (16 MiB at
/// the default), so that a swarm of small stuck holders gives back as much
/// as one large one.
fn reclaim_target(max_total_buffer: usize) -> usize {
    (max_total_buffer / 16).max(1)
}

/// Connections reset by one search at most: each costs forged RSTs, and the
/// search comes back 100 ms later if memory is still short.
pub const MAX_RESETS_PER_SEARCH: usize = 256;

impl<I: Inspector> Engine<I> {
    /// A segment of the flow `except` did not fit in the total buffer: resets
    /// connections whose held bytes are stuck, the largest holders first,
    /// until a sixteenth of the total is free again, so that retransmissions
    /// fit.
    pub(super) fn reclaim_memory(&mut self, except: &FlowKey, ctx: &Context, out: &mut Output) {
        let now = ctx.time;
        if self.last_reclaim_search.is_some_and(|t| now < t.saturating_add(SEARCH_INTERVAL)) {
            return;
        }
        self.last_reclaim_search = Some(now);
        let mut stuck_holders: Vec<(usize, Reverse<u64>, FlowKey)> = self
            .flows
            .iter()
            .filter(|(k, f)| *k != except && f.fate == Fate::Inspect && stuck(f, now))
            .map(|(k, f)| (f.buffered(), Reverse(f.info.id), *k))
            .collect();
        // The largest holders first; of equals, the oldest connections.
        stuck_holders.sort_unstable_by_key(|&(bytes, oldest, _)| Reverse((bytes, oldest)));
        let target = reclaim_target(self.config.max_total_buffer);
        let (mut freed, mut resets) = (0, 0);
        for (bytes, _, key) in stuck_holders {
            if freed >= target || resets == MAX_RESETS_PER_SEARCH {
                break;
            }
            if self.reset_stuck(&key, ctx, out) {
                freed += bytes;
                resets += 1;
            }
        }
        if resets > 0 {
            tracing::info!(
                connections = resets,
                bytes = freed,
                "total stream buffer full: reset connections whose held bytes were stuck"
            );
        }
    }

    /// Resets one stuck connection; false if it is gone or no longer inspected.
    fn reset_stuck(&mut self, key: &FlowKey, ctx: &Context, out: &mut Output) -> bool {
        // Bytes of it waiting in this batch's chunk reach rules first.
        if self.pending.as_ref().is_some_and(|p| p.key == *key) {
            self.flush_pending(out);
        }
        let Some(flow) = self.flows.get(key).filter(|f| f.fate == Fate::Inspect) else { return false };
        let Some(at) = flow.tcp().map(ResetPoint::of) else { return false };
        self.stats.inc(Counter::TcpMemoryResets);
        self.flow_action(key, Action::Reset, at, ctx, out);
        true
    }
}

/// True if some direction of the flow holds bytes that made no progress.
fn stuck(flow: &Flow, now: Timestamp) -> bool {
    [Direction::Up, Direction::Down].iter().any(|d| {
        let holds = flow.tcp().and_then(|c| c.stream(*d)).is_some_and(|s| s.buffered() > 0);
        holds && flow.progress[d.index()].stuck(now)
    })
}

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

    /// True if the held bytes have made no progress since `STUCK_AFTER`
    /// before `now`.
    pub fn stuck(&self, now: Timestamp) -> bool {
        let since = [self.waiting_since, self.islands_since].into_iter().flatten().min();
        since.is_some_and(|t| t.saturating_add(STUCK_AFTER) <= now)
    }
}
