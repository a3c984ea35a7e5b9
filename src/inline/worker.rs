//! One worker: a thread that owns one NFQUEUE queue, one engine and one rule
//! state. It feeds each queued packet to the engine, sends the verdicts the
//! engine emits (now or later, for held fragments), injects forged packets,
//! runs engine timeouts when idle, reloads rules on SIGHUP, and at shutdown
//! drains its queue so every packet it received gets exactly one verdict.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::capture::nfqueue::{kernel_queue_stats, NfQueue, QueueConfig, QueuedPacket};
use crate::config::EngineConfig;
use crate::engine::{ChecksumState, Engine, Output, Packet, Verdict};
use crate::inject::raw::RawInjector;
use crate::inspect::Inspector;
use crate::stats::{Counter, Stats};
use crate::time::PacketClock;

pub use super::driver_stats::DriverStats;
use super::egress::{send_emitted, send_verdict, Wire};
use super::signals::Control;
use super::unverdicted::Unverdicted;
use super::InlineError;

/// How long a receive waits before the worker runs timeouts and checks flags.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// How often the kernel's queue-drop counters are read.
const PROC_INTERVAL: Duration = Duration::from_secs(1);
/// Longest time spent draining the queue at shutdown.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Consecutive receive errors after which the worker gives up.
const MAX_RECV_ERRORS: u32 = 1000;
/// Packets handed to the engine at once: whatever is already queued, up to
/// this many (see `Engine::process_batch`). 64 measured no faster on the
/// bulk benchmark: the larger chunks cost more to copy into Lua strings.
const BATCH: usize = 32;

/// What a worker needs besides the shared pieces.
pub struct WorkerConfig {
    /// The queue to bind.
    pub queue: QueueConfig,
    /// Engine limits.
    pub engine: EngineConfig,
    /// The engine's counters.
    pub stats: Arc<Stats>,
    /// `--bypass-mark`: the mark bits a bypassed connection's packet gets
    /// (0 when `--bypass` is off).
    pub bypass_mark: u32,
}

/// A running worker.
pub struct Worker {
    queue_num: u16,
    stats: Arc<Stats>,
    driver: Arc<DriverStats>,
    thread: JoinHandle<bool>,
}

impl Worker {
    /// Loads the rules and binds the queue on a new thread; returns once both
    /// succeeded (or with the error).
    pub fn spawn<I, L>(
        cfg: WorkerConfig,
        load: Arc<L>,
        injector: Arc<RawInjector>,
        control: Arc<Control>,
    ) -> Result<Worker, InlineError>
    where
        I: Inspector + 'static,
        L: Fn(&Arc<Stats>) -> Result<I, String> + Send + Sync + 'static,
    {
        let queue_num = cfg.queue.queue_num;
        let bypass_mark = cfg.bypass_mark;
        let stats = Arc::clone(&cfg.stats);
        let driver = Arc::new(DriverStats::default());
        let driver2 = Arc::clone(&driver);
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-q{queue_num}"))
            .spawn(move || {
                // Rules are built on the worker's own thread: they need not be Send.
                let inspector = match load(&cfg.stats) {
                    Ok(i) => i,
                    Err(e) => {
                        let _ = ready_tx.send(Err(InlineError::Rules(e)));
                        return false;
                    }
                };
                // The engine is ready before the queue is bound: the first
                // packet does not wait for the flow table to make its room.
                let mut engine = Engine::with_stats(cfg.engine, inspector, cfg.stats);
                engine.prepare_for_traffic();
                let queue = match NfQueue::bind(&cfg.queue) {
                    Ok(q) => q,
                    Err(e) => {
                        let _ = ready_tx.send(Err(InlineError::Queue(e)));
                        return false;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut loop_ = WorkerLoop {
                    queue,
                    engine,
                    load: &*load,
                    injector,
                    control,
                    driver: driver2,
                    unverdicted: Unverdicted::new(BATCH),
                    out: Output::new(),
                    clock: PacketClock::start(),
                    bypass_mark,
                    bypass: Vec::new(),
                };
                loop_.run()
            })
            .map_err(|e| InlineError::Io(format!("starting worker thread: {e}")))?;
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => Ok(Worker { queue_num, stats, driver, thread }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(InlineError::Io(format!("worker for queue {queue_num} did not start"))),
        }
    }

    /// The queue number.
    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The driver's counters.
    pub fn driver_stats(&self) -> &Arc<DriverStats> {
        &self.driver
    }

    /// True once the thread ended.
    pub fn finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the thread; false if it failed.
    pub fn join(self) -> bool {
        self.thread.join().unwrap_or(false)
    }
}

struct WorkerLoop<'l, I: Inspector, L> {
    queue: NfQueue,
    engine: Engine<I>,
    load: &'l L,
    injector: Arc<RawInjector>,
    control: Arc<Control>,
    driver: Arc<DriverStats>,
    /// Ids received and not yet verdicted.
    unverdicted: Unverdicted,
    out: Output,
    /// Packet time: monotonic, so a wall-clock step does not expire flows.
    clock: PacketClock,
    /// `--bypass-mark` (0: no bypass).
    bypass_mark: u32,
    /// The batch's packets to send marked for bypass: (id, mark).
    bypass: Vec<(u32, u32)>,
}

impl<I, L> WorkerLoop<'_, I, L>
where
    I: Inspector,
    L: Fn(&Arc<Stats>) -> Result<I, String>,
{
    fn run(&mut self) -> bool {
        let q = self.queue.queue_num();
        let mut generation = self.control.reload_generation.load(Ordering::SeqCst);
        let mut last_tick = Instant::now();
        let mut last_proc = Instant::now();
        let mut recv_errors = 0u32;
        let mut batch = Vec::with_capacity(BATCH);
        let ok = loop {
            if self.control.draining.load(Ordering::SeqCst) {
                break true;
            }
            let g = self.control.reload_generation.load(Ordering::SeqCst);
            if g != generation {
                generation = g;
                self.reload();
            }
            // Sends the last batch's verdicts if not sent yet, sleeps until a
            // packet comes, and takes what else is waiting (one system call).
            let read = self.queue.recv_batch(&mut batch, BATCH, IDLE_TICK);
            self.driver.busy_poll_hits.store(self.queue.busy_poll_hits, Ordering::Relaxed);
            // Whatever was read gets its verdicts, also when a read failed after it.
            if !batch.is_empty() {
                self.handle_batch(&batch);
                self.queue.recycle(&mut batch);
                // The batch's verdicts leave now, not after the next read:
                // the kernel holds each packet until its verdict comes.
                self.flush_verdicts();
            }
            match read {
                Ok(()) => recv_errors = 0,
                Err(e) => {
                    recv_errors += 1;
                    self.driver.recv_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(queue = q, "receive failed: {e}");
                    if recv_errors >= MAX_RECV_ERRORS {
                        tracing::error!(queue = q, "too many receive errors; worker stops");
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if last_tick.elapsed() >= IDLE_TICK {
                last_tick = Instant::now();
                self.engine.tick(self.clock.now(), &mut self.out);
                self.apply();
            }
            if last_proc.elapsed() >= PROC_INTERVAL {
                last_proc = Instant::now();
                self.update_queue_drops();
            }
        };
        self.shutdown();
        ok
    }

    fn handle_batch(&mut self, batch: &[QueuedPacket]) {
        let now = self.clock.now();
        self.driver.received.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.unverdicted.begin_batch(batch.iter().map(|p| p.id));
        let pkts: Vec<Packet<'_>> = batch
            .iter()
            .map(|p| Packet {
                id: u64::from(p.id),
                data: p.payload(),
                time: now,
                checksum: checksum_state(p),
            })
            .collect();
        self.engine.process_batch(&pkts, &mut self.out);
        self.bypass_marks(batch);
        self.apply();
        // Held packets (fragments) wait for a later batch or a timeout.
        self.unverdicted.end_batch();
    }

    /// The packets the engine listed for bypass, with the mark each is to
    /// carry: its own mark with the bypass bits set.
    fn bypass_marks(&mut self, batch: &[QueuedPacket]) {
        self.bypass.clear();
        for id in self.out.bypass.drain(..) {
            if self.bypass_mark == 0 {
                continue;
            }
            if let Some(p) = batch.iter().find(|p| u64::from(p.id) == id) {
                self.bypass.push((p.id, p.mark | self.bypass_mark));
            }
        }
    }

    /// Sends what the engine emitted: verdicts to the kernel, forged packets
    /// to the raw socket, in the engine's order.
    fn apply(&mut self) {
        let mut wire = Wire { queue: &mut self.queue, injector: &self.injector, driver: &self.driver };
        send_emitted(&mut self.out.items, &mut self.unverdicted, &self.bypass, &mut wire);
        self.bypass.clear();
        self.out.bypass.clear();
    }

    fn flush_verdicts(&mut self) {
        if let Err(e) = self.queue.flush_verdicts() {
            self.driver.verdict_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(queue = self.queue.queue_num(), "verdicts could not be sent: {e}");
        }
    }

    fn reload(&mut self) {
        let stats = Arc::clone(self.engine.stats());
        match (self.load)(&stats) {
            Ok(new) => {
                self.engine.replace_inspector(new);
                stats.inc(Counter::Reloads);
                tracing::info!(queue = self.queue.queue_num(), "rules reloaded");
            }
            Err(e) => {
                stats.inc(Counter::ReloadFailures);
                tracing::error!(queue = self.queue.queue_num(), "reload failed, keeping the old rules: {e}");
            }
        }
    }

    fn update_queue_drops(&self) {
        let q = self.queue.queue_num();
        if let Some(k) = kernel_queue_stats().into_iter().find(|k| k.queue_num == q) {
            self.engine.stats().set(Counter::QueueDrops, k.queue_dropped + k.user_dropped);
        }
    }

    /// The queue rules are removed: read what is still queued, let the engine
    /// give its held packets their verdicts, and drop anything left over.
    fn shutdown(&mut self) {
        let deadline = Instant::now() + DRAIN_LIMIT;
        while Instant::now() < deadline {
            match self.queue.recv(Duration::from_millis(20)) {
                Ok(Some(p)) => self.handle_batch(&[p]),
                Ok(None) | Err(_) => break,
            }
        }
        self.engine.finish(self.clock.now(), &mut self.out);
        self.apply();
        if let Err(e) = self.queue.flush_verdicts() {
            tracing::warn!(queue = self.queue.queue_num(), "last verdicts could not be sent: {e}");
        }
        self.update_queue_drops();
        let left = self.unverdicted.drain();
        if !left.is_empty() {
            tracing::warn!(
                queue = self.queue.queue_num(),
                count = left.len(),
                "packets without verdict at shutdown; dropping them"
            );
            self.driver.unverdicted.fetch_add(left.len() as u64, Ordering::Relaxed);
        }
        for id in left {
            self.engine.stats().inc(Counter::DropShutdown);
            send_verdict(&mut self.queue, &self.driver, id, &Verdict::Drop);
        }
    }
}

/// What the kernel told of a queued packet's transport checksum.
fn checksum_state(p: &QueuedPacket) -> ChecksumState {
    if p.checksum_not_ready {
        ChecksumState::Partial
    } else if p.checksum_verified {
        ChecksumState::Verified
    } else {
        ChecksumState::Unchecked
    }
}
