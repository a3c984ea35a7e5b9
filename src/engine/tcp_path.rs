//! The TCP path of the engine: flow lookup and creation, the tracker's
//! checks, the connection events, in-order delivery to `receive_data`, and the
//! resets rules ask for.

use std::ops::Range;

use super::flow::{Fate, Flow, FlowKind};
use super::normalize;
use super::{flow_key, Engine, Output, PacketId, Verdict};
use crate::flow::{Direction, FlowKey, L4Proto};
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::stats::Counter;
use crate::tcp::auth_option::{self, AuthOption};
use crate::tcp::conn::Urgent;
use crate::tcp::{Arrival, Fit, ResetPoint, SegmentKind, TcpConn, TcpState};
use crate::wire::tcp_flags::{ACK, SYN};
use crate::wire::{forge, Decoded, SeqNumber, TcpInfo};

/// Stream bytes delivered but not yet shown to rules (see
/// [`Engine::process_batch`]): consecutive in-order segments of one direction,
/// whose packets wait for the rules' decision on the whole chunk.
#[derive(Debug)]
pub(super) struct PendingData {
    pub(super) key: FlowKey,
    dir: Direction,
    info: FlowInfo,
    range: Range<u64>,
    /// Sequence number of the chunk's first byte.
    start_seq: SeqNumber,
    /// Sequence number right after the chunk: where a joining segment starts.
    next_seq: SeqNumber,
    /// Each packet and the verdict it gets if rules accept the chunk.
    packets: Vec<(PacketId, Verdict)>,
    /// Reset point before the chunk's first packet.
    before: ResetPoint,
    /// The direction's urgent byte before the chunk's first packet (put
    /// back if rules drop the chunk: the receiver never sees its pointers).
    urgent_before: Option<u64>,
    ctx: Context,
}

impl<I: Inspector> Engine<I> {
    /// Shows pending stream data to rules and gives its packets their verdicts.
    pub(super) fn flush_pending(&mut self, out: &mut Output) {
        let Some(mut p) = self.pending.take() else { return };
        let exists = self.flows.get_mut(&p.key).is_some_and(|f| f.info.id == p.info.id);
        let action = match self.flows.get_mut(&p.key).and_then(|f| f.tcp()).and_then(|c| c.stream(p.dir)) {
            Some(s) if exists => {
                self.inspector.data(&p.ctx, &p.info, p.dir, s.read_bytes(p.range.clone(), &mut self.joined))
            }
            // The flow went away meanwhile: nobody saw these bytes.
            _ => Action::DropPacket,
        };
        let accepted = action == Action::Accept;
        if !accepted {
            self.stats.add(Counter::DropRule, p.packets.len() as u64);
            if exists && action >= Action::DropFlow {
                self.flow_action(&p.key, action, p.before, &p.ctx, out);
            } else if let Some(FlowKind::Tcp(conn)) = self.flows.get_mut(&p.key).map(|f| &mut f.kind) {
                conn.undeliver(p.dir, p.range.start);
                conn.restore_urgent(p.dir, p.urgent_before);
            }
        }
        for (id, v) in p.packets.drain(..) {
            self.emit(out, id, if accepted { v } else { Verdict::Drop });
        }
        // The emptied list, with its capacity, serves the next chunk.
        self.spare_packets = p.packets;
    }

    /// True if a segment of the pending flow can be handled without first
    /// showing the pending data to rules: the next in-order segment of the
    /// same direction, or a pure ACK from the other side (it changes nothing
    /// a forged RST would need).
    fn joins_pending(&self, key: &FlowKey, from_lo: bool, t: &TcpInfo, payload_len: usize) -> bool {
        let Some(p) = &self.pending else { return true };
        if p.key != *key {
            return true;
        }
        let Some(flow) = self.flows.get(key) else { return false };
        let dir = flow.direction(from_lo);
        if dir == p.dir {
            payload_len > 0 && t.seq == p.next_seq && !t.has(SYN) && !t.has(crate::wire::tcp_flags::RST)
        } else {
            // The receiver cannot have these bytes yet; an ACK claiming it
            // does would release them before rules saw them.
            payload_len == 0 && t.flags == ACK && t.ack <= p.start_seq
        }
    }

    pub(super) fn tcp(
        &mut self,
        pkt: &Decoded<'_>,
        t: &TcpInfo,
        ctx: &Context,
        checksum_partial: bool,
        out: &mut Output,
    ) -> Verdict {
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
                        return Verdict::Drop;
                    }
                    Fate::Inspect if opening && over => reuse = true,
                    Fate::Inspect => {}
                }
            }
            None if opening => {}
            None if self.config.tcp_midstream => {}
            None => {
                self.stats.inc(Counter::DropNoHandshake);
                return Verdict::Drop;
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
            return Verdict::Drop;
        }
        self.tcp_segment(&key, from_lo, pkt, t, ctx, checksum_partial, out)
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

    #[allow(clippy::too_many_arguments)]
    fn tcp_segment(
        &mut self,
        key: &FlowKey,
        from_lo: bool,
        pkt: &Decoded<'_>,
        t: &TcpInfo,
        ctx: &Context,
        checksum_partial: bool,
        out: &mut Output,
    ) -> Verdict {
        let payload = pkt.payload();
        let limits = self.stream_limits();
        let Some(flow) = self.flows.get_mut(key) else { return Verdict::Drop };
        let dir = flow.direction(from_lo);
        let FlowKind::Tcp(conn) = &mut flow.kind else { return Verdict::Drop };
        let auth = pkt.bytes.get(t.offset..t.offset + t.header_len).and_then(auth_option::find);
        if auth == Some(AuthOption::Md5) && conn.drops_auth_option(dir, t) {
            self.stats.inc(Counter::DropAuthOption);
            return Verdict::Drop;
        }
        if auth.is_some() && t.has(SYN) && !t.has(ACK) {
            conn.set_signed();
        }
        let arrival = Arrival { time: ctx.time, ttl: pkt.ip.ttl, uncertain: auth == Some(AuthOption::Ao) };
        let checked = match conn.check(dir, t, payload, limits, arrival) {
            Ok(c) => c,
            Err(reason) => {
                self.stats.inc(reason);
                return Verdict::Drop;
            }
        };
        let info = flow.info.clone();
        let first = !flow.announced;
        flow.announced = true;
        let mut before = ResetPoint::of(conn);
        if checked.kind == SegmentKind::Syn && before.client_sent.is_none() {
            // Not committed yet: the client's snd_nxt is after this SYN.
            before.client_sent = Some(t.seq + t.seq_len());
        }

        if first {
            // new_connection, once per connection, on its first accepted packet.
            let mut action = Action::Accept;
            if self.inspector.subscribed(Event::TcpNewConnection) {
                action = self.inspector.packet(Event::TcpNewConnection, ctx, pkt, Some((&info, dir)));
            }
            if action != Action::Accept {
                // Refusing the first packet refuses the connection.
                let action = action.max(Action::DropFlow);
                self.stats.inc(Counter::DropRule);
                self.flow_action(key, action, before, ctx, out);
                return Verdict::Drop;
            }
            flow.began = true;
        }

        if self.inspector.subscribed(Event::TcpConnectionPacket) {
            let action = self.inspector.packet(Event::TcpConnectionPacket, ctx, pkt, Some((&info, dir)));
            if action != Action::Accept {
                self.stats.inc(Counter::DropRule);
                if action >= Action::DropFlow {
                    self.flow_action(key, action, before, ctx, out);
                }
                return Verdict::Drop;
            }
        }

        if checked.growth > 0 && self.buffered + checked.growth > self.config.max_total_buffer {
            self.stats.inc(Counter::DropMemoryLimit);
            // The sender retransmits; make room for that if a stuck holder can go.
            self.reclaim_memory(key, ctx, out);
            return Verdict::Drop;
        }

        // `flow` and `conn` are still the ones looked up above: rules see the
        // packet but cannot touch the table, and the branches that change it
        // (`flow_action`) return.
        let was_established = conn.state() == TcpState::Established;
        let urgent_before = conn.urgent_of(dir);
        let fin_before = conn.stream(dir).is_some_and(|s| s.fin_delivered());
        let done = conn.commit(dir, t, payload, &checked, arrival);
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
                flow.progress[d.index()].update(s, ctx.time);
            }
        }
        if !payload.is_empty() {
            if checked.fit == Fit::Resolved {
                self.stats.inc(Counter::OverlapsResolved);
            }
            match (checked.fit, &done.deliver) {
                (Fit::Duplicate, _) => self.stats.inc(Counter::Retransmissions),
                (Fit::New | Fit::Resolved, None) if checked.kind == SegmentKind::Segment => {
                    self.stats.inc(Counter::OutOfOrder)
                }
                _ => {}
            }
        }
        let state = conn.state();
        flow.deadline = ctx.time.saturating_add(match state {
            TcpState::SynSent | TcpState::SynReceived => self.config.tcp_handshake_timeout,
            TcpState::Established => self.config.tcp_established_timeout,
            TcpState::Closed | TcpState::Reset => self.config.tcp_closing_timeout,
        });
        if was_established && state != TcpState::Established {
            self.flows.requeue(*key, info.id);
        }

        if let Some(range) = done.deliver {
            let n = range.end - range.start;
            self.stats.add(Counter::StreamBytes, n);
            if self.inspector.subscribed(Event::TcpData)
                && self.current.is_some()
                && !done.ended
                && !stream_ended
            {
                // Batch mode: the rules see this segment's bytes together
                // with the next in-order ones waiting in the same batch.
                let Some((start_seq, next_seq)) = seqs else { return Verdict::Drop };
                // Taking `current` tells the caller the verdict is deferred.
                let Some(id) = self.current.take() else { return Verdict::Drop };
                let verdict = final_verdict(&self.stats, pkt, checksum_partial, clear_urgent);
                match &mut self.pending {
                    Some(p) if p.key == *key && p.dir == dir && p.range.end == range.start => {
                        p.range.end = range.end;
                        p.next_seq = next_seq;
                        p.packets.push((id, verdict));
                        p.ctx = *ctx;
                    }
                    _ => {
                        self.flush_pending(out);
                        let mut packets = std::mem::take(&mut self.spare_packets);
                        packets.push((id, verdict));
                        self.pending = Some(PendingData {
                            key: *key,
                            dir,
                            info,
                            start_seq,
                            range,
                            next_seq,
                            packets,
                            before,
                            urgent_before,
                            ctx: *ctx,
                        });
                    }
                }
                return Verdict::Accept;
            }
            if self.inspector.subscribed(Event::TcpData) {
                if self.pending.as_ref().is_some_and(|p| p.key == *key) {
                    // Earlier bytes of this flow come first.
                    self.flush_pending(out);
                    if self.flows.get(key).is_none_or(|f| f.fate != Fate::Inspect) {
                        return Verdict::Drop;
                    }
                }
                let start = range.start;
                let Some(flow) = self.flows.get_mut(key) else { return Verdict::Drop };
                let Some(bytes) =
                    flow.tcp().and_then(|c| c.stream(dir)).map(|s| s.read_bytes(range, &mut self.joined))
                else {
                    return Verdict::Drop;
                };
                let action = self.inspector.data(ctx, &info, dir, bytes);
                if action != Action::Accept {
                    self.stats.inc(Counter::DropRule);
                    if action >= Action::DropFlow {
                        self.flow_action(key, action, before, ctx, out);
                    } else if let Some(FlowKind::Tcp(conn)) = self.flows.get_mut(key).map(|f| &mut f.kind) {
                        // Only this packet is dropped (a rule error under the
                        // drop policy): the receiver never gets these bytes,
                        // so their retransmission must face the rules again.
                        conn.undeliver(dir, start);
                        conn.restore_urgent(dir, urgent_before);
                    }
                    return Verdict::Drop;
                }
            }
        }

        if stream_ended && self.inspector.subscribed(Event::TcpData) {
            if let Some(v) = self.end_of_stream(key, &info, dir, before, ctx, out) {
                return v;
            }
        }

        if done.ended {
            self.end_connection_at(key, ctx);
        }

        final_verdict(&self.stats, pkt, checksum_partial, clear_urgent)
    }

    /// The FIN of `dir` was delivered: rules waiting for more bytes of that
    /// stream get its end, and their decision acts on the FIN's packet.
    /// `Some(verdict)` if they refused it.
    fn end_of_stream(
        &mut self,
        key: &FlowKey,
        info: &FlowInfo,
        dir: Direction,
        before: ResetPoint,
        ctx: &Context,
        out: &mut Output,
    ) -> Option<Verdict> {
        if self.pending.as_ref().is_some_and(|p| p.key == *key) {
            // Earlier bytes of this flow come first.
            self.flush_pending(out);
            if self.flows.get(key).is_none_or(|f| f.fate != Fate::Inspect) {
                return Some(Verdict::Drop);
            }
        }
        let action = self.inspector.stream_end(ctx, info, dir);
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
        let info = flow.info.clone();
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

/// The verdict of a segment that passed every check: accept, with urgent
/// data normalised away where the receiver model says so (`clear_urgent`).
fn final_verdict(
    stats: &crate::stats::Stats,
    pkt: &Decoded<'_>,
    checksum_partial: bool,
    clear_urgent: bool,
) -> Verdict {
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
