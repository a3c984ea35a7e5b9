//! `sluice pcap --checksums auto|verify|ignore` on crafted captures: a host
//! that left its TCP/UDP checksums to NIC offload while the other host is
//! clean, a loopback capture with IPv4 header checksums of 0, and a packet
//! with a bad checksum that packet rules see before it is dropped.

use std::fs;
use std::path::{Path, PathBuf};

use sluice::flow::Direction::{Down, Up};
use sluice::offline::{self, ChecksumMode, OfflineOptions, Summary};
use sluice::pcapgen::{write_pcap_file, Conversation, Framing, TimedPacket};
use sluice::wire::decode;
use sluice::wire::header::{Ipv4, Tcp, Udp};

/// Alerts on every delivered chunk (with its direction and bytes) and on
/// every TCP packet whose payload holds "evil".
const RULES: &str = r#"require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp.events.receive_packet,
  eval = function (pkt)
    if pkt.payload:asstring():find("evil", 1, true) then
      haka.alert{ description = "packet with evil", severity = "low" }
    end
  end
}

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    haka.alert{ description = dir .. ":" .. data:asstring(), severity = "low" }
  end
}
"#;

/// Breaks a packet's TCP or UDP checksum as a NIC-offloading sender leaves
/// it (a partial sum is wrong for the whole segment).
fn break_transport_sum(p: &mut [u8]) {
    if let Some(mut t) = Tcp::of_packet(p) {
        let sum = t.checksum();
        t.set_checksum(sum ^ 0x5a00);
    } else {
        let mut u = Udp::of_packet(p).expect("not TCP/UDP");
        let sum = u.checksum();
        u.set_checksum(sum ^ 0x5a00);
    }
}

fn zero_ip_header_sum(p: &mut [u8]) {
    Ipv4::new_checked(p).unwrap().set_checksum(0);
}

/// The server (10.0.0.2) sends with offloaded checksums; the client is
/// clean, but an insertion from the client's address with a bad checksum
/// carries "evil" at the stream position of the client's real data.
fn offload_capture() -> Vec<TimedPacket> {
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake();
    let at = c.next_seq(Up);
    let mut insertion = c.build(Up, at, sluice::wire::tcp_flags::ACK, &[], b"evil");
    break_transport_sum(&mut insertion);
    c.push(insertion);
    c.send(Up, b"good").send(Down, b"reply one").send(Down, b"reply two").close();
    let mut packets = c.into_packets();
    for (_, p) in packets.iter_mut() {
        if decode(p).unwrap().ip.src.to_string() == "10.0.0.2" {
            break_transport_sum(p);
        }
    }
    packets
}

struct Run {
    summary: Summary,
    alerts: Vec<String>,
}

fn run(dir: &Path, packets: &[TimedPacket], framing: &Framing, mode: ChecksumMode) -> Run {
    let input = dir.join("in.pcap");
    write_pcap_file(&input, framing, packets).unwrap();
    let rules = dir.join("rules.lua");
    fs::write(&rules, RULES).unwrap();
    let alerts: PathBuf = dir.join("alerts.jsonl");
    let mut opts = OfflineOptions::new(&rules, &input);
    opts.alerts = Some(alerts.clone());
    opts.checksums = mode;
    let summary = offline::run(&opts).unwrap();
    let alerts = fs::read_to_string(alerts)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["description"].as_str().unwrap().to_string()
        })
        .collect();
    Run { summary, alerts }
}

fn counter(s: &Summary, name: &str) -> u64 {
    s.counters.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap()
}

#[test]
fn auto_trusts_the_offloading_host_and_still_catches_the_other_hosts_bad_sum() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tmp.path(), &offload_capture(), &Framing::Ethernet, ChecksumMode::Auto);
    // The insertion reached the packet rule, then was dropped: its bytes
    // never reached the stream, the real client data did.
    assert_eq!(r.alerts, ["packet with evil", "up:good", "down:reply one", "down:reply two"]);
    assert_eq!(counter(&r.summary, "drop_bad_checksum"), 1);
    assert_eq!(r.summary.dropped, 1);
    // 6 server packets: SYN-ACK, ACK of "good", 2 replies, ACK of the
    // client's FIN, FIN.
    assert_eq!(counter(&r.summary, "checksum_offload_unverified"), 6);
    let off = &r.summary.checksum_offload;
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0].0.to_string(), "10.0.0.2");
    assert!(off[0].1.transport && !off[0].1.ip_header);
    assert_eq!((off[0].2.transport_bad, off[0].2.transport_seen), (6, 6));
    let text = r.summary.to_string();
    assert!(
        text.contains(
            "checksums: 10.0.0.2: TCP/UDP checksums (6 of 6 wrong) not verified (left to NIC offload)"
        ),
        "{text}"
    );
    let json = r.summary.to_json();
    assert_eq!(json["checksum_offload"][0]["host"], "10.0.0.2");
    assert_eq!(json["checksum_offload"][0]["transport_bad"], 6);
}

#[test]
fn verify_drops_the_offloading_hosts_packets_and_ignore_takes_the_insertion() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tmp.path(), &offload_capture(), &Framing::Ethernet, ChecksumMode::Verify);
    assert_eq!(counter(&r.summary, "drop_bad_checksum"), 7, "6 server packets and the insertion");
    assert!(r.summary.checksum_offload.is_empty());
    assert!(!r.alerts.iter().any(|a| a.starts_with("down:")), "{:?}", r.alerts);

    let r = run(tmp.path(), &offload_capture(), &Framing::Ethernet, ChecksumMode::Ignore);
    assert_eq!(counter(&r.summary, "drop_bad_checksum"), 0);
    // Unverified, the insertion is taken as the client's bytes: the trade-off
    // `auto` avoids for every host that is not offloaded.
    assert!(r.alerts.contains(&"up:evil".to_string()), "{:?}", r.alerts);
}

/// A loopback capture (BSD NULL link) whose IPv4 header checksums are all 0
/// and whose TCP checksums are partial.
fn loopback_capture() -> Vec<TimedPacket> {
    let mut c = Conversation::new("127.0.0.1:40000".parse().unwrap(), "127.0.0.1:8080".parse().unwrap());
    c.handshake().send(Up, b"ping").send(Down, b"pong").close();
    let mut packets = c.into_packets();
    for (_, p) in packets.iter_mut() {
        break_transport_sum(p);
        zero_ip_header_sum(p);
    }
    packets
}

#[test]
fn loopback_header_checksum_zero_is_replayed_in_auto_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tmp.path(), &loopback_capture(), &Framing::Null, ChecksumMode::Auto);
    assert_eq!(r.alerts, ["up:ping", "down:pong"]);
    assert_eq!(r.summary.dropped, 0);
    let off = &r.summary.checksum_offload;
    assert_eq!(off.len(), 1);
    assert!(off[0].1.transport && off[0].1.ip_header);
    assert!(r.summary.to_string().contains("IPv4 header checksums (11 of 11 zero)"), "{}", r.summary);

    let r = run(tmp.path(), &loopback_capture(), &Framing::Null, ChecksumMode::Verify);
    assert_eq!(counter(&r.summary, "drop_bad_ip_checksum"), 11);
    assert!(r.alerts.is_empty());

    // `ignore` verifies no checksum, the IPv4 header's included.
    let r = run(tmp.path(), &loopback_capture(), &Framing::Null, ChecksumMode::Ignore);
    assert_eq!(r.alerts, ["up:ping", "down:pong"]);
    assert_eq!(r.summary.dropped, 0);
}

#[test]
fn a_bad_ip_header_checksum_reaches_packet_rules_then_is_dropped() {
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake();
    let at = c.next_seq(Up);
    let mut p = c.build(Up, at, sluice::wire::tcp_flags::ACK, &[], b"evil");
    // A wrong, nonzero header checksum: damage, not offload.
    let mut h = Ipv4::new_checked(&mut p[..]).unwrap();
    let sum = h.checksum();
    h.set_checksum(sum ^ 0x0100);
    c.push(p);
    c.send(Up, b"fine").close();
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tmp.path(), &c.into_packets(), &Framing::Ethernet, ChecksumMode::Auto);
    assert_eq!(r.alerts, ["packet with evil", "up:fine"]);
    assert_eq!(counter(&r.summary, "drop_bad_ip_checksum"), 1);
    assert!(r.summary.checksum_offload.is_empty());
}

/// `sluice pcap` on `input` (a path, or `-` for `stdin_bytes` written to a
/// pipe), with a deadline: returns the exit status, the JSON summary and
/// standard error.
fn run_cli(
    dir: &Path,
    input: &str,
    stdin_bytes: Option<Vec<u8>>,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let rules = dir.join("rules.lua");
    fs::write(&rules, RULES).unwrap();
    let summary = dir.join("summary.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("pcap")
        .arg(&rules)
        .arg(input)
        .args(["--no-progress", "--alerts", "/dev/null", "--summary-json"])
        .arg(&summary)
        .args(extra)
        .stdin(if stdin_bytes.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin_bytes {
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || stdin.write_all(&bytes));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sluice pcap {input} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let json = fs::read(&summary).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or_default();
    (status.code().unwrap_or(-1), json, stderr)
}

#[test]
fn a_capture_on_standard_input_is_verified_strictly_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("offload.pcap");
    write_pcap_file(&file, &Framing::Ethernet, &offload_capture()).unwrap();
    let bytes = fs::read(&file).unwrap();
    let path = file.to_str().unwrap();
    let (code, verify, _) = run_cli(tmp.path(), path, None, &["--checksums", "verify"]);
    assert_eq!(code, 0);
    for workers in ["1", "2"] {
        let (code, piped, stderr) = run_cli(tmp.path(), "-", Some(bytes.clone()), &["--workers", workers]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("can be read only once"), "no warning with {workers} workers: {stderr}");
        assert_eq!(stderr.matches("can be read only once").count(), 1, "{stderr}");
        for key in ["packets_in", "accepted", "dropped"] {
            assert_eq!(piped[key], verify[key], "{key} with {workers} workers: {stderr}");
        }
        assert_eq!(piped["checksum_offload"].as_array().map_or(0, Vec::len), 0);
    }
    // The same capture in a file: the offloading host is found.
    let (_, auto, _) = run_cli(tmp.path(), path, None, &[]);
    assert_eq!(auto["checksum_offload"][0]["host"], "10.0.0.2");
    assert_eq!(auto["dropped"], 1);
}

#[test]
fn a_clean_capture_on_standard_input_or_a_fifo_needs_no_second_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let mut clean = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    clean.handshake().send(Up, b"hello").send(Down, b"world").close();
    let file = tmp.path().join("clean.pcap");
    write_pcap_file(&file, &Framing::Ethernet, clean.packets()).unwrap();
    let bytes = fs::read(&file).unwrap();
    let (code, piped, stderr) = run_cli(tmp.path(), "-", Some(bytes.clone()), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("read only once"), "{stderr}");
    assert_eq!(piped["packets_in"], clean.packets().len());
    assert_eq!(piped["dropped"], 0);
    // A FIFO, with an offloading host in it: read once (opening it again
    // would wait for a writer that never comes), and the warning says why.
    let fifo = tmp.path().join("capture.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let offload = tmp.path().join("offload.pcap");
    write_pcap_file(&offload, &Framing::Ethernet, &offload_capture()).unwrap();
    let (fifo2, offload2) = (fifo.clone(), offload.clone());
    let writer = std::thread::spawn(move || fs::write(&fifo2, fs::read(offload2).unwrap()));
    let (code, from_fifo, stderr) = run_cli(tmp.path(), fifo.to_str().unwrap(), None, &[]);
    writer.join().unwrap().unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("can be read only once"), "{stderr}");
    assert_eq!(from_fifo["packets_in"], offload_capture().len());
}
