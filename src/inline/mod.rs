//! `sluice run`: the inline daemon. One worker thread per NFQUEUE queue, each
//! with its own engine and rules; a signal thread (stop, reload); optional
//! iptables rules installed for the run; a unix socket serving the counters.
//!
//! Start-up order matters for "every queued packet gets a verdict": queues are
//! bound before the iptables rules send packets to them, and at shutdown the
//! rules are removed before the workers drain their queues and give the
//! engine's held packets their verdicts.

pub mod cli;
mod driver_stats;
mod egress;
pub mod iptables;
pub mod signals;
pub mod stats_server;
pub mod unverdicted;
pub mod worker;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::alert::AlertSink;
use crate::capture::nfqueue::{NfqError, QueueConfig};
use crate::config::{EngineConfig, RulesConfig};
use crate::inject::raw::{InjectStats, RawInjector};
use crate::inspect::Inspector;
use crate::rules::{LuaRules, RuleSinks};
use crate::stats::Stats;

pub use stats_server::{stats_client, StatsFormat};

/// Default `--bypass-mark`: one bit, apart from the forged packets' mark.
pub const DEFAULT_BYPASS_MARK: u32 = 0x0100_0000;

/// Default netlink receive buffer: room for bursts while a rule runs long
/// (the kernel drops packets it cannot hand over: `queue_user_dropped`).
pub const DEFAULT_RCVBUF: usize = 8 << 20;

/// Everything `sluice run` needs.
#[derive(Debug, Clone)]
pub struct InlineOptions {
    /// The Lua rule file.
    pub rules: PathBuf,
    /// First and last queue number (inclusive); one worker per queue.
    pub queues: (u16, u16),
    /// Kernel queue length per queue.
    pub queue_len: u32,
    /// Kernel accepts packets when a queue is full.
    pub fail_open: bool,
    /// Netlink socket receive buffer (bytes).
    pub rcvbuf: Option<usize>,
    /// `--busy-poll`: how long a worker keeps asking its queue for a packet
    /// before it sleeps.
    pub busy_poll: std::time::Duration,
    /// Firewall mark of forged packets.
    pub mark: u32,
    /// Install (and remove on exit) the FORWARD queue rules.
    pub install_iptables: bool,
    /// With `install_iptables`: add `--queue-bypass` (accept while sluice is not running).
    pub bypass_when_down: bool,
    /// `--bypass-mark`: the mark bits of a bypassed connection (`--bypass`,
    /// policy in `engine.bypass`).
    pub bypass_mark: u32,
    /// Alerts as JSON lines to this file (stdout if `None`).
    pub alerts: Option<PathBuf>,
    /// Unix socket serving counters.
    pub stats_socket: PathBuf,
    /// Log filter (overridden by `SLUICE_LOG`).
    pub log_level: String,
    /// Engine limits and policies.
    pub engine: EngineConfig,
    /// Lua limits and policies.
    pub rules_config: RulesConfig,
}

impl InlineOptions {
    /// Defaults for a rule file: queue 0, 4096 packets, fail closed.
    pub fn new(rules: PathBuf) -> Self {
        InlineOptions {
            rules,
            queues: (0, 0),
            queue_len: 4096,
            fail_open: false,
            rcvbuf: Some(DEFAULT_RCVBUF),
            busy_poll: std::time::Duration::ZERO,
            mark: crate::inject::raw::DEFAULT_MARK,
            install_iptables: false,
            bypass_when_down: false,
            bypass_mark: DEFAULT_BYPASS_MARK,
            alerts: None,
            stats_socket: PathBuf::from(stats_server::DEFAULT_SOCKET),
            log_level: "info".into(),
            engine: EngineConfig::default(),
            rules_config: RulesConfig::default(),
        }
    }

    fn queue_config(&self, queue_num: u16) -> QueueConfig {
        QueueConfig {
            queue_num,
            max_len: self.queue_len,
            fail_open: self.fail_open,
            gso: true,
            rcvbuf: self.rcvbuf,
            busy_poll: self.busy_poll,
        }
    }
}

/// Why `sluice run` stopped with an error.
#[derive(Debug)]
pub enum InlineError {
    /// Bad option values.
    Options(String),
    /// Binding a queue failed.
    Queue(NfqError),
    /// The rule file did not load.
    Rules(String),
    /// iptables rules could not be installed.
    Iptables(String),
    /// Raw socket, stats socket, signals, threads.
    Io(String),
}

impl std::fmt::Display for InlineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InlineError::Options(m) => write!(f, "{m}"),
            InlineError::Queue(e) => write!(f, "{e}"),
            InlineError::Rules(m) => write!(f, "rules: {m}"),
            InlineError::Iptables(m) => write!(f, "iptables: {m}"),
            InlineError::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for InlineError {}

/// Runs `sluice run` until SIGTERM/SIGINT with the Lua rules of `opts.rules`.
pub fn run(opts: InlineOptions) -> Result<(), InlineError> {
    init_logging(&opts.log_level);
    // One alert sink for all workers: clones share the writer, so lines from
    // different queues never interleave.
    let alerts = match &opts.alerts {
        Some(p) => {
            AlertSink::to_file(p).map_err(|e| InlineError::Io(format!("alerts {}: {e}", p.display())))?
        }
        None => AlertSink::stdout(),
    };
    let (path, cfg) = (opts.rules.clone(), opts.rules_config.clone());
    run_with(opts, move |stats| {
        LuaRules::load(&path, &cfg, RuleSinks { alerts: alerts.clone(), stats: Arc::clone(stats) })
            .map_err(|e| e.to_string())
    })
}

/// Runs the daemon with rules built by `load` (called on each worker's own
/// thread at start and again on every SIGHUP, with that worker's counters).
pub fn run_with<I, L>(opts: InlineOptions, load: L) -> Result<(), InlineError>
where
    I: Inspector + 'static,
    L: Fn(&Arc<Stats>) -> Result<I, String> + Send + Sync + 'static,
{
    let (first, last) = opts.queues;
    if first > last {
        return Err(InlineError::Options(format!("--queues {first}:{last}: first queue is after the last")));
    }
    let bypass = opts.engine.bypass != crate::config::Bypass::Off;
    if bypass {
        check_bypass(&opts).map_err(InlineError::Options)?;
    }
    let control = Arc::new(signals::Control::default());
    let signal_thread = signals::SignalThread::start(Arc::clone(&control)).map_err(InlineError::Io)?;
    // From here on, every way out (an error, or the end) stops what was
    // started, in order, through the guard.
    let mut running = Running {
        control,
        signal_thread: Some(signal_thread),
        workers: Vec::new(),
        rules: None,
        server: None,
    };

    let inject_stats = Arc::new(InjectStats::default());
    let injector = Arc::new(RawInjector::new(opts.mark, Arc::clone(&inject_stats)).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            InlineError::Queue(NfqError::NotRoot)
        } else {
            InlineError::Io(format!("raw socket: {e}"))
        }
    })?);

    let load = Arc::new(load);
    for q in first..=last {
        let cfg = worker::WorkerConfig {
            queue: opts.queue_config(q),
            engine: opts.engine.clone(),
            stats: Arc::new(Stats::new()),
            bypass_mark: if bypass { opts.bypass_mark } else { 0 },
        };
        let w = worker::Worker::spawn(
            cfg,
            Arc::clone(&load),
            Arc::clone(&injector),
            Arc::clone(&running.control),
        )?;
        running.workers.push(w);
    }
    if opts.install_iptables {
        let spec = iptables::QueueRuleSpec {
            queues: opts.queues,
            mark: opts.mark,
            bypass: opts.bypass_when_down,
            bypass_mark: bypass.then_some(opts.bypass_mark),
        };
        running.rules = Some(iptables::InstalledRules::install(&spec).map_err(InlineError::Iptables)?);
    }
    let sources = stats_server::Sources {
        workers: running
            .workers
            .iter()
            .map(|w| (w.queue_num(), Arc::clone(w.stats()), Arc::clone(w.driver_stats())))
            .collect(),
        inject: Arc::clone(&inject_stats),
    };
    let stop = Arc::clone(&running.control.stop);
    running.server =
        Some(stats_server::StatsServer::start(&opts.stats_socket, sources, stop).map_err(InlineError::Io)?);
    tracing::info!(
        queues = %format!("{first}:{last}"),
        stats_socket = %opts.stats_socket.display(),
        "sluice ready"
    );

    // Wait for SIGTERM/SIGINT (or a worker dying).
    while !running.control.stop.load(Ordering::SeqCst) {
        if running.workers.iter().any(|w| w.finished()) {
            tracing::error!("a worker stopped unexpectedly; shutting down");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("shutting down");
    let summary = running.stop();
    for line in &summary.lines {
        tracing::info!("final: {line}");
    }
    if summary.failed {
        return Err(InlineError::Io("a worker failed; see the log".into()));
    }
    Ok(())
}

/// `--bypass` needs a depth to be past, and a mark of its own.
fn check_bypass(opts: &InlineOptions) -> Result<(), String> {
    if opts.engine.stream_depth == 0 {
        return Err(
            "--bypass needs --stream-depth: a connection is bypassed once it is past the depth".into()
        );
    }
    if opts.bypass_mark == 0 {
        return Err("--bypass-mark must have at least one bit set".into());
    }
    if opts.bypass_mark & opts.mark != 0 {
        return Err(format!(
            "--bypass-mark {:#x} shares bits with --mark {:#x} (forged packets); pick distinct bits",
            opts.bypass_mark, opts.mark
        ));
    }
    Ok(())
}

/// What `run_with` started, stopped in order when it is dropped: the queue
/// rules first (no new packets are queued while the workers drain), then
/// the workers, the stats server and the signal thread.
struct Running {
    control: Arc<signals::Control>,
    signal_thread: Option<signals::SignalThread>,
    workers: Vec<worker::Worker>,
    rules: Option<iptables::InstalledRules>,
    server: Option<stats_server::StatsServer>,
}

/// How the workers ended.
struct StopSummary {
    failed: bool,
    lines: Vec<String>,
}

impl Running {
    /// Stops everything; says how each queue ended.
    fn stop(&mut self) -> StopSummary {
        drop(self.rules.take());
        self.control.draining.store(true, Ordering::SeqCst);
        self.control.stop.store(true, Ordering::SeqCst);
        let mut summary = StopSummary { failed: false, lines: Vec::new() };
        for w in self.workers.drain(..) {
            let q = w.queue_num();
            let d = Arc::clone(w.driver_stats());
            summary.failed |= !w.join();
            summary.lines.push(format!(
                "queue {q}: received {} verdicts {} unverdicted {}",
                d.received.load(Ordering::Relaxed),
                d.verdicts.load(Ordering::Relaxed),
                d.unverdicted.load(Ordering::Relaxed)
            ));
        }
        if let Some(s) = self.server.take() {
            s.stop();
        }
        if let Some(t) = self.signal_thread.take() {
            t.close();
        }
        summary
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Sets up tracing to stderr once (`SLUICE_LOG` wins over `level`).
pub fn init_logging(level: &str) {
    let filter = std::env::var("SLUICE_LOG").unwrap_or_else(|_| level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Used by `--queue`/`--queues` parsing: "N" or "A:B".
pub fn parse_queues(s: &str) -> Result<(u16, u16), String> {
    let num = |t: &str| t.trim().parse::<u16>().map_err(|_| format!("bad queue number {t:?}"));
    match s.split_once(':') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("queue range {a}:{b} is reversed"));
            }
            Ok((a, b))
        }
        None => num(s).map(|n| (n, n)),
    }
}

/// Used by `--mark` parsing: decimal or 0x-hex.
pub fn parse_mark(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("bad mark {s:?} (decimal or 0x-hex)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ranges() {
        assert_eq!(parse_queues("3"), Ok((3, 3)));
        assert_eq!(parse_queues("2:5"), Ok((2, 5)));
        assert!(parse_queues("5:2").is_err());
        assert!(parse_queues("x").is_err());
        assert!(parse_queues("70000").is_err());
    }

    #[test]
    fn marks() {
        assert_eq!(parse_mark("0x5e1ce"), Ok(0x5e1ce));
        assert_eq!(parse_mark("4096"), Ok(4096));
        assert!(parse_mark("0xzz").is_err());
    }
}
