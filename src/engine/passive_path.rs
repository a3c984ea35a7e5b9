//! The TCP path of `sluice pcap --passive`: a capture from a tap or a host,
//! analysed as the endpoints lived it (see `docs/offline.md`).
//!
//! Every TCP packet is taken (no validity check drops one: the capture
//! shows what the endpoints did); each direction's bytes reach
//! `receive_data` when the other side's ACK covers them
//! ([`PassiveStream`]), and acknowledged bytes missing from the capture
//! reach [`Inspector::gap`]. Connections are picked up midstream. Bytes
//! never acknowledged are delivered when the connection ends (RST, time-out,
//! end of capture). Rules still decide: their drops and resets become the
//! verdicts and forged RSTs of what would have happened inline, and a
//! connection a rule dropped or reset is no longer inspected.

use super::{flow_key, Engine, Output, Verdict};
use crate::flow::{Direction, FlowEntry, FlowId, FlowKey, L4Proto};
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::stats::Counter;
use crate::tcp::passive::{PassiveStream, Piece};
use crate::time::Timestamp;
use crate::wire::tcp_flags::{ACK, FIN, RST, SYN};
use crate::wire::{forge, Decoded, TcpInfo};

/// One TCP connection seen from a tap.
#[derive(Debug)]
pub(super) struct PassiveFlow {
    key: FlowKey,
    pub(super) info: FlowInfo,
    client_is_lo: bool,
    /// Each direction's stream, by [`Direction::index`] of its sender.
    streams: [PassiveStream; 2],
    /// `new_connection` was offered.
    announced: bool,
    /// `new_connection` was accepted and `end_connection` is still owed.
    began: bool,
    /// A rule dropped or reset the connection: no more inspection.
    judged: bool,
    /// An RST was seen, or both FINs were delivered.
    over: bool,
    deadline: Timestamp,
}

impl PassiveFlow {
    fn direction(&self, from_lo: bool) -> Direction {
        if from_lo == self.client_is_lo {
            Direction::Up
        } else {
            Direction::Down
        }
    }

    /// Bytes held waiting for acknowledgments.
    pub(super) fn buffered(&self) -> usize {
        self.streams.iter().map(PassiveStream::held_bytes).sum()
    }
}

impl FlowEntry for PassiveFlow {
    fn key(&self) -> &FlowKey {
        &self.key
    }

    fn id(&self) -> FlowId {
        self.info.id
    }

    /// Live connections with data stay; ended, judged and silent ones go first.
    fn evictable(&self) -> bool {
        self.over || self.judged || self.streams.iter().all(|s| s.delivered() == 0 && s.held_bytes() == 0)
    }

    fn deadline(&self) -> Timestamp {
        self.deadline
    }
}

impl<I: Inspector> Engine<I> {
    /// One TCP packet in passive mode.
    pub(super) fn passive_tcp(
        &mut self,
        pkt: &Decoded<'_>,
        t: &TcpInfo,
        ctx: &Context,
        out: &mut Output,
    ) -> Verdict {
        let (key, from_lo) = flow_key(pkt, L4Proto::Tcp, t.src_port, t.dst_port);
        let opening = t.has(SYN) && !t.has(ACK);
        let reuse = opening && self.passive.get(&key).is_some_and(|f| f.over || f.judged);
        if reuse {
            if let Some(old) = self.passive.remove(&key) {
                self.retire_passive(old, ctx, out);
            }
        }
        if self.passive.get(&key).is_none() && !self.new_passive_flow(&key, from_lo, t, ctx, out) {
            return Verdict::Drop;
        }
        let Some(flow) = self.passive.get_mut(&key) else { return Verdict::Drop };
        if flow.judged {
            flow.deadline = ctx.time.saturating_add(self.config.tcp_closing_timeout);
            self.stats.inc(Counter::DropFlowDropped);
            return Verdict::Drop;
        }
        if flow.over {
            // Ended (RST, or both FINs delivered) and rules were told: later
            // segments are not the connection's any more (a new SYN starts
            // a new one, above).
            flow.deadline = ctx.time.saturating_add(self.config.tcp_closing_timeout);
            self.stats.inc(Counter::PassiveAfterEnd);
            return Verdict::Accept;
        }
        let dir = flow.direction(from_lo);
        let info = flow.info.clone();
        if !flow.announced {
            flow.announced = true;
            let action = self.passive_event(Event::TcpNewConnection, ctx, pkt, &info, dir);
            if action != Action::Accept {
                self.stats.inc(Counter::DropRule);
                self.passive_judge(&key, action.max(Action::DropFlow), ctx, out);
                return Verdict::Drop;
            }
            if let Some(f) = self.passive.get_mut(&key) {
                f.began = true;
            }
        }
        let action = self.passive_event(Event::TcpConnectionPacket, ctx, pkt, &info, dir);
        if action != Action::Accept {
            self.stats.inc(Counter::DropRule);
            if action >= Action::DropFlow {
                self.passive_judge(&key, action, ctx, out);
            }
            return Verdict::Drop;
        }
        let action = self.passive_segment(&key, dir, pkt, t, ctx);
        if action == Action::Accept {
            return Verdict::Accept;
        }
        self.stats.inc(Counter::DropRule);
        if action >= Action::DropFlow {
            self.passive_judge(&key, action, ctx, out);
        }
        Verdict::Drop
    }

    /// Creates a connection for its first captured packet (any packet: a
    /// tap sees connections begin before it started).
    fn new_passive_flow(
        &mut self,
        key: &FlowKey,
        from_lo: bool,
        t: &TcpInfo,
        ctx: &Context,
        out: &mut Output,
    ) -> bool {
        match self.passive.make_room() {
            Ok(Some((_, evicted))) => {
                self.stats.inc(Counter::FlowsEvicted);
                self.retire_passive(evicted, ctx, out);
            }
            Ok(None) => {}
            Err(()) => {
                self.stats.inc(Counter::DropFlowLimit);
                return false;
            }
        }
        // The SYN's sender is the client, the SYN-ACK's the server; else
        // the side with the higher, non-well-known port.
        let sender_is_client =
            if t.has(SYN) { !t.has(ACK) } else { !(t.src_port < 1024 && t.dst_port >= 1024) };
        let client_is_lo = if sender_is_client { from_lo } else { !from_lo };
        let (client, server) = if client_is_lo { (key.lo, key.hi) } else { (key.hi, key.lo) };
        let id = self.flows.next_id();
        let flow = PassiveFlow {
            key: *key,
            info: FlowInfo {
                id,
                proto: L4Proto::Tcp,
                src: client.addr,
                src_port: client.port,
                dst: server.addr,
                dst_port: server.port,
            },
            client_is_lo,
            streams: Default::default(),
            announced: false,
            began: false,
            judged: false,
            over: false,
            deadline: ctx.time.saturating_add(self.config.tcp_established_timeout),
        };
        self.passive.insert(*key, flow);
        self.stats.inc(Counter::TcpConnections);
        true
    }

    /// A connection event to rules, if hooked.
    fn passive_event(
        &mut self,
        event: Event,
        ctx: &Context,
        pkt: &Decoded<'_>,
        info: &FlowInfo,
        dir: Direction,
    ) -> Action {
        if !self.inspector.subscribed(event) {
            return Action::Accept;
        }
        self.inspector.packet(event, ctx, pkt, Some((info, dir)))
    }

    /// Records the segment, then delivers what its ACK acknowledges (of the
    /// other direction), what no longer fits, and, when the connection
    /// ends, everything left. Returns the rules' decision.
    fn passive_segment(
        &mut self,
        key: &FlowKey,
        dir: Direction,
        pkt: &Decoded<'_>,
        t: &TcpInfo,
        ctx: &Context,
    ) -> Action {
        // Past the total buffer, the sender's held bytes all go to rules now.
        let limit =
            if self.buffered >= self.config.max_total_buffer { 0 } else { self.config.max_stream_buffer };
        let Some(flow) = self.passive.get_mut(key) else { return Action::Accept };
        let before = flow.buffered();
        let sender = &mut flow.streams[dir.index()];
        if t.has(SYN) {
            sender.syn(t.seq);
        }
        let start = if t.has(SYN) { t.seq + 1 } else { t.seq };
        let payload = pkt.payload();
        if !payload.is_empty() || t.has(FIN) {
            let fit = sender.segment(start, payload, t.has(FIN));
            if fit.conflicting > 0 {
                self.stats.inc(Counter::PassiveOverlapConflicts);
            }
            if fit.repeated + fit.old > 0 && fit.new == 0 {
                self.stats.inc(Counter::Retransmissions);
            }
        }
        let mut deliveries: Vec<(Direction, Vec<Piece>)> = Vec::new();
        if t.has(ACK) {
            match flow.streams[dir.reverse().index()].acknowledge(t.ack) {
                Some(p) => deliveries.push((dir.reverse(), p)),
                None => self.stats.inc(Counter::PassiveAcksIgnored),
            }
        }
        let forced = flow.streams[dir.index()].force(limit);
        if !forced.is_empty() {
            let n: u64 = forced.iter().map(piece_data_len).sum();
            self.stats.add(Counter::PassiveForcedBytes, n);
            deliveries.push((dir, forced));
        }
        let ending = t.has(RST) || flow.streams.iter().all(PassiveStream::finished);
        if ending {
            flow.over = true;
            for d in [Direction::Up, Direction::Down] {
                deliveries.push((d, flow.streams[d.index()].flush()));
            }
        }
        flow.deadline = ctx.time.saturating_add(if flow.over {
            self.config.tcp_closing_timeout
        } else {
            self.config.tcp_established_timeout
        });
        let after = flow.buffered();
        self.buffered = (self.buffered + after).saturating_sub(before);
        self.stats.set(Counter::StreamBytesBuffered, self.buffered as u64);
        let info = flow.info.clone();
        if ending {
            // Evictable now: back in the table's eviction queue.
            self.passive.requeue(*key, info.id);
        }
        let mut action = Action::Accept;
        for (d, pieces) in deliveries {
            action = action.max(self.deliver(ctx, &info, d, pieces));
            if action >= Action::DropFlow {
                return action;
            }
        }
        if ending {
            self.passive_end(key, ctx);
        }
        action
    }

    /// Hands pieces of one direction to rules, in order; stops at a
    /// flow-level decision.
    fn deliver(&mut self, ctx: &Context, info: &FlowInfo, dir: Direction, pieces: Vec<Piece>) -> Action {
        let mut action = Action::Accept;
        for piece in pieces {
            let a = match piece {
                Piece::Data { bytes, offset } => {
                    let range = offset..offset + bytes.len() as u64;
                    let cut = super::depth::cut(self.config.stream_depth, range, &self.stats);
                    let mut a = Action::Accept;
                    if let Some(r) = cut.within {
                        let shown = &bytes[..(r.end - r.start) as usize];
                        self.stats.add(Counter::StreamBytes, shown.len() as u64);
                        if self.inspector.subscribed(Event::TcpData) {
                            a = self.inspector.data(ctx, info, dir, shown);
                        }
                    }
                    if cut.crossed && a < Action::DropFlow {
                        a = a.max(self.inspector.depth_reached(ctx, info, dir));
                    }
                    a
                }
                Piece::Gap { offset, len } => {
                    self.stats.inc(Counter::PassiveGaps);
                    self.stats.add(Counter::PassiveGapBytes, len);
                    self.inspector.gap(ctx, info, dir, offset, len)
                }
            };
            action = action.max(a);
            if action >= Action::DropFlow {
                break;
            }
        }
        action
    }

    /// A rule dropped or reset the connection: the RSTs inline would have
    /// sent (to each end at the sequence number its receiver stands at, as
    /// far as the capture shows), then no more inspection.
    fn passive_judge(&mut self, key: &FlowKey, action: Action, ctx: &Context, out: &mut Output) {
        let Some(flow) = self.passive.get_mut(key) else { return };
        flow.judged = true;
        flow.deadline = ctx.time.saturating_add(self.config.tcp_closing_timeout);
        let i = flow.info.clone();
        let up = flow.streams[Direction::Up.index()].delivered_seq();
        let down = flow.streams[Direction::Down.index()].delivered_seq();
        self.passive.requeue(*key, i.id);
        let mut forged = Vec::new();
        if matches!(action, Action::Reset | Action::HalfReset) {
            if let Some(seq) = up {
                forged.push(forge::rst(i.src, i.src_port, i.dst, i.dst_port, seq, down));
            }
        }
        if action == Action::Reset {
            if let Some(seq) = down {
                forged.push(forge::rst(i.dst, i.dst_port, i.src, i.src_port, seq, up));
            }
        }
        for p in forged {
            self.forge(out, p);
        }
        self.passive_end(key, ctx);
        let freed = self.passive.get_mut(key).map_or(0, |f| {
            let n = f.buffered();
            f.streams = Default::default();
            n
        });
        self.buffered = self.buffered.saturating_sub(freed);
    }

    /// Fires `end_connection` once, if owed.
    fn passive_end(&mut self, key: &FlowKey, ctx: &Context) {
        let Some(flow) = self.passive.get_mut(key) else { return };
        if !std::mem::take(&mut flow.began) {
            return;
        }
        let info = flow.info.clone();
        if self.inspector.subscribed(Event::TcpEndConnection) {
            self.inspector.end(Event::TcpEndConnection, ctx, &info);
        }
    }

    /// Removes a connection for good (time-out, eviction, end of capture):
    /// its bytes never acknowledged go to rules, then `end_connection` and
    /// `forget`.
    pub(super) fn retire_passive(&mut self, mut flow: PassiveFlow, ctx: &Context, out: &mut Output) {
        self.buffered = self.buffered.saturating_sub(flow.buffered());
        if flow.began && !flow.judged {
            let info = flow.info.clone();
            for d in [Direction::Up, Direction::Down] {
                let pieces = flow.streams[d.index()].flush();
                let action = self.deliver(ctx, &info, d, pieces);
                if action >= Action::DropFlow {
                    // Put back so the judgment can read where each end stands.
                    let key = passive_key(&flow);
                    self.passive.insert(key, flow);
                    self.passive_judge(&key, action, ctx, out);
                    if let Some(f) = self.passive.remove(&key) {
                        self.inspector.forget(f.info.id);
                    }
                    return;
                }
            }
        }
        if flow.began {
            flow.began = false;
            if self.inspector.subscribed(Event::TcpEndConnection) {
                self.inspector.end(Event::TcpEndConnection, ctx, &flow.info);
            }
        }
        self.inspector.forget(flow.info.id);
    }
}

/// The flow key of a passive connection.
fn passive_key(flow: &PassiveFlow) -> FlowKey {
    use crate::flow::key::Endpoint;
    let client = Endpoint { addr: flow.info.src, port: flow.info.src_port };
    let server = Endpoint { addr: flow.info.dst, port: flow.info.dst_port };
    FlowKey::of(L4Proto::Tcp, client, server).0
}

fn piece_data_len(p: &Piece) -> u64 {
    match p {
        Piece::Data { bytes, .. } => bytes.len() as u64,
        Piece::Gap { .. } => 0,
    }
}
