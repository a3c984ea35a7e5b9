//! Scenario tests of the engine with a scripted inspector: TCP tracking,
//! in-order delivery, resets, normalisation, UDP, limits and timeouts.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::flow::Direction;
use crate::inspect::FlowInfo;
use crate::wire::forge::{udp_packet, TcpSegment};
use crate::wire::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};
use crate::wire::SeqNumber;

/// Records events; resets or drops on command.
#[derive(Default)]
pub(super) struct Script {
    pub events: Vec<String>,
    pub up: Vec<u8>,
    pub down: Vec<u8>,
    pub reset_on: Option<Vec<u8>>,
    pub action_on_match: Option<Action>,
    pub refuse_port: Option<u16>,
    /// Hook only the stream events (lets batches coalesce data).
    pub stream_only: bool,
    /// What `depth_reached` decides (accept if `None`).
    pub action_on_depth: Option<Action>,
}

impl Inspector for Script {
    fn subscribed(&self, e: Event) -> bool {
        !self.stream_only
            || matches!(
                e,
                Event::TcpNewConnection | Event::TcpData | Event::TcpEndConnection | Event::UdpData
            )
    }
    fn packet(
        &mut self,
        event: Event,
        _: &Context,
        pkt: &Decoded<'_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        match event {
            Event::TcpNewConnection | Event::UdpNewConnection => {
                let f = flow.map(|(f, _)| f.dst_port).unwrap_or(0);
                self.events.push(format!("{}:new:{f}", event.lua_name().0));
                if self.refuse_port == Some(f) {
                    return Action::DropPacket;
                }
            }
            Event::UdpData => {
                self.events.push(format!("udp:data:{}", String::from_utf8_lossy(pkt.payload())));
                if self.reset_on.as_deref().is_some_and(|p| pkt.payload().windows(p.len()).any(|w| w == p)) {
                    return self.action_on_match.unwrap_or(Action::Reset);
                }
            }
            _ => {}
        }
        Action::Accept
    }
    fn data(&mut self, _: &Context, _: &FlowInfo, dir: Direction, data: &[u8]) -> Action {
        self.events.push(format!("data:{}:{}", dir.name(), String::from_utf8_lossy(data)));
        let buf = if dir == Direction::Up { &mut self.up } else { &mut self.down };
        buf.extend_from_slice(data);
        if let Some(p) = &self.reset_on {
            if dir == Direction::Up && self.up.windows(p.len()).any(|w| w == p.as_slice()) {
                return self.action_on_match.unwrap_or(Action::Reset);
            }
        }
        Action::Accept
    }
    fn end(&mut self, event: Event, _: &Context, _: &FlowInfo) {
        self.events.push(format!("{}:end", event.lua_name().0));
    }
    fn stream_end(&mut self, _: &Context, _: &FlowInfo, _: Direction) -> Action {
        Action::Accept
    }
    fn gap(&mut self, _: &Context, _: &FlowInfo, _: Direction, _: u64, _: u64) -> Action {
        Action::Accept
    }
    fn depth_reached(&mut self, _: &Context, _: &FlowInfo, dir: Direction) -> Action {
        self.events.push(format!("depth:{}", dir.name()));
        self.action_on_depth.unwrap_or(Action::Accept)
    }
    fn forget(&mut self, _: u64) {}
}

pub(super) const C: u16 = 40000;
pub(super) const S: u16 = 80;

pub(super) fn client() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}
pub(super) fn server() -> IpAddr {
    "10.0.0.2".parse().unwrap()
}

/// A TCP conversation builder tracking both sides' sequence numbers.
pub(super) struct Conv {
    pub cseq: SeqNumber,
    pub sseq: SeqNumber,
    pub v6: bool,
    /// The client's port (the server's is [`S`]).
    pub port: u16,
}

impl Conv {
    pub(super) fn new(cisn: u32, sisn: u32) -> Self {
        Conv { cseq: SeqNumber(cisn), sseq: SeqNumber(sisn), v6: false, port: C }
    }
    /// A conversation from another client port (several connections at once).
    pub(super) fn on_port(port: u16, cisn: u32, sisn: u32) -> Self {
        Conv { port, ..Conv::new(cisn, sisn) }
    }
    fn addrs(&self) -> (IpAddr, IpAddr) {
        if self.v6 {
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            (client(), server())
        }
    }
    /// A segment from the client (`up`) or the server, at an explicit seq.
    pub(super) fn seg(&self, up: bool, seq: SeqNumber, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (c, s) = self.addrs();
        let mut t =
            if up { TcpSegment::new(c, self.port, s, S) } else { TcpSegment::new(s, S, c, self.port) };
        t.seq = seq;
        t.ack = if up { self.sseq } else { self.cseq };
        t.flags = flags;
        t.payload = payload;
        t.build()
    }
    pub(super) fn syn(&self) -> Vec<u8> {
        let (c, s) = self.addrs();
        let mut t = TcpSegment::new(c, self.port, s, S);
        t.seq = self.cseq;
        t.flags = SYN;
        t.build()
    }
    pub(super) fn handshake(&mut self) -> Vec<Vec<u8>> {
        let syn = self.syn();
        self.cseq = self.cseq + 1;
        let synack = self.seg(false, self.sseq, SYN | ACK, b"");
        self.sseq = self.sseq + 1;
        let ack = self.seg(true, self.cseq, ACK, b"");
        vec![syn, synack, ack]
    }
    /// Data from one side, advancing its sequence number.
    pub(super) fn data(&mut self, up: bool, payload: &[u8]) -> Vec<u8> {
        let seq = if up { self.cseq } else { self.sseq };
        let p = self.seg(up, seq, ACK | PSH, payload);
        if up {
            self.cseq = self.cseq + payload.len() as u32;
        } else {
            self.sseq = self.sseq + payload.len() as u32;
        }
        p
    }
    pub(super) fn fin(&mut self, up: bool) -> Vec<u8> {
        let seq = if up { self.cseq } else { self.sseq };
        let p = self.seg(up, seq, ACK | FIN, b"");
        if up {
            self.cseq = self.cseq + 1;
        } else {
            self.sseq = self.sseq + 1;
        }
        p
    }
}

pub(super) struct Harness {
    pub engine: Engine<Script>,
    pub out: Output,
    pub next_id: u64,
    pub time: Timestamp,
    /// What the capture says of each packet's checksum.
    pub checksum: ChecksumState,
}

impl Harness {
    pub(super) fn new(script: Script) -> Self {
        Self::with_config(EngineConfig::default(), script)
    }
    pub(super) fn with_config(cfg: EngineConfig, script: Script) -> Self {
        Harness {
            engine: Engine::new(cfg, script),
            out: Output::new(),
            next_id: 0,
            time: Timestamp(1_000_000),
            checksum: ChecksumState::Unchecked,
        }
    }
    /// Sends a packet; returns its verdict and the packets forged meanwhile.
    pub(super) fn send(&mut self, p: &[u8]) -> (Verdict, Vec<Vec<u8>>) {
        self.out.clear();
        let id = self.next_id;
        self.next_id += 1;
        self.time = Timestamp(self.time.0 + 1000);
        self.engine.process(Packet { id, data: p, time: self.time, checksum: self.checksum }, &mut self.out);
        let mut verdict = None;
        let mut forged = Vec::new();
        for item in self.out.items.drain(..) {
            match item {
                Emitted::Verdict(i, v) if i == id => verdict = Some(v),
                Emitted::Verdict(..) => {}
                Emitted::Forged(f) => forged.push(f),
            }
        }
        (verdict.expect("every packet gets a verdict"), forged)
    }
    /// Sends packets as one batch; returns each packet's verdict and the
    /// packets forged meanwhile.
    pub(super) fn send_batch(&mut self, ps: &[Vec<u8>]) -> (Vec<Verdict>, Vec<Vec<u8>>) {
        self.out.clear();
        let first = self.next_id;
        let pkts: Vec<Packet<'_>> = ps
            .iter()
            .enumerate()
            .map(|(i, p)| Packet {
                id: first + i as u64,
                data: p,
                time: Timestamp(self.time.0 + 1000 * (i as u64 + 1)),
                checksum: self.checksum,
            })
            .collect();
        self.next_id += ps.len() as u64;
        self.time = Timestamp(self.time.0 + 1000 * ps.len() as u64);
        self.engine.process_batch(&pkts, &mut self.out);
        let mut verdicts: Vec<Option<Verdict>> = vec![None; ps.len()];
        let mut forged = Vec::new();
        for item in self.out.items.drain(..) {
            match item {
                Emitted::Verdict(i, v) => {
                    let slot = &mut verdicts[(i - first) as usize];
                    assert!(slot.is_none(), "packet {i} got two verdicts");
                    *slot = Some(v);
                }
                Emitted::Forged(f) => forged.push(f),
            }
        }
        (verdicts.into_iter().map(|v| v.expect("every packet of the batch gets a verdict")).collect(), forged)
    }

    pub(super) fn accept(&mut self, p: &[u8]) {
        let (v, _) = self.send(p);
        assert_eq!(
            v,
            Verdict::Accept,
            "expected accept; events {:?}; counters {:?}",
            self.engine.inspector().events,
            self.engine.stats().snapshot().into_iter().filter(|(_, v)| *v > 0).collect::<Vec<_>>()
        );
    }
    pub(super) fn drop(&mut self, p: &[u8]) {
        let (v, _) = self.send(p);
        assert_eq!(v, Verdict::Drop, "expected drop");
    }
    pub(super) fn count(&self, c: Counter) -> u64 {
        self.engine.stats().get(c)
    }
    pub(super) fn events(&self) -> &[String] {
        &self.engine.inspector().events
    }
}

fn established(script: Script) -> (Harness, Conv) {
    established_with(EngineConfig::default(), script)
}

/// Every receiver modelled strictly (`--target-policy 0.0.0.0/0=strict
/// --target-policy ::/0=strict`).
pub(super) fn strict_config() -> EngineConfig {
    use crate::tcp::receiver_policy::TargetPolicy;
    let mut cfg = EngineConfig::default();
    for net in ["0.0.0.0/0", "::/0"] {
        cfg.receiver.set_policy(net.parse().unwrap(), TargetPolicy::Strict);
    }
    cfg
}

pub(super) fn established_with(cfg: EngineConfig, script: Script) -> (Harness, Conv) {
    let mut h = Harness::with_config(cfg, script);
    let mut c = Conv::new(1000, 5000);
    for p in c.handshake() {
        h.accept(&p);
    }
    (h, c)
}

#[test]
fn full_conversation_events_in_order() {
    let (mut h, mut c) = established(Script::default());
    let p = c.data(true, b"hello");
    h.accept(&p);
    let p = c.data(false, b"world");
    h.accept(&p);
    for p in [c.fin(true), c.fin(false)] {
        h.accept(&p);
    }
    let last = c.seg(true, c.cseq, ACK, b"");
    h.accept(&last);
    assert_eq!(
        h.events(),
        ["tcp_connection:new:80", "data:up:hello", "data:down:world", "tcp_connection:end"].map(String::from)
    );
    assert_eq!(h.count(Counter::TcpConnections), 1);
}

#[test]
fn pattern_split_across_segments_resets_both_ends() {
    let script = Script { reset_on: Some(b"attack".to_vec()), ..Script::default() };
    let (mut h, mut c) = established(script);
    let p1 = c.data(true, b"xxatt");
    h.accept(&p1);
    let server_next = c.cseq; // what the server expects before the second part
    let p2 = c.data(true, b"ackyy");
    let (v, forged) = h.send(&p2);
    assert_eq!(v, Verdict::Drop);
    // Haka's order: the client's RST first. The server has not acknowledged
    // "xxatt" yet, so a second RST to it covers the case where it never got
    // it; the exact one comes first.
    assert_eq!(forged.len(), 3, "one RST to the client, two to the server");
    let to_client = decode(&forged[0]).unwrap();
    let t = to_client.tcp().unwrap();
    assert_eq!((to_client.ip.dst, t.dst_port), (client(), C));
    assert_eq!(t.seq, c.sseq);
    let to_server = decode(&forged[1]).unwrap();
    let t = to_server.tcp().unwrap();
    assert_eq!((to_server.ip.dst, t.dst_port), (server(), S));
    assert!(t.has(RST));
    assert_eq!(t.seq, server_next);
    let second = decode(&forged[2]).unwrap();
    assert_eq!(second.tcp().unwrap().seq, server_next - 5);
    // Everything after is dropped, and the rule saw the connection end.
    let p3 = c.data(true, b"more");
    h.drop(&p3);
    assert_eq!(h.events().last().map(String::as_str), Some("tcp_connection:end"));
    assert_eq!(h.count(Counter::Forged), 3);
}

#[test]
fn halfreset_only_tells_the_server() {
    let script = Script {
        reset_on: Some(b"bad".to_vec()),
        action_on_match: Some(Action::HalfReset),
        ..Script::default()
    };
    let (mut h, mut c) = established(script);
    let p = c.data(true, b"bad");
    let (v, forged) = h.send(&p);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(forged.len(), 1);
    assert_eq!(decode(&forged[0]).unwrap().ip.dst, server());
    let p = c.data(true, b"later");
    h.drop(&p);
}

#[test]
fn flow_drop_is_silent_and_sticky() {
    let script = Script {
        reset_on: Some(b"bad".to_vec()),
        action_on_match: Some(Action::DropFlow),
        ..Script::default()
    };
    let (mut h, mut c) = established(script);
    let p = c.data(true, b"bad");
    let (v, forged) = h.send(&p);
    assert_eq!(v, Verdict::Drop);
    assert!(forged.is_empty());
    let p = c.data(false, b"reply");
    h.drop(&p);
    // Not even a new handshake gets through on a dropped tuple.
    let mut c2 = Conv::new(90_000, 1);
    h.drop(&c2.handshake()[0]);
}

#[test]
fn out_of_order_delivered_when_gap_closes() {
    let (mut h, mut c) = established(Script::default());
    let first = c.data(true, b"abc");
    let second = c.data(true, b"def");
    h.accept(&second);
    assert_eq!(h.engine.inspector().up, b"");
    assert_eq!(h.count(Counter::OutOfOrder), 1);
    h.accept(&first);
    assert_eq!(h.engine.inspector().up, b"abcdef");
    assert_eq!(h.events().last().map(String::as_str), Some("data:up:abcdef"));
}

#[test]
fn overlap_with_other_bytes_refused_until_acknowledged() {
    let (mut h, mut c) = established(Script::default());
    let start = c.cseq;
    let p = c.data(true, b"benign");
    h.accept(&p);
    let evil = c.seg(true, start, ACK, b"evil!!");
    h.drop(&evil);
    assert_eq!(h.count(Counter::DropOverlapConflict), 1);
    let same = c.seg(true, start, ACK, b"benign");
    h.accept(&same);
    assert_eq!(h.count(Counter::Retransmissions), 1);
    // Once the server acknowledged the bytes it discards any retransmission.
    let ack = c.seg(false, c.sseq, ACK, b"");
    h.accept(&ack);
    h.accept(&evil);
    assert_eq!(h.engine.inspector().up, b"benign");
}

#[test]
fn out_of_order_overlap_conflict_refused() {
    // Strict receivers; the Linux twin is in tcp_path/receiver_tests.rs.
    let (mut h, c) = established_with(strict_config(), Script::default());
    let base = c.cseq;
    let later = c.seg(true, base + 4, ACK, b"5678");
    h.accept(&later);
    let conflicting = c.seg(true, base + 2, ACK, b"34XX");
    h.drop(&conflicting);
    let fill = c.seg(true, base, ACK, b"1234");
    h.accept(&fill);
    assert_eq!(h.engine.inspector().up, b"12345678");
}

/// The packet with its last payload byte changed (one bit), checksum left as it was.
fn with_bad_checksum(mut p: Vec<u8>) -> Vec<u8> {
    if let Some(b) = p.last_mut() {
        *b ^= 1;
    }
    p
}

#[test]
fn bad_checksum_dropped_before_rules() {
    let (mut h, mut c) = established(Script::default());
    h.drop(&with_bad_checksum(c.data(true, b"attack")));
    assert_eq!(h.count(Counter::DropBadChecksum), 1);
    assert_eq!(h.engine.inspector().up, b"");
}

#[test]
fn checksum_the_kernel_verified_is_not_summed_again() {
    let (mut h, mut c) = established(Script::default());
    h.checksum = ChecksumState::Verified;
    // A wrong sum proves sluice trusted the kernel's word instead of summing.
    h.accept(&with_bad_checksum(c.data(true, b"attack")));
    assert_eq!(h.count(Counter::DropBadChecksum), 0);
    assert_eq!(h.count(Counter::ChecksumVerifiedByKernel), 1);
    assert_eq!(h.engine.inspector().up, b"attacj");
}

#[test]
fn checksum_not_ready_is_not_verified_nor_counted_as_verified() {
    let (mut h, mut c) = established(Script::default());
    h.checksum = ChecksumState::Partial;
    h.accept(&with_bad_checksum(c.data(true, b"hello")));
    assert_eq!(h.count(Counter::DropBadChecksum), 0);
    assert_eq!(h.count(Counter::ChecksumVerifiedByKernel), 0);
}

#[test]
fn no_handshake_dropped_unless_midstream() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(1, 2);
    h.drop(&c.data(true, b"hi"));
    assert_eq!(h.count(Counter::DropNoHandshake), 1);
    let cfg = EngineConfig { tcp_midstream: true, ..EngineConfig::default() };
    let mut h = Harness::with_config(cfg, Script::default());
    h.accept(&c.data(true, b"hi"));
    h.accept(&c.data(false, b"yo"));
    h.accept(&c.data(true, b"there"));
    assert_eq!(h.engine.inspector().up, b"hithere");
    assert_eq!(h.engine.inspector().down, b"yo");
}

#[test]
fn rst_with_wrong_seq_ignored_exact_rst_ends() {
    let (mut h, mut c) = established(Script::default());
    h.accept(&c.data(true, b"abc"));
    let bad = c.seg(true, c.cseq + 100, RST, b"");
    h.drop(&bad);
    assert_eq!(h.count(Counter::DropBadRst), 1);
    h.accept(&c.data(true, b"def"));
    assert_eq!(h.engine.inspector().up, b"abcdef");
    let good = c.seg(true, c.cseq, RST, b"");
    h.accept(&good);
    assert_eq!(h.events().last().map(String::as_str), Some("tcp_connection:end"));
    h.drop(&c.data(true, b"ghi"));
    assert_eq!(h.count(Counter::DropClosed), 1);
}

#[test]
fn segments_endpoint_discards_are_dropped() {
    let (mut h, c) = established(Script::default());
    // No ACK flag.
    let p = c.seg(true, c.cseq, PSH, b"x");
    h.drop(&p);
    // Acknowledges data the server never sent.
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = c.cseq;
    t.ack = c.sseq + 1000;
    t.flags = ACK;
    t.payload = b"y";
    h.drop(&t.build());
    assert_eq!(h.count(Counter::DropBadAck), 1);
    // Beyond the window the server granted (65535, unscaled).
    let far = c.seg(true, c.cseq + 70_000, ACK, b"z");
    h.drop(&far);
    assert_eq!(h.count(Counter::DropOutOfWindow), 1);
    assert_eq!(h.engine.inspector().up, b"");
}

#[test]
fn urgent_pointer_cleared() {
    // Strict receivers; the Linux twin is in tcp_path/receiver_tests.rs.
    let (mut h, c) = established_with(strict_config(), Script::default());
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = c.cseq;
    t.ack = c.sseq;
    t.flags = ACK | URG;
    t.urgent = 2;
    t.payload = b"abc";
    let (v, _) = h.send(&t.build());
    let Verdict::AcceptModified(bytes) = v else { panic!("expected a normalised packet, got {v:?}") };
    let d = decode(&bytes).unwrap();
    assert!(!d.tcp().unwrap().has(URG));
    assert!(normalize::checksum_ok(&d));
    assert_eq!(h.engine.inspector().up, b"abc");
}

#[test]
fn sequence_wrap() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(u32::MAX - 3, u32::MAX - 1);
    for p in c.handshake() {
        h.accept(&p);
    }
    let a = c.data(true, b"0123");
    let b = c.data(true, b"4567");
    h.accept(&b);
    h.accept(&a);
    h.accept(&c.data(false, b"wrap"));
    assert_eq!(h.engine.inspector().up, b"01234567");
    assert_eq!(h.engine.inspector().down, b"wrap");
}

#[test]
fn window_scaling_respected() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(10, 20);
    let wscale = [1u8, 3, 3, 7]; // NOP, window scale 7
    let mut syn = TcpSegment::new(client(), C, server(), S);
    syn.seq = c.cseq;
    syn.flags = SYN;
    syn.options = &wscale;
    h.accept(&syn.build());
    c.cseq = c.cseq + 1;
    let mut sa = TcpSegment::new(server(), S, client(), C);
    sa.seq = c.sseq;
    sa.ack = c.cseq;
    sa.flags = SYN | ACK;
    sa.options = &wscale;
    h.accept(&sa.build());
    c.sseq = c.sseq + 1;
    // The server's window of 1024 << 7 = 131072 bytes.
    let mut ack = TcpSegment::new(server(), S, client(), C);
    ack.seq = c.sseq;
    ack.ack = c.cseq;
    ack.flags = ACK;
    ack.window = 1024;
    let mut cack = TcpSegment::new(client(), C, server(), S);
    cack.seq = c.cseq;
    cack.ack = c.sseq;
    cack.flags = ACK;
    h.accept(&cack.build());
    h.accept(&ack.build());
    let inside = c.seg(true, c.cseq + 100_000, ACK, b"in");
    h.accept(&inside);
    let outside = c.seg(true, c.cseq + 140_000, ACK, b"out");
    h.drop(&outside);
}

#[test]
fn syn_with_data_delivered_after_new_connection() {
    // Strict receivers; the Linux twin is in tcp_path/receiver_tests.rs.
    let mut h = Harness::with_config(strict_config(), Script::default());
    let mut t = TcpSegment::new(client(), C, server(), S);
    t.seq = SeqNumber(100);
    t.flags = SYN;
    t.payload = b"early";
    h.accept(&t.build());
    assert_eq!(h.events(), ["tcp_connection:new:80", "data:up:early"].map(String::from));
    // The server ignores SYN data (no TFO); the client sends it again: same bytes pass, others don't.
    let mut c = Conv::new(101, 7000);
    let sa = c.seg(false, c.sseq, SYN | ACK, b"");
    h.accept(&sa);
    c.sseq = c.sseq + 1;
    h.accept(&c.seg(true, c.cseq, ACK, b"early"));
    h.drop(&c.seg(true, c.cseq, ACK, b"EVIL!"));
    assert_eq!(h.engine.inspector().up, b"early");
}

#[test]
fn new_syn_after_close_is_a_new_connection() {
    let (mut h, mut c) = established(Script::default());
    h.accept(&c.data(true, b"one"));
    for p in [c.fin(true), c.fin(false)] {
        h.accept(&p);
    }
    h.accept(&c.seg(true, c.cseq, ACK, b""));
    let mut c2 = Conv::new(c.cseq.0 + 100_000, 77);
    for p in c2.handshake() {
        h.accept(&p);
    }
    h.accept(&c2.data(true, b"two"));
    let news = h.events().iter().filter(|e| e.contains(":new:")).count();
    assert_eq!(news, 2);
    assert_eq!(h.engine.inspector().up, b"onetwo");
}

#[test]
fn refused_port_drops_syn_and_retransmissions() {
    let script = Script { refuse_port: Some(80), ..Script::default() };
    let mut h = Harness::new(script);
    let c = Conv::new(1, 2);
    h.drop(&c.syn());
    h.drop(&c.syn());
    assert_eq!(h.events(), ["tcp_connection:new:80"].map(String::from));
}

#[test]
fn udp_flow_events_and_drop() {
    let script = Script { reset_on: Some(b"bad".to_vec()), ..Script::default() };
    let mut h = Harness::new(script);
    h.accept(&udp_packet(client(), 5000, server(), 53, b"query"));
    h.accept(&udp_packet(server(), 53, client(), 5000, b"answer"));
    h.drop(&udp_packet(client(), 5000, server(), 53, b"bad"));
    h.drop(&udp_packet(client(), 5000, server(), 53, b"fine"));
    assert_eq!(
        h.events(),
        ["udp_connection:new:53", "udp:data:query", "udp:data:answer", "udp:data:bad", "udp_connection:end"]
            .map(String::from)
    );
    // Idle timeout frees the tuple.
    let mut out = Output::new();
    let later = h.time.saturating_add(Duration::from_secs(120));
    h.engine.tick(later, &mut out);
    assert_eq!(h.engine.flow_count(), 0);
}

#[test]
fn idle_timeout_ends_connection() {
    let (mut h, mut c) = established(Script::default());
    h.accept(&c.data(true, b"x"));
    let mut out = Output::new();
    let later = h.time.saturating_add(Duration::from_secs(4000));
    h.engine.tick(later, &mut out);
    assert_eq!(h.events().last().map(String::as_str), Some("tcp_connection:end"));
    assert_eq!(h.count(Counter::FlowsTimedOut), 1);
}

#[test]
fn half_open_flood_evicts_half_open_not_established() {
    let cfg = EngineConfig { max_flows: 4, ..EngineConfig::default() };
    let mut h = Harness::with_config(cfg, Script::default());
    let mut c = Conv::new(1000, 5000);
    for p in c.handshake() {
        h.accept(&p);
    }
    for port in 1..50u16 {
        let mut t = TcpSegment::new("10.0.0.9".parse().unwrap(), port, server(), S);
        t.flags = SYN;
        h.accept(&t.build());
    }
    assert!(h.count(Counter::FlowsEvicted) >= 45);
    h.accept(&c.data(true, b"still here"));
    assert_eq!(h.engine.inspector().up, b"still here");
}

#[test]
fn out_of_order_island_limit() {
    let cfg = EngineConfig { max_ooo_segments: 4, ..EngineConfig::default() };
    let mut h = Harness::with_config(cfg, Script::default());
    let mut c = Conv::new(1000, 5000);
    for p in c.handshake() {
        h.accept(&p);
    }
    let base = c.cseq;
    for i in 0..4u32 {
        h.accept(&c.seg(true, base + 10 * (i + 1), ACK, b"x"));
    }
    h.drop(&c.seg(true, base + 100, ACK, b"x"));
    assert_eq!(h.count(Counter::DropStreamLimit), 1);
    // Offsets 10, 20, 30 and 40 are held: the buffer spans 0..41.
    assert_eq!(h.engine.buffered_bytes(), 41);
}

#[test]
fn malformed_packets_get_a_drop_verdict() {
    let mut h = Harness::new(Script::default());
    for junk in [&[][..], &[0x45][..], &[0x60, 0, 0][..], &[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0][..]] {
        h.drop(junk);
    }
    assert_eq!(h.count(Counter::DropMalformed), 4);
}

#[test]
fn ipv6_connection() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(1, 2);
    c.v6 = true;
    for p in c.handshake() {
        h.accept(&p);
    }
    h.accept(&c.data(true, b"six"));
    assert_eq!(h.engine.inspector().up, b"six");
}

mod fragments;

#[test]
fn dropped_data_packet_is_inspected_again_when_retransmitted() {
    // A rule error under the drop policy drops only the packet; its bytes
    // never reached the receiver, so their retransmission faces the rules again.
    let script = Script {
        reset_on: Some(b"boom".to_vec()),
        action_on_match: Some(Action::DropPacket),
        ..Script::default()
    };
    let (mut h, mut c) = established(script);
    h.accept(&c.data(true, b"go "));
    let boom = c.data(true, b"boom");
    h.drop(&boom);
    h.drop(&boom);
    let seen = h.events().iter().filter(|e| e.as_str() == "data:up:boom").count();
    assert_eq!(seen, 2, "{:?}", h.events());
}

mod batches;

/// A connection from client port `port`, through its handshake.
fn open(h: &mut Harness, port: u16, cisn: u32) -> Conv {
    let mut c = Conv::on_port(port, cisn, cisn.wrapping_add(50_000));
    for p in c.handshake() {
        h.accept(&p);
    }
    c
}

/// Segments a receiver's ACK of everything sent so far (frees the sender's buffer).
fn ack_all(c: &Conv, from_server: bool) -> Vec<u8> {
    let seq = if from_server { c.sseq } else { c.cseq };
    c.seg(!from_server, seq, ACK, b"")
}

mod total_buffer_limit;

mod flow_table_full;

mod bad_flags;

mod depth;

mod offload;
