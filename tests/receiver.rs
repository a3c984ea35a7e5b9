//! The receiver model offline: for each case of issue 15 (out-of-order
//! overlaps with other bytes, an in-order segment over a queued one, PAWS,
//! TCP-MD5, SYN data, urgent data, duplicate IP fragments), a benign twin
//! and an attack variant, each under both receiver policies:
//!
//! * `linux-*` (the default policy): the model endpoint behaves as Linux
//!   (`LINUX` in the harness: its out-of-order queue, fragment runs, PAWS,
//!   MD5 and urgent handling). Benign twins: the endpoint reads exactly the
//!   same bytes without sluice and through it. Attack variants: Linux reads
//!   `attack` without sluice, never through it.
//! * `strict-*`: every endpoint behaviour of the harness (first or last copy
//!   wins, window taken whole or trimmed) reads exactly the same bytes
//!   through sluice, none of them `attack`; benign twins may stall there
//!   (sluice refuses the copy Linux would have used), which is what the
//!   linux policy is for.
//!
//! Fixtures: `tests/fidelity/receiver/<case>/` (`SLUICE_BLESS=1` rewrites
//! them, as for `tests/fidelity.rs`).

#[path = "fidelity/harness.rs"]
mod harness;

use std::fs;

use harness::*;
use sluice::flow::Direction::{Down, Up};
use sluice::pcapgen::Conversation;
use sluice::wire::tcp_flags::{ACK, PSH, SYN};
use sluice::wire::SeqNumber;

/// An out-of-order arrangement: `(offset, bytes)` segments in arrival order
/// after the handshake; the last one is usually the in-order gap filler.
fn arranged(segments: &[(u32, &[u8])]) -> Conversation {
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    for (off, bytes) in segments {
        c.segment(Up, base + *off, ACK | PSH, bytes);
        // Apart in time: nothing here is meant to be merged by GRO.
        c.wait(1000);
    }
    c
}

/// NOP, NOP, timestamp `tsval` (echo 0).
fn ts(tsval: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&[0; 4]);
    o
}

/// A handshake where both SYNs carry timestamps (client tsval 1000).
fn opened_with_timestamps() -> Conversation {
    let mut c = conv().isn(1001, 5001);
    let mut opts = SYN_OPTIONS.to_vec();
    opts.extend_from_slice(&[1, 1]);
    opts.extend_from_slice(&ts(1000));
    let syn = c.build(Up, SeqNumber(1000), SYN, &opts, &[]);
    let synack = c.build(Down, SeqNumber(5000), SYN | ACK, &opts, &[]);
    c.push(syn).push(synack);
    let ack = c.build(Up, SeqNumber(1001), ACK, &ts(1000), &[]);
    c.push(ack);
    c
}

/// First a segment Linux discards (`odd` options), then the real one at the
/// same sequence numbers with a fresh timestamp.
fn discarded_first(odd: &[u8], first: &[u8], real: &[u8]) -> Conversation {
    let mut c = opened_with_timestamps();
    let base = c.next_seq(Up);
    let p = c.build(Up, base, ACK | PSH, odd, first);
    c.push(p);
    let p = c.build(Up, base, ACK | PSH, &ts(1001), real);
    c.push(p);
    c
}

/// An old timestamp (PAWS: older than the SYN's 1000).
fn old_ts() -> Vec<u8> {
    ts(900)
}

/// A TCP-MD5 option (a made-up digest) and a timestamp.
fn md5() -> Vec<u8> {
    let mut o = vec![19, 18];
    o.extend_from_slice(&[0x5a; 16]);
    o.extend_from_slice(&[1, 1]);
    o.extend_from_slice(&ts(1001));
    o
}

/// Two fragment copies of the same offsets: `first` then `second`, then the
/// rest, then the benign segment resent whole.
fn duplicate_fragments(first: &'static [u8], second: &'static [u8]) -> Conversation {
    let mut c = conv();
    c.handshake();
    let seq = c.next_seq(Up);
    let a = c.build(Up, seq, ACK | PSH, &[], first);
    let b = c.build(Up, seq, ACK | PSH, &[], second);
    let fa = sluice::ip::fragment::fragment(&a, &[24, 16], 7);
    let fb = sluice::ip::fragment::fragment(&b, &[24, 16], 7);
    c.push(fa[0].clone()).push(fa[1].clone()).push(fb[1].clone()).push(fa[2].clone());
    c.wait(200_000);
    c.segment(Up, seq, ACK | PSH, OVERLAP_GOOD);
    c
}

/// The case under each policy: `linux-<name>` and `strict-<name>`.
fn both(
    name: (&'static str, &'static str),
    make: impl Fn() -> Conversation,
    linux: Expect,
    strict: Expect,
) -> [Case; 2] {
    [
        case(name.0, make(), linux).linux().under("receiver"),
        case(name.1, make(), strict).strict().under("receiver"),
    ]
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    // ------------------------------------------------ tcp_data_queue_ofo
    // Same start, longer: the later copy replaces the queued one.
    out.extend(both(
        ("linux-ooo-replace-benign", "strict-ooo-replace-benign"),
        || arranged(&[(3, b"Xmm"), (3, b"mless!"), (0, b"har")]),
        Expect::Benign(b"harmless!"),
        Expect::Agreed(b"harXmm"),
    ));
    out.extend(both(
        ("linux-ooo-replace", "strict-ooo-replace"),
        || arranged(&[(3, b"ume"), (3, b"ack!!"), (0, b"att")]),
        Expect::Attack(b""),
        Expect::Attack(b"attume"),
    ));
    // A later segment covering a queued one removes it.
    out.extend(both(
        ("linux-ooo-cover-benign", "strict-ooo-cover-benign"),
        || arranged(&[(4, b"X"), (2, b"rmless"), (0, b"ha")]),
        Expect::Benign(b"harmless"),
        Expect::Agreed(b"ha"),
    ));
    out.extend(both(
        ("linux-ooo-cover", "strict-ooo-cover"),
        || arranged(&[(4, b"Z"), (3, b"ack"), (0, b"att")]),
        Expect::Attack(b""),
        Expect::Attack(b"att"),
    ));
    // Partial overlap, lower one first: the queued (lower) bytes win.
    out.extend(both(
        ("linux-ooo-partial-lower-first-benign", "strict-ooo-partial-lower-first-benign"),
        || arranged(&[(2, b"rmle"), (4, b"XXss"), (0, b"ha")]),
        Expect::Benign(b"harmless"),
        Expect::Agreed(b"harmle"),
    ));
    out.extend(both(
        ("linux-ooo-partial-lower-first", "strict-ooo-partial-lower-first"),
        || arranged(&[(1, b"tta"), (2, b"ZZck"), (0, b"a")]),
        Expect::Attack(b""),
        Expect::Attack(b"atta"),
    ));
    // Partial overlap, lower one second: the newcomer starts lower and wins.
    out.extend(both(
        ("linux-ooo-partial-lower-second-benign", "strict-ooo-partial-lower-second-benign"),
        || arranged(&[(4, b"XXss"), (2, b"rmle"), (0, b"ha")]),
        Expect::Benign(b"harmless"),
        Expect::Agreed(b"ha"),
    ));
    out.extend(both(
        ("linux-ooo-partial-lower-second", "strict-ooo-partial-lower-second"),
        || arranged(&[(4, b"Xk"), (1, b"ttac"), (0, b"a")]),
        Expect::Attack(b""),
        Expect::Attack(b"a"),
    ));
    // ------------------------------------------------ in order over the queue
    out.extend(both(
        ("linux-in-order-over-queue-benign", "strict-in-order-over-queue-benign"),
        || arranged(&[(4, b"Xess"), (0, b"harml")]),
        Expect::Benign(b"harmless"),
        Expect::Agreed(b""),
    ));
    out.extend(both(
        ("linux-in-order-over-queue", "strict-in-order-over-queue"),
        || arranged(&[(4, b"Zk"), (0, b"attac")]),
        Expect::Attack(b""),
        Expect::Attack(b""),
    ));
    // ------------------------------------------------ PAWS, TCP-MD5
    out.extend(both(
        ("linux-paws-benign", "strict-paws-benign"),
        || discarded_first(&old_ts(), b"XXXXXXXX", b"harmless"),
        Expect::Benign(b"harmless"),
        Expect::Agreed(b""),
    ));
    out.extend(both(
        ("linux-paws", "strict-paws"),
        || discarded_first(&old_ts(), b"harmless", b"attack!!"),
        Expect::Attack(b""),
        Expect::Attack(b""),
    ));
    out.extend(both(
        ("linux-md5-benign", "strict-md5-benign"),
        || discarded_first(&md5(), b"XXXXXXXX", b"harmless"),
        Expect::Benign(b"harmless"),
        Expect::Agreed(b""),
    ));
    out.extend(both(
        ("linux-md5", "strict-md5"),
        || discarded_first(&md5(), b"harmless", b"attack!!"),
        Expect::Attack(b""),
        Expect::Attack(b""),
    ));
    // ------------------------------------------------ SYN data (no Fast Open)
    let syn_data = |first: &'static [u8], real: &'static [u8]| {
        move || {
            let mut c = opened(first, 65535);
            let base = c.next_seq(Up);
            c.segment(Up, base, ACK | PSH, real);
            c
        }
    };
    out.extend(both(
        ("linux-syn-data-benign", "strict-syn-data-benign"),
        syn_data(b"XXXXXXXX", b"harmless"),
        Expect::Benign(b"harmless"),
        Expect::Agreed(b""),
    ));
    out.extend(both(
        ("linux-syn-data", "strict-syn-data"),
        syn_data(b"harmless", b"attack!!"),
        Expect::Attack(b""),
        Expect::Attack(b""),
    ));
    // ------------------------------------------------ urgent data (oob)
    let urgent = |head: &'static [u8], tail: &'static [u8]| {
        move || {
            let mut c = conv();
            c.handshake();
            let base = c.next_seq(Up);
            c.data(Up, head);
            urgent_segment(&mut c, base + head.len() as u32, 1, tail);
            c
        }
    };
    let [linux, _] = both(
        ("linux-urgent-benign", "-"),
        urgent(b"har", b"Xmless"),
        Expect::Benign(b"harmless"),
        Expect::Agreed(b""),
    );
    out.push(linux.counters(&["tcp_urgent_hidden"]).zero(&["tcp_urgent_cleared", "drop_rule"]));
    let [linux, _] =
        both(("linux-urgent", "-"), urgent(b"att", b"Xack"), Expect::Attack(b"att"), Expect::Agreed(b""));
    out.push(linux.counters(&["tcp_urgent_hidden", "drop_rule"]));
    // (The strict twins are `urgent` and `urgent-benign` in tests/fidelity.rs.)
    // ------------------------------------------------ IP fragment duplicates
    const OTHER: &[u8] = b"....------XXXXXX--------........";
    out.extend(both(
        ("linux-fragment-duplicate-benign", "strict-fragment-duplicate-benign"),
        || duplicate_fragments(OVERLAP_GOOD, OTHER),
        Expect::Benign(OVERLAP_GOOD),
        Expect::Agreed(OVERLAP_GOOD),
    ));
    out.extend(both(
        ("linux-fragment-duplicate", "strict-fragment-duplicate"),
        || duplicate_fragments(OVERLAP_EVIL, OVERLAP_GOOD),
        Expect::Attack(b""),
        Expect::Attack(OVERLAP_GOOD),
    ));
    out
}

fn counters_of(c: Case) -> Case {
    let name = c.name;
    let linux = name.starts_with("linux-");
    let benign = name.ends_with("-benign");
    let zero: &'static [&'static str] = if benign && linux { &["drop_rule"] } else { &[] };
    let counters: &'static [&'static str] = match (linux, name) {
        (true, n) if n.contains("-ooo-") || n.contains("in-order") => &["tcp_overlaps_resolved"],
        (true, n) if n.contains("paws") => &["drop_tcp_paws"],
        (true, n) if n.contains("md5") => &["drop_tcp_auth_option"],
        (true, n) if n.contains("syn-data") => &["tcp_syn_data_forgotten"],
        (true, n) if n.contains("fragment") => &["drop_fragment_duplicate"],
        (false, n) if n.contains("fragment") => &["drop_fragment_overlap"],
        (false, n) if n.contains("-ooo-") || n.contains("in-order") || n.contains("syn-data") => {
            &["drop_tcp_overlap_conflict"]
        }
        _ => c.counters,
    };
    let zero = if c.zero.is_empty() { zero } else { c.zero };
    let counters = if c.counters.is_empty() { counters } else { c.counters };
    c.counters(counters).zero(zero)
}

fn run_named(test: &str) {
    let all = cases();
    let case = all
        .into_iter()
        .find(|c| c.name.replace('-', "_") == test)
        .unwrap_or_else(|| panic!("no case for test {test}"));
    run_case(&counters_of(case));
}

macro_rules! receiver_cases {
    ($($name:ident),* $(,)?) => {
        /// One test per case.
        mod case {
            $(
                #[test]
                fn $name() {
                    super::run_named(stringify!($name));
                }
            )*
        }
        const CASE_TESTS: &[&str] = &[$(stringify!($name)),*];
    };
}

receiver_cases!(
    linux_ooo_replace_benign,
    strict_ooo_replace_benign,
    linux_ooo_replace,
    strict_ooo_replace,
    linux_ooo_cover_benign,
    strict_ooo_cover_benign,
    linux_ooo_cover,
    strict_ooo_cover,
    linux_ooo_partial_lower_first_benign,
    strict_ooo_partial_lower_first_benign,
    linux_ooo_partial_lower_first,
    strict_ooo_partial_lower_first,
    linux_ooo_partial_lower_second_benign,
    strict_ooo_partial_lower_second_benign,
    linux_ooo_partial_lower_second,
    strict_ooo_partial_lower_second,
    linux_in_order_over_queue_benign,
    strict_in_order_over_queue_benign,
    linux_in_order_over_queue,
    strict_in_order_over_queue,
    linux_paws_benign,
    strict_paws_benign,
    linux_paws,
    strict_paws,
    linux_md5_benign,
    strict_md5_benign,
    linux_md5,
    strict_md5,
    linux_syn_data_benign,
    strict_syn_data_benign,
    linux_syn_data,
    strict_syn_data,
    linux_urgent_benign,
    linux_urgent,
    linux_fragment_duplicate_benign,
    strict_fragment_duplicate_benign,
    linux_fragment_duplicate,
    strict_fragment_duplicate,
);

#[test]
fn every_case_has_a_test_and_a_fixture_dir() {
    let mut names: Vec<String> = cases().iter().map(|c| c.name.replace('-', "_")).collect();
    names.sort();
    let mut tests: Vec<String> = CASE_TESTS.iter().map(|s| s.to_string()).collect();
    tests.sort();
    assert_eq!(names, tests, "every case has exactly one test in receiver_cases!");
    for entry in fs::read_dir(fixture_root().join("receiver")).expect("fixtures") {
        let n = entry.unwrap().file_name().to_string_lossy().replace('-', "_");
        assert!(names.contains(&n), "fixture dir {n:?} has no case");
    }
}

// ---------------------------------------------------------------- the Linux model itself

fn raw(c: Conversation) -> Vec<Vec<u8>> {
    c.into_packets().into_iter().map(|p| p.1).collect()
}

#[test]
fn the_linux_model_follows_tcp_data_queue_ofo() {
    let read = |segs: &[(u32, &[u8])]| endpoint_reads(&raw(arranged(segs)), LINUX, &[]);
    // Inside a queued one: dropped. Same start, longer: replaces. Covering:
    // removes. Partial: the lower start wins. In order: wins over the queue.
    assert_eq!(read(&[(3, b"ack"), (3, b"ume"), (0, b"att")]), b"attack");
    assert_eq!(read(&[(3, b"ume"), (3, b"ack!!"), (0, b"att")]), b"attack!!");
    assert_eq!(read(&[(4, b"Z"), (3, b"ack"), (0, b"att")]), b"attack");
    assert_eq!(read(&[(1, b"tta"), (2, b"ZZck"), (0, b"a")]), b"attack");
    assert_eq!(read(&[(4, b"Xk"), (1, b"ttac"), (0, b"a")]), b"attack");
    assert_eq!(read(&[(4, b"Zk"), (0, b"attac")]), b"attack");
    // The first-wins model reads the partial overlaps otherwise.
    let first = POLICIES[0];
    assert_eq!(endpoint_reads(&raw(arranged(&[(4, b"Xk"), (1, b"ttac"), (0, b"a")])), first, &[]), b"attaXk");
}

#[test]
fn the_models_discard_paws_md5_and_keep_the_first_fragment_copy() {
    for p in [LINUX, POLICIES[1]] {
        assert_eq!(
            endpoint_reads(&raw(discarded_first(&old_ts(), b"harmless", b"attack!!")), p, &[]),
            b"attack!!"
        );
        assert_eq!(
            endpoint_reads(&raw(discarded_first(&md5(), b"harmless", b"attack!!")), p, &[]),
            b"attack!!"
        );
    }
    let frags = raw(duplicate_fragments(OVERLAP_EVIL, OVERLAP_GOOD));
    let mut want = OVERLAP_EVIL.to_vec();
    assert_eq!(endpoint_reads(&frags, LINUX, &[]), want);
    // The last-wins model takes the second copy (then the resend is old data).
    want = OVERLAP_GOOD.to_vec();
    assert_eq!(endpoint_reads(&frags, POLICIES[1], &[]), want);
}
