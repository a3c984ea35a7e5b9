//! Counters. Each engine owns an `Arc<Stats>`; drivers read it from other
//! threads while the engine runs (`sluice stats`, the end-of-run summary), so
//! every counter is a relaxed atomic: cheap to bump, never torn.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident => $label:literal, )*) => {
        /// Every counter sluice keeps.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum Counter {
            $( $(#[$doc])* $name, )*
        }

        impl Counter {
            /// All counters, in export order.
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];

            /// The stable name used in `sluice stats`, summaries and docs.
            pub fn name(self) -> &'static str {
                match self { $(Counter::$name => $label,)* }
            }
        }
    };
}

counters! {
    /// Packets handed to the engine.
    PacketsIn => "packets_in",
    /// Verdicts: accept (including accept-modified).
    Accepted => "packets_accepted",
    /// Verdicts: drop.
    Dropped => "packets_dropped",
    /// Packets accepted after sluice changed them (normalisation or rules).
    Modified => "packets_modified",
    /// Packets sluice forged (RSTs).
    Forged => "packets_forged",
    /// Drop: the packet did not decode (truncated, bad lengths, not IP).
    DropMalformed => "drop_malformed",
    /// Drop: bad IPv4 header checksum.
    DropBadIpChecksum => "drop_bad_ip_checksum",
    /// Drop: bad TCP/UDP/ICMP checksum.
    DropBadChecksum => "drop_bad_checksum",
    /// Packets whose transport checksum the kernel or NIC had verified
    /// (NFQUEUE), so sluice did not compute it again.
    ChecksumVerifiedByKernel => "checksum_verified_by_kernel",
    /// Packets whose wrong TCP/UDP or IPv4 header checksum was let through
    /// because their host left it to NIC offload (`sluice pcap --checksums
    /// auto`).
    ChecksumOffloadUnverified => "checksum_offload_unverified",
    /// `--passive`: gaps, acknowledged (or surrounded) bytes missing from
    /// the capture, reported to rules.
    PassiveGaps => "passive_gaps",
    /// `--passive`: bytes in those gaps.
    PassiveGapBytes => "passive_gap_bytes",
    /// `--passive`: segments that overlapped recorded bytes with other
    /// content (the first copy stays, as inline).
    PassiveOverlapConflicts => "passive_overlap_conflicts",
    /// `--passive`: ACKs too far past the captured bytes to be evidence, ignored.
    PassiveAcksIgnored => "passive_acks_ignored",
    /// `--passive`: bytes delivered before any ACK covered them, because the
    /// stream buffer was full (a capture missing the receiver's ACKs).
    PassiveForcedBytes => "passive_forced_bytes",
    /// `--passive`: packets of a connection after its end (RST, or both FINs
    /// delivered), not inspected.
    PassiveAfterEnd => "passive_packets_after_end",
    /// Drop: a rule dropped the packet.
    DropRule => "drop_rule",
    /// Drop: the packet belongs to a flow a rule dropped or reset.
    DropFlowDropped => "drop_flow_dropped",
    /// Of `drop_rule`: dropped only because a rule raised an error and the
    /// error policy is drop.
    DropRuleError => "drop_rule_error",
    /// Drop: TCP packet of a connection whose handshake sluice did not see.
    DropNoHandshake => "drop_no_handshake",
    /// Drop: TCP flags not valid in the connection's state.
    DropBadFlags => "drop_tcp_bad_flags",
    /// Drop: TCP ACK number the receiver would reject.
    DropBadAck => "drop_tcp_bad_ack",
    /// Drop: TCP segment outside the receiver's window.
    DropOutOfWindow => "drop_tcp_out_of_window",
    /// Drop: TCP data overlapping bytes already inspected, with different content.
    DropOverlapConflict => "drop_tcp_overlap_conflict",
    /// Drop: TCP data after the sender's FIN.
    DropAfterFin => "drop_tcp_data_after_fin",
    /// Drop: TCP timestamp older than the receiver's (PAWS, Linux receivers).
    DropPaws => "drop_tcp_paws",
    /// Drop: TCP-MD5 or TCP-AO option on a connection opened without one
    /// (Linux receivers drop it: no key).
    DropAuthOption => "drop_tcp_auth_option",
    /// Drop: RST the receiver would ignore (sequence number not exact).
    DropBadRst => "drop_tcp_bad_rst",
    /// Drop: packet of a connection already closed by RST or FIN exchange.
    DropClosed => "drop_tcp_closed",
    /// Drop: the per-stream reassembly buffer is full.
    DropStreamLimit => "drop_stream_buffer_full",
    /// Drop: the global reassembly memory is exhausted.
    DropMemoryLimit => "drop_memory_limit",
    /// Connections reset to free stream memory: the total buffer was full and
    /// their held bytes had made no progress for a second.
    TcpMemoryResets => "tcp_memory_resets",
    /// Drop: the flow table is full.
    DropFlowLimit => "drop_flow_table_full",
    /// Drop: fragment overlaps another with different bytes.
    DropFragmentOverlap => "drop_fragment_overlap",
    /// Drop: fragment inside a run already held, ignored as a duplicate as
    /// Linux ignores it (the first copy is kept; Linux receivers).
    DropFragmentDuplicate => "drop_fragment_duplicate",
    /// Drop: fragment of a datagram that timed out or exceeded limits.
    DropFragment => "drop_fragment",
    /// Drop: the filter shut down with the packet still held.
    DropShutdown => "drop_shutdown",
    /// TCP urgent flag and pointer cleared so the endpoint reads urgent bytes inline.
    UrgentCleared => "tcp_urgent_cleared",
    /// Urgent bytes left out of the stream rules see, as the receiving
    /// application's read() skips them (`--urgent oob`, Linux receivers).
    UrgentHidden => "tcp_urgent_hidden",
    /// SYN data the SYN-ACK did not acknowledge, forgotten (Linux receivers).
    SynDataForgotten => "tcp_syn_data_forgotten",
    /// Conflicting out-of-order overlaps resolved as Linux resolves them.
    OverlapsResolved => "tcp_overlaps_resolved",
    /// IP datagrams reassembled from fragments.
    FragmentsReassembled => "ip_datagrams_reassembled",
    /// TCP connections created.
    TcpConnections => "tcp_connections",
    /// UDP flows created.
    UdpFlows => "udp_flows",
    /// Flows currently in the table.
    FlowsActive => "flows_active",
    /// Flows evicted to make room.
    FlowsEvicted => "flows_evicted",
    /// Flows ended by timeout.
    FlowsTimedOut => "flows_timed_out",
    /// Bytes delivered to rules in stream order.
    StreamBytes => "stream_bytes_delivered",
    /// `--stream-depth`: stream directions that reached the depth.
    StreamDepthReached => "stream_depth_reached",
    /// `--stream-depth`: in-order bytes past the depth, not shown to rules.
    StreamBytesPastDepth => "stream_bytes_past_depth",
    /// `--stream-depth`: packets whose new bytes were all past the depth.
    StreamPacketsPastDepth => "stream_packets_past_depth",
    /// `--bypass`: packets given the bypass mark (their connection is then
    /// accepted by the kernel before the queue).
    BypassMarked => "bypass_marked",
    /// Bytes currently buffered for reassembly (all streams).
    StreamBytesBuffered => "stream_bytes_buffered",
    /// Out-of-order segments stored.
    OutOfOrder => "tcp_out_of_order_segments",
    /// Retransmissions of already-inspected bytes (same content) accepted.
    Retransmissions => "tcp_retransmissions",
    /// Rule errors (Lua runtime errors, instruction or memory limit).
    RuleErrors => "rule_errors",
    /// Alerts raised.
    Alerts => "alerts",
    /// Packets the kernel dropped because the queue was full (inline only).
    QueueDrops => "queue_drops",
    /// Rule reloads that succeeded.
    Reloads => "reloads",
    /// Rule reloads that failed (old rules kept).
    ReloadFailures => "reload_failures",
}

/// A set of counters.
#[derive(Debug)]
pub struct Stats {
    values: Vec<AtomicU64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { values: Counter::ALL.iter().map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Stats {
    /// A zeroed set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        if let Some(v) = self.values.get(c as usize) {
            v.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Subtracts `n` (gauges such as active flows), saturating at zero.
    #[inline]
    pub fn sub(&self, c: Counter, n: u64) {
        if let Some(v) = self.values.get(c as usize) {
            let _ = v.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(x.saturating_sub(n)));
        }
    }

    /// Sets a gauge.
    #[inline]
    pub fn set(&self, c: Counter, n: u64) {
        if let Some(v) = self.values.get(c as usize) {
            v.store(n, Ordering::Relaxed);
        }
    }

    /// Current value.
    pub fn get(&self, c: Counter) -> u64 {
        self.values.get(c as usize).map(|v| v.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// All counters with their names.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Counter::ALL.iter().map(|&c| (c.name(), self.get(c))).collect()
    }

    /// Adds every counter of `other` into a fresh snapshot of the sum.
    pub fn merged<'a>(sets: impl IntoIterator<Item = &'a Stats>) -> Vec<(&'static str, u64)> {
        let mut total: Vec<(&'static str, u64)> = Counter::ALL.iter().map(|&c| (c.name(), 0)).collect();
        for s in sets {
            for (i, &c) in Counter::ALL.iter().enumerate() {
                total[i].1 += s.get(c);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_names() {
        let s = Stats::new();
        s.inc(Counter::PacketsIn);
        s.add(Counter::PacketsIn, 2);
        s.sub(Counter::FlowsActive, 5);
        assert_eq!(s.get(Counter::PacketsIn), 3);
        assert_eq!(s.get(Counter::FlowsActive), 0);
        let snap = s.snapshot();
        assert!(snap.contains(&("packets_in", 3)));
        let names: std::collections::HashSet<_> = snap.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), Counter::ALL.len(), "counter names are unique");
    }
}
