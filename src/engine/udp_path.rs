//! The UDP path of the engine: flows with an idle timeout and the
//! `udp_connection` events.

use super::flow::{Fate, Flow, FlowKind};
use super::{flow_key, Engine, Verdict};
use crate::flow::L4Proto;
use crate::inspect::{Action, Context, Event, Inspector};
use crate::stats::Counter;
use crate::wire::{Decoded, UdpInfo};

impl<I: Inspector> Engine<I> {
    pub(super) fn udp(&mut self, pkt: &Decoded<'_>, u: &UdpInfo, ctx: &Context) -> Verdict {
        let (key, from_lo) = flow_key(pkt, L4Proto::Udp, u.src_port, u.dst_port);
        let deadline = ctx.time.saturating_add(self.config.udp_timeout);
        let first = match self.flows.get_mut(&key) {
            Some(flow) => {
                flow.deadline = deadline;
                if flow.fate != Fate::Inspect {
                    self.stats.inc(Counter::DropFlowDropped);
                    return Verdict::Drop;
                }
                false
            }
            None => {
                if !self.make_room(ctx) {
                    self.stats.inc(Counter::DropFlowLimit);
                    return Verdict::Drop;
                }
                let id = self.flows.next_id();
                let mut flow = Flow::new(id, &key, from_lo, FlowKind::Udp, ctx.time);
                flow.deadline = deadline;
                self.flows.insert(key, flow);
                self.stats.inc(Counter::UdpFlows);
                self.stats.set(Counter::FlowsActive, self.flows.len() as u64);
                true
            }
        };
        let Some(flow) = self.flows.get_mut(&key) else { return Verdict::Drop };
        let info = flow.info();
        let dir = flow.direction(from_lo);

        let mut action = Action::Accept;
        if first {
            if self.inspector.subscribed(Event::UdpNewConnection) {
                action = self.inspector.packet(Event::UdpNewConnection, ctx, pkt, Some((&info, dir)));
            }
            if action != Action::Accept {
                action = action.max(Action::DropFlow);
            } else if let Some(flow) = self.flows.get_mut(&key) {
                flow.began = true;
            }
        }
        if action == Action::Accept && self.inspector.subscribed(Event::UdpConnectionPacket) {
            action = self.inspector.packet(Event::UdpConnectionPacket, ctx, pkt, Some((&info, dir)));
        }
        if action == Action::Accept && u.payload_len > 0 && self.inspector.subscribed(Event::UdpData) {
            action = self.inspector.packet(Event::UdpData, ctx, pkt, Some((&info, dir)));
        }
        if action == Action::Accept {
            return Verdict::Accept;
        }
        self.stats.inc(Counter::DropRule);
        if action >= Action::DropFlow {
            // UDP has no reset; every flow-level decision drops the flow.
            self.end_connection_at(&key, ctx);
            if let Some(flow) = self.flows.get_mut(&key) {
                flow.fate = Fate::Dropped { reusable: false };
            }
            self.flows.requeue(key, info.id);
        }
        Verdict::Drop
    }
}
