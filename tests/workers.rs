//! `sluice pcap --workers N` writes exactly what `--workers 1` writes: the
//! output pcap, the alerts, the stream dump (files and index), the summary
//! (text and JSON) and the rules' log lines, byte for byte, for N = 2, 3, 4.
//! The crafted traffic has many connections spread over the workers, rules
//! that alert, drop, reset and half-reset (streamed and not), IP fragments
//! (complete, timed out, and still held at the end), flows that time out
//! together in the middle of the capture (so their end events from several
//! workers must be merged in flow order), and flows still open at the end.
//! Real captures are checked too when present (see [`real_captures`]).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use sluice::flow::Direction::{Down, Up};
use sluice::ip::fragment::fragment;
use sluice::pcapgen::{icmp_echo, Conversation, Framing, TimedPacket, DEFAULT_START};
use sluice::time::Timestamp;
use sluice::wire::tcp_flags::{ACK, PSH};

/// Alerts, drops, resets (streamed and not), logs at every end: each worker
/// keeps no state across connections, so every decision is per flow.
const RULES: &str = r#"
local tcp_connection = require("protocol/tcp_connection")
local udp_connection = require("protocol/udp_connection")
require("protocol/icmp")

haka.rule {
  name = "reset on attack",
  on = tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    local s = data:asstring()
    if s:find("attack", 1, true) then
      haka.alert{ description = "attack " .. dir, severity = "high" }
      flow:reset()
    elseif s:find("dropflow", 1, true) then
      haka.alert{ description = "dropflow" }
      flow:drop()
    elseif flow.srcport % 5 == 0 and dir == "up" and not flow.seen then
      flow.seen = true
      haka.alert{ description = "port multiple of 5: reset", sources = { haka.alert.address(flow.srcip) } }
      flow:reset()
    elseif flow.srcport % 5 == 1 and dir == "down" then
      flow:drop()
    elseif s:find("HTTP/1.", 1, true) and not flow.http then
      flow.http = true
      haka.alert{ description = "http " .. dir .. " " .. #s }
    end
  end
}

haka.rule {
  name = "streamed evil",
  on = tcp_connection.events.receive_data,
  options = { streamed = true },
  eval = function (flow, iter, dir)
    if dir ~= "up" then return end
    local window = ""
    for sub in iter:foreach_available() do
      window = window .. sub:asstring()
      if window:find("evil", 1, true) then
        haka.alert{ description = "evil at " .. iter.meter }
        flow:halfreset()
        return
      end
      window = window:sub(-3)
    end
  end
}

haka.rule {
  name = "end",
  on = tcp_connection.events.end_connection,
  eval = function (flow)
    haka.log("end %s:%d -> %s:%d", tostring(flow.srcip), flow.srcport, tostring(flow.dstip), flow.dstport)
    haka.alert{ description = "end " .. flow.srcport }
  end
}

haka.rule {
  name = "udp",
  on = udp_connection.events.receive_data,
  eval = function (flow, pkt, dir)
    if pkt.payload:asstring():find("udpbad", 1, true) then
      haka.alert{ description = "udp bad" }
      pkt:drop()
    end
  end
}

haka.rule {
  name = "udp end",
  on = udp_connection.events.end_connection,
  eval = function (flow)
    haka.alert{ description = "udp end " .. flow.srcport }
  end
}

haka.rule {
  name = "icmp",
  on = haka.dissectors.icmp.events.receive_packet,
  eval = function (pkt)
    haka.alert{ description = "icmp" }
  end
}

haka.rule {
  name = "errors",
  on = tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if data:asstring():find("boom", 1, true) then error("boom in a rule") end
  end
}

haka.rule {
  name = "after errors",
  on = tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    -- Logged after the error of the rule before, in the same event.
    if data:asstring():find("boom", 1, true) then
      haka.log("after boom %d", flow.srcport)
      haka.alert{ description = "boom before print" }
      print("printed after boom", flow.srcport, dir)
      haka.alert{ description = "boom after print" }
    end
  end
}
"#;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One connection of the crafted capture; `kind` picks what it carries.
fn connection(i: u16, start: Timestamp, kind: u16) -> Vec<TimedPacket> {
    let client = addr(&format!("10.1.{}.{}:{}", i / 200, 1 + i % 200, 40000 + i * 7));
    let server = addr(&format!("10.2.0.{}:80", 1 + i % 3));
    let mut c = Conversation::new(client, server).at(start).step_micros(700 + u64::from(i) * 13);
    c.handshake();
    match kind {
        0 => {
            c.send(Up, b"GET /attack HTTP/1.1\r\n\r\n").send(Down, b"late");
        }
        1 => {
            c.send(Up, b"GET / HTTP/1.1\r\n\r\n")
                .send(Down, b"HTTP/1.1 200 OK\r\n\r\ndropflow")
                .send(Up, b"more");
        }
        2 => {
            c.send(Up, b"GET /ev").send(Up, b"il HTTP/1.1\r\n\r\n").send(Down, b"HTTP/1.1 200 OK\r\n\r\n");
        }
        3 => {
            let seq = c.next_seq(Up);
            let whole = c.build(Up, seq, ACK | PSH, &[], b"GET /fragmented HTTP/1.1\r\nHost: a\r\n\r\n");
            for f in fragment(&whole, &[16, 24], u32::from(300 + i)) {
                c.push(f);
            }
        }
        4 => {
            // Left open: ends with the capture (or a timeout).
            c.send(Up, b"GET /open HTTP/1.1\r\n\r\n").send(Down, b"HTTP/1.1 200 OK\r\n\r\nhello");
        }
        5 => {
            c.send(Up, b"boom").send(Down, b"x");
        }
        _ => {
            c.send(Up, b"GET / HTTP/1.1\r\n\r\n").send(Down, b"HTTP/1.1 204 No Content\r\n\r\n").close();
        }
    }
    let mut p = c.into_packets();
    // A UDP exchange and an ICMP echo beside some connections.
    if i % 4 == 0 {
        let t = Timestamp(start.0 + 3_000);
        let payload: &[u8] = if i % 8 == 0 { b"udpbad" } else { b"udp fine" };
        p.push((t, sluice::wire::forge::udp_packet(client.ip(), 5000 + i, server.ip(), 53, payload)));
        p.push((Timestamp(t.0 + 500), icmp_echo(client.ip(), server.ip(), i, 1, b"ping")));
    }
    p
}

/// A datagram whose last fragment never comes (held until it times out,
/// or until the end of the capture).
fn incomplete_fragment(i: u16, t: Timestamp) -> TimedPacket {
    let mut c = Conversation::new(addr(&format!("10.9.0.{i}:1234")), addr("10.2.0.9:80")).at(t);
    let seq = c.next_seq(Up);
    let whole = c.build(Up, seq, ACK | PSH, &[], b"never completed, never judged by rules");
    (t, fragment(&whole, &[16], u32::from(900 + i)).remove(0))
}

/// Two waves of interleaved connections 40 s apart: at the second wave the
/// first wave's idle flows (TCP timeout 5 s, UDP 3 s) and its incomplete
/// fragments (30 s) time out, several workers' at one record; the second
/// wave's open flows and last fragment end with the capture.
fn crafted() -> Vec<TimedPacket> {
    let mut all = Vec::new();
    for wave in 0..2u64 {
        let base = DEFAULT_START.0 + wave * 40_000_000;
        for i in 0..28u16 {
            let start = Timestamp(base + u64::from(i) * 2_100);
            all.extend(connection(i + wave as u16 * 100, start, i % 7));
        }
        all.push(incomplete_fragment(wave as u16 + 1, Timestamp(base + 30_000)));
        // Not IP (ARP): the first record of each wave, so the second wave's
        // timeouts fire at a frame without an IP packet.
        all.push((Timestamp(base - 1), ARP.to_vec()));
        // Undecodable (worker 0), and a fragment with a bad IPv4 header
        // checksum (refused by the dispatcher).
        all.push((Timestamp(base + 40_000), b"\x45\x00\x00\x08garbage".to_vec()));
        let mut bad = incomplete_fragment(wave as u16 + 5, Timestamp(base + 41_000));
        bad.1[10] ^= 0xff;
        all.push(bad);
    }
    all.sort_by_key(|p| p.0);
    all
}

/// An ARP request, written as a frame of its own (not IP).
const ARP: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06, // Ethernet, ARP
    0, 1, 0x08, 0x00, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 1, 10, 1, 0, 1, 0, 0, 0, 0, 0, 0, 10, 2, 0, 1,
];

/// Writes the capture: IP packets behind an Ethernet header, the ARP frame as it is.
fn write_capture(path: &Path, packets: &[TimedPacket]) {
    use sluice::capture::link::LinkType;
    use sluice::inject::pcap_writer::PcapOutput;
    let mut out = PcapOutput::new(fs::File::create(path).unwrap(), LinkType::Ethernet, false, 0).unwrap();
    for (t, bytes) in packets {
        let frame = if bytes[..] == ARP[..] { ARP.to_vec() } else { Framing::Ethernet.frame(bytes) };
        out.write_frame(t.as_micros() * 1000, &frame, frame.len() as u32).unwrap();
    }
    out.finish().unwrap();
}

/// Every output of one run.
#[derive(Debug, PartialEq, Eq)]
struct Outputs {
    pcap: Vec<u8>,
    alerts: Vec<u8>,
    summary_json: Vec<u8>,
    /// Standard error (summary text and log lines), timestamps cut off.
    stderr: String,
    /// Stream dump files by name.
    dump: Vec<(String, Vec<u8>)>,
    /// What the rules printed.
    stdout: Vec<u8>,
    status: Option<i32>,
}

fn run(rules: &Path, input: &Path, workers: usize, extra: &[&str]) -> Outputs {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("pcap")
        .arg(rules)
        .arg(input)
        .arg("-o")
        .arg(p("out.pcap"))
        .arg("--alerts")
        .arg(p("alerts.jsonl"))
        .arg("--dump-streams")
        .arg(p("dump"))
        .arg("--summary-json")
        .arg(p("summary.json"))
        .args(["--workers", &workers.to_string(), "--allow-rule-errors", "--no-progress"])
        .args(extra)
        .env("SLUICE_LOG", "warn,sluice::rules=info")
        .output()
        .unwrap();
    let ansi = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
    let stderr = ansi
        .replace_all(&String::from_utf8_lossy(&out.stderr), "")
        .lines()
        .map(|l| match l.split_once(' ') {
            // A log line starts with its (wall-clock) time.
            Some((t, rest)) if t.starts_with("20") && t.ends_with('Z') => rest.to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut dump: Vec<(String, Vec<u8>)> = fs::read_dir(p("dump"))
        .map(|d| {
            d.map(|e| {
                let e = e.unwrap();
                (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())
            })
            .collect()
        })
        .unwrap_or_default();
    dump.sort();
    Outputs {
        pcap: fs::read(p("out.pcap")).unwrap_or_default(),
        alerts: fs::read(p("alerts.jsonl")).unwrap_or_default(),
        summary_json: fs::read(p("summary.json")).unwrap_or_default(),
        stderr,
        dump,
        stdout: out.stdout,
        status: out.status.code(),
    }
}

/// Runs `input` with 1 to 4 workers and asserts every output is the same.
fn assert_same_for_any_worker_count(rules: &Path, input: &Path, extra: &[&str]) -> Outputs {
    let one = assert_same_even_if_refused(rules, input, extra);
    assert_eq!(one.status, Some(0), "{}: {}", input.display(), one.stderr);
    one
}

/// As [`assert_same_for_any_worker_count`], but the run may also stop on a
/// damaged file (status 1, the error naming it): then what came before the
/// damage must be the same too.
fn assert_same_even_if_refused(rules: &Path, input: &Path, extra: &[&str]) -> Outputs {
    let one = run(rules, input, 1, extra);
    let refusal = format!("sluice: {}: malformed record ", input.display());
    assert!(
        one.status == Some(0) || (one.status == Some(1) && one.stderr.contains(&refusal)),
        "{}: {:?} {}",
        input.display(),
        one.status,
        one.stderr
    );
    for n in 2..=4 {
        let many = run(rules, input, n, extra);
        let what = format!("{} with {n} workers", input.display());
        assert_eq!(many.status, one.status, "{what}: {}", many.stderr);
        assert!(many.pcap == one.pcap, "{what}: output pcap differs");
        assert_same_lines(
            &String::from_utf8_lossy(&many.alerts),
            &String::from_utf8_lossy(&one.alerts),
            &what,
        );
        assert_same_lines(&many.stderr, &one.stderr, &what);
        assert_eq!(
            String::from_utf8_lossy(&many.summary_json),
            String::from_utf8_lossy(&one.summary_json),
            "{what}: summary JSON"
        );
        let names = |o: &Outputs| o.dump.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&many), names(&one), "{what}: stream dump files");
        assert!(many.dump == one.dump, "{what}: stream dump contents");
        assert_same_lines(
            &String::from_utf8_lossy(&many.stdout),
            &String::from_utf8_lossy(&one.stdout),
            &format!("{what}: printed lines"),
        );
    }
    one
}

/// Equal texts, or a failure naming the first line that differs.
fn assert_same_lines(many: &str, one: &str, what: &str) {
    for (i, (m, o)) in many.lines().zip(one.lines()).enumerate() {
        assert_eq!(m, o, "{what}: line {} differs", i + 1);
    }
    assert_eq!(many.lines().count(), one.lines().count(), "{what}: line counts");
    assert_eq!(many, one, "{what}");
}

fn write_rules(dir: &Path) -> PathBuf {
    let path = dir.join("rules.lua");
    fs::write(&path, RULES).unwrap();
    path
}

fn counter(o: &Outputs, name: &str) -> u64 {
    let j: serde_json::Value = serde_json::from_slice(&o.summary_json).unwrap();
    j["counters"][name].as_u64().unwrap_or_else(|| panic!("no counter {name}"))
}

#[test]
fn crafted_capture_is_byte_identical_for_1_to_4_workers() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let input = dir.path().join("in.pcap");
    write_capture(&input, &crafted());
    let timeouts = ["--tcp-timeout", "5", "--udp-timeout", "3"];
    let one = assert_same_for_any_worker_count(&rules, &input, &timeouts);
    // The capture exercises what it claims to.
    let alerts = String::from_utf8_lossy(&one.alerts);
    for what in
        ["attack up", "dropflow", "evil at", "port multiple of 5", "udp bad", "icmp", "udp end", "\"end "]
    {
        assert!(alerts.contains(what), "no {what:?} alert:\n{alerts}");
    }
    for c in [
        "packets_forged",
        "flows_timed_out",
        "ip_datagrams_reassembled",
        "drop_fragment",
        "drop_shutdown",
        "rule_errors",
        "drop_malformed",
        "drop_bad_ip_checksum",
    ] {
        assert!(counter(&one, c) > 0, "{c} is 0: {}", one.stderr);
    }
    assert!(one.stderr.contains("end 10.1.0."), "rule log lines: {}", one.stderr);
    assert!(one.dump.len() > 20, "stream files: {}", one.dump.len());
    let summary: serde_json::Value = serde_json::from_slice(&one.summary_json).unwrap();
    assert_eq!(summary["non_ip"], 2, "{}", one.stderr);
}

#[test]
fn crafted_capture_without_timeouts_and_passive_is_identical_too() {
    // No timeout in the capture: every flow ends with the capture, and
    // --passive judges by acknowledgments (its end delivers held bytes).
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let input = dir.path().join("in.pcap");
    write_capture(&input, &crafted());
    assert_same_for_any_worker_count(&rules, &input, &[]);
    let passive = assert_same_for_any_worker_count(&rules, &input, &["--passive", "--tcp-timeout", "5"]);
    assert!(counter(&passive, "flows_timed_out") > 0);
}

/// A capture much longer than the threads' queues: about 40 batches cut at
/// their record count (more than a channel holds, so the dispatcher waits
/// on full queues) and batches of big frames cut at their byte count,
/// from 64 interleaved connections whose rules act late in each one.
fn long_capture() -> Vec<TimedPacket> {
    let mut all = Vec::new();
    for i in 0..64u16 {
        let client = addr(&format!("10.3.0.{}:{}", 1 + i, 30000 + i));
        let server = addr(&format!("10.4.0.{}:80", 1 + i % 5));
        let start = Timestamp(DEFAULT_START.0 + u64::from(i) * 1_000);
        let mut c = Conversation::new(client, server).at(start).step_micros(900 + u64::from(i));
        c.handshake();
        if i % 8 == 0 {
            for j in 0..30u8 {
                c.send(Down, &[b'a' + j % 26; 60_000]);
            }
        } else {
            for j in 0..180 {
                c.send(Up, format!("request {j} of {i}\r\n").as_bytes());
            }
        }
        match i % 3 {
            0 => c.send(Up, b"GET /ev").send(Up, b"il HTTP/1.1\r\n\r\n"),
            1 => c.send(Up, b"attack"),
            _ => c.send(Down, b"HTTP/1.1 200 OK\r\n\r\n"),
        };
        c.close();
        all.extend(c.into_packets());
    }
    all.sort_by_key(|p| p.0);
    all
}

#[test]
fn a_capture_of_many_batches_is_byte_identical_for_1_to_4_workers() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let input = dir.path().join("long.pcap");
    let packets = long_capture();
    write_capture(&input, &packets);
    let one = assert_same_for_any_worker_count(&rules, &input, &[]);
    let summary: serde_json::Value = serde_json::from_slice(&one.summary_json).unwrap();
    assert_eq!(summary["packets_in"], packets.len(), "{}", one.stderr);
    assert!(packets.len() > 40 * 512, "{} records: too few batches", packets.len());
    let alerts = String::from_utf8_lossy(&one.alerts);
    for what in ["attack up", "evil at", "http down"] {
        assert!(alerts.contains(what), "no {what:?} alert");
    }
}

/// 30 connections whose every chunk makes a rule fail, 1,200 errors in
/// all, spread over the workers: the log shows the first ten, the line
/// saying the log thins out, and the 1,000th, as one worker logs them.
#[test]
fn rule_errors_are_logged_in_input_order_counted_over_all_workers() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let input = dir.path().join("errors.pcap");
    let mut all = Vec::new();
    for i in 0..30u16 {
        // Ports 2 or 3 modulo 5: no rule resets or drops these connections.
        let client = addr(&format!("10.7.0.{}:{}", 1 + i, 30_002 + i * 5 + i % 2));
        let start = Timestamp(DEFAULT_START.0 + u64::from(i) * 500);
        let mut c = Conversation::new(client, addr("10.8.0.1:80")).at(start).step_micros(10_000);
        c.handshake();
        for k in 0..40 {
            c.send(Up, format!("boom {k}").as_bytes());
        }
        all.extend(c.into_packets());
    }
    all.sort_by_key(|p| p.0);
    write_capture(&input, &all);
    let one = assert_same_for_any_worker_count(&rules, &input, &[]);
    assert_eq!(counter(&one, "rule_errors"), 1_200, "{}", one.stderr);
    let logged: Vec<&str> = one.stderr.lines().filter(|l| l.contains("rule error: ")).collect();
    assert_eq!(logged.len(), 11, "{}", one.stderr);
    assert!(logged[9].ends_with("errors=10"), "{}", logged[9]);
    assert!(logged[10].ends_with("errors=1000"), "{}", logged[10]);
    assert_eq!(one.stderr.matches("failed 10 times: from now on").count(), 1, "{}", one.stderr);
}

/// Alerts on standard output (the default) and the rules' `print` lines
/// interleave there as with one worker.
#[test]
fn printed_lines_and_alerts_share_standard_output_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let input = dir.path().join("in.pcap");
    write_capture(&input, &crafted());
    let stdout = |workers: usize| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("pcap")
            .arg(&rules)
            .arg(&input)
            .args(["--workers", &workers.to_string(), "--allow-rule-errors", "--no-progress"])
            .env("SLUICE_LOG", "error")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    let one = stdout(1);
    let lines: Vec<&str> = one.lines().collect();
    let printed = lines.iter().position(|l| l.starts_with("printed after boom")).expect("a printed line");
    assert!(lines[printed - 1].contains("boom before print"), "{one}");
    assert!(lines[printed + 1].contains("boom after print"), "{one}");
    for n in 2..=4 {
        assert_same_lines(&stdout(n), &one, &format!("standard output with {n} workers"));
    }
}

/// Real captures: every pcap under `$SLUICE_REAL_CAPTURES` (colon-separated
/// files or directories; default `target/real-captures`, e.g. captures
/// from OISF/suricata-verify, not committed), and the first 20,000 records
/// of `target/bench-capture/http-300.pcap` (`make bench-libnids`) if present.
#[test]
fn real_captures() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = std::env::var("SLUICE_REAL_CAPTURES")
        .unwrap_or_else(|_| root.join("target/real-captures").display().to_string());
    let mut inputs: Vec<PathBuf> = Vec::new();
    for p in list.split(':').map(PathBuf::from) {
        match fs::read_dir(&p) {
            Ok(d) => inputs
                .extend(d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "pcap"))),
            Err(_) if p.is_file() => inputs.push(p),
            Err(_) => {}
        }
    }
    let bench = root.join("target/bench-capture/http-300.pcap");
    if bench.is_file() {
        let prefix = dir.path().join("http-prefix.pcap");
        copy_records(&bench, &prefix, 20_000);
        inputs.push(prefix);
    }
    inputs.sort();
    if inputs.is_empty() {
        eprintln!("no real captures found ({list}); nothing checked");
        return;
    }
    for input in &inputs {
        // Suricata's test captures include damaged ones.
        let one = assert_same_even_if_refused(&rules, input, &["--tcp-timeout", "30"]);
        let passive = assert_same_even_if_refused(&rules, input, &["--tcp-timeout", "30", "--passive"]);
        eprintln!(
            "{}: identical for 1-4 workers, active and passive; {} / {}",
            input.display(),
            one.stderr.lines().next().unwrap_or(""),
            passive.stderr.lines().next().unwrap_or("")
        );
    }
}

/// Copies the first `n` records of a pcap file.
fn copy_records(from: &Path, to: &Path, n: usize) {
    let mut r = pcap_file::pcap::PcapReader::new(fs::File::open(from).unwrap()).unwrap();
    let mut w = pcap_file::pcap::PcapWriter::with_header(fs::File::create(to).unwrap(), r.header()).unwrap();
    for _ in 0..n {
        match r.next_raw_packet() {
            Some(p) => {
                w.write_raw_packet(&p.unwrap()).unwrap();
            }
            None => break,
        }
    }
}

/// The crafted capture with every TCP checksum of server 10.2.0.2 wrong (a
/// host that left them to its NIC), and one client segment's wrong too.
fn crafted_with_offload() -> Vec<TimedPacket> {
    let mut packets = crafted();
    let mut damaged_client = false;
    for (_, p) in &mut packets {
        let tcp = p.len() >= 40 && p[0] == 0x45 && p[9] == 6 && p[6] & 0x3f == 0 && p[7] == 0;
        if !tcp {
            continue;
        }
        if p[12..16] == [10, 2, 0, 2] || (!damaged_client && p.len() > 60 && p[12..14] == [10, 1]) {
            damaged_client |= p[12..14] == [10, 1];
            p[36] ^= 0x5a;
        }
    }
    packets
}

#[test]
fn an_offloading_host_is_found_alike_by_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let input = dir.path().join("in.pcap");
    write_capture(&input, &crafted_with_offload());
    let one = assert_same_for_any_worker_count(&rules, &input, &["--tcp-timeout", "5"]);
    let summary: serde_json::Value = serde_json::from_slice(&one.summary_json).unwrap();
    let hosts = summary["checksum_offload"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0]["host"], "10.2.0.2");
    assert!(counter(&one, "checksum_offload_unverified") > 20, "{}", one.stderr);
    assert_eq!(counter(&one, "drop_bad_checksum"), 1, "the client's wrong sum is damage");
}

/// Payloads of random connections: words the rules act on (`GET /ev` and
/// `il HTTP/1.1` make "evil" across two chunks), and plain bytes.
const WORDS: [&[u8]; 8] = [
    b"attack",
    b"dropflow",
    b"GET /ev",
    b"il HTTP/1.1\r\n\r\n",
    b"boom",
    b"HTTP/1.1 200 OK\r\n\r\nbody",
    b"udpbad",
    b"plain bytes of a chunk",
];

/// One step of a random connection; `bool` is true for the client's side.
#[derive(Debug, Clone)]
enum Step {
    /// A data segment with `WORDS[i]` and its acknowledgment.
    Send(bool, usize),
    /// The same data cut into two segments that arrive in reverse order.
    Reordered(bool, usize),
    /// The same data in a segment cut into three IP fragments.
    Fragmented(bool, usize),
    /// A data segment sent twice (a retransmission).
    Twice(bool, usize),
    /// Packet time passes, in tenths of a second: past the 5 s TCP
    /// timeout (and 3 s UDP) at times.
    Wait(u8),
    Fin(bool),
    Rst(bool),
    /// A UDP datagram between the same ends.
    Udp(bool, usize),
}

/// A random connection: when it starts (ms), whether it is IPv6, whether
/// it opens with a handshake (or is picked up mid-stream), and its steps.
#[derive(Debug, Clone)]
struct RandomConnection {
    start_ms: u16,
    v6: bool,
    handshake: bool,
    steps: Vec<Step>,
}

fn side(client: bool) -> sluice::flow::Direction {
    if client {
        Up
    } else {
        Down
    }
}

fn step_strategy() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let word = 0..WORDS.len();
    prop_oneof![
        4 => (any::<bool>(), word.clone()).prop_map(|(c, w)| Step::Send(c, w)),
        1 => (any::<bool>(), word.clone()).prop_map(|(c, w)| Step::Reordered(c, w)),
        1 => (any::<bool>(), word.clone()).prop_map(|(c, w)| Step::Fragmented(c, w)),
        1 => (any::<bool>(), word.clone()).prop_map(|(c, w)| Step::Twice(c, w)),
        1 => (0u8..90).prop_map(Step::Wait),
        1 => any::<bool>().prop_map(Step::Fin),
        1 => any::<bool>().prop_map(Step::Rst),
        1 => (any::<bool>(), word).prop_map(|(c, w)| Step::Udp(c, w)),
    ]
}

fn connection_strategy() -> impl proptest::strategy::Strategy<Value = RandomConnection> {
    use proptest::prelude::*;
    (
        0u16..2_000,
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.85),
        proptest::collection::vec(step_strategy(), 0..10),
    )
        .prop_map(|(start_ms, v6, handshake, steps)| RandomConnection { start_ms, v6, handshake, steps })
}

/// The packets of connection `i`, at their times.
fn random_connection(i: u16, rc: &RandomConnection) -> Vec<TimedPacket> {
    let (client, server) = if rc.v6 {
        (addr(&format!("[fd00::5:{i:x}]:{}", 20_000 + i * 11)), addr(&format!("[fd00::6:{}]:80", 1 + i % 4)))
    } else {
        (addr(&format!("10.5.0.{}:{}", 1 + i, 20_000 + i * 11)), addr(&format!("10.6.0.{}:80", 1 + i % 4)))
    };
    let start = Timestamp(DEFAULT_START.0 + u64::from(rc.start_ms) * 1_000);
    let mut c = Conversation::new(client, server).at(start).step_micros(300 + u64::from(i) * 7);
    if rc.handshake {
        c.handshake();
    }
    // Out-of-order pairs: the packet index of each pair's first segment.
    let mut swaps = Vec::new();
    for (k, step) in rc.steps.iter().enumerate() {
        match *step {
            Step::Send(s, w) => {
                c.send(side(s), WORDS[w]);
            }
            Step::Reordered(s, w) => {
                let (d, bytes) = (side(s), WORDS[w]);
                let mid = bytes.len() / 2;
                let seq = c.next_seq(d);
                let first = c.build(d, seq, ACK | PSH, &[], &bytes[..mid]);
                let second = c.build(d, seq + mid as u32, ACK | PSH, &[], &bytes[mid..]);
                swaps.push(c.packets().len());
                c.push(first).push(second).skip(d, bytes.len() as u32).ack(d.reverse());
            }
            Step::Fragmented(s, w) => {
                let d = side(s);
                let seq = c.next_seq(d);
                let whole = c.build(d, seq, ACK | PSH, &[], WORDS[w]);
                for f in fragment(&whole, &[16, 8], 7_000 + u32::from(i) * 64 + k as u32) {
                    c.push(f);
                }
                c.skip(d, WORDS[w].len() as u32).ack(d.reverse());
            }
            Step::Twice(s, w) => {
                c.data(side(s), WORDS[w]);
                let again = c.packets().last().map(|p| p.1.clone()).unwrap_or_default();
                c.push(again).ack(side(s).reverse());
            }
            Step::Wait(tenths) => {
                c.wait(u64::from(tenths) * 100_000);
            }
            Step::Fin(s) => {
                c.fin(side(s)).ack(side(s).reverse());
            }
            Step::Rst(s) => {
                c.rst(side(s));
            }
            Step::Udp(s, w) => {
                c.udp(side(s), WORDS[w]);
            }
        }
    }
    let mut packets = c.into_packets();
    for at in swaps {
        let (a, b) = (packets[at].1.clone(), packets[at + 1].1.clone());
        packets[at].1 = b;
        packets[at + 1].1 = a;
    }
    packets
}

proptest::proptest! {
    // Each case runs sluice four times; PROPTEST_CASES raises the count.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Random interleavings of random connections (reordered, fragmented,
    /// retransmitted, reset, timed out, IPv4 and IPv6, with UDP beside
    /// them), in active and passive mode: every output is the same for 1 to
    /// 4 workers.
    #[test]
    fn random_captures_are_byte_identical_for_1_to_4_workers(
        conns in proptest::collection::vec(connection_strategy(), 1..12),
        passive in proptest::bool::weighted(0.3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rules = write_rules(dir.path());
        let input = dir.path().join("random.pcap");
        let mut packets: Vec<TimedPacket> =
            conns.iter().enumerate().flat_map(|(i, rc)| random_connection(i as u16, rc)).collect();
        // Stable: one connection's packets at one time keep their order.
        packets.sort_by_key(|p| p.0);
        write_capture(&input, &packets);
        let mut extra = vec!["--tcp-timeout", "5", "--udp-timeout", "3"];
        if passive {
            extra.push("--passive");
        }
        let one = assert_same_for_any_worker_count(&rules, &input, &extra);
        let summary: serde_json::Value = serde_json::from_slice(&one.summary_json).unwrap();
        proptest::prop_assert_eq!(summary["packets_in"].as_u64(), Some(packets.len() as u64));
    }
}
