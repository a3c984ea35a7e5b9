//! The engine and rule limits as command-line flags, shared by `sluice pcap`
//! and `sluice run` so both spell every limit the same way.

use std::time::Duration;

use crate::config::{EngineConfig, RulesConfig};

/// Engine and rule limit flags (`#[command(flatten)]` into a command).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Pick up TCP connections whose handshake sluice did not see.
    #[arg(long)]
    pub midstream: bool,
    /// Maximum flows in the table.
    #[arg(long, value_name = "N")]
    pub max_flows: Option<usize>,
    /// Maximum bytes buffered per TCP direction.
    #[arg(long, value_name = "BYTES")]
    pub max_stream_buffer: Option<usize>,
    /// Maximum bytes buffered for all streams together.
    #[arg(long, value_name = "BYTES")]
    pub max_total_buffer: Option<usize>,
    /// Idle timeout of an established TCP connection, in seconds.
    #[arg(long, value_name = "SECS")]
    pub tcp_timeout: Option<u64>,
    /// Timeout of a TCP connection in its handshake, in seconds.
    #[arg(long, value_name = "SECS")]
    pub tcp_handshake_timeout: Option<u64>,
    /// Timeout of a closing TCP connection, in seconds.
    #[arg(long, value_name = "SECS")]
    pub tcp_closing_timeout: Option<u64>,
    /// Idle timeout of a UDP flow, in seconds.
    #[arg(long, value_name = "SECS")]
    pub udp_timeout: Option<u64>,
    /// Do not verify TCP/UDP/ICMP checksums.
    #[arg(long)]
    pub no_verify_checksums: bool,
    /// Lua instructions one event may run before it is aborted.
    #[arg(long, value_name = "N")]
    pub instruction_limit: Option<u64>,
    /// Bytes of each TCP direction shown to rules (0: all); past them, rules
    /// get no more data of that direction (`tcp_connection.events.depth_reached`).
    #[arg(long, value_name = "BYTES")]
    pub stream_depth: Option<u64>,
}

impl LimitArgs {
    /// Applies the flags given over the defaults already in `engine` and `rules`.
    pub fn apply(&self, engine: &mut EngineConfig, rules: &mut RulesConfig) {
        let secs = Duration::from_secs;
        engine.tcp_midstream |= self.midstream;
        if let Some(n) = self.max_flows {
            engine.max_flows = n;
        }
        if let Some(n) = self.max_stream_buffer {
            engine.max_stream_buffer = n;
        }
        if let Some(n) = self.max_total_buffer {
            engine.max_total_buffer = n;
        }
        if let Some(s) = self.tcp_timeout {
            engine.tcp_established_timeout = secs(s);
        }
        if let Some(s) = self.tcp_handshake_timeout {
            engine.tcp_handshake_timeout = secs(s);
        }
        if let Some(s) = self.tcp_closing_timeout {
            engine.tcp_closing_timeout = secs(s);
        }
        if let Some(s) = self.udp_timeout {
            engine.udp_timeout = secs(s);
        }
        if self.no_verify_checksums {
            engine.verify_checksums = false;
        }
        if let Some(n) = self.instruction_limit {
            rules.instruction_limit = n;
        }
        if let Some(n) = self.stream_depth {
            engine.stream_depth = n;
        }
    }
}
