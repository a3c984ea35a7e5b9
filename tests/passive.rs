//! `sluice pcap --passive`: crafted captures with capture loss, each with
//! its expected transcript of what rules get (data chunks, gap notices,
//! connection events) and the verdicts, through the engine with a recording
//! inspector; then the offline driver's stream dump and summary.

use std::fs;

use sluice::config::EngineConfig;
use sluice::engine::{ChecksumState, Emitted, Engine, Output, Packet, Verdict};
use sluice::flow::Direction::{self, Down, Up};
use sluice::inspect::{Action, Context, Event, FlowInfo, Inspector};
use sluice::offline::{self, OfflineOptions};
use sluice::pcapgen::{write_pcap_file, Conversation, Framing, TimedPacket};
use sluice::time::Timestamp;
use sluice::wire::header::Tcp;
use sluice::wire::{decode, tcp_flags, Decoded};

/// Writes down every event as one line; resets the connection on "reset-me".
#[derive(Default)]
struct Recorder {
    lines: Vec<String>,
    /// Packet time of each data event.
    times: Vec<Timestamp>,
}

impl Inspector for Recorder {
    fn subscribed(&self, e: Event) -> bool {
        matches!(e, Event::TcpNewConnection | Event::TcpData | Event::TcpEndConnection)
    }
    fn packet(
        &mut self,
        e: Event,
        _: &Context,
        _: &Decoded<'_>,
        f: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        if e == Event::TcpNewConnection {
            if let Some((f, _)) = f {
                self.lines.push(format!("new {}:{} > {}:{}", f.src, f.src_port, f.dst, f.dst_port));
            }
        }
        Action::Accept
    }
    fn data(&mut self, ctx: &Context, _: &FlowInfo, dir: Direction, data: &[u8]) -> Action {
        self.times.push(ctx.time);
        self.lines.push(format!("{} data {}", dir.name(), String::from_utf8_lossy(data)));
        if data.windows(8).any(|w| w == b"reset-me") {
            Action::Reset
        } else {
            Action::Accept
        }
    }
    fn gap(&mut self, _: &Context, _: &FlowInfo, dir: Direction, offset: u64, len: u64) -> Action {
        self.lines.push(format!("{} gap {offset}+{len}", dir.name()));
        Action::Accept
    }
    fn stream_end(&mut self, _: &Context, _: &FlowInfo, _: Direction) -> Action {
        Action::Accept
    }
    fn depth_reached(&mut self, _: &Context, _: &FlowInfo, _: Direction) -> Action {
        Action::Accept
    }
    fn end(&mut self, _: Event, _: &Context, _: &FlowInfo) {
        self.lines.push("end".into());
    }
    fn forget(&mut self, _: u64) {}
}

struct Outcome {
    lines: Vec<String>,
    times: Vec<Timestamp>,
    drops: usize,
    forged: Vec<Vec<u8>>,
    counters: Vec<(&'static str, u64)>,
}

impl Outcome {
    fn counter(&self, name: &str) -> u64 {
        self.counters.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap()
    }
}

fn passive(packets: &[TimedPacket]) -> Outcome {
    passive_with(packets, EngineConfig { passive: true, ..EngineConfig::default() })
}

fn passive_with(packets: &[TimedPacket], config: EngineConfig) -> Outcome {
    let mut engine = Engine::new(config, Recorder::default());
    let mut out = Output::new();
    let mut last = Timestamp(0);
    for (i, (t, p)) in packets.iter().enumerate() {
        engine.tick(*t, &mut out);
        let pkt = Packet { id: i as u64, data: p, time: *t, checksum: ChecksumState::Unchecked };
        engine.process(pkt, &mut out);
        last = *t;
    }
    engine.finish(last, &mut out);
    let mut drops = 0;
    let mut forged = Vec::new();
    let mut verdicts = 0;
    for item in out.items {
        match item {
            Emitted::Verdict(_, Verdict::Drop) => {
                drops += 1;
                verdicts += 1
            }
            Emitted::Verdict(..) => verdicts += 1,
            Emitted::Forged(p) => forged.push(p),
        }
    }
    assert_eq!(verdicts, packets.len(), "one verdict per packet");
    let counters = engine.stats().snapshot();
    let (lines, times) = (engine.inspector().lines.clone(), engine.inspector().times.clone());
    Outcome { lines, times, drops, forged, counters }
}

fn conversation() -> Conversation {
    Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap())
}

/// The packets without those whose TCP payload is exactly `payload`.
fn without(packets: Vec<TimedPacket>, payloads: &[&[u8]]) -> Vec<TimedPacket> {
    packets.into_iter().filter(|(_, p)| !payloads.contains(&decode(p).unwrap().payload())).collect()
}

/// The packets without the `n`-th pure ACK (no payload, only ACK) sent in `dir`.
fn without_ack(packets: Vec<TimedPacket>, client_port: u16, dir: Direction, n: usize) -> Vec<TimedPacket> {
    let mut seen = 0;
    packets
        .into_iter()
        .filter(|(_, p)| {
            let d = decode(p).unwrap();
            let t = d.tcp().unwrap();
            let from_client = t.src_port == client_port;
            let pure_ack = t.flags == tcp_flags::ACK && d.payload().is_empty();
            if pure_ack && from_client == (dir == Up) {
                seen += 1;
                return seen != n + 1;
            }
            true
        })
        .collect()
}

const NEW: &str = "new 10.0.0.1:40000 > 10.0.0.2:80";

#[test]
fn client_data_lost_before_the_ack_is_a_gap() {
    let mut c = conversation();
    c.handshake().send(Up, b"GET /a ").send(Up, b"GET /b ").send(Up, b"GET /c ").send(Down, b"200").close();
    let o = passive(&without(c.into_packets(), &[b"GET /b "]));
    assert_eq!(o.lines, [NEW, "up data GET /a ", "up gap 7+7", "up data GET /c ", "down data 200", "end"]);
    assert_eq!((o.drops, o.counter("passive_gaps"), o.counter("passive_gap_bytes")), (0, 1, 7));
}

#[test]
fn data_is_delivered_by_the_packet_that_acknowledges_it() {
    let mut c = conversation();
    c.handshake().data(Up, b"request").data(Down, b"reply").ack(Up).ack(Down).close();
    let packets = c.into_packets();
    let o = passive(&packets);
    // The reply (packet 4) acknowledges the request; the client's ACK
    // (packet 5) the reply.
    assert_eq!(o.lines, [NEW, "up data request", "down data reply", "end"]);
    assert_eq!(o.times, [packets[4].0, packets[5].0]);
}

#[test]
fn server_data_lost_before_the_ack_is_a_gap() {
    let mut c = conversation();
    c.handshake()
        .send(Up, b"GET /")
        .send(Down, b"part one,")
        .send(Down, b"part two,")
        .send(Down, b"end")
        .close();
    let o = passive(&without(c.into_packets(), &[b"part two,"]));
    assert_eq!(
        o.lines,
        [NEW, "up data GET /", "down data part one,", "down gap 9+9", "down data end", "end"]
    );
    assert_eq!(o.drops, 0);
}

#[test]
fn an_ack_lost_after_the_data_delays_delivery_to_the_next_ack() {
    let mut c = conversation();
    c.handshake().send(Up, b"one ").send(Up, b"two ").send(Down, b"ok").close();
    // The server's ACK of "one " is missing: "one " comes with the next ACK.
    let o = passive(&without_ack(c.into_packets(), 40000, Down, 0));
    assert_eq!(o.lines, [NEW, "up data one two ", "down data ok", "end"]);
    assert_eq!((o.drops, o.counter("passive_gaps")), (0, 0));
}

#[test]
fn loss_at_the_stream_start_and_next_to_a_fin() {
    let mut c = conversation();
    c.handshake().send(Up, b"first").send(Up, b"middle").send(Down, b"reply").send(Down, b"last").close();
    let o = passive(&without(c.into_packets(), &[b"first", b"last"]));
    assert_eq!(o.lines, [NEW, "up gap 0+5", "up data middle", "down data reply", "down gap 5+4", "end"]);
    assert_eq!(o.counter("passive_gap_bytes"), 9);
}

#[test]
fn several_gaps_and_the_stream_goes_on() {
    let mut c = conversation();
    c.handshake();
    for chunk in ["a1 ", "b22 ", "c333 ", "d4444 ", "e55555 "] {
        c.send(Up, chunk.as_bytes());
    }
    c.close();
    let o = passive(&without(c.into_packets(), &[b"b22 ", b"d4444 "]));
    assert_eq!(
        o.lines,
        [NEW, "up data a1 ", "up gap 3+4", "up data c333 ", "up gap 12+6", "up data e55555 ", "end"]
    );
}

#[test]
fn pipelined_requests_after_a_gap_all_reach_the_rules() {
    let mut c = conversation();
    c.handshake()
        .data(Up, b"GET /1 HTTP/1.1\r\n\r\n")
        .data(Up, b"GET /2 HTTP/1.1\r\n\r\n")
        .data(Up, b"GET /3 HTTP/1.1\r\n\r\n")
        .ack(Down)
        .send(Down, b"HTTP/1.1 200 OK\r\n\r\n")
        .close();
    let o = passive(&without(c.into_packets(), &[b"GET /2 HTTP/1.1\r\n\r\n"]));
    assert_eq!(
        o.lines,
        [
            NEW,
            "up data GET /1 HTTP/1.1\r\n\r\n",
            "up gap 19+19",
            "up data GET /3 HTTP/1.1\r\n\r\n",
            "down data HTTP/1.1 200 OK\r\n\r\n",
            "end"
        ]
    );
}

#[test]
fn midstream_pickup_and_never_acknowledged_data_at_the_end() {
    let mut c = conversation();
    c.handshake().send(Up, b"before the capture").send(Up, b"seen ").data(Up, b"unacked");
    // The capture starts after the first request.
    let packets: Vec<TimedPacket> = c.into_packets().split_off(5);
    let o = passive(&packets);
    assert_eq!(o.lines, [NEW, "up data seen ", "up data unacked", "end"]);
    assert_eq!(o.drops, 0);
}

#[test]
fn overlaps_keep_the_first_copy_and_are_counted() {
    let mut c = conversation();
    c.handshake();
    let at = c.next_seq(Up);
    c.data(Up, b"harmless");
    c.segment(Up, at, tcp_flags::ACK | tcp_flags::PSH, b"attack!!");
    c.ack(Down).close();
    let o = passive(&c.into_packets());
    assert_eq!(o.lines, [NEW, "up data harmless", "end"]);
    assert_eq!(o.counter("passive_overlap_conflicts"), 1);
    assert_eq!(o.drops, 0, "nothing dropped for overlaps");
}

#[test]
fn acks_of_missing_data_and_odd_flags_drop_nothing() {
    let mut c = conversation();
    c.handshake().send(Up, b"x");
    // An ACK far ahead of anything captured, and a stray SYN-ACK mid-connection.
    let far = c.next_seq(Up) + 5000;
    let mut odd = c.build(Down, c.next_seq(Down), tcp_flags::ACK, &[], b"");
    let mut t = Tcp::of_packet(&mut odd).unwrap();
    t.set_ack(far.0);
    t.fill_checksum();
    c.push(odd);
    let stray = c.build(Down, c.next_seq(Down), tcp_flags::SYN | tcp_flags::ACK, &[], b"");
    c.push(stray);
    c.close();
    let o = passive(&c.into_packets());
    assert_eq!(o.drops, 0);
    assert_eq!(o.lines, [NEW, "up data x", "up gap 1+5000", "end"]);
}

#[test]
fn a_rule_reset_is_reported_as_forged_rsts_and_later_packets_dropped() {
    let mut c = conversation();
    c.handshake().send(Up, b"please reset-me").send(Up, b"more").send(Down, b"reply").close();
    let o = passive(&c.into_packets());
    assert_eq!(o.lines, [NEW, "up data please reset-me", "end"]);
    assert_eq!(o.forged.len(), 2, "an RST to each end");
    let to_server = decode(&o.forged[0]).unwrap();
    assert_eq!(to_server.ip.dst.to_string(), "10.0.0.2");
    // The server stands right after "please reset-me" (client ISN 1000 + 1 + 15).
    assert_eq!(to_server.tcp().unwrap().seq.0, 1016);
    // The ACK that delivered the bytes, and everything after it, would have been dropped.
    assert_eq!(o.drops, 1 + 2 + 2 + 4);
}

const DUMP_RULES: &str = r#"require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir) end
}
"#;

#[test]
fn offline_passive_dumps_gaps_in_the_index_and_summarises_them() {
    let mut c = conversation();
    c.handshake().send(Up, b"GET /a ").send(Up, b"GET /b ").send(Up, b"GET /c ").send(Down, b"200").close();
    let packets = without(c.into_packets(), &[b"GET /b "]);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.pcap");
    write_pcap_file(&input, &Framing::Ethernet, &packets).unwrap();
    let rules = tmp.path().join("rules.lua");
    fs::write(&rules, DUMP_RULES).unwrap();
    let mut opts = OfflineOptions::new(&rules, &input);
    opts.engine.passive = true;
    opts.dump_streams = Some(tmp.path().join("dump"));
    opts.alerts = Some(tmp.path().join("alerts.jsonl"));
    let summary = offline::run(&opts).unwrap();
    assert_eq!(summary.dropped, 0);
    assert!(summary.to_string().contains("passive: 1 gaps (7 bytes missing from the capture)"), "{summary}");
    let up = fs::read(tmp.path().join("dump/conn-000001-up.bin")).unwrap();
    assert_eq!(up, b"GET /a GET /c ");
    let index = fs::read_to_string(tmp.path().join("dump/index.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(index.lines().next().unwrap()).unwrap();
    assert_eq!(first["gaps"], serde_json::json!([{"offset": 7, "len": 7, "file_offset": 7}]));

    // The same capture rehearsed: the ACK of missing data gets the hint.
    opts.engine.passive = false;
    opts.dump_streams = None;
    let summary = offline::run(&opts).unwrap();
    assert!(summary.to_string().contains("--passive analyses a capture from a tap or a host"), "{summary}");
}

#[test]
fn a_finished_connection_makes_room_in_a_full_table() {
    // A is live when B's SYN finds the table full (B is refused); once A
    // has ended, C takes its place.
    let at = |c: &Conversation| Timestamp(c.packets().last().unwrap().0 .0 + 1000);
    let mut a = conversation();
    a.handshake().send(Up, b"first");
    let mut b =
        Conversation::new("10.0.0.3:40001".parse().unwrap(), "10.0.0.2:80".parse().unwrap()).at(at(&a));
    let syn = b.build(Up, b.next_seq(Up), tcp_flags::SYN, &[], b"");
    b.push(syn);
    a = a.at(at(&b));
    a.close();
    let mut c =
        Conversation::new("10.0.0.4:40002".parse().unwrap(), "10.0.0.2:80".parse().unwrap()).at(at(&a));
    c.handshake().send(Up, b"third").close();
    let mut packets = a.into_packets();
    packets.extend(b.into_packets());
    packets.extend(c.into_packets());
    packets.sort_by_key(|(t, _)| *t);
    let o = passive_with(&packets, EngineConfig { passive: true, max_flows: 1, ..EngineConfig::default() });
    assert_eq!(o.lines[1..3], ["up data first".to_string(), "end".to_string()]);
    assert_eq!(o.lines[4..], ["up data third".to_string(), "end".to_string()]);
    assert_eq!((o.counter("flows_evicted"), o.counter("drop_flow_table_full"), o.drops), (1, 1, 1));
}

#[test]
fn without_acks_the_buffer_limit_delivers_the_oldest_bytes_early() {
    // Only the client's side was captured: no ACK ever covers its bytes.
    let mut c = conversation();
    c.handshake().data(Up, b"aaaaaaaa").data(Up, b"bbbbbbbb").data(Up, b"cccccccc");
    let packets: Vec<TimedPacket> = c
        .into_packets()
        .into_iter()
        .filter(|(_, p)| decode(p).unwrap().ip.src.to_string() == "10.0.0.1")
        .collect();
    let config = EngineConfig { passive: true, max_stream_buffer: 12, ..EngineConfig::default() };
    let o = passive_with(&packets, config.clone());
    assert_eq!(o.lines, [NEW, "up data aaaaaaaa", "up data bbbbbbbb", "up data cccccccc", "end"]);
    assert_eq!(o.times[0], packets[3].0, "the second segment pushed the first one out");
    assert_eq!(o.counter("passive_forced_bytes"), 16);
    // The total buffer too.
    let config = EngineConfig { passive: true, max_total_buffer: 4, ..EngineConfig::default() };
    let o = passive_with(&packets, config);
    assert_eq!(o.times[0], packets[3].0);
}

#[test]
fn an_rst_delivers_what_was_never_acknowledged_and_ends_the_connection() {
    let mut c = conversation();
    c.handshake().send(Up, b"acked ").data(Up, b"never acked").rst(Down).send(Down, b"late");
    let packets = c.into_packets();
    let o = passive(&packets);
    assert_eq!(o.lines, [NEW, "up data acked ", "up data never acked", "end"]);
    assert_eq!(o.times[1], packets[6].0, "delivered by the RST");
    assert_eq!(o.drops, 0);
    assert_eq!(o.counter("passive_packets_after_end"), 2, "the late data and its ACK");
}
