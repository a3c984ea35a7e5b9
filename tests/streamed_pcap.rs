//! Streamed rules end to end through `sluice pcap` (the offline driver as a
//! library call): a pattern split over 1 to 10 segments, in order and with
//! the last two segments swapped, is caught on the segment that completes
//! it, so the receiver never has the whole pattern; and the end of a
//! capture ends the streams.

use std::fs;
use std::path::Path;

use sluice::capture::pcap::PcapSource;
use sluice::flow::Direction::{Down, Up};
use sluice::offline::{self, OfflineOptions};
use sluice::pcapgen::{write_pcap_file, Conversation, Framing, TimedPacket};
use sluice::wire::{decode, tcp_flags, SeqNumber, Transport};

const STREAMED_FIND: &str = r#"
local tcp_connection = require("protocol/tcp_connection")
haka.rule {
  on = tcp_connection.events.receive_data,
  options = { streamed = true },
  eval = function (flow, iter, dir)
    if dir ~= "up" then return end
    local window = ""
    for sub in iter:foreach_available() do
      window = window .. sub:asstring()
      if window:find("attack", 1, true) then
        haka.alert{ description = "attack at " .. iter.meter }
        flow:reset()
        return
      end
      window = window:sub(-5)
    end
  end
}
"#;

const REQUEST: &[u8] = b"GET /search?q=attack HTTP/1.0\r\nHost: x\r\n\r\n";

/// The request cut into `pieces` segments, the cuts spread over the pattern.
fn cuts(pieces: usize) -> Vec<std::ops::Range<usize>> {
    let at = REQUEST.windows(6).position(|w| w == b"attack").unwrap();
    let mut ends: Vec<usize> = (1..pieces).map(|k| at + (k * 6) / pieces).collect();
    ends.push(REQUEST.len());
    ends.dedup();
    let mut start = 0;
    ends.into_iter()
        .map(|e| {
            let r = start..e;
            start = e;
            r
        })
        .collect()
}

/// The segments in the order they are sent.
fn arrival(pieces: usize, swap_last: bool) -> Vec<std::ops::Range<usize>> {
    let mut order = cuts(pieces);
    if swap_last && order.len() >= 2 {
        let n = order.len();
        order.swap(n - 2, n - 1);
    }
    order
}

/// What a receiver holds in order just before the segment that completes
/// the pattern arrives: the bytes the rules must let through.
fn prefix_before_completion(order: &[std::ops::Range<usize>]) -> usize {
    let end_of_pattern = REQUEST.windows(6).position(|w| w == b"attack").unwrap() + 6;
    let mut have = vec![false; REQUEST.len()];
    let contiguous = |have: &[bool]| have.iter().take_while(|b| **b).count();
    for r in order {
        let before = contiguous(&have);
        have[r.clone()].iter_mut().for_each(|b| *b = true);
        if contiguous(&have) >= end_of_pattern {
            return before;
        }
    }
    unreachable!("the request contains the pattern")
}

/// Handshake, the request in segments (the last two swapped if
/// `swap_last`), close.
fn capture(pieces: usize, swap_last: bool) -> Vec<TimedPacket> {
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake();
    let isn = c.next_seq(Up);
    let order = arrival(pieces, swap_last);
    for r in &order {
        let seq = isn + r.start as u32;
        c.segment(Up, seq, tcp_flags::PSH | tcp_flags::ACK, &REQUEST[r.clone()]);
    }
    c.close();
    c.into_packets()
}

/// Client payload bytes that passed, by stream offset from `isn`.
fn delivered(out: &Path, isn: SeqNumber) -> Vec<u8> {
    let mut bytes = vec![None; REQUEST.len()];
    for rec in PcapSource::open(out).unwrap().map(|r| r.unwrap()) {
        let Some(ip) = rec.ip() else { continue };
        let d = decode(ip).unwrap();
        let Transport::Tcp(t) = &d.transport else { continue };
        if t.dst_port != 80 || d.payload().is_empty() || t.has(tcp_flags::RST) {
            continue;
        }
        let off = t.seq.0.wrapping_sub(isn.0) as usize;
        for (i, b) in d.payload().iter().enumerate() {
            if let Some(slot) = bytes.get_mut(off + i) {
                *slot = Some(*b);
            }
        }
    }
    // What the receiver's application can read: the bytes up to the first hole.
    bytes.iter().map_while(|b| *b).collect()
}

fn run(packets: &[TimedPacket], rules: &str) -> (tempfile::TempDir, offline::Summary) {
    let dir = tempfile::tempdir().unwrap();
    let (input, rules_path) = (dir.path().join("in.pcap"), dir.path().join("rules.lua"));
    write_pcap_file(&input, &Framing::Ethernet, packets).unwrap();
    fs::write(&rules_path, rules).unwrap();
    let mut opts = OfflineOptions::new(&rules_path, &input);
    opts.output = Some(dir.path().join("out.pcap"));
    opts.alerts = Some(dir.path().join("alerts.jsonl"));
    let summary = offline::run(&opts).unwrap();
    (dir, summary)
}

#[test]
fn a_pattern_split_over_1_to_10_segments_never_reaches_the_server_whole() {
    for pieces in 1..=10 {
        for swap_last in [false, true] {
            let what = format!("{pieces} segments, last two swapped: {swap_last}");
            let packets = capture(pieces, swap_last);
            let (dir, summary) = run(&packets, STREAMED_FIND);
            let isn = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap())
                .next_seq(Up);
            let got = delivered(&dir.path().join("out.pcap"), isn + 1);
            assert!(!got.windows(6).any(|w| w == b"attack"), "{what}: the server could read {got:?}");
            let want = prefix_before_completion(&arrival(pieces, swap_last));
            assert_eq!(got.len(), want, "{what}: everything before the completing segment passes");
            let alerts = fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
            assert_eq!(alerts.lines().count(), 1, "{what}: {alerts}");
            assert!(summary.forged >= 2, "{what}: RSTs to both ends ({summary:?})");
            assert_eq!(summary.rule_errors, 0, "{what}");
        }
    }
}

#[test]
fn the_end_of_the_capture_ends_the_streams() {
    let rules = r#"
    haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
      eval = function (flow, iter, dir)
        local all = iter:sub("all")
        haka.alert{ description = dir .. " " .. (all and #all or 0) .. " eof " .. tostring(iter.iseof) }
      end }"#;
    // No FIN: the capture just stops.
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake().send(Up, b"hello").send(Down, b"world!");
    let (dir, summary) = run(&c.into_packets(), rules);
    let alerts = fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    assert!(alerts.contains("\"up 5 eof true\""), "{alerts}");
    assert!(alerts.contains("\"down 6 eof true\""), "{alerts}");
    assert_eq!(summary.rule_errors, 0);
}

#[test]
fn the_monologue_sample_sees_pipelined_requests_as_one_turn() {
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake()
        .send(Up, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .send(Up, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        .send(Down, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .send(Down, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .send(Up, b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        .close();
    let rules = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sample/monologue.lua")).unwrap();
    let (dir, summary) = run(&c.into_packets(), &rules);
    let alerts = fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    let lines: Vec<&str> = alerts.lines().collect();
    assert_eq!(lines.len(), 1, "{alerts}");
    assert!(lines[0].contains("2 HTTP requests in one client turn"), "{alerts}");
    assert_eq!(summary.rule_errors, 0);
    assert_eq!(summary.dropped, 0);
}

#[test]
fn each_direction_ends_at_its_own_fin_in_haka_order() {
    // As Haka's stream-rule test: the server closes first (Connection:
    // close), so its stream ends before the client's.
    let rules = r#"
    haka.rule { on = haka.dissectors.tcp_connection.events.receive_data, options = { streamed = true },
      eval = function (flow, iter, dir)
        local all = iter:sub("all")
        haka.alert{ description = dir .. " ended with " .. (all and #all or 0) .. " bytes" }
      end }"#;
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake()
        .send(Up, b"GET / HTTP/1.0\r\n\r\n")
        .send(Down, b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nbye")
        .fin(Down)
        .ack(Up)
        .fin(Up)
        .ack(Down);
    let (dir, summary) = run(&c.into_packets(), rules);
    let alerts = fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    let order: Vec<&str> = alerts
        .lines()
        .map(|l| {
            if l.contains("\"down ended with 41 bytes\"") {
                "down"
            } else if l.contains("\"up ended with 18 bytes\"") {
                "up"
            } else {
                l
            }
        })
        .collect();
    assert_eq!(order, ["down", "up"], "{alerts}");
    assert_eq!(summary.rule_errors, 0);
}

#[test]
fn the_streamed_regexp_sample_catches_split_patterns_and_passes_clean_traffic() {
    let rules =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sample/streamed-regexp.lua")).unwrap();
    // A SQL comment split over three segments of the request.
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake().send(Up, b"GET /item?id=1' ").send(Up, b"-").send(Up, b"- HTTP/1.1\r\n\r\n").close();
    let (dir, summary) = run(&c.into_packets(), &rules);
    let alerts = fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    assert!(
        alerts.contains("SQL comment sequence in a request (up stream, 3 bytes ending at offset 19)"),
        "{alerts}"
    );
    assert!(summary.forged >= 2, "{summary:?}");
    // Clean traffic: no alert, nothing dropped.
    let mut c = Conversation::new("10.0.0.1:40001".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake()
        .send(Up, b"GET /item?id=12 HTTP/1.1\r\n\r\n")
        .send(Down, b"HTTP/1.1 200 OK\r\n\r\n")
        .close();
    let (dir, summary) = run(&c.into_packets(), &rules);
    assert_eq!(fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap(), "");
    assert_eq!((summary.dropped, summary.rule_errors), (0, 0));
}
