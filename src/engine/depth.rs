//! `--stream-depth` (Suricata's reassembly depth): rules see the first
//! `depth` bytes of each TCP direction and nothing after. Stream offsets
//! count from the first byte after the SYN, so a direction's depth is a
//! plain comparison of offsets and needs no state of its own: the bytes
//! before it are delivered as usual, the direction is announced once as
//! past depth (`depth_reached`) when a delivery crosses it, and later
//! deliveries go to no rule. The connection is still tracked (sequence
//! numbers, FIN, RST, `end_connection`), so a reset a rule asks for later,
//! in the other direction, still carries the right numbers.
//!
//! `--bypass` builds on it: once the connection is past depth as the policy
//! says, its accepted packets are marked so the kernel's connmark rules
//! accept the rest of the connection before the queue.

use std::ops::Range;

use super::{Engine, Fate};
use crate::config::Bypass;
use crate::flow::{Direction, FlowKey};
use crate::inspect::Inspector;
use crate::stats::{Counter, Stats};
use crate::tcp::TcpConn;

/// Where a delivered range stands against the depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DepthCut {
    /// The part rules get (`None`: nothing).
    pub(super) within: Option<Range<u64>>,
    /// The range crosses the depth: the direction is past it from now on.
    pub(super) crossed: bool,
}

/// Cuts `range` (stream offsets) at `depth` (0: no depth), counting what
/// rules do not get.
pub(super) fn cut(depth: u64, range: Range<u64>, stats: &Stats) -> DepthCut {
    if depth == 0 || range.end <= depth {
        return DepthCut { within: Some(range), crossed: false };
    }
    stats.add(Counter::StreamBytesPastDepth, range.end - range.start.max(depth));
    // The first bytes past the depth (a delivery may also end right at it).
    let crossed = range.start <= depth;
    if crossed {
        stats.inc(Counter::StreamDepthReached);
    }
    let within = (range.start < depth).then_some(range.start..depth);
    if within.is_none() {
        stats.inc(Counter::StreamPacketsPastDepth);
    }
    DepthCut { within, crossed }
}

/// True if `conn` is past depth as `policy` asks for a bypass.
pub(super) fn bypass_due(policy: Bypass, depth: u64, conn: &TcpConn) -> bool {
    let past = |d: Direction| depth > 0 && conn.stream(d).is_some_and(|s| s.delivered() >= depth);
    match policy {
        Bypass::Off => false,
        Bypass::Both => past(Direction::Up) && past(Direction::Down),
        Bypass::Either => past(Direction::Up) || past(Direction::Down),
    }
}

impl<I: Inspector> Engine<I> {
    /// After a packet of the flow at `key` was let through: if the flow is
    /// past depth as `--bypass` asks, the packet is to carry the bypass
    /// mark (see [`Output::bypass`]).
    pub(super) fn note_bypass(&mut self, key: &FlowKey) {
        let Some(flow) = self.flows.get(key) else { return };
        let due = flow.fate == Fate::Inspect
            && flow.tcp().is_some_and(|c| bypass_due(self.config.bypass, self.config.stream_depth, c));
        self.bypass_due |= due;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_cut_at_the_depth_and_counted() {
        let stats = Stats::new();
        assert_eq!(cut(0, 5..900, &stats), DepthCut { within: Some(5..900), crossed: false });
        assert_eq!(cut(100, 0..100, &stats), DepthCut { within: Some(0..100), crossed: false });
        assert_eq!(cut(100, 90..150, &stats), DepthCut { within: Some(90..100), crossed: true });
        assert_eq!(cut(100, 150..170, &stats), DepthCut { within: None, crossed: false });
        // A delivery that ended right at the depth: the next one crosses it.
        assert_eq!(cut(100, 100..110, &stats), DepthCut { within: None, crossed: true });
        assert_eq!(stats.get(Counter::StreamBytesPastDepth), 50 + 20 + 10);
        assert_eq!(stats.get(Counter::StreamPacketsPastDepth), 2);
        assert_eq!(stats.get(Counter::StreamDepthReached), 2);
    }
}
