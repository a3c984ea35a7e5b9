//! The netns side of the catalogue: what the server application reads (and
//! how its reading ends), the testbed settings a case needs, and the
//! receive-window cases, which the netns suite drives live.

use std::time::Duration;

use super::window_captures as capture;
use super::*;

/// How the server application's reading ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Eof,
    Reset,
    /// Neither: the idle read timeout.
    Timeout,
}

/// What the server application reads on one connection: bytes and how the
/// reading ended.
pub type Reads = (&'static [u8], End);

/// A connection the netns suite drives packet by packet, reading the
/// window the server really advertised (`tests/netns_fidelity/live.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Live {
    /// One segment from the first byte, ending 3 bytes past the right edge.
    OutOfWindow,
    /// The same with harmless bytes, then again once acknowledged.
    Straddle,
    /// Queued unread bytes, then a straddling segment (`harmless!!`), then
    /// `then` in its place.
    StraddleQueued { then: &'static [u8] },
    /// `ack` out of order exactly at the right edge.
    Edge,
    /// Data into a closed window.
    ZeroWindow,
}

/// `SO_RCVBUF` of the server's listener in the window cases: the kernel
/// raises it to its minimum (`SOCK_MIN_RCVBUF`), so the SYN-ACK grants less
/// than one full-sized segment and a crafted segment can reach past the
/// right edge.
pub const SMALL_RCVBUF: usize = 1;

/// Bytes the straddle-queued cases send first and the server application
/// leaves unread, so that its receive queue is not empty.
pub const QUEUED: [u8; 100] = [b'.'; 100];

/// In-order bytes sent before the netns window-scaling test, more than the
/// SYN-ACK's (unscaled) window, so only windows advertised later cover what
/// follows.
pub const WINDOW_LEAD: usize = 70_000;
pub const WINDOW_GAP: usize = 2000;

/// What the netns suite expects of a case.
pub struct Netns {
    /// What the server reads without sluice, per connection.
    pub plain: Vec<Reads>,
    /// What the server reads through sluice, per connection.
    pub filtered: Vec<Reads>,
    /// Counters that must be at least 1 after the filtered run.
    pub counters: &'static [&'static str],
    /// Counters that must stay 0.
    pub zero: &'static [&'static str],
    /// Every receiver modelled strictly (`--target-policy ...=strict`): the
    /// cases whose expectations are the strict policy's (their Linux twins
    /// are in tests/netns_receiver.rs).
    pub strict: bool,
    /// The gap between crafted packets, if not the default.
    pub step: Option<Duration>,
    /// Drop the server's pure ACKs before they leave its namespace.
    pub server_acks_dropped: bool,
    /// `SO_RCVBUF` of the server's listener (a small receive window).
    pub rcvbuf: Option<usize>,
    /// The server application reads nothing until the live script lets it,
    /// so its receive window can close.
    pub hold_reads: bool,
    /// Whether what the server reads (without sluice, through sluice)
    /// starts with the filler the live script sent: its length depends on
    /// the window the server advertised.
    pub filled: (bool, bool),
}

impl Netns {
    /// One connection per read; without sluice the server reads `plain`,
    /// through sluice `filtered`.
    pub fn reads(plain: Vec<Reads>, filtered: Vec<Reads>) -> Netns {
        Netns {
            plain,
            filtered,
            counters: &[],
            zero: &[],
            strict: false,
            step: None,
            server_acks_dropped: false,
            rcvbuf: None,
            hold_reads: false,
            filled: (false, false),
        }
    }
    /// One connection; `plain` (containing the attack) without sluice.
    pub fn attack(plain: Reads, filtered: Reads) -> Netns {
        Netns::reads(vec![plain], vec![filtered])
    }
    /// One connection, the same reads in both runs.
    pub fn benign(reads: Reads) -> Netns {
        Netns::reads(vec![reads], vec![reads])
    }
    pub fn counters(mut self, c: &'static [&'static str]) -> Self {
        self.counters = c;
        self
    }
    pub fn zero(mut self, c: &'static [&'static str]) -> Self {
        self.zero = c;
        self
    }
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
    pub fn step(mut self, step: Duration) -> Self {
        self.step = Some(step);
        self
    }
    pub fn server_acks_dropped(mut self) -> Self {
        self.server_acks_dropped = true;
        self
    }
    pub fn rcvbuf(mut self, bytes: usize) -> Self {
        self.rcvbuf = Some(bytes);
        self
    }
    pub fn hold_reads(mut self) -> Self {
        self.hold_reads = true;
        self
    }
    pub fn filled(mut self, plain: bool, filtered: bool) -> Self {
        self.filled = (plain, filtered);
        self
    }
}

/// A receive-window case: live in netns (small receive buffer), the
/// capture `offline` offline.
fn live(
    name: &'static str,
    play: Live,
    offline: fn() -> Vec<TimedPacket>,
    expect: fn(Offline) -> Offline,
    netns: Netns,
) -> Case {
    Case {
        name,
        v6: false,
        conns: vec![Conn { isn: 1000, server_isn: 5000, syn_payload: b"", play: Play::Live(play) }],
        capture: Some(offline),
        offline: Some(expect),
        netns: Some(netns.rcvbuf(SMALL_RCVBUF)),
        only: "",
    }
}

/// A receive-window case only the netns suite runs.
fn live_only(name: &'static str, play: Live, netns: Netns) -> Case {
    Case {
        offline: None,
        capture: None,
        only: "netns only: Linux 6.17+ drops a segment that ends past the window when its receive \
               queue holds unread bytes; neither a capture nor the model shows the queue",
        ..live(name, play, capture::out_of_window, |o| o, netns)
    }
}

/// The receive-window cases. The server's listener has the smallest
/// receive buffer, so its SYN-ACK grants W bytes, less than one full-sized
/// segment; each live script reads W (or the edge of a later advertisement)
/// from the server's answers and places its bytes relative to it, after
/// W - n filler bytes. Offline the capture's SYN-ACK grants a few bytes.
pub(super) fn window() -> Vec<Case> {
    vec![
        // A segment straddling the right edge. Linux takes a segment whose
        // first new byte is in the window whole (tcp_data_queue queues the
        // skb; with an empty receive queue, which Linux 6.17+ also requires
        // of a segment that ends beyond the window): it reads `attack!!`, a
        // trimming endpoint `attac`. So sluice must inspect all of it; the
        // segment is dropped and both ends reset.
        live(
            "out-of-window",
            Live::OutOfWindow,
            capture::out_of_window,
            |o| o.expect(Expect::Attack(b"att")).zero(&["drop_tcp_out_of_window"]),
            Netns::attack((b"attack!!", End::Eof), (b"", End::Reset))
                .filled(true, false)
                .zero(&["drop_tcp_out_of_window"]),
        ),
        // ...with harmless bytes it passes. Then the same segment again (what
        // a sender does after a trimming endpoint's ACK; Linux discards it
        // as old data).
        live(
            "out-of-window-straddle-benign",
            Live::Straddle,
            capture::out_of_window_straddle_benign,
            |o| {
                o.expect(Expect::Benign(b"harmless!!")).zero(&[
                    "drop_tcp_out_of_window",
                    "drop_tcp_overlap_conflict",
                    "drop_rule",
                ])
            },
            Netns::benign((b"harmless!!", End::Eof)).filled(true, true).zero(&[
                "drop_tcp_out_of_window",
                "drop_tcp_overlap_conflict",
                "drop_rule",
            ]),
        ),
        // A straddling segment while the server's receive queue is not
        // empty: Linux drops it, sluice (which cannot see the queue) inspects
        // and records it. The sender's retransmission carries the same bytes,
        // which match the record and pass.
        live_only(
            "out-of-window-straddle-queued-benign",
            Live::StraddleQueued { then: b"harmless!!" },
            Netns::benign((b"harmless!!", End::Eof)).hold_reads().filled(true, true).zero(&[
                "drop_tcp_out_of_window",
                "drop_tcp_overlap_conflict",
                "drop_rule",
            ]),
        ),
        // The attack on that divergence: Linux dropped `harmless!!`, so other
        // bytes may take its place; sluice recorded `harmless!!` there and
        // drops the different bytes, so the stream stops after the queued
        // bytes and the attack never arrives.
        live_only(
            "out-of-window-straddle-queued",
            Live::StraddleQueued { then: b"attack!!!!" },
            Netns::attack((b"attack!!!!", End::Eof), (&QUEUED, End::Timeout))
                .hold_reads()
                .filled(true, false)
                .counters(&["drop_tcp_overlap_conflict"])
                .zero(&["drop_rule"]),
        ),
        // Starting exactly at the right edge (rcv_nxt + window, out of
        // order): Linux discards it (tcp_data_queue: `!before(seq, rcv_nxt +
        // tcp_receive_window)`, SKB_DROP_REASON_TCP_OVERWINDOW), so its bytes
        // never join the stream; the client later sends other bytes there.
        // sluice drops it too (recording `ack` as an island would make `att`
        // complete `attack` and reset a connection that reads `attune`).
        live(
            "out-of-window-edge-benign",
            Live::Edge,
            capture::out_of_window_edge_benign,
            |o| {
                o.expect(Expect::Benign(b"attune")).counters(&["drop_tcp_out_of_window"]).zero(&["drop_rule"])
            },
            Netns::benign((b"attune", End::Eof))
                .filled(true, true)
                .counters(&["drop_tcp_out_of_window"])
                .zero(&["drop_rule"]),
        ),
        // In order into a closed (zero) window: Linux discards the data
        // (6.17+ in tcp_sequence, TCP_INVALID_END_SEQUENCE; earlier kernels
        // in tcp_data_queue, TCP_ZEROWINDOW); once the window opens the
        // client sends other bytes there. sluice drops it too, so rules never
        // see the `ack` that the endpoint never reads.
        live(
            "zero-window-benign",
            Live::ZeroWindow,
            capture::zero_window_benign,
            |o| {
                o.expect(Expect::Benign(b"attune")).counters(&["drop_tcp_out_of_window"]).zero(&["drop_rule"])
            },
            Netns::benign((b"une", End::Eof))
                .hold_reads()
                .filled(true, true)
                .counters(&["drop_tcp_out_of_window"])
                .zero(&["drop_rule"]),
        ),
        window_scaled_benign(),
    ]
}

/// Window scaling: the SYN-ACK's window is never scaled, later ACKs are. A
/// segment `WINDOW_GAP` bytes ahead of the acknowledged point, once the
/// SYN-ACK's window covers nothing, is inside the receive window only if
/// the scale is applied to the later window fields. Offline the capture's
/// ACKs carry the windows (SYN-ACK 4096, then 63 << 7); in netns the
/// server's ACKs carry about 63 << 10 after 70,000 acknowledged bytes.
fn window_scaled_benign() -> Case {
    let mut read = vec![b'.'; WINDOW_LEAD + WINDOW_GAP];
    read.extend_from_slice(b"tail");
    let read: &'static [u8] = Box::leak(read.into_boxed_slice());
    Case {
        capture: Some(capture::window_scaled_benign),
        ..case(
            "window-scaled-benign",
            |c, end| {
                let chunk = [b'.'; 1400];
                for _ in 0..WINDOW_LEAD / chunk.len() {
                    c.data(Up, &chunk);
                }
                // Wait for the server's ACK of all of it.
                c.ack(sluice::flow::Direction::Down);
                let b = base(c);
                c.segment(Up, b + WINDOW_GAP as u32, ACK | PSH, b"tail");
                c.data(Up, &chunk[..WINDOW_GAP / 2]).data(Up, &chunk[..WINDOW_GAP / 2]);
                end.fin_at(c, b + WINDOW_GAP as u32 + 4);
            },
            |o| {
                o.expect(Expect::Benign(capture::window_scaled_reads()))
                    .counters(&["tcp_out_of_order_segments"])
                    .zero(&["drop_tcp_out_of_window", "drop_rule"])
            },
            Netns::benign((read, End::Eof))
                .step(Duration::from_millis(2))
                .counters(&["tcp_out_of_order_segments"])
                .zero(&["drop_tcp_out_of_window", "drop_rule"]),
        )
    }
}
