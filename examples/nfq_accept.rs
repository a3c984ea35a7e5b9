//! The minimal NFQUEUE loop, the baseline of `scripts/bench-inline.sh`: binds
//! a queue with the same driver as `sluice run` (same netlink socket setup,
//! GSO and receive buffer) and accepts every packet, with no engine at all.
//!
//! Usage: nfq_accept [QUEUE]   (stops on SIGTERM/SIGINT; the queue rule is the caller's)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice::capture::nfqueue::{NfQueue, QueueConfig, QueueVerdict};

/// The same allocator as `sluice` (src/main.rs), so the benchmark compares
/// the engine's work and not two allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let queue_num = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(0u16);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("nfq_accept: signals: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let mut cfg = QueueConfig::new(queue_num);
    cfg.rcvbuf = Some(sluice::inline::DEFAULT_RCVBUF);
    let mut q = match NfQueue::bind(&cfg) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("nfq_accept: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!("nfq_accept: ready on queue {queue_num}");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match q.recv(Duration::from_millis(100)) {
            Ok(Some(p)) => {
                n += 1;
                if let Err(e) = q.verdict(p.id, QueueVerdict::Accept) {
                    eprintln!("nfq_accept: verdict: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("nfq_accept: receive: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // Whatever is still queued when the socket closes is dropped by the
    // kernel; the bench removes its queue rule before stopping us.
    while let Ok(Some(p)) = q.try_recv() {
        n += 1;
        let _ = q.verdict(p.id, QueueVerdict::Accept);
    }
    eprintln!("nfq_accept: {n} packets accepted");
    std::process::ExitCode::SUCCESS
}
