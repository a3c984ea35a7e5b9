//! `tcp_engine` and `tcp_engine_lua`: a live TCP connection through the
//! [`Engine`], driven by a structured generator.
//!
//! The connection starts with a proper handshake; after that the input (through
//! `arbitrary`) chooses each segment's direction, its sequence and ack numbers
//! as offsets from what each side has sent so far, flags, window, urgent
//! pointer, TCP option bytes, payload, a broken checksum, IP fragmentation,
//! plus UDP datagrams on the same addresses, undecodable packets, time steps,
//! timer ticks and batching (as NFQUEUE hands packets over under load).
//!
//! Rules: `tcp_engine` runs either no rules at all or the [`Recorder`] with
//! decisions scripted by the input (drop, drop flow, reset, half reset at any
//! connection event); `tcp_engine_lua` runs a small Lua rule set hooking
//! `receive_data` (plain and streamed) under the recorder.
//!
//! Invariants: every packet gets exactly one verdict and no unknown id gets
//! one; the counters add up (packets in = accepted + dropped, forged and
//! modified match what was emitted); forged packets are TCP RSTs with valid
//! checksums and modified packets decode; after `finish` no flow or stream
//! byte is left; the recorder's event-order checks; and every stream byte
//! shown to rules for the handshake's connection was sent at that position
//! by a segment of that direction, allowing for urgent bytes the receiver's
//! `read()` skips (rules see only bytes the endpoint can get).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use super::book::Book;
use super::lent::Lent;
use super::recorder::Recorder;
use crate::config::{EngineConfig, RulesConfig};
use crate::engine::{Engine, Output, Packet, PacketId};
use crate::flow::Direction;
use crate::inspect::{Inspector, NoRules};
use crate::ip::fragment::fragment;
use crate::pcapgen::Conversation;
use crate::rules::{LuaRules, RuleSinks};
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::wire::decode::v4;
use crate::wire::forge::{udp_packet, TcpSegment};
use crate::wire::{tcp_flags, SeqNumber};

/// Which rules the engine runs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rules {
    /// None, or the recorder with scripted decisions (the input decides).
    Scripted,
    /// [`LUA_RULES`] under the recorder.
    Lua,
}

/// Decisions keyed on the data: bytes `R`, `H`, `D`, `E` reset, half-reset,
/// drop the flow, raise an error; a streamed rule resets on `Z`.
const LUA_RULES: &str = r#"
require("protocol/ipv4")
require("protocol/tcp")
local tcp_connection = require("protocol/tcp_connection")
haka.rule {
  on = tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    local s = data:asstring()
    flow.seen = (flow.seen or 0) + #s
    if s:find("R", 1, true) then flow:reset()
    elseif s:find("H", 1, true) then flow:halfreset()
    elseif s:find("D", 1, true) then flow:drop()
    elseif s:find("E", 1, true) then error("rule error on purpose")
    end
  end
}
haka.rule {
  on = tcp_connection.events.receive_data,
  options = { streamed = true },
  eval = function (flow, iter, dir)
    for sub in iter:foreach_available() do
      if sub:asstring():find("Z", 1, true) then flow:reset() end
    end
  end
}
haka.rule {
  on = tcp_connection.events.end_connection,
  eval = function (flow) flow.done = true end
}
"#;

#[derive(Debug, Arbitrary)]
struct Input {
    v6: bool,
    isn_client: u32,
    isn_server: u32,
    /// No rules at all (the engine's fast path), for `tcp_engine`.
    plain: bool,
    small_limits: bool,
    /// Packets wait and go to the engine together at the next time step.
    batch: bool,
    script: Vec<u8>,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Segment(Segment),
    /// The next in-order data segment of `len` bytes (filled with `fill`).
    Data {
        up: bool,
        len: u8,
        fill: u8,
    },
    /// A segment cut into IP fragments of these sizes (8-byte units).
    Fragmented(Segment, Vec<u8>),
    Udp {
        up: bool,
        payload: Vec<u8>,
    },
    Garbage(Vec<u8>),
    WaitMillis(u16),
    WaitSeconds(u16),
    Tick,
}

#[derive(Debug, Arbitrary)]
struct Segment {
    up: bool,
    seq: Offset,
    ack: Offset,
    flags: u8,
    window: u16,
    urgent: u16,
    options: Vec<u8>,
    payload: Vec<u8>,
    bad_checksum: bool,
}

/// A sequence or ack number relative to what the side has sent so far.
#[derive(Debug, Arbitrary)]
enum Offset {
    Same,
    Near(i8),
    Mid(i16),
    Any(u32),
}

impl Offset {
    fn apply(&self, base: SeqNumber) -> SeqNumber {
        match *self {
            Offset::Same => base,
            Offset::Near(d) => SeqNumber(base.0.wrapping_add_signed(i32::from(d))),
            Offset::Mid(d) => SeqNumber(base.0.wrapping_add_signed(i32::from(d))),
            Offset::Any(v) => SeqNumber(v),
        }
    }
}

/// The structured input, for reading a crash.
pub(super) fn describe(data: &[u8]) -> String {
    format!("{:#?}", Input::arbitrary_take_rest(Unstructured::new(data)))
}

pub(super) fn run(data: &[u8], rules: Rules) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let config = engine_config(input.small_limits);
    let stats = std::sync::Arc::new(Stats::new());
    match rules {
        Rules::Scripted if input.plain => {
            Run::new(&input, Engine::with_stats(config, NoRules, stats.clone())).go(&input, &stats);
        }
        Rules::Scripted => {
            let recorder = Recorder::new(NoRules, input.script.clone());
            let run =
                Run::new(&input, Engine::with_stats(config, recorder, stats.clone())).go(&input, &stats);
            run.check_streams();
        }
        Rules::Lua => with_lua_rules(|lua| {
            let recorder = Recorder::new(Lent(lua), Vec::new());
            let run =
                Run::new(&input, Engine::with_stats(config, recorder, stats.clone())).go(&input, &stats);
            run.check_streams();
        }),
    }
}

/// Lends `f` this thread's [`LUA_RULES`], loaded at the first call.
///
/// Between inputs the state keeps only what no input can observe: the
/// rules' error counts and counters (in a sink no check reads) and the Lua
/// heap's garbage-collector state. Per-flow state (`flow.seen`, the
/// streamed rules' coroutines) goes with each flow: every run ends with
/// `finish`, which ends and forgets every flow. If a run panics the rules
/// are dropped, and the next run loads them afresh.
fn with_lua_rules(f: impl FnOnce(&mut LuaRules)) {
    thread_local! {
        static RULES: std::cell::Cell<Option<LuaRules>> = const { std::cell::Cell::new(None) };
    }
    let mut rules = RULES.take().unwrap_or_else(|| {
        let alerts = crate::alert::AlertSink::to_writer(Box::new(std::io::sink()));
        let sinks = RuleSinks { alerts, stats: std::sync::Arc::new(Stats::new()) };
        match LuaRules::from_source("fuzz.lua", LUA_RULES, &RulesConfig::default(), sinks) {
            Ok(l) => l,
            Err(e) => panic!("the harness's rules do not load: {e}"),
        }
    });
    f(&mut rules);
    RULES.set(Some(rules));
}

fn engine_config(small: bool) -> EngineConfig {
    let mut c = EngineConfig::default();
    if small {
        c.max_flows = 2;
        c.max_stream_buffer = 512;
        c.max_total_buffer = 1024;
        c.max_ooo_segments = 3;
        c.max_frag_datagrams = 2;
        c.max_frag_bytes = 2048;
        c.frag_timeout = Duration::from_secs(2);
        c.tcp_handshake_timeout = Duration::from_secs(3);
        c.tcp_closing_timeout = Duration::from_secs(4);
        c.tcp_established_timeout = Duration::from_secs(10);
        c.udp_timeout = Duration::from_secs(5);
    }
    c
}

/// One run: the engine, the connection model and the verdict bookkeeping.
struct Run<I: Inspector> {
    engine: Engine<I>,
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number each side sends (index: `Direction::index`).
    next: [SeqNumber; 2],
    /// Initial sequence numbers of the handshake.
    isn: [SeqNumber; 2],
    /// Bytes sent at each sequence number, per direction (a 256-bit set).
    sent: [HashMap<u32, [u64; 4]>; 2],
    /// Segments sent with URG per direction: each may take one urgent byte
    /// out of the stream the application reads (and rules see).
    urgent_segments: [usize; 2],
    now: Timestamp,
    ip_id: u16,
    waiting: Vec<(PacketId, Vec<u8>)>,
    book: Book,
    out: Output,
}

impl<I: Inspector> Run<I> {
    fn new(input: &Input, engine: Engine<I>) -> Self {
        let (c, s) = if input.v6 {
            let six = |a: IpAddr| match a {
                IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
                v6 => v6,
            };
            (six(v4(10, 0, 0, 1)), six(v4(10, 0, 0, 2)))
        } else {
            (v4(10, 0, 0, 1), v4(10, 0, 0, 2))
        };
        let isn = [SeqNumber(input.isn_client), SeqNumber(input.isn_server)];
        Run {
            engine,
            client: SocketAddr::new(c, 40000),
            server: SocketAddr::new(s, 80),
            next: [isn[0] + 1, isn[1] + 1],
            isn,
            sent: [HashMap::new(), HashMap::new()],
            urgent_segments: [0, 0],
            now: crate::pcapgen::DEFAULT_START,
            ip_id: 1,
            waiting: Vec::new(),
            book: Book::default(),
            out: Output::new(),
        }
    }

    fn go(mut self, input: &Input, stats: &Stats) -> Self {
        let mut conv =
            Conversation::new(self.client, self.server).isn(self.isn[0].0, self.isn[1].0).at(self.now);
        conv.handshake();
        for (_, p) in conv.into_packets() {
            self.send(p, input.batch);
        }
        for op in input.ops.iter().take(200) {
            self.op(op, input.batch);
        }
        self.flush();
        self.engine.finish(self.now, &mut self.out);
        self.book.collect(&mut self.out);
        self.book.check(stats);
        assert_eq!(self.engine.flow_count(), 0, "flows left after finish");
        assert_eq!(self.engine.buffered_bytes(), 0, "stream bytes left after finish");
        self
    }

    fn op(&mut self, op: &Op, batch: bool) {
        match op {
            Op::Segment(s) => {
                let p = self.segment(s);
                self.send(p, batch);
            }
            Op::Data { up, len, fill } => {
                let payload = vec![*fill; usize::from(*len)];
                let seg = Segment {
                    up: *up,
                    seq: Offset::Same,
                    ack: Offset::Same,
                    flags: tcp_flags::PSH | tcp_flags::ACK,
                    window: 65535,
                    urgent: 0,
                    options: Vec::new(),
                    payload,
                    bad_checksum: false,
                };
                let p = self.segment(&seg);
                self.send(p, batch);
            }
            Op::Fragmented(s, sizes) => {
                let p = self.segment(s);
                let sizes: Vec<usize> = sizes.iter().take(8).map(|&u| usize::from(u) * 8).collect();
                for f in fragment(&p, &sizes, u32::from(self.ip_id)) {
                    self.send(f, batch);
                }
            }
            Op::Udp { up, payload } => {
                let (src, dst) = self.ends(dir(*up));
                let p = udp_packet(src.ip(), src.port(), dst.ip(), dst.port(), payload);
                self.send(p, batch);
            }
            Op::Garbage(bytes) => self.send(bytes.clone(), batch),
            Op::WaitMillis(ms) => self.wait(Duration::from_millis(u64::from(*ms))),
            Op::WaitSeconds(s) => self.wait(Duration::from_secs(u64::from(*s))),
            Op::Tick => {
                self.flush();
                self.engine.tick(self.now, &mut self.out);
                self.book.collect(&mut self.out);
            }
        }
    }

    fn ends(&self, dir: Direction) -> (SocketAddr, SocketAddr) {
        match dir {
            Direction::Up => (self.client, self.server),
            Direction::Down => (self.server, self.client),
        }
    }

    /// Builds a segment relative to the connection and remembers its bytes.
    fn segment(&mut self, s: &Segment) -> Vec<u8> {
        let dir = dir(s.up);
        let (src, dst) = self.ends(dir);
        let mut seg = TcpSegment::new(src.ip(), src.port(), dst.ip(), dst.port());
        seg.seq = s.seq.apply(self.next[dir.index()]);
        seg.ack = s.ack.apply(self.next[dir.reverse().index()]);
        seg.flags = s.flags;
        seg.window = s.window;
        seg.urgent = s.urgent;
        if s.flags & tcp_flags::URG != 0 {
            self.urgent_segments[dir.index()] += 1;
        }
        let opt_len = s.options.len().min(40) / 4 * 4;
        seg.options = &s.options[..opt_len];
        seg.payload = &s.payload;
        seg.ip_id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        self.remember(dir, seg.seq + u32::from(s.flags & tcp_flags::SYN != 0), &s.payload);
        let end =
            seg.seq + (s.payload.len() as u32 + u32::from(s.flags & (tcp_flags::SYN | tcp_flags::FIN) != 0));
        if end.diff(self.next[dir.index()]) > 0 && end.diff(self.next[dir.index()]) < 1 << 20 {
            self.next[dir.index()] = end;
        }
        let mut p = seg.build();
        if s.bad_checksum {
            if let Some(last) = p.last_mut() {
                *last ^= 0x5a;
            } else if let Some(b) = p.get_mut(36) {
                *b ^= 0x5a;
            }
        }
        p
    }

    fn remember(&mut self, dir: Direction, seq: SeqNumber, payload: &[u8]) {
        for (i, &b) in payload.iter().enumerate() {
            let set = self.sent[dir.index()].entry(seq.0.wrapping_add(i as u32)).or_default();
            set[usize::from(b / 64)] |= 1 << (b % 64);
        }
    }

    fn send(&mut self, p: Vec<u8>, batch: bool) {
        let id = self.book.id();
        self.waiting.push((id, p));
        if !batch {
            self.flush();
        }
    }

    fn wait(&mut self, d: Duration) {
        self.flush();
        self.now = self.now.saturating_add(d);
    }

    /// Hands the waiting packets to the engine (as one batch if several).
    fn flush(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        let pkts: Vec<Packet<'_>> = waiting
            .iter()
            .map(|(id, p)| Packet { id: *id, data: p, time: self.now, checksum: Default::default() })
            .collect();
        match pkts.as_slice() {
            [] => {}
            [one] => self.engine.process(*one, &mut self.out),
            many => self.engine.process_batch(many, &mut self.out),
        }
        drop(pkts);
        self.book.collect(&mut self.out);
    }
}

impl<I: Inspector> Run<Recorder<I>> {
    /// Every byte rules saw of the handshake's connection was sent at that
    /// stream position in that direction.
    fn check_streams(&self) {
        let rec = self.engine.inspector();
        let Some(first) = rec.order.first().and_then(|id| rec.flows.get(id)) else { return };
        let Some(info) = &first.info else { return };
        if (info.src_port, info.dst_port) != (self.client.port(), self.server.port()) {
            return;
        }
        for dir in [Direction::Up, Direction::Down] {
            let start = self.isn[dir.index()] + 1;
            // Stream offsets rules see skip each urgent byte the receiver's
            // read() skips (fuzz regression tcp_engine/urgent-byte-skipped),
            // so byte k was sent at k + (urgent bytes skipped before it).
            let mut skipped = 0usize;
            for (k, &b) in first.data[dir.index()].iter().enumerate() {
                let sent_at = |skip: usize| {
                    let seq = start.0.wrapping_add((k + skip) as u32);
                    self.sent[dir.index()]
                        .get(&seq)
                        .is_some_and(|s| s[usize::from(b / 64)] & (1 << (b % 64)) != 0)
                };
                while !sent_at(skipped) && skipped < self.urgent_segments[dir.index()] {
                    skipped += 1;
                }
                let seq = start.0.wrapping_add((k + skipped) as u32);
                assert!(
                    sent_at(skipped),
                    "{dir:?} stream byte {k} ({b:#x}) shown to rules was never sent at seq {seq}"
                );
            }
        }
    }
}

fn dir(up: bool) -> Direction {
    if up {
        Direction::Up
    } else {
        Direction::Down
    }
}
