//! Golden tests: rules + input pcap → expected output pcap and alerts.
//!
//! Each case lives in `tests/golden/<case>/` with `rules.lua`, `input.pcap`,
//! `expected.pcap`, `expected-alerts.jsonl` and, for cases that dump streams,
//! `expected-streams/`. The test runs the offline driver as a library call,
//! compares output records (bytes and timestamps) and alert lines exactly,
//! and also checks each case's meaning (no `attack` packet passed, an RST to
//! the server is present, ...), so a wrong blessing cannot hide a bug.
//!
//! * Regenerate inputs and rules (deterministic; the cases are defined below):
//!   `cargo test --test golden -- --ignored generate_fixtures`
//! * Rewrite expected files from the current behaviour, then review the diff:
//!   `SLUICE_BLESS=1 cargo test --test golden`

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sluice::capture::link::LinkType;
use sluice::capture::pcap::{PcapSource, Record};
use sluice::flow::Direction::{Down, Up};
use sluice::offline::{self, OfflineOptions, Summary};
use sluice::pcapgen::{icmp_echo, write_pcap_file, Conversation, Framing, TimedPacket};
use sluice::wire::{decode, tcp_flags, Decoded, SeqNumber, Transport};

const CLIENT: &str = "10.0.0.1:40000";
const SERVER: &str = "10.0.0.2:80";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- rules

const ACCEPT_ALL: &str = r#"-- Hooks data and does nothing: every packet must pass unchanged.
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir) end
}
"#;

const PORT_REFUSAL: &str = r#"-- Only port 80 may be connected to.
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    if pkt.dstport ~= 80 then
      haka.alert{ description = "refused port " .. pkt.dstport, severity = "low" }
      pkt:drop()
    end
  end
}
"#;

/// Keeps each direction's stream so far, so patterns split across
/// segments are found.
const STREAM_MATCH_PRELUDE: &str = r#"require("protocol/ipv4")
require("protocol/ipv6")
require("protocol/tcp")
require("protocol/tcp_connection")

local seen = {}
local function stream(flow, data, dir)
  local key = tostring(flow.srcip) .. ":" .. flow.srcport .. ">" .. tostring(flow.dstip) .. ":" .. flow.dstport .. ":" .. dir
  seen[key] = (seen[key] or "") .. data:asstring()
  return seen[key]
end
"#;

fn stream_rule(pattern: &str, action: &str) -> String {
    format!(
        r#"{STREAM_MATCH_PRELUDE}
haka.rule {{
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if stream(flow, data, dir):find("{pattern}", 1, true) then
      haka.alert{{ description = "{pattern} in stream", severity = "high" }}
      flow:{action}()
    end
  end
}}
"#
    )
}

const UDP_RULE: &str = r#"-- Drops UDP datagrams whose payload contains "bad".
require("protocol/ipv4")
require("protocol/udp")

haka.rule {
  on = haka.dissectors.udp.events.receive_packet,
  eval = function (pkt)
    if pkt.payload:asstring():find("bad", 1, true) then
      pkt:drop()
    end
  end
}
"#;

const ICMP_RULE: &str = r#"-- Alerts on and drops ICMP echo requests carrying "ping-drop".
require("protocol/ipv4")
require("protocol/icmp")

haka.rule {
  on = haka.dissectors.icmp.events.receive_packet,
  eval = function (pkt)
    haka.alert{ description = "icmp type " .. pkt.type, severity = "low" }
    if pkt.payload:asstring():find("ping-drop", 1, true) then
      pkt:drop()
    end
  end
}
"#;

const RUNTIME_ERROR: &str = r#"-- Raises a Lua error on "boom": the packet is dropped (default policy).
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if data:asstring():find("boom", 1, true) then
      error("rule exploded")
    end
  end
}
"#;

const ALERTS: &str = r#"-- One alert per new connection, with fields.
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    haka.alert{
      description = "new connection to " .. pkt.dstport,
      severity = "medium",
      confidence = "high",
    }
  end
}
"#;

// ---------------------------------------------------------------- traffic

/// A small conversation with data both ways and an orderly close, plus a
/// UDP exchange and a ping: the traffic of the passthrough cases.
fn mixed_traffic() -> Vec<TimedPacket> {
    let mut c = Conversation::new(addr(CLIENT), addr(SERVER));
    c.handshake()
        .send(Up, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        .send(Down, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        .close();
    let mut u = Conversation::new(addr("10.0.0.1:5353"), addr("10.0.0.3:53")).at(c.packets()[10].0);
    u.wait(500).udp(Up, b"query").udp(Down, b"answer");
    let ping = icmp_echo(addr(CLIENT).ip(), addr(SERVER).ip(), 7, 1, b"ping");
    let mut all = c.into_packets();
    all.extend(u.into_packets());
    all.push((sluice::time::Timestamp(all[all.len() - 1].0 .0 + 1000), ping));
    all.sort_by_key(|p| p.0);
    all
}

fn port_refusal_traffic() -> Vec<TimedPacket> {
    let mut ok = Conversation::new(addr(CLIENT), addr(SERVER));
    ok.handshake().send(Up, b"hello port 80").close();
    let mut refused = Conversation::new(addr("10.0.0.1:40001"), addr("10.0.0.2:8080")).step_micros(1100);
    refused.handshake().send(Up, b"hello port 8080").close();
    merge(vec![ok.into_packets(), refused.into_packets()])
}

/// Two connections whose data segments travel as IPv4 fragments: the benign
/// one passes whole, the one carrying `attack` is reset and none of its
/// fragments pass.
fn fragment_traffic() -> Vec<TimedPacket> {
    use sluice::ip::fragment::fragment;
    let mut ok = Conversation::new(addr(CLIENT), addr(SERVER));
    ok.handshake();
    let seq = ok.next_seq(Up);
    let whole =
        ok.build(Up, seq, tcp_flags::ACK | tcp_flags::PSH, &[], b"a benign payload in three fragments");
    for f in fragment(&whole, &[24, 16], 41) {
        ok.push(f);
    }
    let mut bad = Conversation::new(addr("10.0.0.1:40001"), addr(SERVER)).step_micros(1100);
    bad.handshake();
    let seq = bad.next_seq(Up);
    let whole = bad.build(Up, seq, tcp_flags::ACK | tcp_flags::PSH, &[], b"an attack split over fragments");
    for f in fragment(&whole, &[24, 16], 42) {
        bad.push(f);
    }
    merge(vec![ok.into_packets(), bad.into_packets()])
}

fn merge(parts: Vec<Vec<TimedPacket>>) -> Vec<TimedPacket> {
    let mut all: Vec<TimedPacket> = parts.into_iter().flatten().collect();
    all.sort_by_key(|p| p.0);
    all
}

fn split_pattern_traffic(client: &str, server: &str) -> Vec<TimedPacket> {
    let mut c = Conversation::new(addr(client), addr(server));
    c.handshake().send(Up, b"GET /index?q=att").send(Up, b"ack HTTP/1.1\r\n\r\n").send(Down, b"too late");
    c.into_packets()
}

fn halfreset_traffic() -> Vec<TimedPacket> {
    let mut c = Conversation::new(addr(CLIENT), addr(SERVER));
    c.handshake().send(Up, b"hello").send(Up, b"evil payload").send(Up, b"more after");
    c.into_packets()
}

fn flow_drop_traffic() -> Vec<TimedPacket> {
    let mut c = Conversation::new(addr(CLIENT), addr(SERVER));
    c.handshake().send(Up, b"fine").send(Up, b"please drop-me").send(Down, b"reply").send(Up, b"again");
    let mut other = Conversation::new(addr("10.0.0.1:40001"), addr(SERVER)).step_micros(1300);
    other.handshake().send(Up, b"unrelated connection");
    merge(vec![c.into_packets(), other.into_packets()])
}

fn udp_traffic() -> Vec<TimedPacket> {
    let mut u = Conversation::new(addr("10.0.0.1:5000"), addr("10.0.0.2:6000"));
    u.udp(Up, b"good one").udp(Down, b"bad reply").udp(Up, b"another good").udp(Up, b"so bad");
    u.into_packets()
}

fn ipv6_traffic() -> Vec<TimedPacket> {
    split_pattern_traffic("[fd00::1]:40000", "[fd00::2]:80")
}

fn icmp_traffic() -> Vec<TimedPacket> {
    let (a, b) = (addr(CLIENT).ip(), addr(SERVER).ip());
    let mut c = Conversation::new(addr(CLIENT), addr(SERVER));
    c.push(icmp_echo(a, b, 1, 1, b"ping-ok")).push(icmp_echo(a, b, 1, 2, b"ping-drop"));
    c.into_packets()
}

/// The client sends "at" + "tack" as two segments, the second one first.
fn out_of_order_traffic() -> Vec<TimedPacket> {
    let mut c = Conversation::new(addr(CLIENT), addr(SERVER));
    c.handshake();
    let start = c.next_seq(Up);
    c.segment(Up, start + 5, tcp_flags::PSH | tcp_flags::ACK, b"tack!");
    c.segment(Up, start, tcp_flags::PSH | tcp_flags::ACK, b"GO at");
    c.into_packets()
}

fn rule_error_traffic() -> Vec<TimedPacket> {
    let mut c = Conversation::new(addr(CLIENT), addr(SERVER));
    c.handshake().send(Up, b"first").send(Up, b"boom").send(Down, b"reply");
    c.into_packets()
}

fn alerts_traffic() -> Vec<TimedPacket> {
    let mut a = Conversation::new(addr(CLIENT), addr(SERVER));
    a.handshake().send(Up, b"x").close();
    let mut b = Conversation::new(addr("10.0.0.1:40001"), addr("10.0.0.2:443")).step_micros(900);
    b.handshake().close();
    merge(vec![a.into_packets(), b.into_packets()])
}

// ---------------------------------------------------------------- cases

struct Case {
    name: String,
    rules: String,
    packets: Vec<TimedPacket>,
    framing: Framing,
    dump_streams: bool,
}

fn case(name: &str, rules: impl Into<String>, packets: Vec<TimedPacket>, _uses_rules: bool) -> Case {
    Case { name: name.into(), rules: rules.into(), packets, framing: Framing::Ethernet, dump_streams: false }
}

fn all_cases() -> Vec<Case> {
    let mut cases = vec![
        case("passthrough", ACCEPT_ALL, mixed_traffic(), false),
        Case { dump_streams: true, ..case("stream-dump", ACCEPT_ALL, mixed_traffic(), true) },
        case("port-refusal", PORT_REFUSAL, port_refusal_traffic(), true),
        case(
            "reset-split-pattern",
            stream_rule("attack", "reset"),
            split_pattern_traffic(CLIENT, SERVER),
            true,
        ),
        case("halfreset", stream_rule("evil", "halfreset"), halfreset_traffic(), true),
        case("flow-drop", stream_rule("drop-me", "drop"), flow_drop_traffic(), true),
        case("udp-rule", UDP_RULE, udp_traffic(), true),
        case("ipv6-reset", stream_rule("attack", "reset"), ipv6_traffic(), true),
        case("icmp", ICMP_RULE, icmp_traffic(), true),
        case("out-of-order", stream_rule("attack", "reset"), out_of_order_traffic(), true),
        case("rule-error", RUNTIME_ERROR, rule_error_traffic(), true),
        case("alerts", ALERTS, alerts_traffic(), true),
        case("fragments", stream_rule("attack", "reset"), fragment_traffic(), true),
    ];
    for framing in [
        Framing::Ethernet,
        Framing::Vlan(vec![100]),
        Framing::Vlan(vec![100, 200]),
        Framing::Raw,
        Framing::RawV4,
        Framing::Sll,
        Framing::Sll2,
        Framing::Null,
        Framing::Loop,
        Framing::Ppp { compressed: false },
        Framing::Ppp { compressed: true },
        Framing::CiscoHdlc,
    ] {
        let name = format!("link-{}", framing.name());
        cases.push(Case { framing, ..case(&name, ACCEPT_ALL, mixed_traffic(), false) });
    }
    // An RST forged into each link type must get that link type's header.
    for framing in [
        Framing::Vlan(vec![100]),
        Framing::Sll,
        Framing::Sll2,
        Framing::Null,
        Framing::Ppp { compressed: true },
        Framing::CiscoHdlc,
    ] {
        let name = format!("reset-{}", framing.name());
        cases.push(Case { framing, ..case(&name, stream_rule("attack", "reset"), ipv6_traffic(), true) });
    }
    cases
}

fn find_case(name: &str) -> Case {
    all_cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name}"))
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn input_bytes(c: &Case) -> Vec<u8> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    write_pcap_file(tmp.path(), &c.framing, &c.packets).unwrap();
    fs::read(tmp.path()).unwrap()
}

/// Writes every case's `rules.lua` and `input.pcap` (not the expected files).
#[test]
#[ignore = "writes fixtures; run explicitly"]
fn generate_fixtures() {
    for c in all_cases() {
        let dir = golden_dir().join(&c.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("rules.lua"), &c.rules).unwrap();
        fs::write(dir.join("input.pcap"), input_bytes(&c)).unwrap();
    }
}

/// The committed inputs are what the generator makes (no stale fixtures).
#[test]
fn fixtures_match_the_generator() {
    for c in all_cases() {
        let dir = golden_dir().join(&c.name);
        let rules = fs::read_to_string(dir.join("rules.lua"))
            .unwrap_or_else(|e| panic!("{}: {e}; run generate_fixtures", c.name));
        assert_eq!(rules, c.rules, "{}: rules.lua is stale; run generate_fixtures", c.name);
        let input = fs::read(dir.join("input.pcap")).unwrap();
        assert!(input == input_bytes(&c), "{}: input.pcap is stale; run generate_fixtures", c.name);
    }
}

// ---------------------------------------------------------------- running

struct Outcome {
    summary: Summary,
    records: Vec<Record>,
    alerts: Vec<serde_json::Value>,
    link: LinkType,
}

fn bless() -> bool {
    std::env::var("SLUICE_BLESS").is_ok_and(|v| v == "1")
}

fn read_records(path: &Path) -> (LinkType, Vec<Record>) {
    let mut src = PcapSource::open(path).unwrap();
    let link = src.link_type();
    let records = src.by_ref().map(|r| r.unwrap()).collect();
    (link, records)
}

/// One line describing a frame, for diffs.
fn describe(link: LinkType, r: &Record) -> String {
    let t = format!("#{} t={}.{:09}", r.index, r.time_ns / 1_000_000_000, r.time_ns % 1_000_000_000);
    let Some(ip) = r.ip() else { return format!("{t} non-IP {} bytes (link {link})", r.frame.len()) };
    match decode(ip) {
        Ok(d) => format!("{t} {}", summarize(&d)),
        Err(e) => format!("{t} undecodable ({e})"),
    }
}

fn summarize(d: &Decoded<'_>) -> String {
    match &d.transport {
        Transport::Tcp(t) => {
            let flags: String = [
                (tcp_flags::SYN, 'S'),
                (tcp_flags::FIN, 'F'),
                (tcp_flags::RST, 'R'),
                (tcp_flags::PSH, 'P'),
                (tcp_flags::ACK, '.'),
            ]
            .iter()
            .filter(|(f, _)| t.flags & f != 0)
            .map(|(_, c)| *c)
            .collect();
            format!(
                "TCP {}:{} > {}:{} [{flags}] seq={} ack={} len={} {:?}",
                d.ip.src,
                t.src_port,
                d.ip.dst,
                t.dst_port,
                t.seq.0,
                t.ack.0,
                t.payload_len,
                String::from_utf8_lossy(d.payload())
            )
        }
        Transport::Udp(u) => format!(
            "UDP {}:{} > {}:{} {:?}",
            d.ip.src,
            u.src_port,
            d.ip.dst,
            u.dst_port,
            String::from_utf8_lossy(d.payload())
        ),
        _ => format!("IP proto {} {} > {}", d.ip.proto, d.ip.src, d.ip.dst),
    }
}

fn compare_records(case: &str, link: LinkType, expected: &[Record], actual: &[Record]) {
    let lines = |rs: &[Record]| rs.iter().map(|r| describe(link, r)).collect::<Vec<_>>();
    let same = expected.len() == actual.len()
        && expected.iter().zip(actual).all(|(e, a)| e.frame == a.frame && e.time_ns == a.time_ns);
    if !same {
        let (e, a) = (lines(expected), lines(actual));
        let mut diff = String::new();
        for i in 0..e.len().max(a.len()) {
            let (el, al) = (e.get(i), a.get(i));
            let bytes_differ = expected.get(i).map(|r| &r.frame) != actual.get(i).map(|r| &r.frame);
            if el != al || bytes_differ {
                let at = match (expected.get(i), actual.get(i)) {
                    (Some(e), Some(a)) => e.frame.iter().zip(&a.frame).position(|(x, y)| x != y),
                    _ => None,
                };
                let note =
                    at.map_or(String::new(), |n| format!("    (first differing byte at frame offset {n})\n"));
                diff += &format!(
                    "  - {}\n  + {}\n{note}",
                    el.map_or("(none)", |s| s),
                    al.map_or("(none)", |s| s)
                );
            } else {
                diff += &format!("    {}\n", el.map_or("", |s| s));
            }
        }
        panic!("{case}: output pcap differs from expected.pcap (- expected, + actual):\n{diff}");
    }
}

fn compare_streams(case: &str, expected: &Path, actual: &Path) {
    let list = |d: &Path| {
        let mut v: Vec<String> =
            fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(list(expected), list(actual), "{case}: stream dump files differ");
    for f in list(expected) {
        let (e, a) = (fs::read(expected.join(&f)).unwrap(), fs::read(actual.join(&f)).unwrap());
        assert!(
            e == a,
            "{case}: {f} differs:\n  expected {:?}\n  actual   {:?}",
            String::from_utf8_lossy(&e),
            String::from_utf8_lossy(&a)
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Runs a case through the driver and compares (or blesses) its outputs.
fn run_case(name: &str) -> Outcome {
    let c = find_case(name);
    let dir = golden_dir().join(name);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.pcap");
    let alerts = tmp.path().join("alerts.jsonl");
    let streams = tmp.path().join("streams");
    let mut opts = OfflineOptions::new(dir.join("rules.lua"), dir.join("input.pcap"));
    opts.output = Some(out.clone());
    opts.alerts = Some(alerts.clone());
    opts.dump_streams = c.dump_streams.then(|| streams.clone());
    let summary = offline::run(&opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!summary.has_errors(), "{name}: every record gets exactly one verdict: {summary:?}");
    assert_eq!(
        summary.packets_in,
        summary.accepted + summary.dropped + summary.modified + summary.non_ip,
        "{name}: records accounted for"
    );

    let (link, records) = read_records(&out);
    let alert_text = fs::read_to_string(&alerts).unwrap_or_default();
    let (expected_pcap, expected_alerts) = (dir.join("expected.pcap"), dir.join("expected-alerts.jsonl"));
    let expected_streams = dir.join("expected-streams");
    if bless() {
        fs::copy(&out, &expected_pcap).unwrap();
        fs::write(&expected_alerts, &alert_text).unwrap();
        if c.dump_streams {
            copy_dir(&streams, &expected_streams);
        }
    }
    assert!(
        expected_pcap.exists() && expected_alerts.exists(),
        "{name}: no expected files; run `SLUICE_BLESS=1 cargo test --test golden` and review them"
    );
    let (expected_link, expected) = read_records(&expected_pcap);
    assert_eq!(expected_link, link, "{name}: link type");
    compare_records(name, link, &expected, &records);
    let want = fs::read_to_string(&expected_alerts).unwrap();
    if want != alert_text {
        panic!("{name}: alerts differ\n--- expected\n{want}--- actual\n{alert_text}");
    }
    if c.dump_streams {
        compare_streams(name, &expected_streams, &streams);
    }
    let alerts = alert_text.lines().map(|l| serde_json::from_str(l).expect("alert is JSON")).collect();
    Outcome { summary, records, alerts, link }
}

// ---------------------------------------------------------------- semantic checks

fn ip_packets(o: &Outcome) -> Vec<Decoded<'_>> {
    o.records.iter().filter_map(|r| r.ip()).map(|ip| decode(ip).expect("output decodes")).collect()
}

fn payload_contains(d: &Decoded<'_>, needle: &[u8]) -> bool {
    d.payload().windows(needle.len()).any(|w| w == needle)
}

fn is_rst_to(d: &Decoded<'_>, dst: SocketAddr) -> bool {
    d.tcp().is_some_and(|t| t.has(tcp_flags::RST) && t.dst_port == dst.port()) && d.ip.dst == dst.ip()
}

fn input_records(name: &str) -> Vec<Record> {
    read_records(&golden_dir().join(name).join("input.pcap")).1
}

/// Output identical to the input, record for record.
fn assert_passthrough(name: &str, o: &Outcome) {
    let input = input_records(name);
    assert_eq!(o.records.len(), input.len(), "{name}: every packet passes");
    for (i, o) in input.iter().zip(&o.records) {
        assert_eq!((&i.frame, i.time_ns), (&o.frame, o.time_ns), "{name}: record {} identical", i.index);
    }
}

#[test]
fn passthrough() {
    let o = run_case("passthrough");
    assert_passthrough("passthrough", &o);
    assert_eq!(o.summary.dropped + o.summary.forged, 0);
    assert!(o.alerts.is_empty());
}

#[test]
fn stream_dump() {
    let o = run_case("stream-dump");
    assert_passthrough("stream-dump", &o);
    let dir = golden_dir().join("stream-dump/expected-streams");
    let read = |f: &str| fs::read(dir.join(f)).unwrap();
    assert_eq!(read("conn-000001-up.bin"), b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_eq!(read("conn-000001-down.bin"), b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let index = String::from_utf8(read("index.jsonl")).unwrap();
    assert_eq!(index.lines().count(), 2, "one TCP connection, two directions (UDP is not dumped)");
    assert!(index.lines().next().unwrap().contains(r#""src":"10.0.0.1","sport":40000"#));
}

macro_rules! link_cases {
    ($($test:ident => $case:literal, $link:expr;)*) => {$(
        #[test]
        fn $test() {
            let o = run_case($case);
            assert_eq!(o.link, $link, "link type kept");
            assert_passthrough($case, &o);
        }
    )*};
}

link_cases! {
    link_ethernet => "link-ethernet", LinkType::Ethernet;
    link_vlan => "link-vlan", LinkType::Ethernet;
    link_qinq => "link-qinq", LinkType::Ethernet;
    link_raw => "link-raw", LinkType::Raw;
    link_ipv4 => "link-ipv4", LinkType::Ipv4;
    link_sll => "link-sll", LinkType::LinuxSll;
    link_sll2 => "link-sll2", LinkType::LinuxSll2;
    link_null => "link-null", LinkType::Null;
    link_loop => "link-loop", LinkType::Loop;
    link_ppp => "link-ppp", LinkType::Ppp;
    link_ppp_pfc => "link-ppp-pfc", LinkType::Ppp;
    link_chdlc => "link-chdlc", LinkType::CiscoHdlc;
}

#[test]
fn port_refusal() {
    let o = run_case("port-refusal");
    let pk = ip_packets(&o);
    assert!(
        pk.iter().all(|d| d.tcp().is_none_or(|t| t.src_port != 8080 && t.dst_port != 8080)),
        "nothing of 8080"
    );
    let to_80 = pk.iter().filter(|d| d.tcp().is_some_and(|t| t.dst_port == 80)).count();
    let input_80 = input_records("port-refusal")
        .iter()
        .filter(|r| decode(r.ip().unwrap()).unwrap().tcp().is_some_and(|t| t.dst_port == 80))
        .count();
    assert_eq!(to_80, input_80, "port 80 untouched");
    assert_eq!(o.alerts.len(), 1);
    assert!(o.alerts[0].to_string().contains("refused port 8080"));
}

fn check_reset(name: &str, client: &str, server: &str) -> Outcome {
    let o = run_case(name);
    let pk = ip_packets(&o);
    assert!(
        !pk.iter().any(|d| payload_contains(d, b"ack HTTP")),
        "{name}: the segment completing `attack` is dropped"
    );
    assert!(!pk.iter().any(|d| payload_contains(d, b"too late")), "{name}: nothing after the reset");
    assert!(pk.iter().any(|d| is_rst_to(d, addr(server))), "{name}: RST to the server");
    assert!(pk.iter().any(|d| is_rst_to(d, addr(client))), "{name}: RST to the client");
    assert_eq!(o.alerts.len(), 1, "{name}: one alert");
    o
}

#[test]
fn reset_split_pattern() {
    let o = check_reset("reset-split-pattern", CLIENT, SERVER);
    // The RST to the server carries the sequence number it expects next:
    // right after "GET /index?q=att" (16 bytes after ISN+1).
    let rst = ip_packets(&o).into_iter().find(|d| is_rst_to(d, addr(SERVER))).unwrap();
    assert_eq!(rst.tcp().unwrap().seq, SeqNumber(1001 + 16));
}

#[test]
fn ipv6_reset() {
    let o = check_reset("ipv6-reset", "[fd00::1]:40000", "[fd00::2]:80");
    let rst = o
        .records
        .iter()
        .find(|r| decode(r.ip().unwrap()).unwrap().tcp().unwrap().has(tcp_flags::RST))
        .unwrap();
    assert_eq!(&rst.frame[12..14], &[0x86, 0xdd], "forged frame announces IPv6");
}

macro_rules! reset_link_cases {
    ($($test:ident => $case:literal, $link:expr;)*) => {$(
        #[test]
        fn $test() {
            let o = check_reset($case, "[fd00::1]:40000", "[fd00::2]:80");
            assert_eq!(o.link, $link);
            assert!(o.records.iter().all(|r| r.l3.is_some()), "every frame, forged ones too, locates its IP packet");
        }
    )*};
}

reset_link_cases! {
    reset_vlan => "reset-vlan", LinkType::Ethernet;
    reset_sll => "reset-sll", LinkType::LinuxSll;
    reset_sll2 => "reset-sll2", LinkType::LinuxSll2;
    reset_null => "reset-null", LinkType::Null;
    reset_ppp_pfc => "reset-ppp-pfc", LinkType::Ppp;
    reset_chdlc => "reset-chdlc", LinkType::CiscoHdlc;
}

#[test]
fn halfreset() {
    let o = run_case("halfreset");
    let pk = ip_packets(&o);
    assert!(pk.iter().any(|d| is_rst_to(d, addr(SERVER))), "RST to the server");
    assert!(!pk.iter().any(|d| is_rst_to(d, addr(CLIENT))), "no RST to the client");
    assert!(!pk.iter().any(|d| payload_contains(d, b"evil")));
    assert!(!pk.iter().any(|d| payload_contains(d, b"more after")), "client's later packets dropped");
    assert!(pk.iter().any(|d| payload_contains(d, b"hello")));
}

#[test]
fn flow_drop() {
    let o = run_case("flow-drop");
    let pk = ip_packets(&o);
    assert!(pk.iter().any(|d| payload_contains(d, b"fine")));
    for later in [&b"drop-me"[..], b"reply", b"again"] {
        assert!(
            !pk.iter().any(|d| payload_contains(d, later)),
            "{:?} dropped",
            String::from_utf8_lossy(later)
        );
    }
    assert!(!pk.iter().any(|d| d.tcp().is_some_and(|t| t.has(tcp_flags::RST))), "drop forges nothing");
    assert!(pk.iter().any(|d| payload_contains(d, b"unrelated connection")), "other flows unaffected");
    assert_eq!(o.summary.forged, 0);
}

#[test]
fn udp_rule() {
    let o = run_case("udp-rule");
    let pk = ip_packets(&o);
    assert!(!pk.iter().any(|d| payload_contains(d, b"bad")));
    assert_eq!(pk.iter().filter(|d| payload_contains(d, b"good")).count(), 2);
}

#[test]
fn icmp() {
    let o = run_case("icmp");
    let pk = ip_packets(&o);
    assert!(pk.iter().any(|d| payload_contains(d, b"ping-ok")));
    assert!(!pk.iter().any(|d| payload_contains(d, b"ping-drop")));
    assert_eq!(o.alerts.len(), 2);
    assert!(o.alerts.iter().all(|a| a.to_string().contains("icmp type 8")));
}

#[test]
fn out_of_order() {
    let o = run_case("out-of-order");
    let pk = ip_packets(&o);
    // "GO at" closes the gap and makes "GO attack!" deliverable: it carries the verdict.
    assert!(!pk.iter().any(|d| payload_contains(d, b"GO at")), "the gap-closing segment is dropped");
    assert!(pk.iter().any(|d| is_rst_to(d, addr(SERVER))));
    assert_eq!(o.alerts.len(), 1);
}

#[test]
fn rule_error() {
    let o = run_case("rule-error");
    let pk = ip_packets(&o);
    assert!(!pk.iter().any(|d| payload_contains(d, b"boom")), "erroring packet dropped");
    assert!(pk.iter().any(|d| payload_contains(d, b"first")));
    assert!(pk.iter().any(|d| payload_contains(d, b"reply")), "one error does not stop the filter");
    assert!(o.summary.rule_errors >= 1);
}

#[test]
fn alerts() {
    let o = run_case("alerts");
    assert_passthrough("alerts", &o);
    assert_eq!(o.alerts.len(), 2);
    let text: Vec<String> = o.alerts.iter().map(|a| a.to_string()).collect();
    assert!(text[0].contains("new connection to 80") && text[0].contains("medium"));
    assert!(text[1].contains("new connection to 443"));
}

#[test]
fn fragments() {
    let o = run_case("fragments");
    let input = read_records(&golden_dir().join("fragments/input.pcap")).1;
    let frags_of = |recs: &[Record], sport: u16| {
        recs.iter()
            .filter_map(|r| r.ip().map(|ip| ip.to_vec()))
            .filter(|ip| {
                let d = decode(ip).unwrap();
                d.ip.fragment.is_some() && d.ip.id == u32::from(if sport == 40000 { 41u16 } else { 42 })
            })
            .count()
    };
    // The benign datagram's fragments all pass; none of the attack's do.
    assert_eq!(frags_of(&o.records, 40000), frags_of(&input, 40000));
    assert!(frags_of(&input, 40000) >= 3);
    assert_eq!(frags_of(&o.records, 40001), 0);
    assert!(ip_packets(&o).iter().any(|d| is_rst_to(d, addr(SERVER))), "the attack connection is reset");
}
