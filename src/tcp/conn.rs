//! The TCP connection tracker: handshake, established, half-close, close and
//! RST, with the acceptance checks a Linux receiver applies (RFC 793, RFC 5961,
//! RFC 7323 window scaling). Sluice drops what the endpoint would discard, so
//! that its view of each stream and the endpoint's cannot drift apart.
//!
//! [`TcpConn::check`] validates a segment without changing anything (rules
//! run between check and commit and may drop the packet); [`TcpConn::commit`]
//! applies it and says which bytes became deliverable.

use std::ops::Range;

use super::receiver_policy::ReceiverModel;
use super::stream::{Fit, Reach, Stream, StreamLimits};
use crate::flow::Direction;
use crate::stats::Counter;
use crate::time::Timestamp;
use crate::wire::tcp_flags::{ACK, FIN, RST, SYN, URG};
use crate::wire::{SeqNumber, TcpInfo};

/// Linux's `TCP_PAWS_24DAYS`: a receiver's timestamp older than this no
/// longer rejects anything (RFC 7323 5.5), in microseconds of packet time.
const PAWS_24DAYS_MICROS: u64 = 60 * 60 * 24 * 24 * 1_000_000;
/// Linux's `TCP_PAWS_WINDOW`: how far back a timestamp may be and still pass
/// `tcp_paws_discard`.
const PAWS_WINDOW: i32 = 1;

/// What sluice knows of a packet's arrival besides its TCP header.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Packet time.
    pub time: Timestamp,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Something else makes its arrival uncertain (a TCP-AO option, see
    /// [`super::auth_option`]).
    pub uncertain: bool,
}

/// A receiver's most recent timestamp from this side (Linux
/// `rx_opt.ts_recent` and `ts_recent_stamp`).
#[derive(Debug, Clone, Copy)]
struct TsRecent {
    value: u32,
    stamp: Timestamp,
}

/// Connection state as sluice tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    /// The client's SYN was seen.
    SynSent,
    /// The server's SYN-ACK was seen.
    SynReceived,
    /// The handshake completed (or the connection was picked up midstream).
    Established,
    /// Both FINs were sent and acknowledged (TIME-WAIT from here on).
    Closed,
    /// An RST the receiver accepts ended the connection.
    Reset,
}

/// One side's sending half: its stream and what the other side granted it.
#[derive(Debug, Clone, Default)]
struct Half {
    /// Bytes this side sent; `None` until its ISN is known.
    stream: Option<Stream>,
    isn: Option<SeqNumber>,
    /// Window scale this side announced in its SYN.
    wscale: Option<u8>,
    /// Right edge (stream offset) of the window the receiver granted.
    window_edge: Option<u64>,
    /// Largest (scaled) window this side advertised for the other side's data.
    max_window: u64,
    /// The receiver acknowledged this side's FIN.
    fin_acked: bool,
    /// How the receiver of this side's data is modelled.
    model: ReceiverModel,
    /// This side's SYN carried the timestamp option.
    syn_ts: bool,
    /// The receiver's PAWS state for this side's segments.
    ts_recent: Option<TsRecent>,
    /// TTL (hop limit) of this side's first packet: a later packet arriving
    /// with less may be meant to expire before the receiver.
    ttl: Option<u8>,
}

/// What the verdict must do about a segment's urgent pointer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Urgent {
    /// Nothing (no URG, or the receiver ignores this pointer).
    #[default]
    None,
    /// The urgent byte at this stream offset is left out of the stream
    /// rules see, as the receiving application's `read()` skips it.
    Hidden(u64),
    /// Clear URG and the urgent pointer: the receiver reads every byte
    /// inline (strict policy, `--urgent inline`, or a pointer whose effect
    /// would depend on when the application reads).
    Clear,
}

/// What kind of segment passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// The client's SYN (new or retransmitted).
    Syn,
    /// The server's SYN-ACK (new or retransmitted).
    SynAck,
    /// An RST the receiver accepts.
    Rst,
    /// Any other segment.
    Segment,
}

/// The result of a successful [`TcpConn::check`].
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    /// What it is.
    pub kind: SegmentKind,
    /// Stream offset of the first payload byte.
    pub start: u64,
    /// Whether it adds anything to the stream.
    pub fit: Fit,
    /// The acknowledged offset of the other direction, if it carries a usable ACK.
    ack: Option<u64>,
    /// Bytes committing would add to the stream buffer.
    pub growth: usize,
    /// Whether the segment is sure to reach the receiver.
    reach: Reach,
}

/// The result of [`TcpConn::commit`].
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// Stream range (of the packet's direction) newly deliverable to rules.
    pub deliver: Option<Range<u64>>,
    /// The handshake completed with this segment.
    pub established: bool,
    /// The connection ended with this segment (FIN exchange done, or RST).
    pub ended: bool,
    /// Bytes released from buffers (acknowledged data).
    pub freed: usize,
    /// Bytes added to buffers.
    pub grown: usize,
    /// What to do about the urgent pointer.
    pub urgent: Urgent,
    /// Bytes of SYN data forgotten: the SYN-ACK did not acknowledge them.
    pub syn_data_forgotten: usize,
}

/// A tracked TCP connection. Index 0 ([`Direction::Up`]) is the client's half.
#[derive(Debug, Clone)]
pub struct TcpConn {
    state: TcpState,
    halves: [Half; 2],
    /// Both SYNs carried window scale (RFC 7323 2.2).
    scaling: bool,
    /// Picked up midstream: windows and ISNs unknown, so fewer checks apply.
    midstream: bool,
    /// The client's SYN carried TCP-MD5 or TCP-AO: the ends have keys sluice
    /// does not know (see [`super::auth_option`]).
    signed: bool,
}

impl TcpConn {
    /// A connection starting with the client's SYN (not yet committed).
    pub fn new() -> Self {
        Self::with_models(TcpState::SynSent, false, [ReceiverModel::default(); 2])
    }

    /// A connection picked up midstream, the first packet sent by `Up`.
    pub fn midstream() -> Self {
        Self::with_models(TcpState::Established, true, [ReceiverModel::default(); 2])
    }

    /// A connection (`midstream` or from a SYN) whose receivers are modelled
    /// by `models`, indexed by the direction of the data they receive
    /// ([`Direction::Up`]: the server).
    pub fn with_models(state: TcpState, midstream: bool, models: [ReceiverModel; 2]) -> Self {
        let mut halves: [Half; 2] = Default::default();
        halves[0].model = models[0];
        halves[1].model = models[1];
        TcpConn { state, halves, scaling: false, midstream, signed: false }
    }

    /// How the receiver of `dir`'s data is modelled.
    pub fn model(&self, dir: Direction) -> ReceiverModel {
        self.halves[dir.index()].model
    }

    /// True if the receiver of `dir`'s data, modelled as Linux, drops a
    /// segment carrying a TCP-MD5 option (`tcp_inbound_hash`: no key). The
    /// client's SYN is never dropped for it: it tells whether the ends have
    /// keys.
    pub fn drops_auth_option(&self, dir: Direction, t: &TcpInfo) -> bool {
        let opening = t.has(SYN) && !t.has(ACK);
        self.model(dir).linux() && !self.signed && !opening
    }

    /// The client's SYN carried an authentication option: sluice cannot
    /// check signatures, so both streams are handled strictly.
    pub fn set_signed(&mut self) {
        self.signed = true;
        for s in self.halves.iter_mut().filter_map(|h| h.stream.as_mut()) {
            s.make_strict();
        }
    }

    /// A fresh stream for `dir` starting at `first`, under its receiver's policy.
    fn new_stream(&self, dir: Direction, first: SeqNumber) -> Stream {
        Stream::with_policy(first, self.model(dir).linux() && !self.signed)
    }

    /// Linux's `tcp_paws_discard` for a segment from `dir`: its timestamp is
    /// older than the receiver's `ts_recent` (by more than `TCP_PAWS_WINDOW`,
    /// in wrap-around arithmetic), which is not 0 and not older than 24
    /// days. RSTs are exempt (Linux accepts them despite PAWS), SYNs are
    /// checked elsewhere, and so are pure ACKs (`tcp_disordered_ack` lets
    /// some through; they carry nothing for the stream).
    fn paws_rejects(&self, dir: Direction, t: &TcpInfo, payload_len: usize, now: Timestamp) -> bool {
        let me = &self.halves[dir.index()];
        let other = &self.halves[dir.reverse().index()];
        let (Some((tsval, _)), Some(recent)) = (t.options.timestamp, me.ts_recent) else { return false };
        let negotiated = me.syn_ts && other.syn_ts;
        if !me.model.linux() || !negotiated || t.has(RST) || t.has(SYN) {
            return false;
        }
        if payload_len == 0 && !t.has(FIN) {
            return false;
        }
        let older = recent.value.wrapping_sub(tsval) as i32 > PAWS_WINDOW;
        let expired = now.0 >= recent.stamp.0.saturating_add(PAWS_24DAYS_MICROS);
        older && !expired && recent.value != 0
    }

    /// Linux's `tcp_replace_ts_recent` after an accepted segment from `dir`
    /// starting at stream offset `start`: the receiver takes its timestamp
    /// if the segment starts at or before what it last acknowledged
    /// (`rcv_wup`) and the timestamp is not older (or the old one expired).
    fn replace_ts_recent(&mut self, dir: Direction, t: &TcpInfo, start: u64, now: Timestamp) {
        let Some((tsval, _)) = t.options.timestamp else { return };
        let h = &mut self.halves[dir.index()];
        let Some(s) = h.stream.as_ref() else { return };
        if start > s.acked() {
            return;
        }
        let newer = match h.ts_recent {
            None => true,
            Some(r) => {
                tsval.wrapping_sub(r.value) as i32 >= 0
                    || now.0 >= r.stamp.0.saturating_add(PAWS_24DAYS_MICROS)
            }
        };
        if newer {
            h.ts_recent = Some(TsRecent { value: tsval, stamp: now });
        }
    }

    /// Current state.
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// True once the connection is over (closed or reset).
    pub fn is_over(&self) -> bool {
        matches!(self.state, TcpState::Closed | TcpState::Reset)
    }

    /// Undoes the delivery of `dir`'s bytes from `offset` on (see
    /// [`Stream::undeliver`]).
    pub fn undeliver(&mut self, dir: Direction, offset: u64) {
        if let Some(s) = self.halves[dir.index()].stream.as_mut() {
            s.undeliver(offset);
        }
    }

    /// The urgent byte `dir`'s receiver skips, if any (see [`Stream::urgent`]).
    pub fn urgent_of(&self, dir: Direction) -> Option<u64> {
        self.stream(dir).and_then(Stream::urgent)
    }

    /// Undoes the urgent pointers of packets rules dropped after they were
    /// committed: `dir`'s urgent byte is `urgent` again.
    pub fn restore_urgent(&mut self, dir: Direction, urgent: Option<u64>) {
        if let Some(s) = self.halves[dir.index()].stream.as_mut() {
            s.restore_urgent(urgent);
        }
    }

    /// The stream of one direction, once known.
    pub fn stream(&self, dir: Direction) -> Option<&Stream> {
        self.halves[dir.index()].stream.as_ref()
    }

    /// Bytes buffered in both directions.
    pub fn buffered(&self) -> usize {
        self.halves.iter().filter_map(|h| h.stream.as_ref()).map(Stream::buffered).sum()
    }

    /// Frees both directions' buffers (see [`Stream::release`]); returns
    /// the number of bytes freed.
    pub fn release_buffers(&mut self) -> usize {
        self.halves.iter_mut().filter_map(|h| h.stream.as_mut()).map(Stream::release).sum()
    }

    /// The sequence number the receiver of `dir`'s data expects next.
    pub fn next_seq(&self, dir: Direction) -> Option<SeqNumber> {
        let s = self.stream(dir)?;
        let fin = u32::from(s.fin_delivered());
        Some(s.seq_at(s.delivered()) + fin)
    }

    /// The sequence number the receiver of `dir`'s data last acknowledged.
    pub fn acked_seq(&self, dir: Direction) -> Option<SeqNumber> {
        let h = &self.halves[dir.index()];
        let s = h.stream.as_ref()?;
        Some(s.seq_at(s.acked()) + u32::from(h.fin_acked))
    }

    /// The sequence number after everything `dir` sent (its `snd_nxt`).
    pub fn sent_seq(&self, dir: Direction) -> Option<SeqNumber> {
        let s = self.stream(dir)?;
        let fin = u32::from(s.fin().is_some());
        Some(s.seq_at(s.highest()) + fin)
    }

    /// Validates a segment from `dir`. `Err` is the drop reason counter.
    pub fn check(
        &self,
        dir: Direction,
        t: &TcpInfo,
        payload: &[u8],
        lim: StreamLimits,
        arrival: Arrival,
    ) -> Result<Checked, Counter> {
        let now = arrival.time;
        let syn = t.has(SYN);
        let rst = t.has(RST);
        let ack = t.has(ACK);
        let fin = t.has(FIN);
        if (syn && (rst || fin)) || (rst && fin) {
            return Err(Counter::DropBadFlags);
        }
        let me = &self.halves[dir.index()];
        if syn {
            return self.check_syn(dir, t, payload, lim, ack);
        }
        let reach = match me.ttl {
            _ if arrival.uncertain => Reach::Doubtful,
            Some(first) if arrival.ttl < first => Reach::Doubtful,
            _ => Reach::Sure,
        };
        if rst {
            return self.check_rst(dir, t);
        }
        if self.paws_rejects(dir, t, payload.len(), now) {
            // tcp_validate_incoming: the segment is discarded whole.
            return Err(Counter::DropPaws);
        }
        if !ack {
            // Linux discards segments without ACK in every synchronised state.
            return Err(Counter::DropBadFlags);
        }
        match self.state {
            TcpState::SynSent => return Err(Counter::DropBadFlags),
            TcpState::Reset => return Err(Counter::DropClosed),
            _ => {}
        }
        let ack_off = self.check_ack(dir, t)?;
        if self.state == TcpState::SynReceived && dir == Direction::Up && ack_off != Some(0) {
            // The handshake's ACK must acknowledge exactly the server's SYN.
            let syn_data = self.stream(Direction::Down).map(Stream::highest).unwrap_or(0);
            if !matches!(ack_off, Some(a) if a <= syn_data) {
                return Err(Counter::DropBadAck);
            }
        }
        let Some(stream) = me.stream.as_ref() else {
            // Midstream: this side's first packet defines its stream.
            return Ok(Checked {
                kind: SegmentKind::Segment,
                start: 0,
                fit: Fit::New,
                ack: ack_off,
                growth: payload.len(),
                reach,
            });
        };
        let start = stream.offset_of(t.seq);
        if start < 0 {
            // Sequence space before the first data byte is the SYN's.
            return Err(Counter::DropOutOfWindow);
        }
        let start = start as u64;
        if let Some(edge) = me.window_edge {
            let delivered = stream.delivered();
            let end = start + payload.len() as u64;
            // Linux's tcp_data_queue drops data whose first new byte is at or
            // past the right edge of the window it advertised (TCP_OVERWINDOW,
            // TCP_ZEROWINDOW), even at rcv_nxt; a segment starting inside the
            // window is taken whole. A bare FIN is taken even at a zero window.
            let refused = if payload.is_empty() {
                fin && start > edge && start > delivered
            } else {
                end > delivered && start.max(delivered) >= edge
            };
            if refused {
                return Err(Counter::DropOutOfWindow);
            }
        }
        let fit = stream.check_reaching(start, payload, fin, lim, reach)?;
        Ok(Checked {
            kind: SegmentKind::Segment,
            start,
            fit,
            ack: ack_off,
            growth: stream.growth(start, payload.len()),
            reach,
        })
    }

    fn check_syn(
        &self,
        dir: Direction,
        t: &TcpInfo,
        payload: &[u8],
        lim: StreamLimits,
        ack: bool,
    ) -> Result<Checked, Counter> {
        let me = &self.halves[dir.index()];
        match (dir, ack) {
            (Direction::Up, false) => {
                match self.state {
                    TcpState::SynSent => {}
                    TcpState::SynReceived if me.isn == Some(t.seq) => {}
                    _ => return Err(Counter::DropBadFlags),
                }
                let fit = match (&me.stream, me.isn == Some(t.seq)) {
                    (Some(s), true) => s.check(0, payload, false, lim)?,
                    _ => Fit::New,
                };
                Ok(Checked {
                    kind: SegmentKind::Syn,
                    start: 0,
                    fit,
                    ack: None,
                    growth: payload.len(),
                    reach: Reach::Sure,
                })
            }
            (Direction::Down, true) => {
                let client = &self.halves[Direction::Up.index()];
                let expected =
                    client.isn.map(|i| i + 1 + client.stream.as_ref().map_or(0, |s| s.highest() as u32));
                let ack_ok = client.isn.is_some_and(|i| t.ack == i + 1) || expected == Some(t.ack);
                if !ack_ok {
                    return Err(Counter::DropBadAck);
                }
                match self.state {
                    TcpState::SynSent => {}
                    TcpState::SynReceived | TcpState::Established if me.isn == Some(t.seq) => {}
                    _ => return Err(Counter::DropBadFlags),
                }
                let fit = match (&me.stream, me.isn == Some(t.seq)) {
                    (Some(s), true) => s.check(0, payload, false, lim)?,
                    _ => Fit::New,
                };
                let ack_off = client.stream.as_ref().map(|s| s.offset_of(t.ack).max(0) as u64);
                Ok(Checked {
                    kind: SegmentKind::SynAck,
                    start: 0,
                    fit,
                    ack: ack_off,
                    growth: payload.len(),
                    reach: Reach::Sure,
                })
            }
            _ => Err(Counter::DropBadFlags),
        }
    }

    fn check_rst(&self, dir: Direction, t: &TcpInfo) -> Result<Checked, Counter> {
        let ok = match self.state {
            TcpState::SynSent => match dir {
                // A refused connection: the RST must acknowledge the SYN.
                Direction::Down => t.has(ACK) && self.sent_seq(Direction::Up) == Some(t.ack),
                Direction::Up => self.sent_seq(Direction::Up) == Some(t.seq),
            },
            TcpState::Reset => return Err(Counter::DropClosed),
            _ => match self.next_seq(dir) {
                // RFC 5961 3.2: only an RST at exactly rcv_nxt resets; any
                // other in-window RST draws a challenge ACK and is ignored.
                Some(next) => t.seq == next,
                None => self.midstream,
            },
        };
        if ok {
            Ok(Checked {
                kind: SegmentKind::Rst,
                start: 0,
                fit: Fit::New,
                ack: None,
                growth: 0,
                reach: Reach::Sure,
            })
        } else {
            Err(Counter::DropBadRst)
        }
    }

    /// The ACK's offset in the other direction's stream, if that stream is
    /// known; `Err` if the receiver would discard the segment for it.
    fn check_ack(&self, dir: Direction, t: &TcpInfo) -> Result<Option<u64>, Counter> {
        let other = &self.halves[dir.reverse().index()];
        let Some(s) = other.stream.as_ref() else { return Ok(None) };
        let off = s.offset_of(t.ack);
        let sent = s.highest() as i64 + i64::from(s.fin().is_some());
        if off > sent {
            // Acknowledges data never sent (RFC 793 3.9; Linux drops the segment).
            return Err(Counter::DropBadAck);
        }
        let me = &self.halves[dir.index()];
        let slack = me.max_window.max(65_535) as i64;
        if off < s.acked() as i64 - slack {
            // Older than any window the receiver may still accept (RFC 5961 5.2).
            return Err(Counter::DropBadAck);
        }
        Ok(Some(off.max(0) as u64))
    }

    /// A SYN or SYN-ACK with a new ISN starts `dir`'s half afresh; returns
    /// the bytes its old stream held, now freed (the engine counts them).
    fn restart_half(
        &mut self,
        dir: Direction,
        t: &TcpInfo,
        stamp: Option<TsRecent>,
        arrival: Arrival,
    ) -> usize {
        let stream = self.new_stream(dir, t.seq + 1);
        let h = &mut self.halves[dir.index()];
        let freed = h.stream.as_ref().map_or(0, Stream::buffered);
        *h = Half {
            isn: Some(t.seq),
            wscale: t.options.window_scale,
            model: h.model,
            syn_ts: stamp.is_some(),
            ts_recent: stamp,
            stream: Some(stream),
            ttl: Some(arrival.ttl),
            ..Half::default()
        };
        freed
    }

    /// Applies a checked segment.
    pub fn commit(
        &mut self,
        dir: Direction,
        t: &TcpInfo,
        payload: &[u8],
        c: &Checked,
        arrival: Arrival,
    ) -> Committed {
        let now = arrival.time;
        let mut out = Committed::default();
        let i = dir.index();
        let stamp = t.options.timestamp.map(|(v, _)| TsRecent { value: v, stamp: now });
        match c.kind {
            SegmentKind::Rst => {
                self.state = TcpState::Reset;
                out.ended = true;
                return out;
            }
            SegmentKind::Syn => {
                if self.halves[i].isn != Some(t.seq) {
                    out.freed += self.restart_half(dir, t, stamp, arrival);
                    self.state = TcpState::SynSent;
                }
            }
            SegmentKind::SynAck => {
                if self.halves[i].isn != Some(t.seq) {
                    out.freed += self.restart_half(dir, t, stamp, arrival);
                }
                out.syn_data_forgotten = self.forget_unacked_syn_data(t);
                self.scaling = self.halves[0].wscale.is_some() && self.halves[1].wscale.is_some();
                if self.state == TcpState::SynSent {
                    self.state = TcpState::SynReceived;
                }
            }
            SegmentKind::Segment => {
                if self.halves[i].stream.is_none() {
                    self.halves[i].stream = Some(self.new_stream(dir, t.seq));
                    self.halves[i].ttl = Some(arrival.ttl);
                }
                if self.state == TcpState::SynReceived && dir == Direction::Up {
                    self.state = TcpState::Established;
                    out.established = true;
                }
            }
        }
        // What the sender of this segment says about the other direction.
        if let Some(ack_off) = c.ack {
            let scale = if self.scaling { self.halves[i].wscale.unwrap_or(0).min(14) } else { 0 };
            // Windows in SYN segments are never scaled (RFC 7323 2.2).
            let win = u64::from(t.window) << if t.has(SYN) { 0 } else { scale };
            self.halves[i].max_window = self.halves[i].max_window.max(win);
            let other = &mut self.halves[dir.reverse().index()];
            if let Some(s) = other.stream.as_mut() {
                if s.fin().is_some_and(|f| ack_off > f) {
                    other.fin_acked = true;
                }
                out.freed += s.ack(ack_off);
                let edge = ack_off + win;
                if !self.midstream {
                    other.window_edge = Some(other.window_edge.map_or(edge, |e| e.max(edge)));
                }
            }
        }
        let fin = t.has(FIN);
        if c.kind == SegmentKind::Segment {
            out.urgent = self.urgent(dir, t, c.start);
            self.replace_ts_recent(dir, t, c.start, now);
        } else if t.has(URG) {
            out.urgent = Urgent::Clear;
        }
        if let Some(s) = self.halves[i].stream.as_mut() {
            // A duplicate adds nothing, but if an earlier copy's delivery was
            // undone (its packet dropped), the copy carrying the byte at the
            // delivery point makes the bytes deliverable again. Under the
            // Linux policy even an out-of-order duplicate may change the
            // queue's segments, which later overlaps are resolved by.
            let queue_changes = s.linux() && !payload.is_empty() && c.start > s.delivered();
            if c.fit != Fit::Duplicate || s.covers_delivery_point(c.start, payload.len()) || queue_changes {
                let before = s.buffered();
                out.deliver = s.commit_reaching(c.start, payload, fin, c.reach);
                out.grown = s.buffered().saturating_sub(before);
            }
        }
        if !self.is_over() && self.halves.iter().all(|h| h.fin_acked) {
            self.state = TcpState::Closed;
            out.ended = true;
        }
        out
    }
}

impl TcpConn {
    /// Linux receiver: SYN data the SYN-ACK does not acknowledge was not
    /// taken (no Fast Open); the client's stream restarts empty at the same
    /// first sequence number, so data later sent there is its real start,
    /// not a conflict. Returns the bytes forgotten.
    fn forget_unacked_syn_data(&mut self, t: &TcpInfo) -> usize {
        let up = Direction::Up;
        let linux = self.model(up).linux() && !self.signed;
        let client = &self.halves[up.index()];
        let (Some(isn), Some(s)) = (client.isn, client.stream.as_ref()) else { return 0 };
        let held = s.highest() as usize;
        if !linux || held == 0 || t.ack != isn + 1 || s.fin().is_some() {
            return 0;
        }
        let fresh = self.new_stream(up, isn + 1);
        self.halves[up.index()].stream = Some(fresh);
        held
    }

    /// Linux's `tcp_check_urg` for a segment from `dir` starting at stream
    /// offset `start`, as seen by an application reading with default
    /// socket options (`--urgent oob`): the urgent byte is the one before
    /// the pointer (`ptr--` unless `tcp_stdurg`); a pointer before
    /// `rcv_nxt`, or not past the current one, is ignored. A pointer
    /// replacing an earlier urgent byte is cleared instead: whether Linux
    /// then reads the old byte inline depends on whether the application
    /// had read up to it (`tcp_check_urg`'s `copied_seq` case), which sluice
    /// cannot know.
    fn urgent(&mut self, dir: Direction, t: &TcpInfo, start: u64) -> Urgent {
        if !t.has(URG) {
            return Urgent::None;
        }
        let oob = self.model(dir).urgent_oob() && !self.signed;
        let Some(s) = self.halves[dir.index()].stream.as_mut().filter(|_| oob) else { return Urgent::Clear };
        let at = start + u64::from(t.urgent.saturating_sub(1));
        if at < s.delivered() {
            return Urgent::None;
        }
        match s.urgent() {
            Some(old) if at <= old => Urgent::None,
            Some(_) => Urgent::Clear,
            None => {
                s.set_urgent(at);
                Urgent::Hidden(at)
            }
        }
    }
}

impl Default for TcpConn {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::wire::decode;
    use crate::wire::forge::TcpSegment;
    use crate::wire::tcp_flags::PSH;

    const LIM: StreamLimits = StreamLimits { max_buffer: 1 << 20, max_islands: 8 };
    const ARRIVAL: Arrival = Arrival { time: Timestamp(0), ttl: 64, uncertain: false };
    const CISN: u32 = 1000;
    const SISN: u32 = 5000;
    const UP: Direction = Direction::Up;
    const DOWN: Direction = Direction::Down;

    /// A segment's decoded TCP header and payload.
    fn seg(dir: Direction, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> (TcpInfo, Vec<u8>) {
        let c: IpAddr = "10.0.0.1".parse().unwrap();
        let s: IpAddr = "10.0.0.2".parse().unwrap();
        let mut t =
            if dir == UP { TcpSegment::new(c, 40_000, s, 80) } else { TcpSegment::new(s, 80, c, 40_000) };
        t.seq = SeqNumber(seq);
        t.ack = SeqNumber(ack);
        t.flags = flags;
        t.payload = payload;
        let bytes = t.build();
        let d = decode(&bytes).unwrap();
        (d.tcp().unwrap().clone(), d.payload().to_vec())
    }

    fn check(
        conn: &TcpConn,
        dir: Direction,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Result<SegmentKind, Counter> {
        let (t, p) = seg(dir, seq, ack, flags, payload);
        conn.check(dir, &t, &p, LIM, ARRIVAL).map(|c| c.kind)
    }

    fn step(conn: &mut TcpConn, dir: Direction, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Committed {
        let (t, p) = seg(dir, seq, ack, flags, payload);
        let c = conn.check(dir, &t, &p, LIM, ARRIVAL).expect("a valid segment");
        conn.commit(dir, &t, &p, &c, ARRIVAL)
    }

    /// Found by the tcp_engine fuzz target: a SYN with data, then a SYN with
    /// another ISN (and data) restarts the client's half; the old stream's
    /// bytes must be reported freed, or the engine's total buffer count
    /// keeps them forever (and its total-buffer limit shrinks).
    #[test]
    fn syn_with_a_new_isn_reports_the_old_stream_freed() {
        let mut c = TcpConn::new();
        let mut held = 0i64;
        for (seq, payload) in [(CISN, &b"abcd"[..]), (CISN + 5, b"xyz"), (CISN + 5, b"xyz")] {
            let d = step(&mut c, UP, seq, 0, SYN | PSH, payload);
            held += d.grown as i64 - d.freed as i64;
            assert_eq!(held, c.buffered() as i64, "grown - freed after the SYN at {seq}");
        }
    }

    fn syn_sent() -> TcpConn {
        let mut c = TcpConn::new();
        step(&mut c, UP, CISN, 0, SYN, b"");
        assert_eq!(c.state(), TcpState::SynSent);
        c
    }

    fn syn_received() -> TcpConn {
        let mut c = syn_sent();
        step(&mut c, DOWN, SISN, CISN + 1, SYN | ACK, b"");
        assert_eq!(c.state(), TcpState::SynReceived);
        c
    }

    fn established() -> TcpConn {
        let mut c = syn_received();
        assert!(step(&mut c, UP, CISN + 1, SISN + 1, ACK, b"").established);
        assert_eq!(c.state(), TcpState::Established);
        c
    }

    fn closed() -> TcpConn {
        let mut c = established();
        step(&mut c, UP, CISN + 1, SISN + 1, ACK | FIN, b"");
        step(&mut c, DOWN, SISN + 1, CISN + 2, ACK | FIN, b"");
        assert!(step(&mut c, UP, CISN + 2, SISN + 2, ACK, b"").ended);
        assert_eq!(c.state(), TcpState::Closed);
        c
    }

    fn reset() -> TcpConn {
        let mut c = established();
        assert!(step(&mut c, UP, CISN + 1, 0, RST, b"").ended);
        assert_eq!(c.state(), TcpState::Reset);
        c
    }

    /// The sequence number a segment from `dir` would carry to be exact.
    fn next_from(c: &TcpConn, dir: Direction) -> u32 {
        c.next_seq(dir).map_or(if dir == UP { CISN } else { SISN }, |s| s.0)
    }

    fn ack_from(c: &TcpConn, dir: Direction) -> u32 {
        c.next_seq(dir.reverse()).map_or(0, |s| s.0)
    }

    #[test]
    fn flag_combinations_refused_in_every_state() {
        let mut mid = TcpConn::midstream();
        step(&mut mid, UP, 7, 9, ACK, b"a");
        let states = [
            ("fresh", TcpConn::new()),
            ("syn-sent", syn_sent()),
            ("syn-received", syn_received()),
            ("established", established()),
            ("closed", closed()),
            ("reset", reset()),
            ("midstream", mid),
        ];
        for (name, c) in &states {
            for dir in [UP, DOWN] {
                let (seq, ack) = (next_from(c, dir), ack_from(c, dir));
                for combo in [SYN | FIN, SYN | RST, RST | FIN, SYN | RST | FIN] {
                    for extra in [0, ACK, ACK | PSH] {
                        for payload in [&b""[..], b"data"] {
                            assert_eq!(
                                check(c, dir, seq, ack, combo | extra, payload),
                                Err(Counter::DropBadFlags),
                                "{name} {dir:?} flags {:#x} payload {}",
                                combo | extra,
                                payload.len()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn refused_combinations_leave_the_connection_working() {
        let mut c = established();
        step(&mut c, UP, CISN + 1, SISN + 1, ACK | PSH, b"one");
        // An RST+FIN exactly at rcv_nxt, where a plain RST would be accepted.
        assert_eq!(check(&c, UP, CISN + 4, SISN + 1, RST | FIN, b""), Err(Counter::DropBadFlags));
        assert_eq!(check(&c, UP, CISN + 4, SISN + 1, RST, b""), Ok(SegmentKind::Rst));
        assert_eq!(check(&c, DOWN, SISN + 1, CISN + 4, SYN | FIN | ACK, b"x"), Err(Counter::DropBadFlags));
        assert_eq!(c.state(), TcpState::Established);
        let d = step(&mut c, UP, CISN + 4, SISN + 1, ACK | PSH, b"two");
        assert_eq!(d.deliver, Some(3..6));
        assert_eq!(c.stream(UP).unwrap().bytes_in(0..6, &mut Vec::new()), b"onetwo");
        let d = step(&mut c, DOWN, SISN + 1, CISN + 7, ACK | PSH, b"back");
        assert_eq!(d.deliver, Some(0..4));
        assert_eq!(d.freed, 6, "the server's ACK releases the client's six bytes");
        assert_eq!(c.buffered(), 4);
    }

    #[test]
    fn syn_sent_refusals() {
        let c = syn_sent();
        // Data (even with ACK) before the server answered.
        assert_eq!(check(&c, UP, CISN + 1, 0, ACK | PSH, b"early"), Err(Counter::DropBadFlags));
        // No simultaneous open: a bare SYN from the server; nor a client SYN-ACK.
        assert_eq!(check(&c, DOWN, SISN, 0, SYN, b""), Err(Counter::DropBadFlags));
        assert_eq!(check(&c, UP, CISN, 0, SYN | ACK, b""), Err(Counter::DropBadFlags));
        // A SYN-ACK acknowledging something else than the SYN.
        assert_eq!(check(&c, DOWN, SISN, CISN + 9, SYN | ACK, b""), Err(Counter::DropBadAck));
        // Allowed: the SYN again, a new SYN (the client restarted), the SYN-ACK.
        assert_eq!(check(&c, UP, CISN, 0, SYN, b""), Ok(SegmentKind::Syn));
        assert_eq!(check(&c, UP, CISN + 77, 0, SYN, b""), Ok(SegmentKind::Syn));
        assert_eq!(check(&c, DOWN, SISN, CISN + 1, SYN | ACK, b""), Ok(SegmentKind::SynAck));
    }

    #[test]
    fn syn_received_refusals() {
        let c = syn_received();
        assert_eq!(
            check(&c, UP, CISN + 77, 0, SYN, b""),
            Err(Counter::DropBadFlags),
            "client SYN, other ISN"
        );
        assert_eq!(
            check(&c, DOWN, SISN + 77, CISN + 1, SYN | ACK, b""),
            Err(Counter::DropBadFlags),
            "other ISN"
        );
        assert_eq!(check(&c, UP, CISN + 1, SISN + 1, SYN | ACK, b""), Err(Counter::DropBadFlags));
        assert_eq!(check(&c, DOWN, SISN + 1, CISN + 1, SYN, b""), Err(Counter::DropBadFlags));
        assert_eq!(check(&c, UP, CISN + 1, SISN + 1, PSH, b"x"), Err(Counter::DropBadFlags), "no ACK");
        // Retransmissions of the handshake pass.
        assert_eq!(check(&c, UP, CISN, 0, SYN, b""), Ok(SegmentKind::Syn));
        assert_eq!(check(&c, DOWN, SISN, CISN + 1, SYN | ACK, b""), Ok(SegmentKind::SynAck));
        assert_eq!(check(&c, UP, CISN + 1, SISN + 1, ACK, b""), Ok(SegmentKind::Segment));
    }

    #[test]
    fn syn_on_an_established_connection_refused() {
        let c = established();
        for isn in [CISN, CISN + 1, CISN + 77_777] {
            assert_eq!(check(&c, UP, isn, 0, SYN, b""), Err(Counter::DropBadFlags), "client SYN at {isn}");
        }
        assert_eq!(check(&c, DOWN, SISN + 77, CISN + 1, SYN | ACK, b""), Err(Counter::DropBadFlags));
        assert_eq!(check(&c, UP, CISN + 1, SISN + 1, SYN | ACK, b""), Err(Counter::DropBadFlags));
        assert_eq!(check(&c, DOWN, SISN + 1, CISN + 1, SYN, b""), Err(Counter::DropBadFlags));
        assert_eq!(check(&c, UP, CISN + 1, SISN + 1, PSH, b"x"), Err(Counter::DropBadFlags), "no ACK");
        // The server's SYN-ACK again (its ACK was lost) is what the client re-ACKs.
        assert_eq!(check(&c, DOWN, SISN, CISN + 1, SYN | ACK, b""), Ok(SegmentKind::SynAck));
        // A closed connection takes no SYN either (the engine starts a new flow instead).
        assert_eq!(check(&closed(), UP, CISN + 100_000, 0, SYN, b""), Err(Counter::DropBadFlags));
    }

    #[test]
    fn a_reset_connection_refuses_everything() {
        let c = reset();
        assert_eq!(check(&c, UP, CISN + 1, SISN + 1, ACK | PSH, b"x"), Err(Counter::DropClosed));
        assert_eq!(check(&c, DOWN, SISN + 1, CISN + 1, ACK, b""), Err(Counter::DropClosed));
        assert_eq!(check(&c, UP, CISN + 1, 0, RST, b""), Err(Counter::DropClosed));
        assert_eq!(check(&c, UP, CISN + 1, 0, SYN, b""), Err(Counter::DropBadFlags));
    }
}
