//! The TCP path of the engine: flow lookup and creation, the tracker's
//! checks, the connection events, in-order delivery to `receive_data`, and the
//! resets rules ask for.

use std::ops::Range;

use super::batch::Delivery;
use super::depth;
use super::flow::{Fate, Flow, FlowKind};
use super::normalize;
use super::{flow_key, Engine, Outcome, Output, PacketId, Verdict};
use crate::config::Bypass;
use crate::flow::{Direction, FlowKey, L4Proto};
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::stats::{Counter, Stats};
use crate::tcp::auth_option::{self, AuthOption};
use crate::tcp::conn::Urgent;
use crate::tcp::{Arrival, Checked, Fit, ResetPoint, SegmentKind, StreamLimits, TcpConn, TcpState};
use crate::wire::tcp_flags::{ACK, SYN};
use crate::wire::{forge, Decoded, SeqNumber, TcpInfo};

impl<I: Inspector> Engine<I> {
    /// A TCP segment: its flow found or made, then [`Engine::tcp_segment`].
    /// `batch`: the packet's id when its verdict may wait for the rest of
    /// its batch chunk.
    pub(super) fn tcp(
        &mut self,
        pkt: &Decoded<'_>,
        t: &TcpInfo,
        ctx: &Context,
        checksum_partial: bool,
        batch: Option<PacketId>,
        out: &mut Output,
    ) -> Outcome {
        let (key, from_lo) = flow_key(pkt, L4Proto::Tcp, t.src_port, t.dst_port);
        if !self.joins_pending(&key, from_lo, t, pkt.payload().len()) {
            self.flush_pending(out);
        }
        let opening = t.has(SYN) && !t.has(ACK);
        let mut reuse = false;
        let mut exists = false;
        match self.flows.get_mut(&key) {
            Some(flow) => {
                exists = true;
                let over = flow.tcp().is_some_and(TcpConn::is_over);
                match flow.fate {
                    Fate::Dropped { reusable: true } if opening => reuse = true,
                    Fate::Dropped { .. } => {
                        flow.deadline = ctx.time.saturating_add(self.config.tcp_closing_timeout);
                        self.stats.inc(Counter::DropFlowDropped);
                        return Outcome::Now(Verdict::Drop);
                    }
                    Fate::Inspect if opening && over => reuse = true,
                    Fate::Inspect => {}
                }
            }
            None if opening => {}
            None if self.config.tcp_midstream => {}
            None => {
                self.stats.inc(Counter::DropNoHandshake);
                return Outcome::Now(Verdict::Drop);
            }
        }
        if reuse {
            // A new SYN on a tuple whose connection is over: the old one is
            // retired and the tuple starts afresh (RFC 6191 reuse from TIME-WAIT).
            if let Some(old) = self.flows.remove(&key) {
                self.retire(old, ctx);
            }
            exists = false;
        }
        if !exists && !self.new_tcp_flow(&key, from_lo, t, ctx) {
            return Outcome::Now(Verdict::Drop);
        }
        let seg = Segment { key, from_lo, pkt, t, ctx, checksum_partial };
        self.tcp_segment(&seg, batch, out)
    }

    /// Creates the flow for a SYN (or, midstream, any first packet).
    fn new_tcp_flow(&mut self, key: &FlowKey, from_lo: bool, t: &TcpInfo, ctx: &Context) -> bool {
        if !self.make_room(ctx) {
            self.stats.inc(Counter::DropFlowLimit);
            return false;
        }
        let opening = t.has(SYN) && !t.has(ACK);
        let client_is_sender = if opening {
            true
        } else {
            // Midstream: guess the client as the side with the higher,
            // non-well-known port; rules can still tell from the ports.
            let sender_is_server = t.src_port < 1024 && t.dst_port >= 1024;
            !sender_is_server
        };
        let client_is_lo = if client_is_sender { from_lo } else { !from_lo };
        // Each direction's receiver model, resolved once for the flow: the
        // server receives the client's data (Up), the client the server's.
        let (client, server) = if client_is_lo { (key.lo, key.hi) } else { (key.hi, key.lo) };
        let models = [self.config.receiver.lookup(server.addr), self.config.receiver.lookup(client.addr)];
        let conn = if opening {
            TcpConn::with_models(TcpState::SynSent, false, models)
        } else {
            TcpConn::with_models(TcpState::Established, true, models)
        };
        let id = self.flows.next_id();
        let mut flow = Flow::new(id, key, client_is_lo, FlowKind::Tcp(Box::new(conn)), ctx.time);
        flow.deadline = ctx.time.saturating_add(self.config.tcp_handshake_timeout);
        self.flows.insert(*key, flow);
        self.stats.inc(Counter::TcpConnections);
        self.stats.set(Counter::FlowsActive, self.flows.len() as u64);
        true
    }

    /// One segment of a tracked connection: admit (the tracker's checks),
    /// announce (the connection events), commit (the tracker takes it),
    /// deliver (`receive_data`, the end of a stream or of the connection).
    fn tcp_segment(&mut self, seg: &Segment<'_, '_>, batch: Option<PacketId>, out: &mut Output) -> Outcome {
        let limits = self.stream_limits();
        let Some(flow) = self.flows.get_mut(&seg.key) else { return Outcome::Now(Verdict::Drop) };
        let admitted = match admit(flow, seg, limits, &self.stats) {
            Ok(a) => a,
            Err(v) => return Outcome::Now(v),
        };
        if let Some(action) = announce(&mut self.inspector, &self.stats, flow, seg, &admitted) {
            if action >= Action::DropFlow {
                self.flow_action(&seg.key, action, admitted.before, seg.ctx, out);
            }
            return Outcome::Now(Verdict::Drop);
        }
        if admitted.checked.growth > 0
            && self.buffered + admitted.checked.growth > self.config.max_total_buffer
        {
            self.stats.inc(Counter::DropMemoryLimit);
            // The sender retransmits; make room for that if a stuck holder can go.
            self.reclaim_memory(&seg.key, seg.ctx, out);
            return Outcome::Now(Verdict::Drop);
        }
        let done = self.commit(seg, &admitted);
        let outcome = self.deliver_segment(seg, &admitted, done, batch, out);
        if self.config.bypass != Bypass::Off && !matches!(outcome, Outcome::Now(Verdict::Drop)) {
            self.note_bypass(&seg.key);
        }
        outcome
    }

    /// The tracker takes the segment; the connection's bookkeeping follows.
    fn commit(&mut self, seg: &Segment<'_, '_>, a: &Admitted) -> Done {
        let Some(flow) = self.flows.get_mut(&seg.key) else { return Done::default() };
        let FlowKind::Tcp(conn) = &mut flow.kind else { return Done::default() };
        let (dir, t, payload) = (a.dir, seg.t, seg.pkt.payload());
        let was_established = conn.state() == TcpState::Established;
        let urgent_before = conn.urgent_of(dir);
        let fin_before = conn.stream(dir).is_some_and(|s| s.fin_delivered());
        let done = conn.commit(dir, t, payload, &a.checked, a.arrival);
        // This segment completed the direction's stream (its FIN is now in order).
        let stream_ended = !fin_before && conn.stream(dir).is_some_and(|s| s.fin_delivered());
        let clear_urgent = match done.urgent {
            Urgent::Clear => true,
            Urgent::Hidden(_) => {
                self.stats.inc(Counter::UrgentHidden);
                false
            }
            Urgent::None => false,
        };
        if done.syn_data_forgotten > 0 {
            self.stats.inc(Counter::SynDataForgotten);
        }
        // Where the delivered bytes sit in sequence space (for joining them
        // to a pending chunk), read while the connection is at hand.
        let seqs = done
            .deliver
            .as_ref()
            .and_then(|r| conn.stream(dir).map(|s| (s.seq_at(r.start), s.seq_at(r.end))));
        self.buffered = (self.buffered + done.grown).saturating_sub(done.freed);
        for d in [Direction::Up, Direction::Down] {
            if let Some(s) = conn.stream(d) {
                flow.progress.update(d, s, seg.ctx.time);
            }
        }
        if !payload.is_empty() {
            count_fit(&self.stats, &a.checked, done.deliver.is_some());
        }
        let state = conn.state();
        flow.deadline = seg.ctx.time.saturating_add(match state {
            TcpState::SynSent | TcpState::SynReceived => self.config.tcp_handshake_timeout,
            TcpState::Established => self.config.tcp_established_timeout,
            TcpState::Closed | TcpState::Reset => self.config.tcp_closing_timeout,
        });
        if was_established && state != TcpState::Established {
            self.flows.requeue(seg.key, a.info.id);
        }
        Done { deliver: done.deliver, seqs, ended: done.ended, stream_ended, clear_urgent, urgent_before }
    }

    /// Shows what the segment made deliverable to rules, now or with the
    /// rest of its batch chunk, then ends the stream or the connection if
    /// the segment did.
    fn deliver_segment(
        &mut self,
        seg: &Segment<'_, '_>,
        a: &Admitted,
        done: Done,
        batch: Option<PacketId>,
        out: &mut Output,
    ) -> Outcome {
        let hooked = self.inspector.subscribed(Event::TcpData);
        let cut = done.deliver.clone().map(|r| depth::cut(self.config.stream_depth, r, &self.stats));
        let crossed = cut.as_ref().is_some_and(|c| c.crossed);
        if let Some(range) = cut.and_then(|c| c.within) {
            self.stats.add(Counter::StreamBytes, range.end - range.start);
            match (hooked, batch, done.seqs) {
                (true, Some(id), Some((start_seq, next_seq)))
                    if !done.ended && !done.stream_ended && !crossed =>
                {
                    // Batch mode: the rules see this segment's bytes together
                    // with the next in-order ones waiting in the same batch.
                    let d = Delivery {
                        key: seg.key,
                        dir: a.dir,
                        info: a.info.clone(),
                        range,
                        start_seq,
                        next_seq,
                        before: a.before,
                        urgent_before: done.urgent_before,
                        ctx: *seg.ctx,
                    };
                    let v = final_verdict(&self.stats, seg.pkt, seg.checksum_partial, done.clear_urgent);
                    self.defer(id, v, d, out);
                    return Outcome::Deferred;
                }
                (true, _, _) => {
                    if let Some(v) = self.data_now(seg, a, range, done.urgent_before, out) {
                        return Outcome::Now(v);
                    }
                }
                (false, _, _) => {}
            }
        }
        if crossed {
            let past_depth = |i: &mut I| i.depth_reached(seg.ctx, &a.info, a.dir);
            if let Some(v) = self.direction_event(&seg.key, a.before, seg.ctx, out, past_depth) {
                return Outcome::Now(v);
            }
        }
        if done.stream_ended && hooked {
            // Rules waiting for more bytes of that stream get its end.
            let stream_end = |i: &mut I| i.stream_end(seg.ctx, &a.info, a.dir);
            if let Some(v) = self.direction_event(&seg.key, a.before, seg.ctx, out, stream_end) {
                return Outcome::Now(v);
            }
        }
        if done.ended {
            self.end_connection_at(&seg.key, seg.ctx);
        }
        Outcome::Now(final_verdict(&self.stats, seg.pkt, seg.checksum_partial, done.clear_urgent))
    }

    /// `receive_data` for `range` of the segment's direction, now. `Some`
    /// verdict if the rules refused the bytes.
    fn data_now(
        &mut self,
        seg: &Segment<'_, '_>,
        a: &Admitted,
        range: Range<u64>,
        urgent_before: Option<u64>,
        out: &mut Output,
    ) -> Option<Verdict> {
        let key = &seg.key;
        if self.pending.as_ref().is_some_and(|p| p.key == *key) {
            // Earlier bytes of this flow come first.
            self.flush_pending(out);
            if self.flows.get(key).is_none_or(|f| f.fate != Fate::Inspect) {
                return Some(Verdict::Drop);
            }
        }
        let start = range.start;
        let flow = self.flows.get_mut(key)?;
        let Some(stream) = flow.tcp().and_then(|c| c.stream(a.dir)) else {
            return Some(Verdict::Drop);
        };
        // The rules just dropped the earlier bytes (flushed above): the
        // receiver lacks them, so these are no longer their sequel. Dropped
        // like them, to come back after them (fuzz regression
        // tcp_engine/fin-after-dropped-batch-shown-as-sequel).
        let rewound = stream.delivered() < range.end;
        let action = if rewound {
            Action::DropPacket
        } else {
            self.inspector.data(seg.ctx, &a.info, a.dir, stream.read_bytes(range, &mut self.joined))
        };
        if action == Action::Accept {
            return None;
        }
        self.stats.inc(Counter::DropRule);
        if action >= Action::DropFlow {
            self.flow_action(key, action, a.before, seg.ctx, out);
        } else if let Some(conn) = self.flows.get_mut(key).and_then(|f| f.tcp_mut()) {
            // Only this packet is dropped (a rule error under the drop
            // policy): the receiver never gets these bytes, so their
            // retransmission must face the rules again.
            conn.undeliver(a.dir, start);
            conn.restore_urgent(a.dir, urgent_before);
        }
        Some(Verdict::Drop)
    }

    /// A direction event of the flow at `key` (its FIN was delivered, or it
    /// passed the stream depth): rules hear of it after any pending bytes
    /// of the flow, and their decision acts on the packet that caused it.
    /// `Some(verdict)` if they refused it.
    pub(super) fn direction_event(
        &mut self,
        key: &FlowKey,
        before: ResetPoint,
        ctx: &Context,
        out: &mut Output,
        event: impl FnOnce(&mut I) -> Action,
    ) -> Option<Verdict> {
        if self.pending.as_ref().is_some_and(|p| p.key == *key) {
            // Earlier bytes of this flow come first.
            self.flush_pending(out);
            if self.flows.get(key).is_none_or(|f| f.fate != Fate::Inspect) {
                return Some(Verdict::Drop);
            }
        }
        let action = event(&mut self.inspector);
        if action == Action::Accept {
            return None;
        }
        self.stats.inc(Counter::DropRule);
        if action >= Action::DropFlow {
            self.flow_action(key, action, before, ctx, out);
        }
        Some(Verdict::Drop)
    }

    /// Applies a flow-level decision: drop, reset or half-reset.
    pub(super) fn flow_action(
        &mut self,
        key: &FlowKey,
        action: Action,
        at: ResetPoint,
        ctx: &Context,
        out: &mut Output,
    ) {
        let Some(flow) = self.flows.get_mut(key) else { return };
        let info = flow.info();
        flow.fate = Fate::Dropped { reusable: matches!(action, Action::Reset) };
        flow.deadline = ctx.time.saturating_add(self.config.tcp_closing_timeout);
        let mut forged = Vec::new();
        match action {
            // The server never saw this connection; only a client in
            // SYN-SENT needs telling, with an RST acknowledging its SYN.
            Action::Reset if at.state == TcpState::SynSent => {
                if let Some(ack) = at.client_sent {
                    forged.push(rst_to(&info, Direction::Down, SeqNumber(0), Some(ack)));
                }
            }
            Action::HalfReset if at.state == TcpState::SynSent => {}
            Action::Reset | Action::HalfReset => {
                // Haka's order: the client's RST first (tcp_connection.lua, reset()).
                if action == Action::Reset {
                    if let Some(seq) = at.client_next {
                        forged.push(rst_to(&info, Direction::Down, seq, at.server_next));
                    }
                }
                if let Some(seq) = at.server_next {
                    forged.push(rst_to(&info, Direction::Up, seq, at.client_next));
                    // If the server did not get everything sluice let through
                    // (loss after sluice), its rcv_nxt is its last ACK.
                    if let Some(acked) = at.server_acked.filter(|a| *a != seq) {
                        forged.push(rst_to(&info, Direction::Up, acked, at.client_next));
                    }
                }
            }
            _ => {}
        }
        for p in forged {
            self.forge(out, p);
        }
        self.end_connection_at(key, ctx);
        self.flows.requeue(*key, info.id);
    }
}

/// A segment on its way through the TCP path.
struct Segment<'a, 'p> {
    key: FlowKey,
    from_lo: bool,
    pkt: &'a Decoded<'p>,
    t: &'a TcpInfo,
    ctx: &'a Context,
    checksum_partial: bool,
}

/// A segment the tracker accepted (not committed yet).
struct Admitted {
    dir: Direction,
    checked: Checked,
    arrival: Arrival,
    info: FlowInfo,
    /// Where the ends stood before it: where a forged RST must go.
    before: ResetPoint,
    /// It is the connection's first accepted packet.
    first: bool,
}

/// What committing a segment did, as delivery needs it.
#[derive(Default)]
struct Done {
    deliver: Option<Range<u64>>,
    /// Sequence numbers of the delivered range's start and end.
    seqs: Option<(SeqNumber, SeqNumber)>,
    ended: bool,
    stream_ended: bool,
    clear_urgent: bool,
    urgent_before: Option<u64>,
}

/// The tracker's checks, those a receiver applies: `Err(verdict)` if it
/// would discard the segment.
fn admit(
    flow: &mut Flow,
    seg: &Segment<'_, '_>,
    limits: StreamLimits,
    stats: &Stats,
) -> Result<Admitted, Verdict> {
    let (pkt, t) = (seg.pkt, seg.t);
    let dir = flow.direction(seg.from_lo);
    let info = flow.info();
    let first = !flow.announced;
    let Some(conn) = flow.tcp_mut() else { return Err(Verdict::Drop) };
    let auth = pkt.bytes.get(t.offset..t.offset + t.header_len).and_then(auth_option::find);
    if auth == Some(AuthOption::Md5) && conn.drops_auth_option(dir, t) {
        stats.inc(Counter::DropAuthOption);
        return Err(Verdict::Drop);
    }
    if auth.is_some() && t.has(SYN) && !t.has(ACK) {
        conn.set_signed();
    }
    let arrival = Arrival { time: seg.ctx.time, ttl: pkt.ip.ttl, uncertain: auth == Some(AuthOption::Ao) };
    let checked = conn.check(dir, t, pkt.payload(), limits, arrival).map_err(|reason| {
        stats.inc(reason);
        Verdict::Drop
    })?;
    let mut before = ResetPoint::of(conn);
    if checked.kind == SegmentKind::Syn && before.client_sent.is_none() {
        // Not committed yet: the client's snd_nxt is after this SYN.
        before.client_sent = Some(t.seq + t.seq_len());
    }
    flow.announced = true;
    Ok(Admitted { dir, checked, arrival, info, before, first })
}

/// The connection events of an admitted segment: `new_connection` on the
/// connection's first packet, then `receive_packet`. `Some(action)` if the
/// rules refused it (at `new_connection`, refusing the packet refuses the
/// connection).
fn announce<I: Inspector>(
    inspector: &mut I,
    stats: &Stats,
    flow: &mut Flow,
    seg: &Segment<'_, '_>,
    a: &Admitted,
) -> Option<Action> {
    let flow_arg = Some((&a.info, a.dir));
    if a.first {
        let mut action = Action::Accept;
        if inspector.subscribed(Event::TcpNewConnection) {
            action = inspector.packet(Event::TcpNewConnection, seg.ctx, seg.pkt, flow_arg);
        }
        if action != Action::Accept {
            stats.inc(Counter::DropRule);
            return Some(action.max(Action::DropFlow));
        }
        flow.began = true;
    }
    if inspector.subscribed(Event::TcpConnectionPacket) {
        let action = inspector.packet(Event::TcpConnectionPacket, seg.ctx, seg.pkt, flow_arg);
        if action != Action::Accept {
            stats.inc(Counter::DropRule);
            return Some(action);
        }
    }
    None
}

/// Counts what a segment with payload was: a retransmission, out of order,
/// an overlap the receiver model resolved.
fn count_fit(stats: &Stats, checked: &Checked, delivered: bool) {
    if checked.fit == Fit::Resolved {
        stats.inc(Counter::OverlapsResolved);
    }
    match (checked.fit, delivered) {
        (Fit::Duplicate, _) => stats.inc(Counter::Retransmissions),
        (Fit::New | Fit::Resolved, false) if checked.kind == SegmentKind::Segment => {
            stats.inc(Counter::OutOfOrder)
        }
        _ => {}
    }
}

/// The verdict of a segment that passed every check: accept, with urgent
/// data normalised away where the receiver model says so (`clear_urgent`).
fn final_verdict(stats: &Stats, pkt: &Decoded<'_>, checksum_partial: bool, clear_urgent: bool) -> Verdict {
    if clear_urgent && normalize::has_urgent(pkt) {
        if let Some(bytes) = normalize::clear_urgent(pkt, checksum_partial) {
            stats.inc(Counter::UrgentCleared);
            return Verdict::AcceptModified(bytes);
        }
        return Verdict::Drop;
    }
    Verdict::Accept
}

#[cfg(test)]
#[path = "receiver_tests.rs"]
mod receiver_tests;

/// An RST travelling in `dir` (Up: to the server, from the client's address).
fn rst_to(info: &FlowInfo, dir: Direction, seq: SeqNumber, ack: Option<SeqNumber>) -> Vec<u8> {
    match dir {
        Direction::Up => forge::rst(info.src, info.src_port, info.dst, info.dst_port, seq, ack),
        Direction::Down => forge::rst(info.dst, info.dst_port, info.src, info.src_port, seq, ack),
    }
}
