//! A worker thread: its own engine and its own Lua state, fed the packets of
//! its shard of the flows and the time of every record. What the engine and
//! the rules emit (verdicts, forged packets, alerts, log lines, stream
//! bytes) is cut into pieces, one per record and one per flow a timeout
//! retires, for the merge to put in input order.

use std::cell::RefCell;
use std::io::{self, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::alert::AlertSink;
use crate::capture::pcap::Record;
use crate::config::{EngineConfig, RulesConfig};
use crate::engine::{ChecksumState, Engine, Output, Packet};
use crate::rules::{LuaRules, RuleErrorLine, RuleSinks};
use crate::stats::Stats;

use super::super::log_capture;
use super::dump_tap::{DumpTap, Tapped};
use super::messages::{Done, Job, Piece, Work, END};

/// What a worker needs to start.
pub(super) struct Setup {
    pub(super) rules: PathBuf,
    pub(super) rules_config: RulesConfig,
    pub(super) config: EngineConfig,
    pub(super) stats: Arc<Stats>,
    pub(super) dump: bool,
}

/// Alert lines written by the worker's rules, until the worker takes them.
#[derive(Clone, Default)]
struct AlertBuf(Arc<Mutex<Vec<u8>>>);

impl Write for AlertBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Rule errors handed over by the worker's rules, each with where its log
/// line would have started in the bytes logged since the last piece.
type ErrorBuf = Arc<Mutex<Vec<(usize, RuleErrorLine)>>>;

/// Lines printed by the worker's rules, each with where it came among the
/// alert bytes written since the last piece.
type PrintBuf = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

/// Where a worker's rules leave what the merge must order.
struct Side {
    alerts: AlertBuf,
    errors: ErrorBuf,
    prints: PrintBuf,
    tapped: Tapped,
}

impl Done {
    /// Ends a piece: everything emitted since the last one belongs to it.
    fn cut(&mut self, index: u64, flow: Option<u64>, out: &mut Output, side: &Side) {
        self.items.append(&mut out.items);
        {
            let mut a = side.alerts.0.lock();
            let base = self.alerts.len();
            self.prints.extend(side.prints.lock().drain(..).map(|(at, line)| (base + at, line)));
            if !a.is_empty() {
                self.alerts.append(&mut a);
            }
        }
        {
            let mut e = side.errors.lock();
            let base = self.logs.len();
            self.errors.extend(e.drain(..).map(|(at, line)| (base + at, line)));
        }
        log_capture::take(&mut self.logs);
        self.dump.append(&mut side.tapped.borrow_mut());
        self.pieces.push(Piece {
            index,
            flow,
            items: self.items.len(),
            alerts: self.alerts.len(),
            logs: self.logs.len(),
            errors: self.errors.len(),
            prints: self.prints.len(),
            dump: self.dump.len(),
        });
    }
}

/// Runs the worker until the last batch or until the merge stops listening.
/// A rule file that does not load is reported as the first answer.
pub(super) fn run(setup: Setup, work: Receiver<Work>, done: SyncSender<Result<Done, String>>) {
    log_capture::begin();
    let side = Side {
        alerts: AlertBuf::default(),
        errors: ErrorBuf::default(),
        prints: PrintBuf::default(),
        tapped: Rc::new(RefCell::new(Vec::new())),
    };
    let sinks =
        RuleSinks { alerts: AlertSink::to_writer(Box::new(side.alerts.clone())), stats: setup.stats.clone() };
    let mut rules = match LuaRules::load(&setup.rules, &setup.rules_config, sinks) {
        Ok(r) => r,
        Err(e) => {
            let _ = done.send(Err(e.to_string()));
            return;
        }
    };
    // Each worker sees only its shard's errors: the merge counts them.
    let errors = Arc::clone(&side.errors);
    rules.hand_over_error_logs(Box::new(move |line| errors.lock().push((log_capture::pending(), line))));
    // `print` lines too: straight to stdout they would come in no order.
    let (alerts, prints) = (side.alerts.clone(), Arc::clone(&side.prints));
    rules.hand_over_prints(Box::new(move |line| {
        let at = alerts.0.lock().len();
        prints.lock().push((at, line.to_vec()));
    }));
    let tap = DumpTap::new(rules, setup.dump, Rc::clone(&side.tapped));
    let mut engine = Engine::with_stats(setup.config, tap, setup.stats);
    let mut out = Output::new();
    for batch in work {
        // Room for a piece and a verdict per job: no regrowth copies.
        let jobs = batch.jobs.len();
        let mut d = Done {
            pieces: Vec::with_capacity(jobs + 4),
            items: Vec::with_capacity(jobs + 4),
            records: Vec::with_capacity(jobs),
            ..Done::default()
        };
        run_batch(&mut engine, batch.first, &batch.times, batch.jobs, &mut d, &mut out, &side);
        let ended = batch.end.is_some();
        if let Some(last) = batch.end {
            engine.finish_with_cuts(last, &mut out, &mut |flow, out| d.cut(END, Some(flow), out, &side));
            // Whatever came after the last flow (nothing, normally).
            d.cut(END, None, &mut out, &side);
            d.rule_errors = Some(engine.inspector().inner().rule_error_table());
        }
        if done.send(Ok(d)).is_err() || ended {
            return;
        }
    }
}

/// Ticks through every record of the batch and judges this worker's packets.
fn run_batch(
    engine: &mut Engine<DumpTap<LuaRules>>,
    first: u64,
    times: &[crate::time::Timestamp],
    jobs: Vec<Job>,
    d: &mut Done,
    out: &mut Output,
    side: &Side,
) {
    let mut jobs = jobs.into_iter().peekable();
    for (k, &time) in times.iter().enumerate() {
        let index = first + k as u64;
        engine.tick_with_cuts(time, out, &mut |flow, out| d.cut(index, Some(flow), out, side));
        if !out.items.is_empty() {
            // Emitted outside any flow's retirement (nothing, normally): last of the tick.
            d.cut(index, Some(u64::MAX), out, side);
        }
        while let Some(job) = jobs.next_if(|j| j.index() == index) {
            // Flows created by record `i` get ids from `i + 1`: a packet creates
            // at most one flow, so ids sort as one engine numbers them. Dense
            // ids keep the rules' set of ended connections a compact bitmap.
            engine.number_flows_from(index + 1);
            match job {
                Job::Packet(rec, checksum) => judge(engine, rec, checksum, d, out),
                Job::Datagram { whole, .. } => engine.process_reassembled(&whole, out),
            }
            d.cut(index, None, out, side);
        }
    }
}

fn judge(
    engine: &mut Engine<DumpTap<LuaRules>>,
    rec: Record,
    checksum: ChecksumState,
    d: &mut Done,
    out: &mut Output,
) {
    let pkt = Packet { id: rec.index, data: rec.ip().unwrap_or(&[]), time: rec.time, checksum };
    engine.process(pkt, out);
    d.records.push(rec);
}
