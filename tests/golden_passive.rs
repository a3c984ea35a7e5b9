//! Golden tests for captures as analysts have them: `--passive` analysis
//! of captures with loss, checksum offload, and a damaged record.
//!
//! Each case lives in `tests/golden-passive/<case>/` with `rules.lua`,
//! `input.pcap` (crafted here with `sluice::pcapgen`), and the expected
//! outputs: `expected.pcap` (`-o`), `expected-alerts.jsonl`,
//! `expected-streams/` (the stream dump, `index.jsonl` with its gaps
//! included) and `expected-summary.txt` (the end-of-run summary). Each test
//! compares them byte for byte and also asserts what the case means, so a
//! wrong blessing fails anyway (`tests/passive.rs` checks the same
//! conditions event by event through the engine).
//!
//! * Regenerate inputs and rules: `cargo test --test golden_passive -- --ignored generate_fixtures`
//! * Rewrite expected files from the current behaviour, then review the diff:
//!   `SLUICE_BLESS=1 cargo test --test golden_passive`

use std::fs;
use std::path::{Path, PathBuf};

use sluice::flow::Direction::{Down, Up};
use sluice::offline::{self, ChecksumMode, OfflineError, OfflineOptions, Summary};
use sluice::pcapgen::{write_pcap, Conversation, Framing, TimedPacket};
use sluice::wire::header::{Ipv4, Tcp, Udp};
use sluice::wire::{decode, tcp_flags};

/// Alerts on every chunk delivered to rules (direction, length, bytes), and
/// resets the connection on "reset-me".
const RULES: &str = r#"-- One alert per chunk of stream data; a reset on "reset-me".
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    local s = data:asstring()
    haka.alert{ description = dir .. " " .. #s .. ": " .. s, severity = "low" }
    if s:find("reset-me", 1, true) then
      flow:reset()
    end
  end
}
"#;

struct Case {
    name: &'static str,
    framing: Framing,
    packets: Vec<TimedPacket>,
    passive: bool,
    /// Damage the header of this record (0-based) after writing the file.
    damage: Option<usize>,
}

fn conv() -> Conversation {
    Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap())
}

/// The packets without those whose TCP payload is one of `payloads`.
fn without(packets: Vec<TimedPacket>, payloads: &[&[u8]]) -> Vec<TimedPacket> {
    packets.into_iter().filter(|(_, p)| !payloads.contains(&decode(p).unwrap().payload())).collect()
}

fn break_transport_sum(p: &mut [u8]) {
    if let Some(mut t) = Tcp::of_packet(p) {
        let sum = t.checksum();
        t.set_checksum(sum ^ 0x5a00);
    } else if let Some(mut u) = Udp::of_packet(p) {
        let sum = u.checksum();
        u.set_checksum(sum ^ 0x5a00);
    }
}

fn all_cases() -> Vec<Case> {
    let passive =
        |name, packets| Case { name, framing: Framing::Ethernet, packets, passive: true, damage: None };
    let mut cases = Vec::new();

    let mut c = conv();
    c.handshake().send(Up, b"GET /a ").send(Up, b"GET /b ").send(Up, b"GET /c ").send(Down, b"200").close();
    cases.push(passive("passive-loss-up-before-ack", without(c.into_packets(), &[b"GET /b "])));

    let mut c = conv();
    c.handshake()
        .send(Up, b"GET /")
        .send(Down, b"part one,")
        .send(Down, b"part two,")
        .send(Down, b"end")
        .close();
    cases.push(passive("passive-loss-down-before-ack", without(c.into_packets(), &[b"part two,"])));

    // The server's ACK of "one " is lost (after the data): delivered by the next ACK.
    let mut c = conv();
    c.handshake().send(Up, b"one ").send(Up, b"two ").send(Down, b"ok").close();
    let mut packets = c.into_packets();
    packets.remove(4);
    cases.push(passive("passive-ack-lost-after-data", packets));

    let mut c = conv();
    c.handshake().send(Up, b"first").send(Up, b"middle").send(Down, b"reply").send(Down, b"last").close();
    cases.push(passive(
        "passive-loss-at-start-and-next-to-fin",
        without(c.into_packets(), &[b"first", b"last"]),
    ));

    let mut c = conv();
    c.handshake();
    for chunk in ["a1 ", "b22 ", "c333 ", "d4444 ", "e55555 "] {
        c.send(Up, chunk.as_bytes());
    }
    c.close();
    cases.push(passive("passive-several-gaps", without(c.into_packets(), &[b"b22 ", b"d4444 "])));

    let mut c = conv();
    c.handshake()
        .data(Up, b"GET /1 HTTP/1.1\r\n\r\n")
        .data(Up, b"GET /2 HTTP/1.1\r\n\r\n")
        .data(Up, b"GET /3 HTTP/1.1\r\n\r\n")
        .ack(Down)
        .send(Down, b"HTTP/1.1 200 OK\r\n\r\n")
        .close();
    cases.push(passive("passive-pipelined-gap", without(c.into_packets(), &[b"GET /2 HTTP/1.1\r\n\r\n"])));

    let mut c = conv();
    c.handshake().send(Up, b"before the capture").send(Up, b"seen ").data(Up, b"unacked");
    cases.push(passive("passive-midstream", c.into_packets().split_off(5)));

    let mut c = conv();
    c.handshake().send(Up, b"please reset-me").send(Up, b"more").send(Down, b"reply").close();
    cases.push(passive("passive-rule-reset", c.into_packets()));

    // Checksums (rehearsal, --checksums auto): the server offloads; the
    // client is clean but for one insertion with a bad checksum.
    let mut c = conv();
    c.handshake();
    let at = c.next_seq(Up);
    let mut insertion = c.build(Up, at, tcp_flags::ACK, &[], b"evil");
    break_transport_sum(&mut insertion);
    c.push(insertion);
    c.send(Up, b"good").send(Down, b"reply one").send(Down, b"reply two").close();
    let mut packets = c.into_packets();
    for (_, p) in packets.iter_mut() {
        if decode(p).unwrap().ip.src.to_string() == "10.0.0.2" {
            break_transport_sum(p);
        }
    }
    cases.push(Case {
        name: "checksums-offload-one-host",
        framing: Framing::Ethernet,
        packets,
        passive: false,
        damage: None,
    });

    let mut c = Conversation::new("127.0.0.1:40000".parse().unwrap(), "127.0.0.1:8080".parse().unwrap());
    c.handshake().send(Up, b"ping").send(Down, b"pong").close();
    let mut packets = c.into_packets();
    for (_, p) in packets.iter_mut() {
        break_transport_sum(p);
        Ipv4::new_checked(&mut p[..]).unwrap().set_checksum(0);
    }
    cases.push(Case {
        name: "checksums-loopback-zero",
        framing: Framing::Null,
        packets,
        passive: false,
        damage: None,
    });

    // Record 9 (1-based 10) damaged: the 9 records before it are processed.
    let mut c = conv();
    c.handshake().send(Up, b"hello").send(Down, b"world").close();
    cases.push(Case {
        name: "damaged-record",
        framing: Framing::Ethernet,
        packets: c.into_packets(),
        passive: false,
        damage: Some(9),
    });
    cases
}

fn find_case(name: &str) -> Case {
    all_cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name}"))
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden-passive")
}

fn input_bytes(c: &Case) -> Vec<u8> {
    let mut bytes = write_pcap(Vec::new(), &c.framing, &c.packets).unwrap();
    if let Some(n) = c.damage {
        let mut offset = 24;
        for _ in 0..n {
            let incl = u32::from_le_bytes(bytes[offset + 8..offset + 12].try_into().unwrap()) as usize;
            offset += 16 + incl;
        }
        bytes[offset + 8..offset + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    bytes
}

/// Writes every case's `rules.lua` and `input.pcap` (not the expected files).
#[test]
#[ignore = "writes fixtures; run explicitly"]
fn generate_fixtures() {
    for c in all_cases() {
        let dir = golden_dir().join(c.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("rules.lua"), RULES).unwrap();
        fs::write(dir.join("input.pcap"), input_bytes(&c)).unwrap();
    }
}

/// The committed inputs are what the generator makes (no stale fixtures).
#[test]
fn fixtures_match_the_generator() {
    for c in all_cases() {
        let dir = golden_dir().join(c.name);
        let rules = fs::read_to_string(dir.join("rules.lua"))
            .unwrap_or_else(|e| panic!("{}: {e}; run generate_fixtures", c.name));
        assert_eq!(rules, RULES, "{}: rules.lua is stale; run generate_fixtures", c.name);
        assert!(
            fs::read(dir.join("input.pcap")).unwrap() == input_bytes(&c),
            "{}: input.pcap is stale",
            c.name
        );
    }
}

struct Outcome {
    summary: Summary,
    alerts: Vec<String>,
    index: Vec<serde_json::Value>,
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

/// Runs a case and compares (or, with SLUICE_BLESS=1, writes) its outputs.
fn run_case(name: &str) -> Outcome {
    let c = find_case(name);
    let dir = golden_dir().join(name);
    let tmp = tempfile::tempdir().unwrap();
    let (out, alerts, streams) =
        (tmp.path().join("out.pcap"), tmp.path().join("alerts.jsonl"), tmp.path().join("streams"));
    let mut opts = OfflineOptions::new(dir.join("rules.lua"), dir.join("input.pcap"));
    opts.output = Some(out.clone());
    opts.alerts = Some(alerts.clone());
    opts.dump_streams = Some(streams.clone());
    opts.engine.passive = c.passive;
    opts.checksums = ChecksumMode::Auto;
    let summary = match offline::run(&opts) {
        Ok(s) => s,
        Err(OfflineError::Damaged { summary, .. }) if c.damage.is_some() => *summary,
        Err(e) => panic!("{name}: {e}"),
    };
    assert!(!summary.has_errors(), "{name}: one verdict per record");
    let summary_text = summary.to_string();
    let alert_text = fs::read_to_string(&alerts).unwrap_or_default();
    let exp_streams = dir.join("expected-streams");
    if std::env::var("SLUICE_BLESS").is_ok_and(|v| v == "1") {
        fs::copy(&out, dir.join("expected.pcap")).unwrap();
        fs::write(dir.join("expected-alerts.jsonl"), &alert_text).unwrap();
        fs::write(dir.join("expected-summary.txt"), &summary_text).unwrap();
        let _ = fs::remove_dir_all(&exp_streams);
        fs::create_dir_all(&exp_streams).unwrap();
        for (f, bytes) in files(&streams) {
            fs::write(exp_streams.join(f), bytes).unwrap();
        }
    } else {
        let read = |f: &str| fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{name}: {f}: {e}; bless"));
        assert!(read("expected.pcap") == fs::read(&out).unwrap(), "{name}: output pcap differs");
        assert_eq!(String::from_utf8(read("expected-alerts.jsonl")).unwrap(), alert_text, "{name}: alerts");
        assert_eq!(String::from_utf8(read("expected-summary.txt")).unwrap(), summary_text, "{name}: summary");
        assert_eq!(files(&exp_streams), files(&streams), "{name}: stream dump differs");
    }
    let alerts = alert_text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["description"].as_str().unwrap().to_string()
        })
        .collect();
    let index = fs::read_to_string(streams.join("index.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Outcome { summary, alerts, index }
}

fn gaps(o: &Outcome, dir: &str) -> serde_json::Value {
    let line = o.index.iter().find(|l| l["conn"] == 1 && l["dir"] == dir).expect("index line");
    line.get("gaps").cloned().unwrap_or(serde_json::json!([]))
}

fn gap(offset: u64, len: u64, file_offset: u64) -> serde_json::Value {
    serde_json::json!({"offset": offset, "len": len, "file_offset": file_offset})
}

#[test]
fn passive_loss_up_before_ack() {
    let o = run_case("passive-loss-up-before-ack");
    assert_eq!(o.alerts, ["up 7: GET /a ", "up 7: GET /c ", "down 3: 200"]);
    assert_eq!(gaps(&o, "up"), serde_json::json!([gap(7, 7, 7)]));
    assert_eq!(o.summary.dropped, 0);
}

#[test]
fn passive_loss_down_before_ack() {
    let o = run_case("passive-loss-down-before-ack");
    assert_eq!(o.alerts, ["up 5: GET /", "down 9: part one,", "down 3: end"]);
    assert_eq!(gaps(&o, "down"), serde_json::json!([gap(9, 9, 9)]));
}

#[test]
fn passive_ack_lost_after_data() {
    let o = run_case("passive-ack-lost-after-data");
    assert_eq!(o.alerts, ["up 8: one two ", "down 2: ok"]);
    assert_eq!(gaps(&o, "up"), serde_json::json!([]));
}

#[test]
fn passive_loss_at_start_and_next_to_fin() {
    let o = run_case("passive-loss-at-start-and-next-to-fin");
    assert_eq!(o.alerts, ["up 6: middle", "down 5: reply"]);
    assert_eq!(gaps(&o, "up"), serde_json::json!([gap(0, 5, 0)]));
    assert_eq!(gaps(&o, "down"), serde_json::json!([gap(5, 4, 5)]));
}

#[test]
fn passive_several_gaps() {
    let o = run_case("passive-several-gaps");
    assert_eq!(o.alerts, ["up 3: a1 ", "up 5: c333 ", "up 7: e55555 "]);
    assert_eq!(gaps(&o, "up"), serde_json::json!([gap(3, 4, 3), gap(12, 6, 8)]));
}

#[test]
fn passive_pipelined_gap() {
    let o = run_case("passive-pipelined-gap");
    assert!(o.alerts[1].contains("GET /3"), "the third request reaches rules: {:?}", o.alerts);
    assert_eq!(gaps(&o, "up"), serde_json::json!([gap(19, 19, 19)]));
}

#[test]
fn passive_midstream() {
    let o = run_case("passive-midstream");
    assert_eq!(o.alerts, ["up 5: seen ", "up 7: unacked"]);
}

#[test]
fn passive_rule_reset() {
    let o = run_case("passive-rule-reset");
    assert_eq!(o.alerts, ["up 15: please reset-me"]);
    assert_eq!(o.summary.forged, 2);
    assert!(o.summary.dropped > 0, "what would have happened inline");
}

#[test]
fn checksums_offload_one_host() {
    let o = run_case("checksums-offload-one-host");
    assert_eq!(o.alerts, ["up 4: good", "down 9: reply one", "down 9: reply two"]);
    assert_eq!(o.summary.counter("drop_bad_checksum"), 1, "the insertion");
    assert_eq!(o.summary.checksum_offload.len(), 1);
}

#[test]
fn checksums_loopback_zero() {
    let o = run_case("checksums-loopback-zero");
    assert_eq!(o.alerts, ["up 4: ping", "down 4: pong"]);
    assert_eq!(o.summary.dropped, 0);
}

#[test]
fn damaged_record() {
    let o = run_case("damaged-record");
    assert_eq!(o.summary.packets_in, 9);
    assert_eq!(o.summary.written, 9);
    assert_eq!(o.alerts, ["up 5: hello", "down 5: world"]);
}
