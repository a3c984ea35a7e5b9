//! The stats socket: a unix stream socket that answers each connection with
//! the current counters (summed over workers) and closes it. `sluice stats`
//! is the client. The request is one line naming the format ("text" or
//! "prometheus"); the answer is the whole text.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::capture::nfqueue::kernel_queue_stats;
use crate::inject::raw::InjectStats;
use crate::stats::Stats;

use super::driver_stats::DriverStats;

/// Where `sluice run` listens and `sluice stats` connects by default.
pub const DEFAULT_SOCKET: &str = "/run/sluice.sock";
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Output format of `sluice stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatsFormat {
    /// `name value` lines.
    #[default]
    Text,
    /// Prometheus text exposition format.
    Prometheus,
}

impl StatsFormat {
    fn request(self) -> &'static str {
        match self {
            StatsFormat::Text => "text\n",
            StatsFormat::Prometheus => "prometheus\n",
        }
    }
}

/// The counters the server reports.
pub struct Sources {
    /// Per worker: queue number, engine counters, driver counters.
    pub workers: Vec<(u16, Arc<Stats>, Arc<DriverStats>)>,
    /// Raw-socket counters.
    pub inject: Arc<InjectStats>,
}

impl Sources {
    /// All values as (name, labels, value); labels are `queue="N"` or empty.
    fn values(&self) -> Vec<(String, Option<u16>, u64)> {
        let mut v: Vec<(String, Option<u16>, u64)> = Stats::merged(self.workers.iter().map(|(_, s, _)| &**s))
            .into_iter()
            .map(|(n, x)| (n.to_string(), None, x))
            .collect();
        let sum = |f: fn(&DriverStats) -> u64| self.workers.iter().map(|(_, _, d)| f(d)).sum::<u64>();
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        v.push(("nfq_packets_received".into(), None, sum(|d| d.received.load(Ordering::Relaxed))));
        v.push(("nfq_verdicts".into(), None, sum(|d| d.verdicts.load(Ordering::Relaxed))));
        v.push(("nfq_verdict_errors".into(), None, sum(|d| d.verdict_errors.load(Ordering::Relaxed))));
        v.push(("nfq_receive_errors".into(), None, sum(|d| d.recv_errors.load(Ordering::Relaxed))));
        v.push(("nfq_busy_poll_hits".into(), None, sum(|d| d.busy_poll_hits.load(Ordering::Relaxed))));
        v.push(("inject_sent".into(), None, ld(&self.inject.sent)));
        v.push(("inject_errors".into(), None, ld(&self.inject.errors)));
        let ours: Vec<u16> = self.workers.iter().map(|(q, _, _)| *q).collect();
        for k in kernel_queue_stats().into_iter().filter(|k| ours.contains(&k.queue_num)) {
            v.push(("queue_kernel_dropped".into(), Some(k.queue_num), k.queue_dropped));
            v.push(("queue_user_dropped".into(), Some(k.queue_num), k.user_dropped));
            v.push(("queue_waiting".into(), Some(k.queue_num), k.waiting));
        }
        v
    }

    /// The answer in `format`.
    pub fn render(&self, format: StatsFormat) -> String {
        let mut s = String::new();
        for (name, queue, value) in self.values() {
            match (format, queue) {
                (StatsFormat::Text, None) => s.push_str(&format!("{name} {value}\n")),
                (StatsFormat::Text, Some(q)) => s.push_str(&format!("{name}{{queue=\"{q}\"}} {value}\n")),
                (StatsFormat::Prometheus, None) => {
                    let kind = if is_gauge(&name) { "gauge" } else { "counter" };
                    s.push_str(&format!("# TYPE sluice_{name} {kind}\nsluice_{name} {value}\n"));
                }
                (StatsFormat::Prometheus, Some(q)) => {
                    s.push_str(&format!("sluice_{name}{{queue=\"{q}\"}} {value}\n"));
                }
            }
        }
        s
    }
}

fn is_gauge(name: &str) -> bool {
    matches!(name, "flows_active" | "stream_bytes_buffered" | "queue_waiting" | "queue_drops")
}

/// The listening thread.
pub struct StatsServer {
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl StatsServer {
    /// Binds `path` (replacing a stale socket, refusing a live one) and serves
    /// until `stop` is set.
    pub fn start(path: &Path, sources: Sources, stop: Arc<AtomicBool>) -> Result<Self, String> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("{} is in use: is another sluice running?", path.display()));
            }
            let _ = std::fs::remove_file(path);
        }
        let listener =
            UnixListener::bind(path).map_err(|e| format!("stats socket {}: {e}", path.display()))?;
        // Counters reveal traffic: only root reads them.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        listener.set_nonblocking(true).map_err(|e| format!("stats socket: {e}"))?;
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sluice-stats".into())
            .spawn(move || serve(listener, sources, stop2))
            .map_err(|e| format!("starting the stats thread: {e}"))?;
        Ok(StatsServer { path: path.to_path_buf(), thread: Some(thread), stop })
    }

    /// Stops serving and removes the socket file.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, sources: Sources, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = answer(conn, &sources) {
                    tracing::debug!("stats client: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => {
                tracing::warn!("stats socket accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn answer(conn: UnixStream, sources: &Sources) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&conn).take(64)).read_line(&mut line)?;
    let format = if line.trim() == "prometheus" { StatsFormat::Prometheus } else { StatsFormat::Text };
    (&conn).write_all(sources.render(format).as_bytes())
}

/// `sluice stats`: asks the daemon at `socket` for its counters.
pub fn stats_client(socket: &Path, format: StatsFormat) -> Result<String, String> {
    let hint = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            format!("{}: {e} (is `sluice run` running with this --stats-socket?)", socket.display())
        }
        std::io::ErrorKind::PermissionDenied => format!("{}: {e} (run as root)", socket.display()),
        _ => format!("{}: {e}", socket.display()),
    };
    let mut conn = UnixStream::connect(socket).map_err(hint)?;
    conn.set_read_timeout(Some(IO_TIMEOUT)).map_err(hint)?;
    conn.set_write_timeout(Some(IO_TIMEOUT)).map_err(hint)?;
    conn.write_all(format.request().as_bytes()).map_err(hint)?;
    let mut s = String::new();
    conn.read_to_string(&mut s).map_err(hint)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counter;

    #[test]
    fn serves_summed_counters_over_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let (a, b) = (Arc::new(Stats::new()), Arc::new(Stats::new()));
        a.add(Counter::PacketsIn, 3);
        b.add(Counter::PacketsIn, 4);
        let d = Arc::new(DriverStats::default());
        d.received.store(9, Ordering::Relaxed);
        let sources = Sources {
            workers: vec![(0, a, Arc::clone(&d)), (1, b, d)],
            inject: Arc::new(InjectStats::default()),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let server = StatsServer::start(&path, sources, stop).unwrap();
        let text = stats_client(&path, StatsFormat::Text).unwrap();
        assert!(text.lines().any(|l| l == "packets_in 7"), "{text}");
        assert!(text.lines().any(|l| l == "nfq_packets_received 18"), "{text}");
        for c in Counter::ALL {
            assert!(text.lines().any(|l| l.split(' ').next() == Some(c.name())), "missing {}", c.name());
        }
        let prom = stats_client(&path, StatsFormat::Prometheus).unwrap();
        assert!(prom.contains("# TYPE sluice_packets_in counter\nsluice_packets_in 7\n"), "{prom}");
        // A second server on a live socket is refused.
        let sources2 = Sources { workers: vec![], inject: Arc::new(InjectStats::default()) };
        assert!(StatsServer::start(&path, sources2, Arc::new(AtomicBool::new(false))).is_err());
        server.stop();
        assert!(!path.exists());
        assert!(stats_client(&path, StatsFormat::Text).is_err());
    }
}
