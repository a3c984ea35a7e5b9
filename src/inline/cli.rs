//! clap definitions of `sluice run` and `sluice stats`, converted into
//! [`InlineOptions`] so `main.rs` only dispatches.

use std::path::PathBuf;

use clap::Args;

use super::stats_server::{StatsFormat, DEFAULT_SOCKET};
use super::{parse_mark, parse_queues, InlineOptions};
use crate::config::{Bypass, ErrorPolicy};

/// The longest `--busy-poll`: the worker's idle tick (100 ms), past which
/// it would run timeouts late.
const MAX_BUSY_POLL_US: i64 = 100_000;

/// `sluice run RULES.lua`: filter packets inline through NFQUEUE.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The Lua rule file.
    pub rules: PathBuf,
    /// Queue number to bind (one worker).
    #[arg(long, default_value = "0", conflicts_with = "queues")]
    pub queue: u16,
    /// Range of queues A:B, one worker thread each (pair with iptables --queue-balance A:B).
    #[arg(long, value_parser = parse_queues)]
    pub queues: Option<(u16, u16)>,
    /// Kernel queue length per queue (packets waiting for a verdict).
    #[arg(long, default_value_t = 4096)]
    pub queue_len: u32,
    /// When a queue is full, the kernel accepts packets unfiltered (default: it drops them).
    #[arg(long)]
    pub fail_open: bool,
    /// Netlink socket receive buffer in bytes.
    #[arg(long, default_value_t = super::DEFAULT_RCVBUF)]
    pub rcvbuf: usize,
    /// Microseconds a queue thread keeps asking its queue for the next packet
    /// before it sleeps (0: it sleeps at once). Saves the wake-up of a lone
    /// packet at the price of a busy core; 0 to 100000.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=MAX_BUSY_POLL_US))]
    pub busy_poll: u32,
    /// Firewall mark of forged packets (the queue rule must skip it).
    #[arg(long, default_value = "0x5e1ce", value_parser = parse_mark)]
    pub mark: u32,
    /// Install the FORWARD NFQUEUE rules (iptables and ip6tables) for this run and remove them on exit.
    #[arg(long)]
    pub install_iptables: bool,
    /// With --install-iptables: let traffic pass while sluice is not running (--queue-bypass).
    #[arg(long)]
    pub bypass_when_down: bool,
    /// Hand connections past --stream-depth to the kernel: once both directions
    /// (--bypass, --bypass=both) or either (--bypass=either) are past the depth, a
    /// packet is marked and connmark rules accept the rest of the connection
    /// before the queue (installed with --install-iptables; needs conntrack).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "both")]
    pub bypass: Option<Bypass>,
    /// Mark bits of a bypassed connection (distinct from --mark).
    #[arg(long, default_value = "0x1000000", value_parser = parse_mark)]
    pub bypass_mark: u32,
    /// Write alerts as JSON lines to this file (default, or `-`: stdout).
    #[arg(long)]
    pub alerts: Option<PathBuf>,
    /// Unix socket serving the counters to `sluice stats`.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub stats_socket: PathBuf,
    /// Accept packets whose rule raised an error (default: drop them).
    #[arg(long)]
    pub accept_on_rule_error: bool,
    /// Engine and rule limits.
    #[command(flatten)]
    pub limits: crate::limits_args::LimitArgs,
    /// A variable for the rules, NAME=VALUE (repeatable; NAME a Lua identifier).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::config::parse_var)]
    pub vars: Vec<(String, String)>,
    /// Receiver model per destination network.
    #[command(flatten)]
    pub receiver: crate::tcp::receiver_policy::ReceiverArgs,
}

impl From<RunArgs> for InlineOptions {
    fn from(a: RunArgs) -> Self {
        let mut o = InlineOptions::new(a.rules);
        o.queues = a.queues.unwrap_or((a.queue, a.queue));
        o.queue_len = a.queue_len;
        o.fail_open = a.fail_open;
        o.rcvbuf = Some(a.rcvbuf);
        o.busy_poll = std::time::Duration::from_micros(u64::from(a.busy_poll));
        o.mark = a.mark;
        o.install_iptables = a.install_iptables;
        o.bypass_when_down = a.bypass_when_down;
        o.bypass_mark = a.bypass_mark;
        o.alerts = crate::alert::alerts_file(a.alerts);
        o.stats_socket = a.stats_socket;
        a.limits.apply(&mut o.engine, &mut o.rules_config);
        o.engine.receiver = a.receiver.table();
        o.engine.bypass = a.bypass.unwrap_or(Bypass::Off);
        if a.accept_on_rule_error {
            o.rules_config.on_error = ErrorPolicy::Accept;
        }
        o.rules_config.vars = a.vars;
        o
    }
}

/// `sluice stats`: print the counters of a running `sluice run`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// The daemon's --stats-socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: StatsFormatArg,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatsFormatArg {
    /// `name value` lines.
    Text,
    /// Prometheus text format.
    Prometheus,
}

impl From<StatsFormatArg> for StatsFormat {
    fn from(f: StatsFormatArg) -> Self {
        match f {
            StatsFormatArg::Text => StatsFormat::Text,
            StatsFormatArg::Prometheus => StatsFormat::Prometheus,
        }
    }
}

/// Runs `sluice stats`: prints the answer or returns the error message.
pub fn stats_command(a: StatsArgs) -> Result<(), String> {
    let text = super::stats_client(&a.socket, a.format.into())?;
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn run_args_convert() {
        let t = T::parse_from([
            "x",
            "r.lua",
            "--queues",
            "2:4",
            "--mark",
            "0x10",
            "--install-iptables",
            "--fail-open",
        ]);
        let o: InlineOptions = t.run.into();
        assert_eq!(o.queues, (2, 4));
        assert_eq!(o.mark, 0x10);
        assert!(o.install_iptables && o.fail_open && !o.bypass_when_down);
        let defaults = crate::config::EngineConfig::default();
        assert_eq!(o.engine.max_flows, defaults.max_flows);
        let t = T::parse_from([
            "x",
            "r.lua",
            "--max-flows",
            "16",
            "--max-stream-buffer",
            "4096",
            "--max-total-buffer",
            "65536",
        ]);
        let o: InlineOptions = t.run.into();
        assert_eq!(
            (o.engine.max_flows, o.engine.max_stream_buffer, o.engine.max_total_buffer),
            (16, 4096, 65536)
        );
        let t = T::parse_from(["x", "r.lua", "--queue", "7", "--var", "a=1", "--var", "b=x=y"]);
        let o: InlineOptions = t.run.into();
        assert_eq!(o.queues, (7, 7));
        assert_eq!(o.rules_config.vars, [("a".into(), "1".into()), ("b".into(), "x=y".into())]);
        assert!(T::try_parse_from(["x", "r.lua", "--var", "9lives=1"]).is_err());
        let o: InlineOptions = T::parse_from(["x", "r.lua", "--stream-depth", "4096", "--bypass"]).run.into();
        assert_eq!((o.engine.stream_depth, o.engine.bypass), (4096, Bypass::Both));
        assert_eq!(o.bypass_mark, super::super::DEFAULT_BYPASS_MARK);
        let o: InlineOptions =
            T::parse_from(["x", "r.lua", "--bypass=either", "--bypass-mark", "0x20"]).run.into();
        assert_eq!((o.engine.bypass, o.bypass_mark), (Bypass::Either, 0x20));
        let o: InlineOptions = T::parse_from(["x", "r.lua"]).run.into();
        assert_eq!((o.engine.stream_depth, o.engine.bypass), (0, Bypass::Off));
        assert!(T::try_parse_from(["x", "r.lua", "--bypass=sometimes"]).is_err());
        assert!(T::try_parse_from(["x", "r.lua", "--queue", "1", "--queues", "1:2"]).is_err());
    }

    #[test]
    fn alerts_dash_is_standard_output() {
        let o: InlineOptions = T::parse_from(["x", "r.lua", "--alerts", "-"]).run.into();
        assert_eq!(o.alerts, None);
        let o: InlineOptions = T::parse_from(["x", "r.lua", "--alerts", "a.jsonl"]).run.into();
        assert_eq!(o.alerts, Some(std::path::PathBuf::from("a.jsonl")));
    }

    #[test]
    fn busy_poll_is_microseconds_up_to_the_idle_tick() {
        let o: InlineOptions = T::parse_from(["x", "r.lua"]).run.into();
        assert_eq!(o.busy_poll, std::time::Duration::ZERO);
        assert_eq!(o.queue_config(3).busy_poll, std::time::Duration::ZERO);
        let o: InlineOptions = T::parse_from(["x", "r.lua", "--busy-poll", "50"]).run.into();
        assert_eq!(o.queue_config(3).busy_poll, std::time::Duration::from_micros(50));
        assert!(T::try_parse_from(["x", "r.lua", "--busy-poll", "100000"]).is_ok());
        let e = T::try_parse_from(["x", "r.lua", "--busy-poll", "100001"]).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("100001")), "an over-long busy poll is refused");
        assert!(T::try_parse_from(["x", "r.lua", "--busy-poll", "-1"]).is_err());
    }
}
