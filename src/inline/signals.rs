//! Signals: SIGTERM and SIGINT stop the daemon cleanly, SIGHUP asks every
//! worker to reload its rules. A dedicated thread receives them (signal-hook's
//! iterator) and turns them into flags the workers poll between packets.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// Flags shared by the daemon's threads.
#[derive(Debug, Default)]
pub struct Control {
    /// Stop reading packets and shut down.
    pub stop: Arc<AtomicBool>,
    /// The queue rules are gone: drain what is still queued, then exit.
    pub draining: AtomicBool,
    /// Bumped by each SIGHUP; a worker reloads when it differs from its own.
    pub reload_generation: AtomicU64,
}

impl Control {
    /// Requests a reload of every worker's rules.
    pub fn request_reload(&self) {
        self.reload_generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// The thread that receives signals.
pub struct SignalThread {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalThread {
    /// Installs the handlers and starts the thread.
    pub fn start(control: Arc<Control>) -> Result<Self, String> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
            .map_err(|e| format!("installing signal handlers: {e}"))?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("sluice-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    match sig {
                        SIGHUP => {
                            tracing::info!("SIGHUP: reloading rules");
                            control.request_reload();
                        }
                        _ => {
                            tracing::info!(signal = sig, "stop requested");
                            control.stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            })
            .map_err(|e| format!("starting the signal thread: {e}"))?;
        Ok(SignalThread { handle, thread: Some(thread) })
    }

    /// Stops the thread (the handlers stay installed, ignoring later signals).
    pub fn close(mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
