//! Engine limits and policies. Every limit has a default sized for a small
//! gateway and a stated policy for when it is hit (see `docs/operator-guide.md`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

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
    /// Verify TCP/UDP/ICMP and IPv4 header checksums (packets the endpoint
    /// would discard are dropped). Inline, the kernel has checked the IPv4
    /// header before queueing, so there this is about the transport.
    pub verify_checksums: bool,
    /// Hosts whose captured packets carry checksums a NIC was left to fill
    /// in (`sluice pcap --checksums auto` finds them): a wrong checksum of
    /// theirs of that kind is not held against the packet. None inline,
    /// where the kernel says what it verified.
    pub checksum_offload: OffloadHosts,
    /// `sluice pcap --passive`: TCP is analysed as a tap sees it (data
    /// delivered when acknowledged, gaps reported, nothing dropped for TCP
    /// validity checks, connections picked up midstream). Offline only.
    pub passive: bool,
    /// Receiver model per destination network (`--target-policy`, `--urgent`).
    pub receiver: crate::tcp::receiver_policy::ReceiverTable,
    /// `--stream-depth`: bytes of each TCP direction shown to rules (0:
    /// all). Past it, rules get nothing more of that direction.
    pub stream_depth: u64,
    /// `--bypass`: when a connection past depth is handed to the kernel.
    pub bypass: Bypass,
}

/// When a connection past `--stream-depth` is bypassed: its packets get a
/// mark that connmark rules use to accept the rest of it in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Bypass {
    /// Never.
    #[default]
    Off,
    /// Once both directions are past depth.
    Both,
    /// Once either direction is past depth (Suricata's `stream.bypass`):
    /// the other direction is no longer inspected either.
    Either,
}

/// Which checksums a capture's host left to its NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// TCP and UDP checksums (of unfragmented packets; fragmented datagrams
    /// are summed by software, so they are still verified).
    pub transport: bool,
    /// The IPv4 header checksum.
    pub ip_header: bool,
}

/// The hosts of a capture that left checksums to their NIC, found on first
/// need.
///
/// Only a wrong checksum asks: a right one is right whatever its host. So
/// `sluice pcap --checksums auto` gives a finder that reads the whole
/// capture, and it runs only if the replay meets a wrong checksum; a capture
/// with none is read once. Clones share the verdicts (the workers of a
/// sharded run, whose first asker runs the finder while the others wait).
#[derive(Clone, Default)]
pub struct OffloadHosts(Option<Arc<Verdicts>>);

/// The verdicts, and what finds them until they are known.
struct Verdicts {
    hosts: OnceLock<BTreeMap<IpAddr, Offload>>,
    finder: Mutex<Option<Finder>>,
}

/// Finds the offloading hosts (once).
pub type Finder = Box<dyn FnOnce() -> BTreeMap<IpAddr, Offload> + Send>;

impl OffloadHosts {
    /// No host leaves checksums to its NIC.
    pub fn none() -> OffloadHosts {
        OffloadHosts(None)
    }

    /// The hosts `finder` finds, when first asked.
    pub fn found_by(finder: Finder) -> OffloadHosts {
        let v = Verdicts { hosts: OnceLock::new(), finder: Mutex::new(Some(finder)) };
        OffloadHosts(Some(Arc::new(v)))
    }

    /// False when no host can be offloaded: no need to look at a checksum
    /// for its host's sake.
    pub fn may_have_hosts(&self) -> bool {
        self.0.as_ref().is_some_and(|v| v.hosts.get().is_none_or(|h| !h.is_empty()))
    }

    /// What `host` left to its NIC (running the finder if it has not run:
    /// ask only for a packet whose checksum is wrong).
    pub fn of(&self, host: &IpAddr) -> Offload {
        let Some(v) = &self.0 else { return Offload::default() };
        let hosts = v.hosts.get_or_init(|| {
            let finder = v.finder.lock().take();
            finder.map(|f| f()).unwrap_or_default()
        });
        hosts.get(host).copied().unwrap_or_default()
    }

    /// True once the verdicts are known (the finder ran, or there is none).
    #[cfg(test)]
    pub fn known_yet(&self) -> bool {
        self.0.as_ref().is_none_or(|v| v.hosts.get().is_some())
    }
}

impl std::fmt::Debug for OffloadHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_ref().map(|v| v.hosts.get()) {
            None => f.write_str("OffloadHosts(none)"),
            Some(None) => f.write_str("OffloadHosts(not found yet)"),
            Some(Some(hosts)) => f.debug_tuple("OffloadHosts").field(hosts).finish(),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            // About 400 bytes per idle TCP flow (benches/flow_memory.rs): a
            // full table of idle connections takes some 450 MB.
            max_flows: 1_000_000,
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
            checksum_offload: OffloadHosts::none(),
            passive: false,
            receiver: Default::default(),
            stream_depth: 0,
            bypass: Bypass::Off,
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
    /// Most stream bytes one connection direction may hold for rules
    /// (streamed iterators and bytes a rule left unconsumed); the engine's
    /// per-stream buffer limit.
    pub max_held_bytes: usize,
    /// A monologue longer than this comes in parts of this size.
    pub monologue_cap: usize,
    /// `--var NAME=VALUE` settings handed to the rules (`sluice.vars`), in
    /// command-line order (NAME is a Lua identifier; see [`parse_var`]).
    pub vars: Vec<(String, String)>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            instruction_limit: 1_000_000,
            memory_limit: 256 << 20,
            on_error: ErrorPolicy::Drop,
            max_held_bytes: 4 << 20,
            monologue_cap: 1 << 20,
            vars: Vec::new(),
        }
    }
}

/// Lua's reserved words, which cannot name a variable.
const LUA_KEYWORDS: [&str; 22] = [
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in", "local",
    "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

/// Parses one `--var NAME=VALUE`: NAME must be a Lua identifier (a letter or
/// `_`, then letters, digits or `_`, not a reserved word); VALUE is any
/// text, possibly empty, and may itself contain `=`.
pub fn parse_var(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!("'{s}' is not NAME=VALUE"));
    };
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("'{name}' is not a Lua identifier (a letter or _, then letters, digits or _)"));
    }
    if LUA_KEYWORDS.contains(&name) {
        return Err(format!("'{name}' is a Lua reserved word"));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_var;

    #[test]
    fn vars_need_a_lua_identifier() {
        let ok = |s: &str| parse_var(s).unwrap();
        assert_eq!(ok("home_net=10.0.0.0/8"), ("home_net".into(), "10.0.0.0/8".into()));
        assert_eq!(ok("_x1="), ("_x1".into(), String::new()));
        assert_eq!(ok("q=a=b"), ("q".into(), "a=b".into()));
        for bad in ["noequals", "=v", "1x=v", "a-b=v", "a b=v", "end=v", "é=v"] {
            let e = parse_var(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(parse_var("end=1").unwrap_err().contains("reserved"));
        assert!(parse_var("a.b=1").unwrap_err().contains("Lua identifier"));
    }
}
