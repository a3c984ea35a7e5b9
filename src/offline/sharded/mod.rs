//! `sluice pcap --workers N`: flow-sharded replay on N worker threads, with
//! outputs byte-identical to one worker.
//!
//! ```text
//!              ┌─► worker 0 (engine + Lua) ─┐
//! dispatcher ──┼─► worker 1 (engine + Lua) ─┼─► merge (this thread) ─► pcap, alerts, dumps, logs
//!   (read,     └─► ...                     ─┘        ▲
//!    defrag)  ──────── routing of each record ───────┘
//! ```
//!
//! The dispatcher reads records in batches, reassembles IP fragments and
//! sends each whole packet to the worker of its flow ([`shard`]). Every
//! worker advances its clock with every record, so timeouts fire at the same
//! record as with one engine. Workers cut what they emit into pieces
//! ([`messages::Piece`]); the merge ([`merge`]) applies them in input order.
//! Channels are bounded, so memory stays bounded whatever the input size.

mod dispatch;
mod dump_tap;
mod merge;
mod messages;
mod shard;
mod worker;

use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::capture::pcap::PcapSource;
use crate::engine::Engine;
use crate::inspect::NoRules;
use crate::stats::{Counter, Stats};
use crate::stream_dump::StreamDump;

use super::apply::Applier;
use super::summary::Summary;
use super::{OfflineError, OfflineOptions};
use merge::{AlertOut, Merge, MergeError};
use messages::{Done, Routed};

/// Records per batch: large enough that a channel message per worker per
/// batch costs next to nothing per packet.
const BATCH: usize = 512;
/// A batch also ends once its frames hold this many bytes, so that the
/// bytes in flight stay bounded whatever the record sizes (see [`QUEUE`]).
const BATCH_BYTES: usize = 1 << 20;
/// Batches in flight on each channel. Deep enough that one worker running
/// ahead of the other does not stall: flows are lumpy (a 1 MiB transfer
/// lives on one worker), and with 4 the faster worker waited for the
/// dispatcher, itself blocked on the slower worker's full queue, for about
/// a third of the run (`perf sched`, `find` rule on the bench capture,
/// `--workers 2`); at 32 the waits halved and the median wall time fell by
/// 10 to 25% over paired runs. The dispatcher is never more than `QUEUE + 2`
/// batches ahead of the merge (the merge's own channel is this deep too),
/// so at most about 34 MiB of frames are in flight: inside the 64 MiB the
/// map pager keeps mapped behind the reader.
const QUEUE: usize = 32;

/// Replays `opts.input` on `opts.workers` workers.
pub(super) fn run(opts: &OfflineOptions) -> Result<Summary, OfflineError> {
    no_huge_pages();
    let mut source = PcapSource::open(&opts.input)?;
    let (config, offload) = super::checksums::checksum_config(opts, &source)?;
    // Reports a bad rule file as one worker would, before any thread starts.
    crate::rules::check(&opts.rules, &opts.rules_config).map_err(|e| OfflineError::Rules(e.to_string()))?;
    let alerts = AlertOut::new(alert_writer(opts.alerts.as_deref())?);
    let mut output = super::create_output(opts, &source)?;
    let dump = match &opts.dump_streams {
        Some(dir) => Some(StreamDump::new(NoRules, dir).map_err(|source| OfflineError::Write {
            what: "stream dump",
            path: dir.clone(),
            source,
        })?),
        None => None,
    };
    let progress = super::progress_bar(opts, &opts.input);
    let out_path = opts.output.clone().unwrap_or_default();
    let n = opts.workers.max(1);
    let front_stats = Arc::new(Stats::new());
    let worker_stats: Vec<Arc<Stats>> = (0..n).map(|_| Arc::new(Stats::new())).collect();
    let merge = Merge::new(Applier::new(output.as_mut()), alerts, dump, n);
    let (mut summary, dump, tables, result) = std::thread::scope(|s| {
        let (routed_tx, routed_rx) = sync_channel(QUEUE);
        let mut work = Vec::with_capacity(n);
        let mut done = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n + 1);
        for (w, stats) in worker_stats.iter().enumerate() {
            let (work_tx, work_rx) = sync_channel(QUEUE);
            let (done_tx, done_rx) = sync_channel(QUEUE);
            let setup = worker::Setup {
                rules: opts.rules.clone(),
                rules_config: opts.rules_config.clone(),
                config: config.clone(),
                stats: Arc::clone(stats),
                dump: opts.dump_streams.is_some(),
            };
            let thread = std::thread::Builder::new().name(format!("sluice-worker-{w}"));
            match thread.spawn_scoped(s, move || worker::run(setup, work_rx, done_tx)) {
                Ok(h) => threads.push(h),
                Err(e) => return failed_to_start(e),
            }
            work.push(work_tx);
            done.push(done_rx);
        }
        // The dispatcher reads only headers: each would be a cache miss.
        source.prefetch_ahead();
        source.page_ahead();
        let dispatcher = dispatch::Dispatcher {
            source,
            engine: Engine::with_stats(config.clone(), NoRules, Arc::clone(&front_stats)),
            sharder: shard::Sharder::new(n),
            offload: offload.clone(),
            work,
            routed: routed_tx,
            progress: progress.as_ref(),
        };
        let thread = std::thread::Builder::new().name("sluice-dispatch".into());
        match thread.spawn_scoped(s, move || dispatcher.run()) {
            Ok(h) => threads.push(h),
            Err(e) => return failed_to_start(e),
        }
        let mut merged = merge_all(merge, routed_rx, done, &out_path);
        // The merge let go of its channels: every thread ends. A thread
        // that panicked (a bug) fails the run instead of the process.
        for h in threads {
            if h.join().is_err() && merged.3.is_ok() {
                merged.3 = Err(OfflineError::Worker("a thread of the run panicked".into()));
            }
        }
        merged
    });
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let all = std::iter::once(&front_stats).chain(&worker_stats).map(|s| &**s);
    summary.counters = Stats::merged(all);
    summary.flows =
        summary.counter(Counter::TcpConnections.name()) + summary.counter(Counter::UdpFlows.name());
    summary.alerts = summary.counter(Counter::Alerts.name());
    summary.rule_errors = summary.counter(Counter::RuleErrors.name());
    summary.rule_errors_by_rule = add_up_rule_errors(&tables);
    summary.checksum_offload = offload.offloaded();
    summary.passive = opts.engine.passive;
    if let Some(mut d) = dump {
        let dir = opts.dump_streams.clone().unwrap_or_default();
        let s =
            d.finish().map_err(|source| OfflineError::Write { what: "stream dump", path: dir, source })?;
        summary.dump = Some(s);
    }
    if let Some(out) = output {
        out.finish().map_err(|source| OfflineError::Write { what: "output pcap", path: out_path, source })?;
    }
    super::outcome(summary, result)
}

/// Turns transparent huge pages off for this process. mimalloc asks for
/// huge pages for its heaps, and each thread has its own: every worker's
/// first touches of its engine's tables and rings then zeroed whole 2 MiB
/// pages for the few KiB it used. On the 300 MB bench capture that was 40%
/// of each worker's CPU time with `--workers 2` (`clear_page_erms` in
/// perf), and nothing measurable with one thread. Only a hint: if refused,
/// the run goes on as before.
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only how
    // the kernel backs this process's future page faults.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        tracing::debug!("transparent huge pages stay on: {}", std::io::Error::last_os_error());
    }
}

/// A thread could not be started: nothing was read (the threads already
/// started see their channels close and end).
fn failed_to_start(e: std::io::Error) -> Merged {
    let error = OfflineError::Worker(format!("cannot start a thread: {e}"));
    (Summary::default(), None, Vec::new(), Err(error))
}

/// Where alerts go: the `--alerts` file, or stdout.
fn alert_writer(path: Option<&Path>) -> Result<Box<dyn Write + Send>, OfflineError> {
    match path {
        Some(p) => std::fs::File::create(p)
            .map(|f| Box::new(std::io::BufWriter::new(f)) as Box<dyn Write + Send>)
            .map_err(|source| OfflineError::Write { what: "alerts", path: p.into(), source }),
        None => Ok(Box::new(std::io::stdout())),
    }
}

/// What the merge leaves: the summary so far, the stream dump to finish,
/// each worker's rule error table, and how the run ended.
type Merged = (Summary, Option<StreamDump<NoRules>>, Vec<Vec<(String, u64)>>, Result<(), OfflineError>);

/// Runs the merge until the end of input or the first error.
fn merge_all<W: Write>(
    mut m: Merge<'_, W>,
    routed: Receiver<Routed>,
    done: Vec<Receiver<Result<Done, String>>>,
    out_path: &Path,
) -> Merged {
    let mut tables = Vec::new();
    let result = loop {
        let mut answers = Vec::with_capacity(done.len());
        let mut failed = None;
        for (w, rx) in done.iter().enumerate() {
            match rx.recv() {
                Ok(Ok(d)) => answers.push(d),
                Ok(Err(e)) => failed = failed.or(Some(OfflineError::Rules(e))),
                Err(_) => failed = failed.or(Some(OfflineError::Worker(format!("worker {w} stopped")))),
            }
        }
        let batch = match (failed, routed.recv()) {
            (Some(e), _) => break Err(e),
            (None, Err(_)) => break Err(OfflineError::Worker("the capture reader stopped".into())),
            (None, Ok(b)) => b,
        };
        tables.extend(answers.iter_mut().filter_map(|d| d.rule_errors.take()));
        m.load(answers);
        let r = merge_batch(&mut m, batch);
        m.flush();
        match r {
            Ok(None) => {}
            Ok(Some(end)) => break end,
            Err(MergeError::Write(source)) => {
                break Err(OfflineError::Write { what: "output pcap", path: out_path.to_path_buf(), source })
            }
            Err(MergeError::OutOfStep(e)) => break Err(OfflineError::Worker(e)),
        }
    };
    m.apply.close_book();
    (m.apply.summary, m.dump, tables, result)
}

/// Applies one batch; `Some(result)` once the input has ended.
fn merge_batch<W: Write>(
    m: &mut Merge<'_, W>,
    batch: Routed,
) -> Result<Option<Result<(), OfflineError>>, MergeError> {
    let mut disp = batch.items.into_iter();
    let mut disp_at = 0;
    for e in batch.entries {
        m.apply.summary.packets_in += 1;
        m.record(e, &mut disp, &mut disp_at)?;
    }
    let Some(end) = batch.end else { return Ok(None) };
    if let Some((error, warning)) = end.truncated {
        tracing::warn!("{warning}");
        m.apply.summary.truncated = Some(error);
    }
    m.end(end.items, end.last_time_ns)?;
    Ok(Some(match end.error {
        Some(e) => Err(OfflineError::Capture(e)),
        None => Ok(()),
    }))
}

/// Each rule's errors over all workers, rules with errors only, in
/// declaration order (every worker loaded the same file).
fn add_up_rule_errors(tables: &[Vec<(String, u64)>]) -> Vec<(String, u64)> {
    let mut total: Vec<(String, u64)> = Vec::new();
    for t in tables {
        for (i, (label, n)) in t.iter().enumerate() {
            match total.get_mut(i) {
                Some(slot) if slot.0 == *label => slot.1 += n,
                _ => match total.iter_mut().find(|(l, _)| l == label) {
                    Some(slot) => slot.1 += n,
                    None => total.push((label.clone(), *n)),
                },
            }
        }
    }
    total.retain(|(_, n)| *n > 0);
    total
}
