//! Offline runs are reproducible: the same capture and rules give
//! byte-identical alerts, output pcap and stream dumps, run after run, also
//! when many flows end in the same tick (the flow table's hash has a random
//! seed per run, so their order must not come from it).

use std::fs;
use std::path::Path;

use sluice::flow::Direction::{Down, Up};
use sluice::offline::{self, OfflineOptions};
use sluice::pcapgen::{write_pcap_file, Conversation, Framing, TimedPacket, DEFAULT_START};
use sluice::time::Timestamp;

const RULES: &str = r#"require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.end_connection,
  eval = function (flow)
    haka.alert{ description = "end " .. flow.srcport, severity = "low" }
  end
}
"#;

/// 40 connections that exchange data and go idle, then one packet two hours
/// later: every connection times out in that packet's tick.
fn capture() -> Vec<TimedPacket> {
    let mut all = Vec::new();
    for i in 0..40u16 {
        let client = format!("10.0.0.1:{}", 41000 + i).parse().unwrap();
        let start = Timestamp(DEFAULT_START.0 + u64::from(i) * 10_000);
        let mut c = Conversation::new(client, "10.0.0.2:80".parse().unwrap()).at(start);
        c.handshake().send(Up, format!("request {i}").as_bytes()).send(Down, b"response");
        all.extend(c.into_packets());
    }
    all.sort_by_key(|(t, _)| *t);
    let mut late = Conversation::new("10.0.0.9:5000".parse().unwrap(), "10.0.0.2:53".parse().unwrap())
        .at(Timestamp(DEFAULT_START.0 + 7_200_000_000));
    late.udp(Up, b"late");
    all.extend(late.into_packets());
    all
}

/// Every file under `dir`, by name, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn three_runs_give_byte_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.pcap");
    write_pcap_file(&input, &Framing::Ethernet, &capture()).unwrap();
    let rules = tmp.path().join("rules.lua");
    fs::write(&rules, RULES).unwrap();

    let mut runs = Vec::new();
    for run in 0..3 {
        let dir = tmp.path().join(format!("run{run}"));
        fs::create_dir(&dir).unwrap();
        let mut opts = OfflineOptions::new(&rules, &input);
        opts.output = Some(dir.join("out.pcap"));
        opts.alerts = Some(dir.join("alerts.jsonl"));
        opts.dump_streams = Some(dir.join("streams"));
        offline::run(&opts).unwrap();
        runs.push((files(&dir), files(&dir.join("streams"))));
    }
    // The alerts name the connections in creation order.
    let alerts =
        String::from_utf8(runs[0].0.iter().find(|(n, _)| n == "alerts.jsonl").unwrap().1.clone()).unwrap();
    let ports: Vec<String> = alerts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["description"].to_string())
        .collect();
    let expected: Vec<String> = (0..40).map(|i| format!("\"end {}\"", 41000 + i)).collect();
    assert_eq!(ports, expected);
    assert_eq!(runs[0], runs[1], "runs 1 and 2 differ");
    assert_eq!(runs[0], runs[2], "runs 1 and 3 differ");
}
