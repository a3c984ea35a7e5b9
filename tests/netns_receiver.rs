//! The Linux receiver model against a real Linux endpoint (root; see
//! tests/netns/mod.rs): each case of issue 15 played by the crafted client
//! towards a `TcpListener` application in the server namespace, once with
//! no filter and once through `sluice run` (default `linux` receiver
//! policy, `tests/fidelity/rules.lua`: reset on `attack`), in the same test.
//!
//! * Benign twins (the odd segments differ but are both harmless): the
//!   application reads exactly the same bytes both ways, and the connection
//!   completes (EOF): sluice let through the packets Linux used.
//! * Attack variants: without sluice the application reads `attack` (the
//!   case is real); through sluice it never does.
//!
//! The strict policy's behaviour on the same arrangements is in
//! tests/netns_fidelity.rs (`.strict()` cases) and tests/receiver.rs.

mod netns;

use std::net::SocketAddr;
use std::time::Duration;

use netns::apps::{self, ReadEnd};
use netns::crafted::{self, CraftedClient, SYN_OPTIONS};
use netns::{join_bounded, Testbed, CLIENT4, CLIENT6, SERVER4, SERVER6};
use sluice::flow::Direction::Up;
use sluice::ip::fragment::fragment;
use sluice::pcapgen::Conversation;
use sluice::wire::header::Tcp;
use sluice::wire::tcp_flags::*;

const ATTACK: &[u8] = b"attack";
const SERVER_IDLE: Duration = Duration::from_millis(1500);
const STEP: Duration = Duration::from_millis(20);
/// The client's SYN timestamp (PAWS cases).
const SYN_TSVAL: u32 = 100_000;

/// How the connection opens.
#[derive(Clone, Copy)]
enum Open {
    /// SYN with the usual options.
    Plain,
    /// SYN with the usual options and a timestamp (`SYN_TSVAL`).
    Timestamps,
    /// SYN carrying data (no Fast Open cookie: the server acknowledges only
    /// the SYN).
    SynData(&'static [u8]),
}

type Script = fn(&mut Conversation);

struct Case {
    name: &'static str,
    open: Open,
    script: Script,
    /// What the application reads without sluice.
    plain: (&'static [u8], ReadEnd),
    /// ...and through sluice; `None`: the same as without.
    filtered: Option<(&'static [u8], ReadEnd)>,
    /// Counters that must be at least 1 after the filtered run.
    counters: &'static [&'static str],
    /// Over IPv6.
    v6: bool,
}

fn benign(name: &'static str, open: Open, script: Script, reads: &'static [u8]) -> Case {
    Case { name, open, script, plain: (reads, ReadEnd::Eof), filtered: None, counters: &[], v6: false }
}

fn attack(
    name: &'static str,
    open: Open,
    script: Script,
    plain: &'static [u8],
    filtered: &'static [u8],
) -> Case {
    let end = ReadEnd::Reset;
    Case {
        name,
        open,
        script,
        plain: (plain, ReadEnd::Eof),
        filtered: Some((filtered, end)),
        counters: &[],
        v6: false,
    }
}

impl Case {
    fn counters(mut self, c: &'static [&'static str]) -> Self {
        self.counters = c;
        self
    }
    fn v6(mut self, name: &'static str) -> Self {
        self.name = name;
        self.v6 = true;
        self
    }
}

// ---------------------------------------------------------------- crafting

/// `(offset, bytes)` segments after the handshake, then FIN after `end`.
fn arranged(c: &mut Conversation, segments: &[(u32, &[u8])], end: u32) {
    let b = c.next_seq(Up);
    for (off, bytes) in segments {
        c.segment(Up, b + *off, ACK | PSH, bytes);
    }
    c.segment(Up, b + end, FIN | ACK, b"");
}

/// NOP, NOP, timestamp `tsval`.
fn ts(tsval: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&[0; 4]);
    o
}

/// A segment with `options` at the next sequence number (not advanced).
fn with_options(c: &mut Conversation, options: &[u8], payload: &[u8]) {
    let b = c.next_seq(Up);
    let p = c.build(Up, b, ACK | PSH, options, payload);
    c.push(p);
}

/// First `odd` bytes with `options` (a segment Linux discards), then the
/// real bytes at the same sequence numbers with a fresh timestamp, then FIN.
fn discarded_first(c: &mut Conversation, options: &[u8], odd: &[u8], real: &[u8]) {
    with_options(c, options, odd);
    with_options(c, &ts(SYN_TSVAL + 1), real);
    let b = c.next_seq(Up);
    c.segment(Up, b + real.len() as u32, FIN | ACK, b"");
}

/// TCP-MD5 with a made-up digest.
fn md5() -> Vec<u8> {
    let mut o = vec![19, 18];
    o.extend_from_slice(&[0x5a; 16]);
    o
}

/// `head`, then `tail` with URG and urgent pointer 1 (its first byte is
/// urgent), then FIN.
fn urgent(c: &mut Conversation, head: &[u8], tail: &[u8]) {
    let b = c.next_seq(Up);
    c.segment(Up, b, ACK | PSH, head);
    let at = b + head.len() as u32;
    let mut p = c.build(Up, at, ACK | PSH | URG, &[], tail);
    let mut t = Tcp::of_packet(&mut p).unwrap();
    t.set_urgent(1);
    t.fill_checksum();
    c.push(p);
    c.segment(Up, at + tail.len() as u32, FIN | ACK, b"");
}

const FRAG_GOOD: &[u8] = b"....------tackat--------........";
const FRAG_EVIL: &[u8] = b"....------attack--------........";
const FRAG_OTHER: &[u8] = b"....------XXXXXX--------........";

/// Fragments 0, 1 of `first`, 1 of `second` (same offsets: a duplicate
/// inside the run [0, 40)), 2; then FIN.
fn duplicate_fragments(c: &mut Conversation, first: &[u8], second: &[u8]) {
    let b = c.next_seq(Up);
    let a = c.build(Up, b, ACK | PSH, &[], first);
    let d = c.build(Up, b, ACK | PSH, &[], second);
    let fa = fragment(&a, &[24, 16], 7);
    let fd = fragment(&d, &[24, 16], 7);
    c.push(fa[0].clone()).push(fa[1].clone()).push(fd[1].clone()).push(fa[2].clone());
    c.segment(Up, b + first.len() as u32, FIN | ACK, b"");
}

// ---------------------------------------------------------------- cases

fn ooo_replace_benign() -> Case {
    benign(
        "ooo-replace-benign",
        Open::Plain,
        |c| arranged(c, &[(3, b"Xmm"), (3, b"mless!"), (0, b"har")], 9),
        b"harmless!",
    )
    .counters(&["tcp_overlaps_resolved"])
}
fn ooo_replace() -> Case {
    attack(
        "ooo-replace",
        Open::Plain,
        |c| arranged(c, &[(3, b"ume"), (3, b"ack!!"), (0, b"att")], 8),
        b"attack!!",
        b"",
    )
}
fn ooo_cover_benign() -> Case {
    benign(
        "ooo-cover-benign",
        Open::Plain,
        |c| arranged(c, &[(4, b"X"), (2, b"rmless"), (0, b"ha")], 8),
        b"harmless",
    )
    .counters(&["tcp_overlaps_resolved"])
}
fn ooo_cover() -> Case {
    attack(
        "ooo-cover",
        Open::Plain,
        |c| arranged(c, &[(4, b"Z"), (3, b"ack"), (0, b"att")], 6),
        b"attack",
        b"",
    )
}
fn ooo_partial_lower_first_benign() -> Case {
    let s: Script = |c| arranged(c, &[(2, b"rmle"), (4, b"XXss"), (0, b"ha")], 8);
    benign("ooo-partial-lower-first-benign", Open::Plain, s, b"harmless").counters(&["tcp_overlaps_resolved"])
}
fn ooo_partial_lower_first() -> Case {
    let s: Script = |c| arranged(c, &[(1, b"tta"), (2, b"ZZck"), (0, b"a")], 6);
    attack("ooo-partial-lower-first", Open::Plain, s, b"attack", b"")
}
fn ooo_partial_lower_second_benign() -> Case {
    let s: Script = |c| arranged(c, &[(4, b"XXss"), (2, b"rmle"), (0, b"ha")], 8);
    benign("ooo-partial-lower-second-benign", Open::Plain, s, b"harmless")
        .counters(&["tcp_overlaps_resolved"])
}
fn ooo_partial_lower_second() -> Case {
    let s: Script = |c| arranged(c, &[(4, b"Xk"), (1, b"ttac"), (0, b"a")], 6);
    attack("ooo-partial-lower-second", Open::Plain, s, b"attack", b"")
}
fn in_order_over_queue_benign() -> Case {
    let s: Script = |c| arranged(c, &[(4, b"Xess"), (0, b"harml")], 8);
    benign("in-order-over-queue-benign", Open::Plain, s, b"harmless").counters(&["tcp_overlaps_resolved"])
}
fn in_order_over_queue() -> Case {
    attack(
        "in-order-over-queue",
        Open::Plain,
        |c| arranged(c, &[(4, b"Zk"), (0, b"attac")], 6),
        b"attack",
        b"",
    )
}
fn paws_benign() -> Case {
    let s: Script = |c| discarded_first(c, &ts(SYN_TSVAL - 100), b"XXXXXXXX", b"harmless");
    benign("paws-benign", Open::Timestamps, s, b"harmless").counters(&["drop_tcp_paws"])
}
fn paws() -> Case {
    let s: Script = |c| discarded_first(c, &ts(SYN_TSVAL - 100), b"harmless", b"attack!!");
    attack("paws", Open::Timestamps, s, b"attack!!", b"").counters(&["drop_tcp_paws"])
}
fn md5_benign() -> Case {
    let s: Script = |c| discarded_first(c, &md5(), b"XXXXXXXX", b"harmless");
    benign("md5-benign", Open::Timestamps, s, b"harmless").counters(&["drop_tcp_auth_option"])
}
fn md5_attack() -> Case {
    let s: Script = |c| discarded_first(c, &md5(), b"harmless", b"attack!!");
    attack("md5", Open::Timestamps, s, b"attack!!", b"").counters(&["drop_tcp_auth_option"])
}
fn syn_data_benign() -> Case {
    let s: Script = |c| arranged(c, &[(0, b"harmless")], 8);
    benign("syn-data-benign", Open::SynData(b"XXXXXXXX"), s, b"harmless")
        .counters(&["tcp_syn_data_forgotten"])
}
fn syn_data() -> Case {
    let s: Script = |c| arranged(c, &[(0, b"attack!!")], 8);
    attack("syn-data", Open::SynData(b"harmless"), s, b"attack!!", b"").counters(&["tcp_syn_data_forgotten"])
}
fn urgent_benign() -> Case {
    benign("urgent-benign", Open::Plain, |c| urgent(c, b"har", b"Xmless"), b"harmless")
        .counters(&["tcp_urgent_hidden"])
}
fn urgent_attack() -> Case {
    attack("urgent", Open::Plain, |c| urgent(c, b"att", b"Xack"), b"attack", b"att")
        .counters(&["tcp_urgent_hidden"])
}
fn fragment_duplicate_benign() -> Case {
    let s: Script = |c| duplicate_fragments(c, FRAG_GOOD, FRAG_OTHER);
    benign("fragment-duplicate-benign", Open::Plain, s, FRAG_GOOD).counters(&["drop_fragment_duplicate"])
}
fn fragment_duplicate() -> Case {
    let s: Script = |c| duplicate_fragments(c, FRAG_EVIL, FRAG_GOOD);
    attack("fragment-duplicate", Open::Plain, s, FRAG_EVIL, b"").counters(&["drop_fragment_duplicate"])
}

fn ipv6_ooo_replace_benign() -> Case {
    ooo_replace_benign().v6("ipv6-ooo-replace-benign")
}
fn ipv6_ooo_partial_lower_second() -> Case {
    ooo_partial_lower_second().v6("ipv6-ooo-partial-lower-second")
}
fn ipv6_fragment_duplicate_benign() -> Case {
    // The first fragment (24 bytes) holds the whole TCP header, as IPv6 requires.
    fragment_duplicate_benign().v6("ipv6-fragment-duplicate-benign")
}
fn ipv6_fragment_duplicate() -> Case {
    fragment_duplicate().v6("ipv6-fragment-duplicate")
}

// ---------------------------------------------------------------- running

/// Plays the case once; what the server application read.
fn run(
    tb: &Testbed,
    case: &Case,
    client_port: u16,
    server_port: u16,
) -> (Result<(Vec<u8>, ReadEnd), String>, String) {
    let (c, s) = if case.v6 { (CLIENT6, SERVER6) } else { (CLIENT4, SERVER4) };
    let client = SocketAddr::new(c, client_port);
    let server = SocketAddr::new(s, server_port);
    let srv = apps::tcp_server_within(tb, server.ip(), server.port(), 1, Duration::from_secs(6), |mut s| {
        s.set_read_timeout(Some(SERVER_IDLE)).unwrap();
        apps::read_all(&mut s)
    });
    let (open, script) = (case.open, case.script);
    let cli = tb.on_client(move || {
        let mut cc = CraftedClient::new(client, server).expect("raw sockets");
        let mut options = SYN_OPTIONS.to_vec();
        let mut syn_payload: &[u8] = b"";
        match open {
            Open::Plain => {}
            Open::Timestamps => options.extend_from_slice(&ts(SYN_TSVAL)),
            Open::SynData(p) => syn_payload = p,
        }
        match cc.handshake_with(1000, &options, syn_payload, STEP) {
            Ok(mut c) => {
                script(&mut c);
                cc.pause(STEP);
                cc.play(&c.into_packets()).expect("send");
            }
            Err(e) => cc.trace.push(format!("handshake failed: {e}")),
        }
        cc.pause(Duration::from_millis(100));
        cc.trace.join("\n")
    });
    let trace = join_bounded(cli, Duration::from_secs(60));
    let mut reads = join_bounded(srv, Duration::from_secs(60));
    let read = reads.pop().map_or_else(|| Err("no connection".to_string()), |r| r.map_err(|e| e.to_string()));
    (read, trace)
}

fn show(r: &Result<(Vec<u8>, ReadEnd), String>) -> String {
    match r {
        Ok((b, end)) => format!("{:?} then {end:?}", String::from_utf8_lossy(b)),
        Err(e) => e.clone(),
    }
}

fn contains_attack(b: &[u8]) -> bool {
    b.windows(ATTACK.len()).any(|w| w == ATTACK)
}

fn check(case: Case) {
    let Some(mut tb) = Testbed::new() else { return };
    crafted::suppress_kernel_rsts(&tb);
    assert!(!tb.gw_rules().contains("NFQUEUE"), "the plain run must not be filtered");
    let (plain, trace) = run(&tb, &case, 40001, 8001);
    let want = Ok((case.plain.0.to_vec(), case.plain.1.clone()));
    assert!(
        plain == want,
        "{} without sluice: read {}, expected {}\n{trace}",
        case.name,
        show(&plain),
        show(&want)
    );
    assert_eq!(
        case.filtered.is_some(),
        contains_attack(case.plain.0),
        "{}: attack cases name the filtered read",
        case.name
    );

    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/rules.lua");
    tb.start_sluice(&rules, &[]);
    let (filtered, trace) = run(&tb, &case, 40002, 8002);
    let want = match &case.filtered {
        None => plain.clone(),
        Some((b, end)) => Ok((b.to_vec(), end.clone())),
    };
    assert!(
        filtered == want,
        "{} through sluice: read {}, expected {}\n{trace}\n--- sluice log:\n{}",
        case.name,
        show(&filtered),
        show(&want),
        tb.log()
    );
    if let Ok((b, _)) = &filtered {
        assert!(!contains_attack(b), "{}: the application read the attack through sluice", case.name);
    }
    let counters = tb.counters();
    for name in case.counters {
        let v = counters.get(*name).copied();
        assert!(v.is_some_and(|v| v >= 1), "{}: counter {name} is {v:?}\n{counters:?}", case.name);
    }
    if case.filtered.is_none() {
        assert_eq!(counters.get("drop_rule").copied(), Some(0), "{}: {counters:?}", case.name);
    }
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{}: sluice exited with {st}:\n{log}", case.name);
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        mod netns_receiver {
            $(
                #[test]
                fn $name() {
                    super::check(super::$name());
                }
            )*
        }
    };
}

cases!(
    ooo_replace_benign,
    ooo_replace,
    ooo_cover_benign,
    ooo_cover,
    ooo_partial_lower_first_benign,
    ooo_partial_lower_first,
    ooo_partial_lower_second_benign,
    ooo_partial_lower_second,
    in_order_over_queue_benign,
    in_order_over_queue,
    paws_benign,
    paws,
    md5_benign,
    md5_attack,
    syn_data_benign,
    syn_data,
    urgent_benign,
    urgent_attack,
    fragment_duplicate_benign,
    fragment_duplicate,
    ipv6_ooo_replace_benign,
    ipv6_ooo_partial_lower_second,
    ipv6_fragment_duplicate_benign,
    ipv6_fragment_duplicate,
);
