//! Batch state (see [`Engine::process_batch`]): stream bytes delivered but
//! not yet shown to rules, because the next in-order segments of the same
//! direction wait in the same batch. Their packets' verdicts wait for the
//! rules' decision on the whole chunk.

use std::ops::Range;

use super::flow::FlowKind;
use super::{Engine, Output, PacketId, Verdict};
use crate::flow::{Direction, FlowKey};
use crate::inspect::{Action, Context, FlowInfo, Inspector};
use crate::stats::Counter;
use crate::tcp::ResetPoint;
use crate::wire::tcp_flags::{ACK, RST, SYN};
use crate::wire::{SeqNumber, TcpInfo};

/// A segment's newly delivered bytes, as the batch records them.
#[derive(Debug)]
pub(super) struct Delivery {
    pub(super) key: FlowKey,
    pub(super) dir: Direction,
    pub(super) info: FlowInfo,
    pub(super) range: Range<u64>,
    pub(super) start_seq: SeqNumber,
    pub(super) next_seq: SeqNumber,
    pub(super) before: ResetPoint,
    pub(super) urgent_before: Option<u64>,
    pub(super) ctx: Context,
}

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
    /// Joins a segment's delivered bytes to the pending chunk (a new chunk
    /// if they do not continue it): its verdict waits for the rules'
    /// decision on the chunk.
    pub(super) fn defer(&mut self, id: PacketId, verdict: Verdict, d: Delivery, out: &mut Output) {
        match &mut self.pending {
            Some(p) if p.key == d.key && p.dir == d.dir && p.range.end == d.range.start => {
                p.range.end = d.range.end;
                p.next_seq = d.next_seq;
                p.packets.push((id, verdict));
                p.ctx = d.ctx;
            }
            _ => {
                self.flush_pending(out);
                let mut packets = std::mem::take(&mut self.spare_packets);
                packets.push((id, verdict));
                self.pending = Some(PendingData {
                    key: d.key,
                    dir: d.dir,
                    info: d.info,
                    start_seq: d.start_seq,
                    range: d.range,
                    next_seq: d.next_seq,
                    packets,
                    before: d.before,
                    urgent_before: d.urgent_before,
                    ctx: d.ctx,
                });
            }
        }
    }

    /// Shows pending stream data to rules and gives its packets their verdicts.
    pub(super) fn flush_pending(&mut self, out: &mut Output) {
        let Some(mut p) = self.pending.take() else { return };
        let exists = self.flows.get_mut(&p.key).is_some_and(|f| f.id() == p.info.id);
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
    pub(super) fn joins_pending(
        &self,
        key: &FlowKey,
        from_lo: bool,
        t: &TcpInfo,
        payload_len: usize,
    ) -> bool {
        let Some(p) = &self.pending else { return true };
        if p.key != *key {
            return true;
        }
        let Some(flow) = self.flows.get(key) else { return false };
        let dir = flow.direction(from_lo);
        if dir == p.dir {
            payload_len > 0 && t.seq == p.next_seq && !t.has(SYN) && !t.has(RST)
        } else {
            // The receiver cannot have these bytes yet; an ACK claiming it
            // does would release them before rules saw them.
            payload_len == 0 && t.flags == ACK && t.ack.at_or_before(p.start_seq)
        }
    }
}
