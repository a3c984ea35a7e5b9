//! An [`Inspector`] wrapper for the engine harnesses: it passes every call
//! on to the rules inside (Lua, or none), adds a decision scripted by the
//! fuzz input, and records what rules were shown so the harness can check
//! it: the stream bytes of each flow and direction, and the order of the
//! connection events.
//!
//! It checks on the spot what the [`Inspector`] contract promises: no data
//! for a flow after its `end_connection` or after it was forgotten,
//! `end_connection` at most once and only for a flow whose `new_connection`
//! rules saw, `forget` once per flow.

use std::collections::{HashMap, HashSet};

use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::wire::Decoded;

/// What the recorder saw of one flow.
#[derive(Debug, Default)]
pub(super) struct FlowRecord {
    /// The flow as rules saw it at `new_connection`.
    pub(super) info: Option<FlowInfo>,
    /// Stream bytes shown to rules, per direction (index: `Direction::index`),
    /// by stream offset.
    pub(super) data: [Vec<u8>; 2],
    /// Stream offset of the next byte to show, per direction. A chunk whose
    /// packets were dropped (`DropPacket`) is shown again from its start
    /// when its bytes next become deliverable (`TcpStream::undeliver`).
    next: [usize; 2],
    pub(super) ended: bool,
    pub(super) forgotten: bool,
}

/// The wrapper: `inner` decides with the script, the records are kept.
pub(super) struct Recorder<I> {
    inner: I,
    /// Scripted decisions, one consumed per connection event.
    script: Vec<u8>,
    next: usize,
    pub(super) flows: HashMap<u64, FlowRecord>,
    /// Flow ids in the order `new_connection` showed them.
    pub(super) order: Vec<u64>,
    forgotten: HashSet<u64>,
}

impl<I: Inspector> Recorder<I> {
    /// Wraps `inner`; `script` holds one decision byte per connection event
    /// (0 drop packet, 1 drop flow, 2 half reset, 3 reset, else accept).
    pub(super) fn new(inner: I, script: Vec<u8>) -> Self {
        Recorder {
            inner,
            script,
            next: 0,
            flows: HashMap::new(),
            order: Vec::new(),
            forgotten: HashSet::new(),
        }
    }

    /// The next scripted decision: mostly accept.
    fn scripted(&mut self) -> Action {
        let b = self.script.get(self.next).copied().unwrap_or(u8::MAX);
        self.next += 1;
        match b {
            0 => Action::DropPacket,
            1 => Action::DropFlow,
            2 => Action::HalfReset,
            3 => Action::Reset,
            _ => Action::Accept,
        }
    }

    fn flow(&mut self, id: u64) -> &mut FlowRecord {
        assert!(!self.forgotten.contains(&id), "flow {id} used after forget");
        self.flows.entry(id).or_default()
    }
}

/// The connection events the recorder always hooks.
const RECORDED: [Event; 5] = [
    Event::TcpNewConnection,
    Event::TcpData,
    Event::TcpEndConnection,
    Event::UdpNewConnection,
    Event::UdpEndConnection,
];

impl<I: Inspector> Inspector for Recorder<I> {
    fn subscribed(&self, event: Event) -> bool {
        RECORDED.contains(&event) || self.inner.subscribed(event)
    }

    fn packet(
        &mut self,
        event: Event,
        ctx: &Context,
        pkt: &Decoded<'_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        let mut action = Action::Accept;
        if let Some((info, _)) = flow {
            let rec = self.flow(info.id);
            assert!(!rec.ended, "{event:?} for flow {} after its end_connection", info.id);
            if matches!(event, Event::TcpNewConnection | Event::UdpNewConnection) {
                assert!(rec.info.is_none(), "new_connection twice for flow {}", info.id);
                rec.info = Some(info.clone());
                self.order.push(info.id);
                action = self.scripted();
            }
        }
        if self.inner.subscribed(event) {
            action = action.combine(self.inner.packet(event, ctx, pkt, flow));
        }
        action
    }

    fn data(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, data: &[u8]) -> Action {
        let rec = self.flow(flow.id);
        assert!(!rec.ended, "receive_data for flow {} after its end_connection", flow.id);
        assert!(rec.info.is_some(), "receive_data for flow {} before new_connection", flow.id);
        let d = dir.index();
        let start = rec.next[d];
        for (i, &b) in data.iter().enumerate() {
            match rec.data[d].get(start + i) {
                // Shown again after a dropped chunk. The receiver never got
                // the dropped packet, so a retransmission with other bytes
                // is what it reads (the Linux receiver model takes it as
                // in-order data): the new bytes replace the recorded ones.
                Some(_) => rec.data[d][start + i] = b,
                None => rec.data[d].push(b),
            }
        }
        rec.next[d] = start + data.len();
        let mut action = self.scripted();
        if self.inner.subscribed(Event::TcpData) {
            action = action.combine(self.inner.data(ctx, flow, dir, data));
        }
        if action == Action::DropPacket {
            if let Some(rec) = self.flows.get_mut(&flow.id) {
                rec.next[d] = start;
            }
        }
        action
    }

    fn stream_end(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        assert!(!self.flow(flow.id).ended, "stream end for flow {} after its end_connection", flow.id);
        self.inner.stream_end(ctx, flow, dir)
    }

    fn gap(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, offset: u64, len: u64) -> Action {
        assert!(!self.flow(flow.id).ended, "gap for flow {} after its end_connection", flow.id);
        self.inner.gap(ctx, flow, dir, offset, len)
    }

    fn depth_reached(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        assert!(!self.flow(flow.id).ended, "depth_reached for flow {} after its end_connection", flow.id);
        self.inner.depth_reached(ctx, flow, dir)
    }

    fn end(&mut self, event: Event, ctx: &Context, flow: &FlowInfo) {
        let rec = self.flow(flow.id);
        assert!(!rec.ended, "end_connection twice for flow {}", flow.id);
        assert!(rec.info.is_some(), "end_connection for flow {} rules did not see begin", flow.id);
        rec.ended = true;
        if self.inner.subscribed(event) {
            self.inner.end(event, ctx, flow);
        }
    }

    fn forget(&mut self, flow_id: u64) {
        assert!(self.forgotten.insert(flow_id), "flow {flow_id} forgotten twice");
        if let Some(rec) = self.flows.get_mut(&flow_id) {
            rec.forgotten = true;
        }
        self.inner.forget(flow_id);
    }
}
