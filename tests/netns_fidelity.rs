//! Stream fidelity against a real Linux endpoint: the adversarial cases of
//! `docs/stream-fidelity.md`, from the catalogue shared with the offline
//! suite (`tests/fidelity/catalogue.rs`), played by a crafted TCP client in the client
//! namespace towards a real server application (std `TcpListener`) in the
//! server namespace. Needs root (see tests/netns/mod.rs).
//!
//! Every case runs twice on the same testbed:
//!
//! 1. without sluice (the gateway forwards: the NFQUEUE rule only exists
//!    while sluice runs), which proves the case is real: the server
//!    application reads exactly `plain`, which for attack cases contains
//!    `attack`;
//! 2. through sluice with `tests/fidelity/rules.lua` (reset once the
//!    client->server stream contains `attack`): the server application reads
//!    exactly `filtered`, which never contains `attack`, and the counters
//!    show the policy that applied.
//!
//! What the server reads is compared byte for byte, with how its reading
//! ended (EOF, reset, or an idle timeout).
//!
//! The receive-window cases cannot be scripted in advance: their crafted
//! client drives the connection live, reading the window the server really
//! advertised (SYN-ACK, later ACKs) and placing its segments relative to
//! that right edge, after filler whose length follows from it (the expected
//! reads then start with that filler). The server's listener gets a small
//! `SO_RCVBUF`, and for the zero-window case its application holds off
//! reading until the client lets it.

#[path = "fidelity/catalogue.rs"]
mod catalogue;
#[path = "fidelity/harness.rs"]
mod harness;
#[path = "netns_fidelity/live.rs"]
mod live;
mod netns;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use catalogue::{catalogue, Case, End, Ending, Netns, Play, Reads};
use harness::contains_attack;
use live::Session;
use netns::apps::{self, ReadEnd};
use netns::crafted::{self, CraftedClient};
use netns::{join_bounded, Testbed, CLIENT4, CLIENT6, SERVER4, SERVER6};
use sluice::flow::Direction::Up;
use sluice::pcapgen::Conversation;
use sluice::wire::{tcp_flags::*, SeqNumber};
use socket2::{Domain, Socket, Type};

/// The server application's idle read timeout: how a connection that neither
/// ends nor resets shows up.
const SERVER_IDLE: Duration = Duration::from_millis(1500);
/// Default gap between crafted packets, so they reach the gateway in order.
const STEP: Duration = Duration::from_millis(20);
const PLAIN_PORT: u16 = 8001;
/// `sluice run` flags modelling every receiver strictly.
const STRICT: &[&str] = &["--target-policy", "0.0.0.0/0=strict", "--target-policy", "::/0=strict"];
const FILTERED_PORT: u16 = 8002;

/// The catalogue's netns case `name` (`_` for `-`), with its expectations.
fn named(test: &str) -> (Case, Netns) {
    let mut case = catalogue()
        .into_iter()
        .find(|c| c.name.replace('-', "_") == test)
        .unwrap_or_else(|| panic!("no case for test {test}"));
    let netns = case.netns.take().unwrap_or_else(|| panic!("{test}: {}", case.only));
    (case, netns)
}

fn read_end(end: End) -> ReadEnd {
    match end {
        End::Eof => ReadEnd::Eof,
        End::Reset => ReadEnd::Reset,
        End::Timeout => ReadEnd::Timeout,
    }
}

// ---------------------------------------------------------------- running

/// What one run gave: the server's reads per connection, the crafted
/// client's trace and the filler each live script sent.
struct Run {
    reads: Vec<Result<(Vec<u8>, ReadEnd), String>>,
    trace: String,
    fills: Vec<Vec<u8>>,
}

/// What the server application read on one connection, and how it ended.
type ServerRead = (Vec<u8>, ReadEnd);

/// The server application of the window cases: `SO_RCVBUF` is set on its
/// listener before it listens (the accepted connection inherits it, and it
/// bounds the SYN-ACK's window); with a `gate` it reads nothing until the
/// gate opens or closes (bounded: 10 s).
fn windowed_server(
    tb: &Testbed,
    addr: SocketAddr,
    conns: usize,
    rcvbuf: Option<usize>,
    gate: Option<mpsc::Receiver<()>>,
) -> JoinHandle<Vec<io::Result<ServerRead>>> {
    let (tx, rx) = mpsc::channel();
    let h = tb.on_server(move || {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("server socket");
        if let Some(bytes) = rcvbuf {
            sock.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        }
        sock.bind(&addr.into()).expect("server bind");
        sock.listen(8).expect("server listen");
        let l: TcpListener = sock.into();
        tx.send(()).unwrap();
        (0..conns)
            .map(|_| {
                apps::accept_bounded(&l, Duration::from_secs(6)).map(|mut s| {
                    if let Some(g) = &gate {
                        let _ = g.recv_timeout(Duration::from_secs(10));
                    }
                    s.set_read_timeout(Some(SERVER_IDLE)).unwrap();
                    apps::read_all(&mut s)
                })
            })
            .collect()
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("server did not start listening");
    h
}

fn addrs(v6: bool, client_port: u16, server_port: u16) -> (SocketAddr, SocketAddr) {
    let (c, s): (IpAddr, IpAddr) = if v6 { (CLIENT6, SERVER6) } else { (CLIENT4, SERVER4) };
    (SocketAddr::new(c, client_port), SocketAddr::new(s, server_port))
}

fn run(tb: &Testbed, case: &Case, n: &Netns, client_port: u16, server_port: u16) -> Run {
    let (client, server) = addrs(case.v6, client_port, server_port);
    let (release, gate) = if n.hold_reads {
        let (tx, rx) = mpsc::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let srv = if n.rcvbuf.is_some() || n.hold_reads {
        windowed_server(tb, server, case.conns.len(), n.rcvbuf, gate)
    } else {
        apps::tcp_server_within(
            tb,
            server.ip(),
            server.port(),
            case.conns.len(),
            Duration::from_secs(6),
            |mut s| {
                s.set_read_timeout(Some(SERVER_IDLE)).unwrap();
                apps::read_all(&mut s)
            },
        )
    };
    let conns: Vec<(u32, &'static [u8], Play)> =
        case.conns.iter().map(|c| (c.isn, c.syn_payload, c.play)).collect();
    let step = n.step.unwrap_or(STEP);
    let cli = tb.on_client(move || {
        let mut cc = CraftedClient::new(client, server).expect("raw sockets");
        let mut release = release;
        let mut fills = Vec::new();
        for (isn, syn_payload, play) in conns {
            let mut fill = Vec::new();
            match cc.handshake(isn, syn_payload, step) {
                Ok(mut c) => match play {
                    Play::Script(script) => {
                        script(&mut c, &Ending { fin: true });
                        cc.pause(STEP);
                        cc.play(&c.into_packets()).expect("send");
                    }
                    Play::Live(live) => {
                        let next = c.next_seq(Up);
                        let mut s =
                            Session { cc: &mut cc, c, next, fill: Vec::new(), release: release.take() };
                        let r = live::play(live, &mut s);
                        // A held server reads once the script is done, whatever happened.
                        s.release_reads();
                        fill = std::mem::take(&mut s.fill);
                        if let Err(e) = r {
                            cc.note(format!("live script failed: {e}"));
                        }
                    }
                },
                Err(e) => cc.trace.push(format!("handshake failed: {e}")),
            }
            fills.push(fill);
            cc.pause(Duration::from_millis(100));
        }
        (cc.trace.join("\n"), fills)
    });
    let (trace, fills) = join_bounded(cli, Duration::from_secs(60));
    let reads = join_bounded(srv, Duration::from_secs(60))
        .into_iter()
        .map(|r| r.map_err(|e| format!("no connection: {e}")))
        .collect();
    Run { reads, trace, fills }
}

fn show(reads: &[Result<(Vec<u8>, ReadEnd), String>]) -> String {
    let parts: Vec<String> = reads
        .iter()
        .map(|r| match r {
            Ok((b, end)) => format!("{:?} then {end:?}", String::from_utf8_lossy(b)),
            Err(e) => e.clone(),
        })
        .collect();
    parts.join("; ")
}

/// Checks what the server read; `filled`: the expected bytes start with the
/// filler the connection's live script sent.
fn expect_reads(case: &Case, what: &str, run: &Run, want: &[Reads], filled: bool, tb: &Testbed) {
    let wanted: Vec<Result<(Vec<u8>, ReadEnd), String>> = want
        .iter()
        .enumerate()
        .map(|(i, (b, e))| {
            let mut bytes = if filled { run.fills.get(i).cloned().unwrap_or_default() } else { Vec::new() };
            bytes.extend_from_slice(b);
            Ok((bytes, read_end(*e)))
        })
        .collect();
    assert!(
        run.reads == wanted,
        "{} ({what}): the server application read {}\n  expected {}\n--- crafted client:\n{}\n--- sluice log:\n{}",
        case.name,
        show(&run.reads),
        show(&wanted),
        run.trace,
        tb.log()
    );
}

/// Runs a case without and with sluice and checks both.
fn check(test: &str) {
    let (case, n) = named(test);
    assert_eq!(n.plain.len(), case.conns.len());
    assert_eq!(n.filtered.len(), case.conns.len());
    let is_attack = n.plain.iter().any(|r| contains_attack(r.0));
    assert!(
        !n.filtered.iter().any(|r| contains_attack(r.0)),
        "{}: the case table expects the attack through sluice",
        case.name
    );
    let Some(mut tb) = Testbed::new() else { return };
    crafted::suppress_kernel_rsts(&tb);
    if n.server_acks_dropped {
        netns::sh(&[
            "ip",
            "netns",
            "exec",
            &tb.server,
            "iptables",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "--tcp-flags",
            "ALL",
            "ACK",
            "-j",
            "DROP",
        ]);
    }

    // 1. Without sluice: the gateway has no NFQUEUE rule and just forwards.
    assert!(!tb.gw_rules().contains("NFQUEUE"), "the plain run must not be filtered");
    let plain = run(&tb, &case, &n, 40001, PLAIN_PORT);
    if is_attack {
        assert!(
            plain.reads.iter().flatten().any(|(b, _)| contains_attack(b)),
            "{}: without sluice the server did not read the attack; the case proves nothing: {}\n{}",
            case.name,
            show(&plain.reads),
            plain.trace
        );
    }
    if trace_wanted() {
        // With the server kernel's TCP counters: why it discarded what it did.
        let mibs = netns::sh(&["ip", "netns", "exec", &tb.server, "nstat", "-as"]);
        let tcp: Vec<&str> = mibs.lines().filter(|l| l.starts_with("Tcp")).collect();
        eprintln!("{} without sluice:\n{}\n{}", case.name, plain.trace, tcp.join("\n"));
    }
    expect_reads(&case, "without sluice", &plain, &n.plain, n.filled.0, &tb);

    // 2. Through sluice.
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/rules.lua");
    tb.start_sluice(&rules, if n.strict { STRICT } else { &[] });
    let filtered = run(&tb, &case, &n, 40002, FILTERED_PORT);
    for r in filtered.reads.iter().flatten() {
        assert!(
            !contains_attack(&r.0),
            "{}: the server application read attack bytes through sluice: {}\n{}",
            case.name,
            show(&filtered.reads),
            filtered.trace
        );
    }
    expect_reads(&case, "through sluice", &filtered, &n.filtered, n.filled.1, &tb);
    let counters = tb.counters();
    for name in n.counters {
        let v = counters.get(*name).copied();
        assert!(
            v.is_some_and(|v| v >= 1),
            "{}: counter {name} is {v:?}, expected >= 1\n{counters:?}",
            case.name
        );
    }
    for name in n.zero {
        let v = counters.get(*name).copied();
        assert_eq!(v, Some(0), "{}: counter {name} must stay 0\n{counters:?}", case.name);
    }
    if trace_wanted() {
        eprintln!("{}\n{counters:?}", filtered.trace);
    }
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{}: sluice exited with {st}:\n{log}", case.name);
}

// ---------------------------------------------------------------- resource limits

/// Small limits, an out-of-order flood and a SYN flood; legitimate
/// connections (one established before the floods, one opened after) still
/// carry their bytes exactly, and the counters show the limit policies.
#[test]
fn resource_limits_keep_legitimate_connections_byte_exact() {
    const LEGIT_PORT: u16 = 8101;
    const OOO_PORT: u16 = 8102;
    const FLOOD_PORT: u16 = 8103;
    const MAX_FLOWS: u64 = 32;
    const STREAM_BUFFER: usize = 16 * 1024;
    const ISLANDS: u32 = 120;
    const SYNS: u16 = 100;
    let Some(mut tb) = Testbed::new() else { return };
    crafted::suppress_kernel_rsts(&tb);
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/rules.lua");
    let (flows, buffer) = (MAX_FLOWS.to_string(), STREAM_BUFFER.to_string());
    tb.start_sluice(&rules, &["--max-flows", &flows, "--max-stream-buffer", &buffer]);

    // The legitimate server (two connections), a server for the crafted
    // out-of-order connection, and a listener the SYN flood fills with
    // half-open connections (never accepted; held until the test is done).
    let legit = apps::tcp_server(&tb, SERVER4, LEGIT_PORT, 2, |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        apps::read_hashed(&mut s)
    });
    let ooo_srv = apps::tcp_server(&tb, SERVER4, OOO_PORT, 1, |mut s| {
        s.set_read_timeout(Some(SERVER_IDLE)).unwrap();
        apps::read_all(&mut s)
    });
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel::<()>();
    let holder = tb.on_server(move || {
        let l = std::net::TcpListener::bind(SocketAddr::new(SERVER4, FLOOD_PORT)).expect("bind");
        bound_tx.send(()).unwrap();
        let _ = hold_rx.recv_timeout(Duration::from_secs(60));
        drop(l);
    });
    bound_rx.recv_timeout(Duration::from_secs(5)).expect("flood listener");

    // Connection A: established before the floods, finished after them.
    let part1 = apps::pattern(1, 48 * 1024);
    let part2 = apps::pattern(2, 48 * 1024);
    let mut whole_a = part1.clone();
    whole_a.extend_from_slice(&part2);
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (sent1_tx, sent1_rx) = std::sync::mpsc::channel::<()>();
    let a = tb.on_client(move || {
        let mut s = apps::tcp_connect(SERVER4, LEGIT_PORT).expect("connect A");
        std::io::Write::write_all(&mut s, &part1).expect("A part 1");
        sent1_tx.send(()).unwrap();
        go_rx.recv_timeout(Duration::from_secs(30)).expect("floods done");
        apps::write_and_close(&mut s, &part2).expect("A part 2");
        apps::read_all(&mut s).1
    });
    sent1_rx.recv_timeout(Duration::from_secs(10)).expect("A sent part 1");

    // The floods, from the crafted client.
    let flood = tb.on_client(move || {
        let client = SocketAddr::new(CLIENT4, 41000);
        let server = SocketAddr::new(SERVER4, OOO_PORT);
        let mut cc = CraftedClient::new(client, server).expect("raw sockets");
        let mut c = cc.handshake(5000, b"", Duration::ZERO).expect("handshake of the flooding connection");
        let b = c.next_seq(Up);
        // Islands of 200 bytes, 400 apart: 24,000 out-of-order bytes.
        for i in 0..ISLANDS {
            let p = c.build(Up, b + 100 + 400 * i, ACK | PSH, &[], &[b'o'; 200]);
            cc.send(&p).expect("send");
        }
        cc.pause(Duration::from_millis(100));
        // Half-open connections from SYNS ports, three times the flow limit.
        for port in 0..SYNS {
            let from = SocketAddr::new(CLIENT4, 42000 + port);
            let mut conv = Conversation::new(from, SocketAddr::new(SERVER4, FLOOD_PORT));
            let syn = conv.build(Up, SeqNumber(77), SYN, crafted::SYN_OPTIONS, b"");
            cc.send(&syn).expect("send");
        }
        cc.pause(Duration::from_millis(300));
    });
    join_bounded(flood, Duration::from_secs(30));
    go_tx.send(()).unwrap();

    // Connection B: opened after the floods, through the full table.
    let b_data = apps::pattern(3, 96 * 1024);
    let b_sent = b_data.clone();
    let b = tb.on_client(move || {
        let mut s = apps::tcp_connect(SERVER4, LEGIT_PORT).expect("connect B");
        apps::write_and_close(&mut s, &b_sent).expect("B");
        apps::read_all(&mut s).1
    });
    let a_end = join_bounded(a, Duration::from_secs(60));
    let b_end = join_bounded(b, Duration::from_secs(60));
    let got = join_bounded(legit, Duration::from_secs(60));
    let want = [
        (whole_a.len() as u64, apps::Fnv::of(&whole_a), ReadEnd::Eof),
        (b_data.len() as u64, apps::Fnv::of(&b_data), ReadEnd::Eof),
    ];
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let g = g.as_ref().unwrap_or_else(|e| panic!("legitimate connection {i} not accepted: {e}"));
        assert_eq!(g, w, "legitimate connection {i} (0: before the floods, 1: after) is not byte-exact");
    }
    assert_eq!((a_end, b_end), (ReadEnd::Eof, ReadEnd::Eof), "clients see the server's orderly close");
    // The flooding connection's islands never became contiguous: nothing read.
    let ooo = join_bounded(ooo_srv, Duration::from_secs(30));
    assert_eq!(ooo[0].as_ref().expect("flooding connection accepted").0, b"");

    let counters = tb.counters();
    let get = |n: &str| counters.get(n).copied().unwrap_or_else(|| panic!("no counter {n}"));
    assert!(
        get("drop_stream_buffer_full") >= 1,
        "the island flood must hit the stream buffer limit: {counters:?}"
    );
    assert!(get("flows_evicted") >= 1, "the SYN flood must evict half-open flows: {counters:?}");
    assert!(get("flows_active") <= MAX_FLOWS, "the flow table stays within its limit: {counters:?}");
    assert_eq!(get("drop_rule"), 0, "{counters:?}");
    if trace_wanted() {
        eprintln!("{counters:?}");
    }
    hold_tx.send(()).unwrap();
    join_bounded(holder, Duration::from_secs(10));
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
}

macro_rules! netns_cases {
    ($($name:ident),* $(,)?) => {
        /// One test per catalogue case the netns suite runs.
        mod netns_case {
            $(
                #[test]
                fn $name() {
                    super::check(stringify!($name));
                }
            )*
        }
        const CASE_TESTS: &[&str] = &[$(stringify!($name)),*];
    };
}

netns_cases!(
    segmented_bytewise,
    segmented_bytewise_benign,
    reordered,
    duplicated,
    reordered_duplicated_benign,
    ooo_overlap_conflict,
    ooo_overlap_later_copy,
    retransmit_other_bytes,
    retransmit_after_ack,
    bad_checksum,
    bad_checksum_benign,
    out_of_window_benign,
    no_ack_flag_benign,
    fake_rst,
    real_rst_benign,
    urgent,
    fragments,
    fragments_overlap_evil_first,
    fragments_overlap_good_first,
    ipv6_reordered,
    ipv6_fragments,
    sequence_wrap,
    window_scaled_benign,
    out_of_window,
    out_of_window_straddle_benign,
    out_of_window_straddle_queued_benign,
    out_of_window_straddle_queued,
    out_of_window_edge_benign,
    zero_window_benign,
    syn_with_data_other_bytes,
    reuse_after_reset,
    reuse_after_close,
);

/// Every catalogue case with a netns expectation has exactly one test here
/// (needs no root).
#[test]
fn every_netns_case_has_a_test() {
    let mut names: Vec<String> =
        catalogue().iter().filter(|c| c.netns.is_some()).map(|c| c.name.replace('-', "_")).collect();
    names.sort();
    let mut tests: Vec<String> = CASE_TESTS.iter().map(|s| s.to_string()).collect();
    tests.sort();
    assert_eq!(names, tests, "every netns case has exactly one test in netns_cases!");
}

/// `FIDELITY_TRACE=1` prints the crafted client's trace and the counters of
/// each filtered run (with `--nocapture`).
fn trace_wanted() -> bool {
    std::env::var("FIDELITY_TRACE").is_ok_and(|v| v == "1")
}
