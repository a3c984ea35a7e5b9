//! Alerts as JSON lines. Rules raise alerts (`haka.alert{...}`); each becomes
//! one JSON object on one line of the alert sink, written and flushed at once so
//! a reader tailing the file never sees half an alert.
//!
//! A sink is cheap to clone: clones share one writer behind a mutex, so the
//! rule states of several worker threads can write to the same file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// Where alerts go: a file, stdout, or memory (tests).
#[derive(Clone)]
pub struct AlertSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSink").finish_non_exhaustive()
    }
}

/// The `--alerts` file a command line names: `None` is standard output,
/// and so is `-` (not a file of that name).
pub fn alerts_file(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.filter(|p| p.as_os_str() != "-")
}

impl AlertSink {
    /// Alerts go to `w`.
    pub fn to_writer(w: Box<dyn Write + Send>) -> Self {
        AlertSink { out: Arc::new(Mutex::new(w)) }
    }

    /// Alerts go to the file at `path`, created or truncated.
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let f = File::create(path)?;
        Ok(Self::to_writer(Box::new(BufWriter::new(f))))
    }

    /// Alerts go to standard output.
    pub fn stdout() -> Self {
        Self::to_writer(Box::new(std::io::stdout()))
    }

    /// Alerts are kept in memory; the returned handle reads them back.
    pub fn memory() -> (Self, MemoryAlerts) {
        let buf = MemoryAlerts::default();
        (Self::to_writer(Box::new(buf.clone())), buf)
    }

    /// Writes one alert as one line and flushes it. A write error is logged,
    /// never raised: losing an alert line must not stop the filter.
    pub fn emit(&self, alert: &serde_json::Value) {
        let mut line = match serde_json::to_vec(alert) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(target: "sluice::alert", "cannot serialise alert: {e}");
                return;
            }
        };
        line.push(b'\n');
        let mut out = self.out.lock();
        if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
            tracing::error!(target: "sluice::alert", "cannot write alert: {e}");
        }
    }
}

/// The alerts written to a [`AlertSink::memory`] sink.
#[derive(Clone, Default, Debug)]
pub struct MemoryAlerts {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl MemoryAlerts {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.buf.lock()).lines().map(str::to_owned).collect()
    }

    /// Every line parsed as JSON (lines that do not parse are skipped).
    pub fn values(&self) -> Vec<serde_json::Value> {
        self.lines().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Write for MemoryAlerts {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.lock().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memory_sink_keeps_one_line_per_alert() {
        let (sink, mem) = AlertSink::memory();
        let clone = sink.clone();
        sink.emit(&json!({"id": 1, "description": "a\nb"}));
        clone.emit(&json!({"id": 2}));
        let lines = mem.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(mem.values()[0]["description"], "a\nb");
        assert_eq!(mem.values()[1]["id"], 2);
    }

    #[test]
    fn file_sink_truncates_and_writes_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        std::fs::write(&path, "old content\n").unwrap();
        let sink = AlertSink::to_file(&path).unwrap();
        sink.emit(&json!({"id": 7}));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"id\":7}\n");
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_do_not_panic() {
        let sink = AlertSink::to_writer(Box::new(Broken));
        sink.emit(&json!({"id": 1}));
    }
}
