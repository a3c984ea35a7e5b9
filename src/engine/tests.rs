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

mod fragments {
    use super::*;
    use crate::ip::fragment::fragment;

    /// Sends fragments; returns the verdicts emitted for any packet ids, in order.
    fn send_all(h: &mut Harness, frags: &[Vec<u8>]) -> Vec<(u64, Verdict)> {
        let mut verdicts = Vec::new();
        for f in frags {
            h.out.clear();
            let id = h.next_id;
            h.next_id += 1;
            h.engine.process(Packet { id, data: f, time: h.time, checksum: h.checksum }, &mut h.out);
            for item in h.out.items.drain(..) {
                if let Emitted::Verdict(i, v) = item {
                    verdicts.push((i, v));
                }
            }
        }
        verdicts
    }

    #[test]
    fn fragments_held_until_complete_then_share_the_verdict() {
        let (mut h, mut c) = established(Script::default());
        let p = c.data(true, &[b'a'; 100]);
        let frags = fragment(&p, &[24, 40, 40], 77);
        assert!(frags.len() >= 3);
        let first = h.next_id;
        let v = send_all(&mut h, &frags[..frags.len() - 1]);
        assert!(v.is_empty(), "no verdict before the datagram is complete: {v:?}");
        let v = send_all(&mut h, &frags[frags.len() - 1..]);
        let ids: Vec<u64> = v.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids.len(), frags.len());
        assert!(ids.iter().all(|i| *i >= first));
        assert!(v.iter().all(|(_, v)| *v == Verdict::Accept));
        assert_eq!(h.engine.inspector().up, vec![b'a'; 100]);
    }

    #[test]
    fn verified_fragments_leave_the_datagram_checksum_to_sluice() {
        let (mut h, mut c) = established(Script::default());
        let mut p = c.data(true, &[b'a'; 100]);
        let n = p.len();
        p[n - 1] ^= 1;
        let frags = fragment(&p, &[40, 40], 78);
        // Even if the kernel vouched for every fragment's packet.
        h.checksum = ChecksumState::Verified;
        let v = send_all(&mut h, &frags);
        assert_eq!(v.len(), frags.len());
        assert!(v.iter().all(|(_, v)| *v == Verdict::Drop), "{v:?}");
        assert_eq!(h.count(Counter::DropBadChecksum), 1);
        assert_eq!(h.engine.inspector().up, b"");
    }

    #[test]
    fn attack_in_fragments_drops_every_fragment() {
        let script = Script { reset_on: Some(b"attack".to_vec()), ..Script::default() };
        let (mut h, mut c) = established(script);
        let p = c.data(true, b"......attack......");
        let frags = fragment(&p, &[16, 8], 5);
        let v = send_all(&mut h, &frags);
        assert_eq!(v.len(), frags.len());
        assert!(v.iter().all(|(_, v)| *v == Verdict::Drop));
    }

    #[test]
    fn conflicting_overlap_drops_the_datagram() {
        // Strict receivers; towards Linux the second copy is a duplicate
        // inside a run, dropped alone (ip/defrag.rs tests).
        let (mut h, mut c) = established_with(strict_config(), Script::default());
        let p = c.data(true, &[b'x'; 64]);
        let frags = fragment(&p, &[32, 32], 9);
        let last = frags[frags.len() - 1].clone();
        // A second copy of the last fragment with other payload bytes.
        let mut evil = last.clone();
        let n = evil.len();
        evil[n - 1] ^= 0xff;
        let v = send_all(&mut h, &[last, evil]);
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|(_, v)| *v == Verdict::Drop), "{v:?}");
        assert_eq!(h.count(Counter::DropFragmentOverlap), 2);
        // The rest never completes a datagram: held, then dropped on timeout.
        assert!(send_all(&mut h, &frags[..frags.len() - 1]).is_empty());
        let mut out = Output::new();
        h.engine.tick(h.time.saturating_add(Duration::from_secs(60)), &mut out);
        assert_eq!(out.items.len(), frags.len() - 1);
        assert_eq!(h.engine.inspector().up, b"");
    }

    #[test]
    fn incomplete_datagram_times_out_dropped() {
        let (mut h, mut c) = established(Script::default());
        let p = c.data(true, &[b'y'; 64]);
        let frags = fragment(&p, &[32], 3);
        assert!(send_all(&mut h, &frags[..1]).is_empty());
        let mut out = Output::new();
        h.engine.tick(h.time.saturating_add(Duration::from_secs(60)), &mut out);
        assert!(matches!(out.items.as_slice(), [Emitted::Verdict(_, Verdict::Drop)]));
    }

    #[test]
    fn ipv6_fragments() {
        let mut h = Harness::new(Script::default());
        let mut c = Conv::new(1, 2);
        c.v6 = true;
        for p in c.handshake() {
            h.accept(&p);
        }
        let p = c.data(true, &[b'6'; 200]);
        let frags = fragment(&p, &[64, 64], 1234);
        let v = send_all(&mut h, &frags);
        assert_eq!(v.len(), frags.len());
        assert!(v.iter().all(|(_, v)| *v == Verdict::Accept));
        assert_eq!(h.engine.inspector().up, vec![b'6'; 200]);
    }
}

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

mod batches {
    use super::*;

    fn stream_only(reset_on: Option<&[u8]>) -> Script {
        Script { stream_only: true, reset_on: reset_on.map(<[u8]>::to_vec), ..Script::default() }
    }

    #[test]
    fn consecutive_segments_reach_rules_as_one_chunk() {
        let (mut h, mut c) = established(stream_only(None));
        let ps = vec![c.data(true, b"abc"), c.data(true, b"def"), c.data(true, b"ghi")];
        let (v, _) = h.send_batch(&ps);
        assert!(v.iter().all(|v| *v == Verdict::Accept));
        assert_eq!(h.events().last().map(String::as_str), Some("data:up:abcdefghi"));
        assert_eq!(h.events().iter().filter(|e| e.starts_with("data:")).count(), 1);
    }

    #[test]
    fn reset_on_a_chunk_drops_all_its_packets_and_resets_from_before_it() {
        let (mut h, mut c) = established(stream_only(Some(b"attack")));
        h.accept(&c.data(true, b"hello "));
        let server_next = c.cseq;
        let ps = vec![c.data(true, b"att"), c.data(true, b"ack"), c.data(true, b"!")];
        let (v, forged) = h.send_batch(&ps);
        assert_eq!(v, vec![Verdict::Drop; 3]);
        let to_server = decode(&forged[1]).unwrap();
        assert_eq!(to_server.ip.dst, server(), "after the client's");
        assert_eq!(to_server.tcp().unwrap().seq, server_next, "RST at the server's rcv_nxt before the chunk");
    }

    #[test]
    fn pure_acks_of_the_peer_do_not_split_a_chunk_but_its_data_does() {
        let (mut h, mut c) = established(stream_only(None));
        // A window update acknowledging only what came before the chunk.
        let ack = c.seg(false, c.sseq, ACK, b"");
        let d1 = c.data(true, b"one");
        let d2 = c.data(true, b"two");
        let reply = c.data(false, b"back");
        let d3 = c.data(true, b"three");
        let (v, _) = h.send_batch(&[d1, ack, d2, reply, d3]);
        assert!(v.iter().all(|v| *v == Verdict::Accept));
        let data: Vec<&str> =
            h.events().iter().filter(|e| e.starts_with("data:")).map(String::as_str).collect();
        assert_eq!(data, ["data:up:onetwo", "data:down:back", "data:up:three"]);
    }

    #[test]
    fn a_retransmission_waits_for_the_chunk_it_repeats() {
        let (mut h, mut c) = established(stream_only(Some(b"evil")));
        let start = c.cseq;
        let first = c.data(true, b"evil");
        let again = c.seg(true, start, ACK | PSH, b"evil");
        let (v, _) = h.send_batch(&[first, again]);
        // The chunk is refused, so its retransmission must not slip through.
        assert_eq!(v, vec![Verdict::Drop, Verdict::Drop]);
    }

    #[test]
    fn an_ack_claiming_pending_bytes_splits_the_chunk() {
        let (mut h, mut c) = established(stream_only(None));
        let d1 = c.data(true, b"abc");
        let early_ack = c.seg(false, c.sseq, ACK, b"");
        let d2 = c.data(true, b"def");
        let (v, _) = h.send_batch(&[d1, early_ack, d2]);
        assert!(v.iter().all(|v| *v == Verdict::Accept));
        let data: Vec<&str> =
            h.events().iter().filter(|e| e.starts_with("data:")).map(String::as_str).collect();
        assert_eq!(data, ["data:up:abc", "data:up:def"]);
    }

    #[test]
    fn per_packet_hooks_disable_coalescing() {
        let (mut h, mut c) = established(Script::default());
        let ps = vec![c.data(true, b"abc"), c.data(true, b"def")];
        h.send_batch(&ps);
        assert_eq!(h.events().iter().filter(|e| e.starts_with("data:")).count(), 2);
    }
}

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

mod total_buffer_limit {
    use super::*;

    /// Five connections each holding 10 out-of-order bytes 10 bytes past the
    /// delivery point: 20 buffered bytes each (the island and its gap).
    fn holders(h: &mut Harness) -> Vec<Conv> {
        let mut cs = Vec::new();
        for i in 0..5u16 {
            let c = open(h, 41_000 + i, 1000 * (u32::from(i) + 1));
            h.accept(&c.seg(true, c.cseq + 10, ACK, b"ISLAND----"));
            cs.push(c);
        }
        assert_eq!(h.engine.buffered_bytes(), 100);
        assert_eq!(h.count(Counter::OutOfOrder), 5);
        cs
    }

    #[test]
    fn segments_that_would_grow_past_the_total_are_dropped_others_pass() {
        let cfg = EngineConfig { max_total_buffer: 110, ..EngineConfig::default() };
        let mut h = Harness::with_config(cfg, Script::default());
        let mut hold = holders(&mut h);

        // A sixth holder's handshake passes (it buffers nothing), its
        // out-of-order segment (20 more bytes) does not.
        let six = open(&mut h, 41_100, 77_000);
        h.drop(&six.seg(true, six.cseq + 10, ACK, b"ISLAND----"));
        assert_eq!(h.count(Counter::DropMemoryLimit), 1);
        assert_eq!(h.engine.buffered_bytes(), 100);

        // A legitimate in-order connection within the headroom works: its
        // 10 bytes reach rules (held until the server acknowledges them).
        let mut legit = open(&mut h, 42_000, 900_000);
        h.accept(&legit.data(true, b"0123456789"));
        assert_eq!(h.engine.buffered_bytes(), 110);
        assert_eq!(h.count(Counter::StreamBytesBuffered), 110);
        let ack10 = ack_all(&legit, true);
        // One more byte would pass the total: dropped before rules see it.
        let next = legit.data(true, b"!");
        h.drop(&next);
        assert_eq!(h.count(Counter::DropMemoryLimit), 2);
        assert_eq!(h.engine.inspector().up, b"0123456789");
        // The server's ACK frees the 10 bytes; the retransmission passes.
        h.accept(&ack10);
        assert_eq!(h.engine.buffered_bytes(), 100);
        h.accept(&next);
        assert_eq!(h.engine.inspector().up, b"0123456789!");
        assert_eq!(h.engine.buffered_bytes(), 101);

        // Closing a holder's gap adds no memory, so it passes at the limit
        // and releases the island to rules; the server's ACK frees both.
        let first = &mut hold[0];
        h.accept(&first.seg(true, first.cseq, ACK, b"gap-bytes-"));
        assert_eq!(h.engine.buffered_bytes(), 101);
        assert_eq!(h.events().last().map(String::as_str), Some("data:up:gap-bytes-ISLAND----"));
        first.cseq = first.cseq + 20;
        h.accept(&ack_all(first, true));
        assert_eq!(h.engine.buffered_bytes(), 81);
        // Now the sixth holder's island fits.
        h.accept(&six.seg(true, six.cseq + 10, ACK, b"ISLAND----"));
        assert_eq!(h.engine.buffered_bytes(), 101);
        assert_eq!(h.count(Counter::DropMemoryLimit), 2);
    }

    #[test]
    fn a_full_total_blocks_new_data_until_a_holder_resets() {
        let cfg = EngineConfig { max_total_buffer: 100, ..EngineConfig::default() };
        let mut h = Harness::with_config(cfg, Script::default());
        let hold = holders(&mut h);

        // At the limit, even in-order data of a new connection is dropped
        // (the documented policy: drop the segment), server replies too.
        let legit = open(&mut h, 42_000, 900_000);
        // Neither acknowledges the other's bytes (they are refused).
        let hello = legit.seg(true, legit.cseq, ACK | PSH, b"hello");
        let reply = legit.seg(false, legit.sseq, ACK | PSH, b"hi");
        h.drop(&hello);
        h.drop(&reply);
        assert_eq!(h.count(Counter::DropMemoryLimit), 2);
        assert_eq!(h.engine.inspector().up, b"");
        // Pure ACKs and retransmitted islands grow nothing and still pass.
        h.accept(&ack_all(&legit, false));
        let again = &hold[1];
        h.accept(&again.seg(true, again.cseq + 10, ACK, b"ISLAND----"));
        assert_eq!(h.count(Counter::Retransmissions), 1);

        // A holder resets its connection: its bytes are freed at once (the
        // flow itself stays for the closing timeout).
        let gone = &hold[2];
        h.accept(&gone.seg(true, gone.cseq, RST, b""));
        assert_eq!(h.engine.buffered_bytes(), 80);
        assert_eq!(h.count(Counter::FlowsTimedOut), 0);
        let mut out = Output::new();
        h.engine.tick(h.time.saturating_add(Duration::from_secs(61)), &mut out);
        assert_eq!(h.count(Counter::FlowsTimedOut), 1);
        assert_eq!(h.engine.buffered_bytes(), 80, "retiring it frees nothing twice");
        h.time = h.time.saturating_add(Duration::from_secs(61));
        // The legitimate connection's retransmissions now pass, in order.
        h.accept(&hello);
        h.accept(&reply);
        assert_eq!(h.engine.inspector().up, b"hello");
        assert_eq!(h.engine.inspector().down, b"hi");
        assert_eq!(h.count(Counter::DropMemoryLimit), 2);
    }
}

mod flow_table_full {
    use super::*;

    fn news(h: &Harness) -> usize {
        h.events().iter().filter(|e| e.contains(":new:")).count()
    }

    #[test]
    fn a_syn_is_dropped_when_every_flow_is_established() {
        let cfg = EngineConfig { max_flows: 3, ..EngineConfig::default() };
        let mut h = Harness::with_config(cfg, Script::default());
        let mut cs: Vec<Conv> =
            (0..3u16).map(|i| open(&mut h, 41_000 + i, 1000 + 10_000 * u32::from(i))).collect();
        assert_eq!(h.engine.flow_count(), 3);

        let late = Conv::on_port(43_000, 700_000, 1);
        h.drop(&late.syn());
        // Its retransmission is refused the same way; nothing was evicted.
        h.drop(&late.syn());
        assert_eq!(h.count(Counter::DropFlowLimit), 2);
        assert_eq!(h.count(Counter::FlowsEvicted), 0);
        assert_eq!(h.count(Counter::TcpConnections), 3);
        assert_eq!(h.engine.flow_count(), 3);
        assert_eq!(news(&h), 3, "rules never heard of the refused connection: {:?}", h.events());

        // The established connections are untouched.
        for (i, c) in cs.iter_mut().enumerate() {
            h.accept(&c.data(true, format!("up{i}").as_bytes()));
            h.accept(&c.data(false, format!("down{i}").as_bytes()));
        }
        assert_eq!(h.engine.inspector().up, b"up0up1up2");
        assert_eq!(h.engine.inspector().down, b"down0down1down2");

        // One of them closes: a closed connection may go, so the next SYN
        // takes its place and its connection works.
        let c = &mut cs[1];
        for p in [c.fin(true), c.fin(false)] {
            h.accept(&p);
        }
        h.accept(&ack_all(c, false));
        assert_eq!(h.engine.flow_count(), 3);
        let mut late = Conv::on_port(43_000, 700_000, 1);
        for p in late.handshake() {
            h.accept(&p);
        }
        assert_eq!(h.count(Counter::FlowsEvicted), 1);
        h.accept(&late.data(true, b"late"));
        assert!(h.engine.inspector().up.ends_with(b"late"));
        // The other two still work; the evicted one is gone for good.
        h.accept(&cs[0].data(true, b"!"));
        h.accept(&cs[2].data(true, b"?"));
        assert_eq!(h.engine.inspector().up, b"up0up1up2late!?");
        h.drop(&cs[1].data(true, b"x"));
        assert_eq!(h.count(Counter::DropFlowLimit), 2);
    }

    #[test]
    fn the_oldest_half_open_flow_is_evicted_first() {
        let cfg = EngineConfig { max_flows: 3, ..EngineConfig::default() };
        let mut h = Harness::with_config(cfg, Script::default());
        let mut est = open(&mut h, 41_000, 1000); // oldest, but established
        let mut a = Conv::on_port(41_001, 2000, 20_000); // half-open: SYN only
        h.accept(&a.syn());
        a.cseq = a.cseq + 1;
        let mut b = Conv::on_port(41_002, 3000, 30_000); // half-open: SYN, SYN-ACK
        let hs_b = b.handshake();
        h.accept(&hs_b[0]);
        h.accept(&hs_b[1]);

        // A new SYN takes the place of A, the oldest flow not established.
        let mut n = Conv::on_port(41_003, 4000, 40_000);
        let hs_n = n.handshake();
        h.accept(&hs_n[0]);
        assert_eq!(h.count(Counter::FlowsEvicted), 1);
        assert_eq!(h.count(Counter::DropFlowLimit), 0);
        // Rules saw A end; its SYN-ACK now belongs to no flow.
        assert_eq!(h.events().iter().filter(|e| e.ends_with(":end")).count(), 1);
        h.drop(&a.seg(false, a.sseq, SYN | ACK, b""));
        assert_eq!(h.count(Counter::DropNoHandshake), 1);
        // B survived and completes its handshake.
        h.accept(&hs_b[2]);
        h.accept(&b.data(true, b"b"));

        // Next in line is N (half-open), not B (established now).
        let mut m = Conv::on_port(41_004, 5000, 50_000);
        for p in m.handshake() {
            h.accept(&p);
        }
        assert_eq!(h.count(Counter::FlowsEvicted), 2);
        h.drop(&hs_n[1]);
        assert_eq!(h.count(Counter::DropNoHandshake), 2);

        // Full of established connections: the next SYN is refused.
        let z = Conv::on_port(41_005, 6000, 60_000);
        h.drop(&z.syn());
        assert_eq!(h.count(Counter::DropFlowLimit), 1);
        assert_eq!(h.count(Counter::FlowsEvicted), 2);
        h.accept(&est.data(true, b"e"));
        h.accept(&m.data(true, b"m"));
        assert_eq!(h.engine.inspector().up, b"bem");
    }
}

mod bad_flags {
    use super::*;

    /// Checks that nothing but verdicts happened: no events, no forged packets.
    fn refused(h: &mut Harness, p: &[u8], counter: Counter) {
        let events = h.events().len();
        let before = h.count(counter);
        let (v, forged) = h.send(p);
        assert_eq!(v, Verdict::Drop);
        assert!(forged.is_empty());
        assert_eq!(h.count(counter), before + 1, "counted as {counter:?}");
        assert_eq!(h.events().len(), events, "rules saw nothing: {:?}", h.events());
    }

    #[test]
    fn syn_fin_syn_rst_and_rst_fin_refused_on_an_established_connection() {
        let (mut h, mut c) = established(Script::default());
        h.accept(&c.data(true, b"one "));
        let n = c.cseq;
        for flags in [SYN | FIN, SYN | RST, RST | FIN, SYN | FIN | ACK, SYN | RST | ACK, RST | FIN | ACK] {
            // At exactly rcv_nxt, where a plain RST would end the connection.
            refused(&mut h, &c.seg(true, n, flags, b""), Counter::DropBadFlags);
            refused(&mut h, &c.seg(false, c.sseq, flags, b""), Counter::DropBadFlags);
            refused(&mut h, &c.seg(true, n, flags, b"data"), Counter::DropBadFlags);
        }
        assert_eq!(h.count(Counter::DropBadFlags), 18);
        assert_eq!(h.count(Counter::DropBadRst), 0);
        // Nothing ended or changed: the stream goes on in both directions.
        h.accept(&c.data(true, b"two"));
        h.accept(&c.data(false, b"back"));
        assert_eq!(h.engine.inspector().up, b"one two");
        assert_eq!(h.engine.inspector().down, b"back");
        assert_eq!(h.count(Counter::TcpConnections), 1);
        assert!(!h.events().iter().any(|e| e.ends_with(":end")));
    }

    #[test]
    fn syns_refused_on_an_established_connection() {
        let mut h = Harness::new(Script::default());
        let mut c = Conv::new(1000, 5000);
        for p in c.handshake() {
            h.accept(&p);
        }
        // The server's SYN-ACK again (its ACK was lost): the client re-ACKs,
        // so it passes.
        h.accept(&c.seg(false, SeqNumber(5000), SYN | ACK, b""));
        // The client's SYN again, or a new one, on the live tuple.
        refused(&mut h, &Conv::new(1000, 5000).syn(), Counter::DropBadFlags);
        refused(&mut h, &Conv::new(77_777, 5000).syn(), Counter::DropBadFlags);
        // A SYN-ACK with another ISN.
        refused(&mut h, &c.seg(false, SeqNumber(9999), SYN | ACK, b""), Counter::DropBadFlags);
        // SYN-ACK from the client, bare SYN from the server.
        refused(&mut h, &c.seg(true, c.cseq, SYN | ACK, b""), Counter::DropBadFlags);
        refused(&mut h, &c.seg(false, c.sseq, SYN, b""), Counter::DropBadFlags);
        assert_eq!(h.count(Counter::DropBadFlags), 5);
        h.accept(&c.data(true, b"still"));
        h.accept(&c.data(false, b"open"));
        assert_eq!(h.engine.inspector().up, b"still");
        assert_eq!(h.engine.inspector().down, b"open");
        assert_eq!(h.events().iter().filter(|e| e.contains(":new:")).count(), 1);
        // The exact RST still ends it (the refused RST+FIN above did not).
        h.accept(&c.seg(true, c.cseq, RST, b""));
        assert_eq!(h.events().last().map(String::as_str), Some("tcp_connection:end"));
    }

    #[test]
    fn wrong_flags_refused_during_the_handshake() {
        let mut h = Harness::new(Script::default());
        let mut c = Conv::new(1000, 5000);
        let hs = c.handshake(); // c now expects the data phase
        h.accept(&hs[0]);
        // SYN-SENT: combinations from either side, data before the SYN-ACK,
        // a bare SYN from the server, a SYN-ACK from the client.
        let isn = SeqNumber(1000);
        refused(&mut h, &c.seg(true, isn, SYN | FIN, b""), Counter::DropBadFlags);
        refused(&mut h, &c.seg(false, SeqNumber(5000), SYN | RST | ACK, b""), Counter::DropBadFlags);
        refused(&mut h, &c.seg(false, SeqNumber(5000), RST | FIN | ACK, b""), Counter::DropBadFlags);
        refused(&mut h, &c.seg(true, c.cseq, ACK, b"early"), Counter::DropBadFlags);
        refused(&mut h, &c.seg(false, SeqNumber(5000), SYN, b""), Counter::DropBadFlags);
        refused(&mut h, &c.seg(true, isn, SYN | ACK, b""), Counter::DropBadFlags);
        h.accept(&hs[1]);
        // SYN-RECEIVED: a client SYN with another ISN, a SYN-ACK with another
        // ISN, combinations; the same SYN and SYN-ACK again pass.
        refused(&mut h, &Conv::new(31_337, 0).syn(), Counter::DropBadFlags);
        refused(&mut h, &c.seg(false, SeqNumber(8888), SYN | ACK, b""), Counter::DropBadFlags);
        refused(&mut h, &c.seg(true, c.cseq, RST | FIN | ACK, b""), Counter::DropBadFlags);
        h.accept(&hs[0]);
        h.accept(&hs[1]);
        assert_eq!(h.count(Counter::DropBadFlags), 9);
        h.accept(&hs[2]);
        h.accept(&c.data(true, b"after"));
        h.accept(&c.data(false, b"fine"));
        assert_eq!(
            h.events(),
            ["tcp_connection:new:80", "data:up:after", "data:down:fine"].map(String::from)
        );
    }

    #[test]
    fn a_syn_fin_opening_a_tuple_is_refused_and_the_real_syn_proceeds() {
        let mut h = Harness::new(Script::default());
        let mut c = Conv::new(1000, 5000);
        for flags in [SYN | FIN, SYN | RST] {
            let mut t = TcpSegment::new(client(), C, server(), S);
            t.seq = c.cseq;
            t.flags = flags;
            t.payload = b"x";
            refused(&mut h, &t.build(), Counter::DropBadFlags);
        }
        for p in c.handshake() {
            h.accept(&p);
        }
        h.accept(&c.data(true, b"ok"));
        assert_eq!(h.events(), ["tcp_connection:new:80", "data:up:ok"].map(String::from));
    }
}
