//! The queue settings act in the kernel, not only on the command line. With
//! sluice stopped (SIGSTOP) nothing takes packets off its queue, so a burst
//! of datagrams shows what the kernel does with them: it holds at most
//! `--queue-len` and drops the rest, or with `--fail-open` lets the rest
//! through uninspected; a small `--rcvbuf` makes it drop the packets the
//! socket has no room for (or, with `--fail-open`, pass them). Needs root
//! (see tests/netns/mod.rs).

mod netns;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netns::apps;
use netns::{join_bounded, rules, Testbed, SERVER4};
use sluice::capture::nfqueue::{parse_proc_stats, KernelQueueStats};

const T: Duration = Duration::from_secs(30);
/// Datagrams in the burst.
const BURST: usize = 50;

/// What happened to one burst sent while sluice was stopped.
#[derive(Debug)]
struct Burst {
    /// The kernel's counters of queue 0 while sluice was stopped.
    kernel: KernelQueueStats,
    /// Datagrams the server got while sluice was stopped.
    passed_while_stopped: usize,
    /// Indexes of every datagram the server got, in arrival order.
    received: Vec<usize>,
}

/// Sends SIGCONT when dropped, so a failing assertion never leaves sluice
/// stopped (the testbed's cleanup signals it to end).
struct Stopped<'a>(&'a Testbed);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

/// Starts sluice with `extra`, stops it, sends the burst through it, reads
/// the kernel's counters, lets sluice go on and collects what arrived.
fn burst_through_stopped_sluice(extra: &[&str], port: u16) -> Option<Burst> {
    let mut tb = Testbed::new()?;
    tb.start_sluice(&rules("accept_all.lua"), extra);
    // Neighbours resolved on both legs first, so no datagram waits on ARP.
    let echo = apps::udp_echo_server(&tb, SERVER4, port, 1);
    assert_eq!(join_bounded(tb.on_client(move || apps::udp_echo_client(SERVER4, port, 1)), T), 1);
    assert_eq!(join_bounded(echo, T), 1);

    let arrived = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let count = Arc::clone(&arrived);
    let sink = tb.on_server(move || {
        let s = UdpSocket::bind(SocketAddr::new(SERVER4, port + 1)).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        // Until every datagram is in, or 2 s pass without one (bounded: the
        // burst is finite, and the whole wait is capped at 20 s).
        let (start, mut last) = (Instant::now(), Instant::now());
        while got.len() < BURST && last.elapsed() < Duration::from_secs(2) && start.elapsed() < T / 2 {
            if let Ok(n) = s.recv(&mut buf) {
                if n >= 4 {
                    got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize);
                    count.fetch_add(1, Ordering::SeqCst);
                    last = Instant::now();
                }
            }
        }
        got
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("sink did not start");

    let stopped = Stopped(&tb);
    tb.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(100));
    let sender = tb.on_client(move || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        for i in 0..BURST {
            let mut msg = (i as u32).to_be_bytes().to_vec();
            msg.extend_from_slice(&apps::pattern(i as u64, 1000));
            s.send_to(&msg, SocketAddr::new(SERVER4, port + 1)).expect("send");
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    join_bounded(sender, T);
    std::thread::sleep(Duration::from_millis(500));
    let proc = netns::sh(&["ip", "netns", "exec", &tb.gw, "cat", "/proc/net/netfilter/nfnetlink_queue"]);
    let passed_while_stopped = arrived.load(Ordering::SeqCst);
    drop(stopped);
    let received = join_bounded(sink, T);
    let kernel = parse_proc_stats(&proc)
        .into_iter()
        .find(|k| k.queue_num == 0)
        .unwrap_or_else(|| panic!("queue 0 not in /proc:\n{proc}"));
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "exit status {st}:\n{log}");
    Some(Burst { kernel, passed_while_stopped, received })
}

#[test]
fn queue_len_bounds_the_queue_and_the_kernel_drops_the_overflow() {
    let Some(b) = burst_through_stopped_sluice(&["--queue-len", "8"], 7600) else { return };
    assert_eq!(b.kernel.waiting, 8, "{b:?}");
    assert_eq!(b.kernel.queue_dropped, (BURST - 8) as u64, "{b:?}");
    assert_eq!(b.kernel.user_dropped, 0, "{b:?}");
    assert_eq!(b.passed_while_stopped, 0, "fail-closed: nothing passes uninspected: {b:?}");
    // The 8 held packets are the burst's first ones, and pass once sluice runs.
    assert_eq!(b.received, (0..8).collect::<Vec<_>>(), "{b:?}");
}

#[test]
fn fail_open_lets_the_overflow_pass_uninspected() {
    let Some(b) = burst_through_stopped_sluice(&["--queue-len", "8", "--fail-open"], 7610) else { return };
    assert_eq!(b.kernel.waiting, 8, "{b:?}");
    assert_eq!(b.kernel.queue_dropped, 0, "{b:?}");
    assert_eq!(b.passed_while_stopped, BURST - 8, "{b:?}");
    let mut all = b.received.clone();
    all.sort_unstable();
    assert_eq!(all, (0..BURST).collect::<Vec<_>>(), "{b:?}");
    // The queued ones come last: they waited for sluice.
    let mut held = b.received[BURST - 8..].to_vec();
    held.sort_unstable();
    assert_eq!(held, (0..8).collect::<Vec<_>>(), "{b:?}");
}

#[test]
fn small_rcvbuf_makes_the_kernel_drop_what_the_socket_cannot_hold() {
    let Some(b) = burst_through_stopped_sluice(&["--rcvbuf", "8192"], 7620) else { return };
    assert!(b.kernel.user_dropped > 0, "{b:?}");
    assert_eq!(b.kernel.queue_dropped, 0, "{b:?}");
    assert_eq!(b.kernel.waiting as usize, BURST - b.kernel.user_dropped as usize, "{b:?}");
    assert_eq!(b.passed_while_stopped, 0, "{b:?}");
    assert_eq!(b.received.len(), BURST - b.kernel.user_dropped as usize, "{b:?}");
}

#[test]
fn with_the_defaults_the_whole_burst_waits_and_passes() {
    let Some(b) = burst_through_stopped_sluice(&[], 7630) else { return };
    assert_eq!(b.kernel.waiting as usize, BURST, "{b:?}");
    assert_eq!((b.kernel.queue_dropped, b.kernel.user_dropped), (0, 0), "{b:?}");
    assert_eq!(b.passed_while_stopped, 0, "{b:?}");
    assert_eq!(b.received, (0..BURST).collect::<Vec<_>>(), "{b:?}");
}

#[test]
fn fail_open_also_passes_what_the_socket_cannot_hold() {
    let Some(b) = burst_through_stopped_sluice(&["--rcvbuf", "8192", "--fail-open"], 7640) else { return };
    assert_eq!((b.kernel.queue_dropped, b.kernel.user_dropped), (0, 0), "{b:?}");
    assert!(b.kernel.waiting > 0 && (b.kernel.waiting as usize) < BURST, "{b:?}");
    assert_eq!(b.passed_while_stopped, BURST - b.kernel.waiting as usize, "{b:?}");
    let mut all = b.received.clone();
    all.sort_unstable();
    assert_eq!(all, (0..BURST).collect::<Vec<_>>(), "{b:?}");
}
