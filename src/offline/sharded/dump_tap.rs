//! `--dump-streams` with several workers: each worker's engine hands its
//! stream bytes to a [`DumpTap`] where one engine would hand them to the
//! stream dump; the tap keeps them, in order, for the merge, which plays
//! them into the one [`crate::stream_dump::StreamDump`] in input order. So
//! connections are numbered, and files and index lines written, exactly as
//! with one worker.

use std::cell::RefCell;
use std::rc::Rc;

use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::wire::Decoded;

/// One thing the stream dump must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DumpEvent {
    /// Bytes delivered to rules.
    Data(FlowInfo, Direction, Vec<u8>),
    /// `--passive`: bytes missing from the capture.
    Gap(FlowInfo, Direction, u64, u64),
    /// The flow left the table.
    Forget(u64),
}

/// The events a tap keeps until the worker takes them.
pub(super) type Tapped = Rc<RefCell<Vec<DumpEvent>>>;

/// An inspector wrapper that records what the stream dump would write
/// (when `on`), then hands every event to the rules as the dump does.
pub(super) struct DumpTap<I> {
    inner: I,
    on: bool,
    tapped: Tapped,
}

impl<I: Inspector> DumpTap<I> {
    /// Wraps `inner`; records into `tapped` only if `on`.
    pub(super) fn new(inner: I, on: bool, tapped: Tapped) -> Self {
        DumpTap { inner, on, tapped }
    }

    /// The rules.
    pub(super) fn inner(&self) -> &I {
        &self.inner
    }

    fn keep(&self, e: DumpEvent) {
        self.tapped.borrow_mut().push(e);
    }
}

impl<I: Inspector> Inspector for DumpTap<I> {
    fn subscribed(&self, event: Event) -> bool {
        (self.on && event == Event::TcpData) || self.inner.subscribed(event)
    }

    fn packet(
        &mut self,
        event: Event,
        ctx: &Context,
        pkt: &Decoded<'_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        self.inner.packet(event, ctx, pkt, flow)
    }

    fn data(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, data: &[u8]) -> Action {
        if self.on {
            self.keep(DumpEvent::Data(flow.clone(), dir, data.to_vec()));
            if !self.inner.subscribed(Event::TcpData) {
                return Action::Accept;
            }
        }
        self.inner.data(ctx, flow, dir, data)
    }

    fn stream_end(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        self.inner.stream_end(ctx, flow, dir)
    }

    fn gap(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, offset: u64, len: u64) -> Action {
        if self.on {
            self.keep(DumpEvent::Gap(flow.clone(), dir, offset, len));
        }
        self.inner.gap(ctx, flow, dir, offset, len)
    }

    fn depth_reached(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        self.inner.depth_reached(ctx, flow, dir)
    }

    fn end(&mut self, event: Event, ctx: &Context, flow: &FlowInfo) {
        self.inner.end(event, ctx, flow);
    }

    fn forget(&mut self, flow_id: u64) {
        if self.on {
            self.keep(DumpEvent::Forget(flow_id));
        }
        self.inner.forget(flow_id);
    }
}

/// Plays recorded events into the stream dump.
pub(super) fn play<I: Inspector>(
    dump: &mut crate::stream_dump::StreamDump<I>,
    events: impl Iterator<Item = DumpEvent>,
) {
    // The dump does not look at the time.
    let ctx = Context { time: crate::time::Timestamp::default() };
    for e in events {
        match e {
            DumpEvent::Data(flow, dir, bytes) => {
                dump.data(&ctx, &flow, dir, &bytes);
            }
            DumpEvent::Gap(flow, dir, offset, len) => {
                dump.gap(&ctx, &flow, dir, offset, len);
            }
            DumpEvent::Forget(id) => dump.forget(id),
        }
    }
}
