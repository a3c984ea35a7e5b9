//! Stream fidelity, offline: the adversarial cases of `docs/stream-fidelity.md`
//! from the catalogue shared with the netns suite
//! (`tests/fidelity/catalogue.rs`, which says why a case runs in one suite
//! only) as pcap tests. Each case is a crafted capture; `sluice pcap` runs it
//! with a rule that resets on the bytes `attack`. A model of a receiving
//! endpoint (Linux's default stream semantics, under each of the endpoint
//! policies that can differ: which copy of an overlap it keeps, whether it
//! trims a segment to its receive window) then reads the client's bytes out
//! of the input capture and out of sluice's output:
//!
//! * attack variants: some endpoint policy reads `attack` from the input (the
//!   case is real); through sluice every policy reads exactly the same
//!   expected bytes, which never contain `attack`;
//! * benign variants (the same arrangement carrying harmless bytes): every
//!   policy reads exactly the benign bytes, without sluice and through it
//!   (or, where sluice normalises packets, exactly the normalised bytes);
//! * counters show the policy that applied (or that one did not apply).
//!
//! Inputs and expected outputs are committed under `tests/fidelity/<case>/`
//! (`SLUICE_BLESS=1 cargo test --release --test fidelity` rewrites them) and
//! compared byte for byte, so behaviour changes show up in review. Each case
//! is its own test, named after it (`-` becomes `_`), so a known sluice bug
//! can be marked `#[ignore = "..."]` while the rest runs.

#[path = "fidelity/catalogue.rs"]
mod catalogue;
#[path = "fidelity/harness.rs"]
mod harness;

use std::fs;

use catalogue::catalogue;
use harness::*;
use sluice::flow::Direction::Up;
use sluice::pcapgen::Conversation;
use sluice::wire::tcp_flags::{ACK, PSH};

/// Runs the offline case whose name is `test` with `_` for `-`.
fn run_named(test: &str) {
    let case = catalogue()
        .into_iter()
        .find(|c| c.name.replace('-', "_") == test)
        .unwrap_or_else(|| panic!("no case for test {test}"));
    let expect = case.offline.unwrap_or_else(|| panic!("{test}: {}", case.only));
    run_case(&expect(packets(case.name, case.offline_packets(), Expect::Benign(b""))));
}

macro_rules! offline_cases {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        /// One test per case.
        mod case {
            $(
                $(#[$attr])*
                #[test]
                fn $name() {
                    super::run_named(stringify!($name));
                }
            )*
        }
        const CASE_TESTS: &[&str] = &[$(stringify!($name)),*];
    };
}

offline_cases!(
    segmented_bytewise,
    segmented_bytewise_benign,
    reordered,
    reordered_benign,
    ipv6_reordered,
    ipv6_reordered_benign,
    duplicated,
    duplicated_benign,
    reordered_duplicated_benign,
    ooo_overlap_conflict,
    ooo_overlap_conflict_last,
    retransmit_other_bytes,
    retransmit_other_bytes_lost,
    retransmit_after_ack,
    bad_checksum,
    bad_checksum_benign,
    no_ack_flag,
    no_ack_flag_benign,
    out_of_window,
    out_of_window_straddle_benign,
    out_of_window_benign,
    out_of_window_edge_benign,
    zero_window_benign,
    window_scaled_benign,
    fake_rst,
    fake_rst_benign,
    real_rst_benign,
    urgent,
    urgent_benign,
    fragments,
    fragments_benign,
    fragments_overlap_conflict,
    fragments_overlap_evil_first,
    fragments_overlap_good_first,
    ipv6_fragments,
    ipv6_fragments_benign,
    sequence_wrap,
    sequence_wrap_benign,
    syn_with_data,
    syn_with_data_other_bytes,
    syn_with_data_benign,
    reuse_after_close,
    reuse_after_close_benign,
    reuse_after_reset,
    reuse_after_reset_benign,
    ooo_limit_benign,
);

#[test]
fn every_case_has_a_test_and_a_fixture_dir() {
    let mut names: Vec<String> =
        catalogue().iter().filter(|c| c.offline.is_some()).map(|c| c.name.replace('-', "_")).collect();
    names.sort();
    let mut tests: Vec<String> = CASE_TESTS.iter().map(|s| s.to_string()).collect();
    tests.sort();
    assert_eq!(names, tests, "every case has exactly one test in offline_cases!");
    // No fixture left behind by a renamed or removed case.
    // (`receiver/` holds the fixtures of tests/receiver.rs.)
    for entry in fs::read_dir(fixture_root()).expect("fixtures") {
        let entry = entry.unwrap();
        if entry.path().is_dir() && entry.file_name() != "receiver" {
            let n = entry.file_name().to_string_lossy().replace('-', "_");
            assert!(names.contains(&n), "fixture dir {:?} has no case", entry.file_name());
        }
    }
}

/// Case names are unique, and a case that one suite does not run says why
/// (and one both run says nothing).
#[test]
fn the_catalogue_says_why_a_case_runs_in_one_suite_only() {
    let all = catalogue();
    let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names are unique");
    for c in &all {
        let both = c.offline.is_some() && c.netns.is_some();
        assert!(c.offline.is_some() || c.netns.is_some(), "{}: runs nowhere", c.name);
        assert_eq!(both, c.only.is_empty(), "{}: `only` must say why exactly when one suite runs it", c.name);
        if c.offline.is_some() && c.capture.is_none() {
            assert!(
                c.conns.iter().all(|k| matches!(k.play, catalogue::Play::Script(_))),
                "{}: offline, a live connection needs a capture",
                c.name
            );
        }
    }
}

// ---------------------------------------------------------------- the model itself

// The model must see through each disguise, or the cases above would pass
// for the wrong reason.

fn raw(c: Conversation) -> Vec<Vec<u8>> {
    c.into_packets().into_iter().map(|p| p.1).collect()
}

#[test]
fn endpoint_model_reads_attacks_in_raw_input() {
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
    let pkts = raw(c);
    for p in POLICIES {
        assert_eq!(endpoint_reads(&pkts, p, &[]), b"attack", "{p:?}");
    }
}

#[test]
fn endpoint_model_applies_the_receive_window() {
    let [whole, _, trim, _] = POLICIES;
    // A segment straddling the edge: taken whole, or trimmed.
    let mut c = opened(b"", 5);
    let base = c.next_seq(Up);
    c.data(Up, b"att").segment(Up, base + 3, ACK | PSH, b"ack!!");
    let pkts = raw(c);
    assert_eq!(endpoint_reads(&pkts, whole, &[]), b"attack!!");
    assert_eq!(endpoint_reads(&pkts, trim, &[]), b"attac");
    // Starting exactly at the edge, in order (zero window) or not: discarded.
    for ooo in [false, true] {
        let mut c = opened(b"", 3);
        let base = c.next_seq(Up);
        if ooo {
            c.segment(Up, base + 3, ACK | PSH, b"ack").segment(Up, base, ACK | PSH, b"att");
        } else {
            c.data(Up, b"att").segment(Up, base + 3, ACK | PSH, b"ack");
        }
        let pkts = raw(c);
        for p in POLICIES {
            assert_eq!(endpoint_reads(&pkts, p, &[]), b"att", "{p:?}, out of order: {ooo}");
        }
    }
    // The window scale applies to the server's windows after the handshake
    // (1 << 7 = 128 bytes), never to the SYN-ACK's.
    let mut c = opened(b"", 1);
    let base = c.next_seq(Up);
    c.data(Up, b"a");
    server_ack(&mut c, base + 1, 1);
    c.segment(Up, base + 1, ACK | PSH, &[b'b'; 200]);
    let pkts = raw(c);
    let mut want = b"a".to_vec();
    want.extend_from_slice(&[b'b'; 128]);
    assert_eq!(endpoint_reads(&pkts, trim, &[]), want);
}

#[test]
fn endpoint_model_discards_an_ipv6_first_fragment_without_the_tcp_header() {
    let short = raw(fragmented(conv6(), b"v6 attack in pieces", &[16, 8]));
    let long = raw(fragmented(conv6(), b"v6 attack in pieces", &[32, 8]));
    for p in POLICIES {
        assert_eq!(endpoint_reads(&short, p, &[]), b"", "{p:?}");
        assert_eq!(endpoint_reads(&long, p, &[]), b"v6 attack in pieces", "{p:?}");
    }
}

#[test]
fn endpoint_model_loses_only_the_first_copy() {
    let mut c = conv();
    c.handshake();
    let base = c.next_seq(Up);
    c.data(Up, b"attune").segment(Up, base, ACK | PSH, b"attack").segment(Up, base, ACK | PSH, b"attune");
    let pkts = raw(c);
    for p in POLICIES {
        assert_eq!(endpoint_reads(&pkts, p, &[]), b"attune", "{p:?}");
        assert_eq!(endpoint_reads(&pkts, p, &[b"attune"]), b"attack", "{p:?}");
    }
}
