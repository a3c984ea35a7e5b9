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
use super::{Engine, Output};
use crate::flow::{Direction, FlowKey};
use crate::inspect::{Action, Context, Inspector};
use crate::stats::Counter;
use crate::tcp::ResetPoint;
use crate::time::Timestamp;

/// How often, at most, the flow table is searched for a connection to reset
/// (the search visits every flow; while nothing is stuck, segments that do not
/// fit are dropped without searching again).
pub(super) const SEARCH_INTERVAL: Duration = Duration::from_millis(100);

/// Bytes one search sets out to free: a sixteenth of the total (16 MiB at
/// the default), so that a swarm of small stuck holders gives back as much
/// as one large one.
fn reclaim_target(max_total_buffer: usize) -> usize {
    (max_total_buffer / 16).max(1)
}

/// Connections reset by one search at most: each costs forged RSTs, and the
/// search comes back 100 ms later if memory is still short.
pub(super) const MAX_RESETS_PER_SEARCH: usize = 256;

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
            .map(|(k, f)| (f.buffered(), Reverse(f.id()), *k))
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
        holds && flow.progress.stuck(*d, now)
    })
}
