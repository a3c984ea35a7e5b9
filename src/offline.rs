//! The offline driver behind `sluice pcap`: replays a capture file through
//! the engine and writes what would have passed to an output pcap.
//!
//! Record `i` of the input is the engine's packet `i`. Before each packet the
//! engine's clock is advanced ([`Engine::tick`]) to the record's time, so
//! timeouts happen as they would have inline. The engine's output is applied
//! in order: an accepted packet's original frame is written, a dropped one is
//! not, a modified one is written behind its own link header, and forged
//! packets (RSTs) are written behind a header borrowed from their connection,
//! stamped with the time of the packet that caused them. Frames that carry no
//! IP packet (ARP, ...) are written through unchanged.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::capture::offload::{describe as describe_offload, OffloadScan, OffloadedHost};
use crate::capture::pcap::{CaptureError, PcapSource, Record};
use crate::config::{EngineConfig, RulesConfig};
use crate::engine::{ChecksumState, Emitted, Engine, Output, Packet, PacketId, Verdict};
use crate::inject::pcap_writer::PcapOutput;
use crate::inspect::Inspector;
use crate::stats::{Counter, Stats};
use crate::stream_dump::{DumpSummary, StreamDump};
use crate::time::Timestamp;

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
        }
    }
}

/// The outcome of a replay. Every record is counted exactly once among
/// `non_ip`, `accepted`, `modified`, `dropped` and `missing_verdicts`.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Records read from the input.
    pub packets_in: u64,
    /// IP packets accepted unchanged.
    pub accepted: u64,
    /// IP packets dropped.
    pub dropped: u64,
    /// IP packets accepted with new bytes.
    pub modified: u64,
    /// Packets sluice forged (RSTs) and wrote.
    pub forged: u64,
    /// Frames without an IP packet, written through unchanged.
    pub non_ip: u64,
    /// TCP connections and UDP flows the engine created.
    pub flows: u64,
    /// Alerts raised by rules.
    pub alerts: u64,
    /// Rule errors.
    pub rule_errors: u64,
    /// Each rule that raised errors (`name (file:line)` or `file:line`)
    /// with its count, in declaration order.
    pub rule_errors_by_rule: Vec<(String, u64)>,
    /// Records that never got a verdict (an engine bug; never expected).
    pub missing_verdicts: u64,
    /// Verdicts for packets that were not waiting for one (an engine bug).
    pub unexpected_verdicts: u64,
    /// Records written to the output pcap.
    pub written: u64,
    /// Set if the input ended in the middle of a record: the warning.
    pub truncated: Option<String>,
    /// What the stream dump wrote, if one was asked for.
    pub dump: Option<DumpSummary>,
    /// Every engine counter at the end of the run.
    pub counters: Vec<(&'static str, u64)>,
    /// Hosts whose checksums were not verified (`--checksums auto`), with
    /// what they left to their NIC and their counts.
    pub checksum_offload: Vec<OffloadedHost>,
    /// The run was a `--passive` analysis (verdicts are what would have
    /// happened inline).
    pub passive: bool,
}

impl Summary {
    /// The engine counter `name` at the end of the run (0 if unknown).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }

    /// True if the driver saw the engine break its contract.
    pub fn has_errors(&self) -> bool {
        self.missing_verdicts > 0 || self.unexpected_verdicts > 0
    }

    /// The summary as JSON (`--summary-json`).
    pub fn to_json(&self) -> serde_json::Value {
        let counters: serde_json::Map<String, serde_json::Value> =
            self.counters.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        json!({
            "packets_in": self.packets_in,
            "accepted": self.accepted,
            "dropped": self.dropped,
            "modified": self.modified,
            "forged": self.forged,
            "non_ip": self.non_ip,
            "flows": self.flows,
            "alerts": self.alerts,
            "rule_errors": self.rule_errors,
            "rule_errors_by_rule": self.rule_errors_by_rule.iter()
                .map(|(rule, n)| json!({"rule": rule, "errors": n})).collect::<Vec<_>>(),
            "missing_verdicts": self.missing_verdicts,
            "unexpected_verdicts": self.unexpected_verdicts,
            "written": self.written,
            "truncated": self.truncated,
            "passive": self.passive,
            "streams": self.dump.as_ref().map(|d| json!({"connections": d.connections, "bytes": d.bytes})),
            "checksum_offload": self.checksum_offload.iter().map(|(host, o, c)| json!({
                "host": host.to_string(),
                "transport_unverified": o.transport,
                "ip_header_unverified": o.ip_header,
                "transport_seen": c.transport_seen,
                "transport_bad": c.transport_bad,
                "ipv4_seen": c.ipv4_seen,
                "ip_header_zero": c.ip_header_zero,
            })).collect::<Vec<_>>(),
            "counters": counters,
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} packets: {} accepted, {} dropped, {} modified, {} not IP; {} forged",
            self.packets_in, self.accepted, self.dropped, self.modified, self.non_ip, self.forged
        )?;
        writeln!(
            f,
            "{} flows, {} alerts, {} rule errors, {} records written",
            self.flows, self.alerts, self.rule_errors, self.written
        )?;
        for (rule, n) in &self.rule_errors_by_rule {
            writeln!(f, "rule errors: {n} in {rule}")?;
        }
        if let Some(d) = &self.dump {
            writeln!(f, "stream dump: {} connections, {} bytes", d.connections, d.bytes)?;
        }
        if self.passive {
            writeln!(
                f,
                "passive: {} gaps ({} bytes missing from the capture), {} overlap conflicts; \
                 drops and forged packets are what would have happened inline",
                self.counter("passive_gaps"),
                self.counter("passive_gap_bytes"),
                self.counter("passive_overlap_conflicts")
            )?;
        } else if self.counter("drop_tcp_bad_ack") > 0 {
            writeln!(
                f,
                "hint: {} packets acknowledge data the capture does not contain (capture loss?); \
                 --passive analyses a capture from a tap or a host",
                self.counter("drop_tcp_bad_ack")
            )?;
        }
        for (host, o, c) in &self.checksum_offload {
            writeln!(f, "checksums: {}", describe_offload(*host, *o, c))?;
        }
        if let Some(t) = &self.truncated {
            writeln!(f, "warning: {t}")?;
        }
        if self.has_errors() {
            writeln!(
                f,
                "error: {} packets got no verdict, {} verdicts for unknown packets",
                self.missing_verdicts, self.unexpected_verdicts
            )?;
        }
        let nonzero: Vec<String> = self
            .counters
            .iter()
            .filter(|(k, v)| *v > 0 && k.starts_with("drop_"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !nonzero.is_empty() {
            writeln!(f, "drops: {}", nonzero.join(" "))?;
        }
        Ok(())
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
    let mut source = PcapSource::open(&opts.input)?;
    let (engine_config, offloaded) = checksum_config(opts)?;
    let stats = Arc::new(Stats::new());
    let rules = load_rules(&opts.rules, &opts.rules_config, opts.alerts.as_deref(), stats.clone())?;
    let mut output = match &opts.output {
        Some(path) => Some(
            PcapOutput::create(path, source.link_type(), source.nanosecond_timestamps(), source.snaplen())
                .map_err(|source| OfflineError::Write { what: "output pcap", path: path.clone(), source })?,
        ),
        None => None,
    };
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
            let r = replay(&mut engine, &mut source, output.as_mut(), &out_path, progress.as_ref());
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
            let (mut summary, r) =
                replay(&mut engine, &mut source, output.as_mut(), &out_path, progress.as_ref());
            summary.rule_errors_by_rule = engine.inspector().rule_errors();
            (summary, r)
        }
    };
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    summary.checksum_offload = offloaded;
    summary.passive = opts.engine.passive;
    if let Some(out) = output {
        out.finish().map_err(|source| OfflineError::Write { what: "output pcap", path: out_path, source })?;
    }
    match result {
        Ok(()) => Ok(summary),
        Err(OfflineError::Capture(error)) => Err(OfflineError::Damaged { error, summary: Box::new(summary) }),
        Err(e) => Err(e),
    }
}

/// The engine configuration for `opts.checksums`: in `Auto`, the capture is
/// read once first to find the hosts that left checksums to NIC offload
/// (the summary names each).
fn checksum_config(opts: &OfflineOptions) -> Result<(EngineConfig, Vec<OffloadedHost>), OfflineError> {
    let mut config = opts.engine.clone();
    match opts.checksums {
        ChecksumMode::Ignore => config.verify_checksums = false,
        ChecksumMode::Verify => {}
        ChecksumMode::Auto if !config.verify_checksums => {}
        ChecksumMode::Auto => {
            let offloaded = OffloadScan::of_file(&opts.input)?.offloaded();
            for (host, offload, counts) in &offloaded {
                // Said once, in the summary; here only for debugging.
                tracing::info!("checksums: {}", describe_offload(*host, *offload, counts));
                config.checksum_offload.insert(*host, *offload);
            }
            return Ok((config, offloaded));
        }
    }
    Ok((config, Vec::new()))
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

/// Replays a whole source through `engine`, writing to `output`. Used by
/// [`run`] and by tests and benchmarks with any inspector. The engine is
/// finished at the end (every held packet gets its verdict).
pub fn run_with<I: Inspector, W: Write>(
    engine: &mut Engine<I>,
    source: &mut PcapSource,
    output: Option<&mut PcapOutput<W>>,
) -> Result<Summary, OfflineError> {
    let (summary, result) = replay(engine, source, output, Path::new("<output>"), None);
    result.map(|()| summary)
}

/// Packets waiting for their verdict, and the bookkeeping that proves every
/// record got exactly one.
#[derive(Default)]
struct VerdictBook {
    held: HashMap<PacketId, Record>,
}

/// Applies the engine's output; returns the first write error.
struct Applier<'a, W: Write> {
    output: Option<&'a mut PcapOutput<W>>,
    book: VerdictBook,
    summary: Summary,
}

impl<W: Write> Applier<'_, W> {
    fn write(&mut self, r: io::Result<()>) -> io::Result<()> {
        r?;
        self.summary.written += 1;
        Ok(())
    }

    /// Handles `out.items` in order; `current` is the record just processed
    /// (held in the book if it got no verdict yet).
    fn apply(&mut self, out: &mut Output, mut current: Option<Record>, time_ns: u64) -> io::Result<()> {
        for item in out.items.drain(..) {
            match item {
                Emitted::Verdict(id, verdict) => {
                    let rec = match current.take_if(|r| r.index == id) {
                        Some(r) => Some(r),
                        None => self.book.held.remove(&id),
                    };
                    let Some(rec) = rec else {
                        tracing::error!(
                            "engine gave a verdict for packet {id}, which is not waiting for one"
                        );
                        self.summary.unexpected_verdicts += 1;
                        continue;
                    };
                    match verdict {
                        Verdict::Accept => {
                            self.summary.accepted += 1;
                            if let Some(o) = self.output.as_deref_mut() {
                                let r = o.write_frame(rec.time_ns, &rec.frame, rec.orig_len);
                                self.write(r)?;
                            }
                        }
                        Verdict::Drop => self.summary.dropped += 1,
                        Verdict::AcceptModified(bytes) => {
                            self.summary.modified += 1;
                            if let Some(o) = self.output.as_deref_mut() {
                                let header = rec.link_header().unwrap_or(&[]);
                                let r = o.write_with_header(rec.time_ns, header, &bytes);
                                self.write(r)?;
                            }
                        }
                    }
                }
                Emitted::Forged(p) => {
                    self.summary.forged += 1;
                    if let Some(o) = self.output.as_deref_mut() {
                        let r = o.write_forged(time_ns, &p);
                        self.write(r)?;
                    }
                }
            }
        }
        if let Some(rec) = current {
            self.book.held.insert(rec.index, rec);
        }
        Ok(())
    }
}

/// The replay loop. Returns the summary even on error (what was done so far).
fn replay<I: Inspector, W: Write>(
    engine: &mut Engine<I>,
    source: &mut PcapSource,
    output: Option<&mut PcapOutput<W>>,
    output_path: &Path,
    progress: Option<&ProgressBar>,
) -> (Summary, Result<(), OfflineError>) {
    let write_err =
        |source| OfflineError::Write { what: "output pcap", path: output_path.to_path_buf(), source };
    let mut a = Applier { output, book: VerdictBook::default(), summary: Summary::default() };
    let mut out = Output::new();
    let mut last_time = Timestamp::default();
    let mut last_time_ns = 0u64;
    let mut result = Ok(());

    while let Some(next) = source.next_record() {
        let rec = match next {
            Ok(r) => r,
            Err(e) if e.is_truncation() => {
                tracing::warn!("{e}; processing the {} records before it", a.summary.packets_in);
                a.summary.truncated = Some(e.to_string());
                break;
            }
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        a.summary.packets_in += 1;
        if let Some(p) = progress {
            if rec.index % 1024 == 0 {
                p.set_position(source.offset());
            }
        }
        last_time = last_time.max(rec.time);
        last_time_ns = last_time_ns.max(rec.time_ns);
        let time_ns = rec.time_ns;
        out.clear();
        engine.tick(rec.time, &mut out);
        let Some(l3) = rec.l3.clone() else {
            // Not IP: written through; the tick's output (if any) still applies.
            a.summary.non_ip += 1;
            let r = match a.output.as_deref_mut() {
                Some(o) => o.write_frame(rec.time_ns, &rec.frame, rec.orig_len),
                None => Ok(()),
            };
            if let Err(e) = a.write(r).and_then(|()| a.apply(&mut out, None, time_ns)) {
                result = Err(write_err(e));
                break;
            }
            continue;
        };
        if let (Some(o), Some(ip)) = (a.output.as_deref_mut(), rec.frame.get(l3.clone())) {
            o.learn(&rec.frame[..l3.start], ip);
        }
        let pkt = Packet {
            id: rec.index,
            data: rec.frame.get(l3).unwrap_or(&[]),
            time: rec.time,
            checksum: ChecksumState::Unchecked,
        };
        engine.process(pkt, &mut out);
        if let Err(e) = a.apply(&mut out, Some(rec), time_ns) {
            result = Err(write_err(e));
            break;
        }
    }

    out.clear();
    engine.finish(last_time, &mut out);
    if let Err(e) = a.apply(&mut out, None, last_time_ns) {
        if result.is_ok() {
            result = Err(write_err(e));
        }
    }
    let missing = a.book.held.len() as u64;
    if missing > 0 {
        tracing::error!("{missing} packets got no verdict from the engine");
    }
    a.summary.missing_verdicts = missing;
    debug_assert!(
        result.is_err() || !a.summary.has_errors(),
        "every record gets exactly one verdict: {} missing, {} unexpected",
        a.summary.missing_verdicts,
        a.summary.unexpected_verdicts
    );
    let stats = engine.stats();
    a.summary.flows = stats.get(Counter::TcpConnections) + stats.get(Counter::UdpFlows);
    a.summary.alerts = stats.get(Counter::Alerts);
    a.summary.rule_errors = stats.get(Counter::RuleErrors);
    a.summary.counters = stats.snapshot();
    (a.summary, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::link::{locate_ip, LinkType};
    use crate::pcapgen::Framing;
    use crate::wire::decode;
    use crate::wire::decode::v4;
    use crate::wire::forge::udp_packet;

    fn record(index: u64, ip: &[u8]) -> Record {
        let frame = Framing::Ethernet.frame(ip);
        let l3 = locate_ip(LinkType::Ethernet, &frame);
        Record {
            index,
            time: Timestamp(index),
            time_ns: index * 1000,
            orig_len: frame.len() as u32,
            frame,
            l3,
        }
    }

    fn written(out: PcapOutput<Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
        let bytes = out.finish().unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
        let mut v = vec![];
        while let Some(p) = r.next_raw_packet() {
            let p = p.unwrap();
            v.push((u64::from(p.ts_frac), p.data.into_owned()));
        }
        v
    }

    #[test]
    fn held_packets_are_written_when_their_verdict_comes() {
        let a = udp_packet(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, b"a");
        let b = udp_packet(v4(2, 2, 2, 2), 2, v4(1, 1, 1, 1), 1, b"b");
        let mut out = PcapOutput::new(Vec::new(), LinkType::Ethernet, false, 0).unwrap();
        let (ra, rb) = (record(0, &a), record(1, &b));
        out.learn(ra.link_header().unwrap(), ra.ip().unwrap());
        let mut ap =
            Applier { output: Some(&mut out), book: VerdictBook::default(), summary: Summary::default() };
        let mut o = Output::new();
        // Packet 0: no verdict yet (held). Packet 1: its own verdict, then 0's,
        // and an RST-like forged packet from 2.2.2.2 to 1.1.1.1.
        ap.apply(&mut o, Some(ra.clone()), 0).unwrap();
        assert_eq!(ap.book.held.len(), 1);
        o.verdict(1, Verdict::Drop);
        o.verdict(0, Verdict::Accept);
        o.forged(b.clone());
        o.verdict(5, Verdict::Accept);
        ap.apply(&mut o, Some(rb), 1000).unwrap();
        assert!(ap.book.held.is_empty());
        let s = ap.summary;
        assert_eq!((s.accepted, s.dropped, s.forged, s.unexpected_verdicts, s.written), (1, 1, 1, 1, 2));
        let w = written(out);
        assert_eq!(w[0].1, ra.frame, "held frame written byte-identical");
        assert_eq!(w[1].0, 1, "forged packet stamped with the causing packet's time (µs)");
        // Forged B→A frame: A→B's Ethernet header reversed.
        assert_eq!(&w[1].1[..6], &ra.frame[6..12]);
        assert_eq!(&w[1].1[6..12], &ra.frame[..6]);
        assert_eq!(&w[1].1[14..], &b[..]);
    }

    #[test]
    fn modified_packets_keep_their_link_header() {
        let a = udp_packet(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, b"original");
        let new = udp_packet(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, b"changed!!");
        let mut out = PcapOutput::new(Vec::new(), LinkType::Ethernet, false, 0).unwrap();
        let ra = record(3, &a);
        let mut ap =
            Applier { output: Some(&mut out), book: VerdictBook::default(), summary: Summary::default() };
        let mut o = Output::new();
        o.verdict(3, Verdict::AcceptModified(new.clone()));
        ap.apply(&mut o, Some(ra.clone()), 0).unwrap();
        assert_eq!(ap.summary.modified, 1);
        let w = written(out);
        assert_eq!(&w[0].1[..14], ra.link_header().unwrap());
        assert_eq!(decode(&w[0].1[14..]).unwrap().payload(), b"changed!!");
    }

    #[test]
    fn summary_json_has_every_counter() {
        let s = Summary { packets_in: 3, counters: Stats::new().snapshot(), ..Summary::default() };
        let j = s.to_json();
        assert_eq!(j["packets_in"], 3);
        assert_eq!(j["counters"].as_object().unwrap().len(), Counter::ALL.len());
        assert!(s.to_string().starts_with("3 packets"));
    }
}
