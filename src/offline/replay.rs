//! The single-threaded replay (`--workers 1`, and [`run_with`] for tests
//! and benchmarks): record `i` of the input is the engine's packet `i`.
//! Before each packet the engine's clock is advanced ([`Engine::tick`]) to
//! the record's time, so timeouts happen as they would have inline.

use std::io::Write;
use std::path::Path;

use indicatif::ProgressBar;

use crate::capture::pcap::PcapSource;
use crate::engine::{Engine, Output, Packet};
use crate::inject::pcap_writer::PcapOutput;
use crate::inspect::Inspector;
use crate::stats::Counter;
use crate::time::Timestamp;

use super::apply::Applier;
use super::checksums::OffloadFinding;
use super::summary::Summary;
use super::OfflineError;

/// Replays a whole source through `engine`, writing to `output`. Used by
/// [`super::run`] and by tests and benchmarks with any inspector. The
/// engine is finished at the end (every held packet gets its verdict).
pub fn run_with<I: Inspector, W: Write>(
    engine: &mut Engine<I>,
    source: &mut PcapSource,
    output: Option<&mut PcapOutput<W>>,
) -> Result<Summary, OfflineError> {
    let (summary, result) =
        replay(engine, source, &OffloadFinding::default(), output, Path::new("<output>"), None);
    result.map(|()| summary)
}

/// The replay loop. Returns the summary even on error (what was done so
/// far). The checksums `offload`'s scan found right (if it ran) are not
/// computed again.
pub(super) fn replay<I: Inspector, W: Write>(
    engine: &mut Engine<I>,
    source: &mut PcapSource,
    offload: &OffloadFinding,
    output: Option<&mut PcapOutput<W>>,
    output_path: &Path,
    progress: Option<&ProgressBar>,
) -> (Summary, Result<(), OfflineError>) {
    let write_err =
        |source| OfflineError::Write { what: "output pcap", path: output_path.to_path_buf(), source };
    let mut a = Applier::new(output);
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
            if let Err(e) = a.not_ip(&rec).and_then(|()| a.apply(out.items.drain(..), time_ns)) {
                result = Err(write_err(e));
                break;
            }
            continue;
        };
        let pkt = Packet {
            id: rec.index,
            data: rec.frame.get(l3).unwrap_or(&[]),
            time: rec.time,
            checksum: offload.state(rec.index),
        };
        engine.process(pkt, &mut out);
        a.wait_for_verdict(rec);
        if let Err(e) = a.apply(out.items.drain(..), time_ns) {
            result = Err(write_err(e));
            break;
        }
    }

    out.clear();
    engine.finish(last_time, &mut out);
    if let Err(e) = a.apply(out.items.drain(..), last_time_ns) {
        if result.is_ok() {
            result = Err(write_err(e));
        }
    }
    a.close_book();
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
