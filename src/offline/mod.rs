//! The offline driver behind `sluice pcap`: replays a capture file through
//! the engine and writes what would have passed to an output pcap.
//!
//! With one worker the replay runs on this thread ([`replay`]); with more,
//! a dispatcher shards the capture by flow over worker threads, each with
//! its own engine and rules, and every output is merged back in input
//! order ([`sharded`]), byte for byte what one worker writes. Either way
//! the engine's output is applied in order by [`apply`]. Frames that carry
//! no IP packet (ARP, ...) are written through unchanged.

mod apply;
mod checksums;
mod log_capture;
mod replay;
mod sharded;
mod summary;

use std::fmt;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use crate::capture::pcap::{CaptureError, PcapSource};
use crate::config::{EngineConfig, RulesConfig};
use crate::engine::Engine;
use crate::inject::pcap_writer::PcapOutput;
use crate::stats::Stats;
use crate::stream_dump::StreamDump;

pub use log_capture::OrderedStderr;
pub use replay::run_with;
pub use summary::Summary;

/// Inputs smaller than this get no progress bar (they finish before it helps).
const PROGRESS_MIN_BYTES: u64 = 10 << 20;

/// How `sluice pcap` treats checksums (`--checksums`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Find the hosts that left checksums to NIC offload and verify every
    /// other host's (see [`crate::capture::offload`]).
    #[default]
    Auto,
    /// Verify every checksum (what an endpoint does).
    Verify,
    /// Verify none.
    Ignore,
}

/// What `sluice pcap` was asked to do.
#[derive(Debug, Clone)]
pub struct OfflineOptions {
    /// The Lua rule file.
    pub rules: PathBuf,
    /// The capture to replay.
    pub input: PathBuf,
    /// Where to write what passed (nothing written if `None`).
    pub output: Option<PathBuf>,
    /// Where alerts go (JSON lines); stdout if `None`.
    pub alerts: Option<PathBuf>,
    /// Directory for stream dumps.
    pub dump_streams: Option<PathBuf>,
    /// Engine limits and policies.
    pub engine: EngineConfig,
    /// Rule limits and error policy.
    pub rules_config: RulesConfig,
    /// Show a progress bar (only if stderr is a terminal and the input is large).
    pub progress: bool,
    /// How checksums are treated (`engine.verify_checksums == false` is `Ignore`).
    pub checksums: ChecksumMode,
    /// Worker threads, each with its own engine and rules (1: everything
    /// on the calling thread). Outputs are the same for any number.
    pub workers: usize,
}

impl OfflineOptions {
    /// Options with default engine and rule settings.
    pub fn new(rules: impl Into<PathBuf>, input: impl Into<PathBuf>) -> Self {
        OfflineOptions {
            rules: rules.into(),
            input: input.into(),
            output: None,
            alerts: None,
            dump_streams: None,
            engine: EngineConfig::default(),
            rules_config: RulesConfig::default(),
            progress: false,
            checksums: ChecksumMode::Auto,
            workers: 1,
        }
    }
}

/// Why a replay failed.
#[derive(Debug)]
pub enum OfflineError {
    /// The input could not be read.
    Capture(CaptureError),
    /// The input is damaged part-way: every record before the damage was
    /// processed and every output written; `summary` says what was done.
    Damaged {
        /// Where and how the file is damaged.
        error: CaptureError,
        /// The run up to the damage.
        summary: Box<Summary>,
    },
    /// The rules did not load (message names file and line).
    Rules(String),
    /// A worker thread of `--workers N` stopped or fell out of step (a bug).
    Worker(String),
    /// A file sluice writes could not be written.
    Write {
        /// What it is ("output pcap", "alerts", "stream dump").
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for OfflineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfflineError::Capture(e) | OfflineError::Damaged { error: e, .. } => e.fmt(f),
            OfflineError::Rules(e) => f.write_str(e),
            OfflineError::Worker(e) => write!(f, "--workers: {e}"),
            OfflineError::Write { what, path, source } => write!(f, "{} ({what}): {source}", path.display()),
        }
    }
}

impl std::error::Error for OfflineError {}

impl From<CaptureError> for OfflineError {
    fn from(e: CaptureError) -> Self {
        OfflineError::Capture(e)
    }
}

/// The inspector `run` uses.
pub type Rules = crate::rules::LuaRules;

/// Loads the rule file. Alerts go to `alerts` (a file) or stdout.
pub fn load_rules(
    path: &Path,
    cfg: &RulesConfig,
    alerts: Option<&Path>,
    stats: Arc<Stats>,
) -> Result<Rules, OfflineError> {
    let sink = match alerts {
        Some(p) => crate::alert::AlertSink::to_file(p).map_err(|source| OfflineError::Write {
            what: "alerts",
            path: p.into(),
            source,
        })?,
        None => crate::alert::AlertSink::stdout(),
    };
    crate::rules::LuaRules::load(path, cfg, crate::rules::RuleSinks { alerts: sink, stats })
        .map_err(|e| OfflineError::Rules(e.to_string()))
}

/// What `sluice check` reports about a rule file.
pub use crate::rules::CheckReport;

/// Loads a rule file without running traffic through it.
pub fn check_rules(path: &Path, cfg: &RulesConfig) -> Result<CheckReport, String> {
    crate::rules::check(path, cfg).map_err(|e| e.to_string())
}

/// Replays `opts.input` through the rules in `opts.rules`.
pub fn run(opts: &OfflineOptions) -> Result<Summary, OfflineError> {
    if opts.workers > 1 {
        sharded::run(opts)
    } else {
        run_single(opts)
    }
}

/// The single-threaded run (`--workers 1`).
fn run_single(opts: &OfflineOptions) -> Result<Summary, OfflineError> {
    let mut source = PcapSource::open(&opts.input)?;
    let (engine_config, offload) = checksums::checksum_config(opts, &source)?;
    source.page_ahead();
    let stats = Arc::new(Stats::new());
    let rules = load_rules(&opts.rules, &opts.rules_config, opts.alerts.as_deref(), stats.clone())?;
    let mut output = create_output(opts, &source)?;
    let progress = progress_bar(opts, &opts.input);
    let out_path = opts.output.clone().unwrap_or_default();
    let (mut summary, result) = match &opts.dump_streams {
        Some(dir) => {
            let dump = StreamDump::new(rules, dir).map_err(|source| OfflineError::Write {
                what: "stream dump",
                path: dir.clone(),
                source,
            })?;
            let mut engine = Engine::with_stats(engine_config, dump, stats);
            let r = replay::replay(
                &mut engine,
                &mut source,
                &offload,
                output.as_mut(),
                &out_path,
                progress.as_ref(),
            );
            let mut summary = r.0;
            summary.rule_errors_by_rule = engine.inspector().inner().rule_errors();
            match engine.inspector_mut().finish() {
                Ok(d) => summary.dump = Some(d),
                Err(source) => {
                    return Err(OfflineError::Write { what: "stream dump", path: dir.clone(), source });
                }
            }
            (summary, r.1)
        }
        None => {
            let mut engine = Engine::with_stats(engine_config, rules, stats);
            let (mut summary, r) = replay::replay(
                &mut engine,
                &mut source,
                &offload,
                output.as_mut(),
                &out_path,
                progress.as_ref(),
            );
            summary.rule_errors_by_rule = engine.inspector().rule_errors();
            (summary, r)
        }
    };
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    summary.checksum_offload = offload.offloaded();
    summary.passive = opts.engine.passive;
    if let Some(out) = output {
        out.finish().map_err(|source| OfflineError::Write { what: "output pcap", path: out_path, source })?;
    }
    outcome(summary, result)
}

/// The run's result: a capture damaged part-way still has its summary.
fn outcome(summary: Summary, result: Result<(), OfflineError>) -> Result<Summary, OfflineError> {
    match result {
        Ok(()) => Ok(summary),
        Err(OfflineError::Capture(error)) => Err(OfflineError::Damaged { error, summary: Box::new(summary) }),
        Err(e) => Err(e),
    }
}

/// The output pcap, if one was asked for (same link type, time resolution
/// and snap length as the input).
fn create_output(opts: &OfflineOptions, source: &PcapSource) -> Result<Option<PcapOutput>, OfflineError> {
    let Some(path) = &opts.output else { return Ok(None) };
    PcapOutput::create(path, source.link_type(), source.nanosecond_timestamps(), source.snaplen())
        .map(Some)
        .map_err(|source| OfflineError::Write { what: "output pcap", path: path.clone(), source })
}

fn progress_bar(opts: &OfflineOptions, input: &Path) -> Option<ProgressBar> {
    if !opts.progress || !io::stderr().is_terminal() {
        return None;
    }
    let size = std::fs::metadata(input).ok()?.len();
    if size < PROGRESS_MIN_BYTES {
        return None;
    }
    let bar = ProgressBar::new(size);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
    {
        bar.set_style(style);
    }
    Some(bar)
}
