//! netns testbed: client, gateway and server network namespaces joined by veth
//! pairs, with `sluice run` on the gateway.
//!
//! ```text
//! client 10.200.1.1 fd00:200:1::1 ─ eth0 ═ eth0 ─ gateway ─ eth1 ═ eth0 ─ server 10.200.2.2 fd00:200:2::2
//! ```
//!
//! Names are unique per process and testbed, so tests run in parallel. Every
//! wait is bounded; dropping the testbed stops sluice (by PID) and deletes the
//! namespaces, also when a test panics. Without root the tests fail loudly
//! unless `SLUICE_SKIP_NETNS=1` is set.

#![allow(dead_code)]

pub mod apps;
pub mod crafted;

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const CLIENT4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 200, 1, 1));
pub const SERVER4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 200, 2, 2));
pub const CLIENT6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x200, 1, 0, 0, 0, 0, 1));
pub const SERVER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x200, 2, 0, 0, 0, 0, 2));

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Returns false (after printing why) if the netns tests should be skipped;
/// panics if they cannot run and skipping was not asked for.
pub fn enabled() -> bool {
    if std::env::var("SLUICE_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!("netns test skipped (SLUICE_SKIP_NETNS=1)");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "netns tests need root; run as root or set SLUICE_SKIP_NETNS=1 to skip them");
    true
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Options of a testbed.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestbedOptions {
    /// Keep veth offloads (TSO/GSO/GRO, checksum offload) on: the gateway then
    /// sees GSO packets and partial checksums.
    pub offloads: bool,
}

/// The three namespaces and, once started, sluice on the gateway.
pub struct Testbed {
    pub client: String,
    pub gw: String,
    pub server: String,
    pub dir: tempfile::TempDir,
    sluice: Option<Child>,
}

impl Testbed {
    /// Creates the namespaces and links; `None` when skipped.
    pub fn new() -> Option<Testbed> {
        Self::with_options(TestbedOptions::default())
    }

    pub fn with_options(opts: TestbedOptions) -> Option<Testbed> {
        if !enabled() {
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("slt{}x{}", std::process::id(), n);
        let tb = Testbed {
            client: format!("{base}c"),
            gw: format!("{base}g"),
            server: format!("{base}s"),
            dir: tempfile::tempdir().expect("tempdir"),
            sluice: None,
        };
        // From here on, Drop cleans up whatever was created.
        for ns in [&tb.client, &tb.gw, &tb.server] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
            sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
        }
        let (c, g, s) = (tb.client.as_str(), tb.gw.as_str(), tb.server.as_str());
        sh(&[
            "ip", "link", "add", "name", "eth0", "netns", c, "type", "veth", "peer", "name", "eth0", "netns",
            g,
        ]);
        sh(&[
            "ip", "link", "add", "name", "eth1", "netns", g, "type", "veth", "peer", "name", "eth0", "netns",
            s,
        ]);
        for (ns, dev, a4, a6) in [
            (c, "eth0", "10.200.1.1/24", "fd00:200:1::1/64"),
            (g, "eth0", "10.200.1.2/24", "fd00:200:1::2/64"),
            (g, "eth1", "10.200.2.1/24", "fd00:200:2::1/64"),
            (s, "eth0", "10.200.2.2/24", "fd00:200:2::2/64"),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", a4, "dev", dev]);
            sh(&["ip", "-n", ns, "addr", "add", a6, "dev", dev, "nodad"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            if !opts.offloads {
                let off = ["tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"];
                let mut args = vec!["ip", "netns", "exec", ns, "ethtool", "-K", dev];
                args.extend(off);
                sh(&args);
            }
        }
        sh(&["ip", "-n", c, "route", "add", "default", "via", "10.200.1.2"]);
        sh(&["ip", "-n", c, "-6", "route", "add", "default", "via", "fd00:200:1::2"]);
        sh(&["ip", "-n", s, "route", "add", "default", "via", "10.200.2.1"]);
        sh(&["ip", "-n", s, "-6", "route", "add", "default", "via", "fd00:200:2::1"]);
        sh(&["ip", "netns", "exec", g, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        sh(&["ip", "netns", "exec", g, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        Some(tb)
    }

    pub fn stats_socket(&self) -> PathBuf {
        self.dir.path().join("sluice.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sluice.log")
    }

    pub fn alerts_path(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }

    /// The sluice command line for the gateway, without spawning it.
    pub fn sluice_command(&self, rules: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.gw, env!("CARGO_BIN_EXE_sluice"), "run"])
            .arg(rules)
            .arg("--install-iptables")
            .arg("--stats-socket")
            .arg(self.stats_socket())
            .arg("--alerts")
            .arg(self.alerts_path())
            .args(extra);
        cmd
    }

    /// Starts sluice on the gateway and waits (bounded) until it is ready:
    /// its stats socket answers once queues are bound and rules installed.
    pub fn start_sluice(&mut self, rules: &Path, extra: &[&str]) {
        assert!(self.sluice.is_none(), "sluice already running");
        let log = File::create(self.log_path()).expect("log file");
        // `ip netns exec` execs sluice: the child's PID is sluice's.
        let child = self
            .sluice_command(rules, extra)
            .env("SLUICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sluice");
        self.sluice = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if sluice::inline::stats_client(&self.stats_socket(), sluice::inline::StatsFormat::Text).is_ok() {
                return;
            }
            if let Some(st) = self.sluice.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("sluice exited during start-up ({st}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "sluice not ready within 15 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sluice_pid(&self) -> Option<i32> {
        self.sluice.as_ref().map(|c| c.id() as i32)
    }

    /// Sends a signal to sluice (by PID).
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.sluice_pid().expect("sluice not running");
        // SAFETY: kill(2) on the PID of our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    /// SIGTERM, then a bounded wait; returns the exit status and the log.
    pub fn stop_sluice(&mut self) -> (ExitStatus, String) {
        self.stop_sluice_with(libc::SIGTERM)
    }

    /// Stops sluice with `sig`, then a bounded wait.
    pub fn stop_sluice_with(&mut self, sig: libc::c_int) -> (ExitStatus, String) {
        let mut child = self.sluice.take().expect("sluice not running");
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(child.id() as i32, sig) };
        let st = wait_bounded(&mut child, Duration::from_secs(15));
        (st.unwrap_or_else(|| panic!("sluice did not stop within 15 s:\n{}", self.log())), self.log())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn alerts(&self) -> String {
        std::fs::read_to_string(self.alerts_path()).unwrap_or_default()
    }

    /// Counters as `name -> value` from the stats socket.
    pub fn counters(&self) -> std::collections::HashMap<String, u64> {
        let text = sluice::inline::stats_client(&self.stats_socket(), sluice::inline::StatsFormat::Text)
            .expect("stats socket");
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// `iptables -S` and `ip6tables -S` in the gateway.
    pub fn gw_rules(&self) -> String {
        let mut s = sh(&["ip", "netns", "exec", &self.gw, "iptables", "-S"]);
        s.push_str(&sh(&["ip", "netns", "exec", &self.gw, "ip6tables", "-S"]));
        s
    }

    /// Runs `f` on a thread inside namespace `ns` (setns on that thread only).
    pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on this thread with a valid netns descriptor.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
    }

    pub fn on_client<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        Self::in_ns(&self.client, f)
    }

    pub fn on_server<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        Self::in_ns(&self.server, f)
    }
}

/// Waits for a child at most `limit`; kills it (by PID) if it does not exit.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(mut child) = self.sluice.take() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = wait_bounded(&mut child, Duration::from_secs(10));
        }
        for ns in [&self.client, &self.gw, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Joins a thread with a bound; panics with the thread's panic or on timeout.
pub fn join_bounded<T>(h: JoinHandle<T>, limit: Duration) -> T {
    let deadline = Instant::now() + limit;
    while !h.is_finished() {
        assert!(Instant::now() < deadline, "thread did not finish within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// A rule file from tests/netns/rules.
pub fn rules(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/netns/rules").join(name)
}
