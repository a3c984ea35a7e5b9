//! [`Lent`]: rules lent to one harness run's [`Engine`](crate::engine::Engine).
//!
//! The Lua harnesses build their rule state once per thread (loading the
//! rules costs far more than a run) and lend it to a fresh engine for each
//! input; the engine owns its inspector, so it gets this forwarding
//! reference instead of the rules themselves.

use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::wire::Decoded;

/// Forwards every [`Inspector`] call to the borrowed rules.
pub(super) struct Lent<'a, I>(pub(super) &'a mut I);

impl<I: Inspector> Inspector for Lent<'_, I> {
    fn subscribed(&self, event: Event) -> bool {
        self.0.subscribed(event)
    }

    fn packet(
        &mut self,
        event: Event,
        ctx: &Context,
        pkt: &Decoded<'_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        self.0.packet(event, ctx, pkt, flow)
    }

    fn data(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, data: &[u8]) -> Action {
        self.0.data(ctx, flow, dir, data)
    }

    fn stream_end(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        self.0.stream_end(ctx, flow, dir)
    }

    fn gap(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, offset: u64, len: u64) -> Action {
        self.0.gap(ctx, flow, dir, offset, len)
    }

    fn depth_reached(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        self.0.depth_reached(ctx, flow, dir)
    }

    fn end(&mut self, event: Event, ctx: &Context, flow: &FlowInfo) {
        self.0.end(event, ctx, flow)
    }

    fn forget(&mut self, flow_id: u64) {
        self.0.forget(flow_id)
    }
}
