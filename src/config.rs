//! Engine limits and policies. Every limit has a default sized for a small
//! gateway and a stated policy for when it is hit (see `docs/operator-guide.md`).

use std::time::Duration;

/// What to do with a packet when a rule raises an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Drop the packet that triggered the error (default: fail closed).
    Drop,
    /// Accept the packet (fail open).
    Accept,
}

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Maximum flows in the table. When full, the oldest flow that is not
    /// established (half-open, closing, closed) is evicted; if there is none,
    /// the new flow's packet is dropped.
    pub max_flows: usize,
    /// Pick up TCP connections whose handshake sluice did not see (off: drop them).
    pub tcp_midstream: bool,
    /// Idle timeout of an established TCP connection.
    pub tcp_established_timeout: Duration,
    /// Timeout of a connection in the handshake (SYN seen, not yet established).
    pub tcp_handshake_timeout: Duration,
    /// Timeout of a closing connection (FIN seen) and of TIME-WAIT.
    pub tcp_closing_timeout: Duration,
    /// Idle timeout of a UDP flow.
    pub udp_timeout: Duration,
    /// Maximum bytes buffered per TCP direction (unacknowledged inspected bytes
    /// plus out-of-order bytes). A segment that would exceed it is dropped; the
    /// sender retransmits it once the receiver's ACKs free room.
    pub max_stream_buffer: usize,
    /// Maximum bytes buffered for all streams together; same policy.
    pub max_total_buffer: usize,
    /// Maximum out-of-order segments held per direction; same policy.
    pub max_ooo_segments: usize,
    /// Maximum datagrams being reassembled from fragments at once.
    pub max_frag_datagrams: usize,
    /// Maximum bytes held in fragments at once.
    pub max_frag_bytes: usize,
    /// Fragments of a datagram not completed within this time are dropped.
    pub frag_timeout: Duration,
    /// Verify TCP/UDP/ICMP checksums (packets the endpoint would discard are dropped).
    pub verify_checksums: bool,
    /// Receiver model per destination network (`--target-policy`, `--urgent`).
    pub receiver: crate::tcp::receiver_policy::ReceiverTable,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_flows: 65_536,
            tcp_midstream: false,
            tcp_established_timeout: Duration::from_secs(3600),
            tcp_handshake_timeout: Duration::from_secs(30),
            tcp_closing_timeout: Duration::from_secs(60),
            udp_timeout: Duration::from_secs(60),
            max_stream_buffer: 4 << 20,
            max_total_buffer: 256 << 20,
            max_ooo_segments: 256,
            max_frag_datagrams: 1024,
            max_frag_bytes: 8 << 20,
            frag_timeout: Duration::from_secs(30),
            verify_checksums: true,
            receiver: Default::default(),
        }
    }
}

/// Rule (Lua) configuration.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// Lua VM instructions one event may run before it is aborted as an error.
    pub instruction_limit: u64,
    /// Lua memory limit in bytes for the whole rule state.
    pub memory_limit: usize,
    /// What happens to the packet when a rule errors.
    pub on_error: ErrorPolicy,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig { instruction_limit: 1_000_000, memory_limit: 256 << 20, on_error: ErrorPolicy::Drop }
    }
}
