//! Calling the rules of an event: building the callback arguments, running
//! the event's policies and rules under the instruction budget, combining
//! their decisions, and turning rule errors into counted warnings and the
//! configured error action.

use mlua::{MultiValue, Value};

use super::carry;
use super::context::context;
use super::data::{DataUd, Source};
use super::error::error_message;
use super::flow::{self, FlowUd};
use super::packet::{Layer, PacketUd};
use super::LuaRules;
use crate::config::ErrorPolicy;
use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::stats::{Counter, Stats};
use crate::wire::Decoded;

/// What an event carries besides its flow.
enum Subject<'a, 'p> {
    Packet(&'a Decoded<'p>),
    Data(&'a [u8]),
    Nothing,
}

fn layer_of(event: Event) -> Layer {
    match event {
        Event::Ipv4Packet | Event::Ipv6Packet => Layer::Ip,
        Event::TcpPacket | Event::TcpNewConnection | Event::TcpConnectionPacket => Layer::Tcp,
        Event::UdpPacket | Event::UdpNewConnection | Event::UdpConnectionPacket | Event::UdpData => {
            Layer::Udp
        }
        Event::IcmpPacket => Layer::Icmp,
        Event::TcpData | Event::TcpEndConnection | Event::UdpEndConnection => Layer::Ip,
    }
}

/// The argument list of each event, as design.md's table gives it.
#[derive(Clone, Copy)]
enum Shape {
    Pkt,
    FlowPkt,
    FlowSubjectDir,
    Flow,
}

fn shape_of(event: Event) -> Shape {
    match event {
        Event::Ipv4Packet | Event::Ipv6Packet | Event::TcpPacket | Event::UdpPacket | Event::IcmpPacket => {
            Shape::Pkt
        }
        Event::TcpNewConnection | Event::UdpNewConnection => Shape::FlowPkt,
        Event::TcpConnectionPacket | Event::TcpData | Event::UdpConnectionPacket | Event::UdpData => {
            Shape::FlowSubjectDir
        }
        Event::TcpEndConnection | Event::UdpEndConnection => Shape::Flow,
    }
}

impl LuaRules {
    fn dispatch(
        &mut self,
        event: Event,
        cx: &Context,
        subject: Subject<'_, '_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        if !self.subscribed[event.index()] {
            return Action::Accept;
        }
        if let Subject::Data(bytes) = subject {
            let lua = self.lua.clone();
            let ctx = context(&lua);
            if let Ok(ctx) = &ctx {
                // Stream bytes are lent to the data objects for the event, not copied.
                return ctx.data.lend_during(bytes, || self.run_event(event, cx, subject, flow));
            }
            // Without a context, `run_event`'s setup fails and reports it.
        }
        self.run_event(event, cx, subject, flow)
    }

    fn run_event(
        &mut self,
        event: Event,
        cx: &Context,
        subject: Subject<'_, '_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        let idx = event.index();
        let epoch = match self.begin(cx, &subject, flow.map(|(f, _)| f)) {
            Ok(e) => e,
            Err(e) => {
                report(&self.stats, "(event setup)", 1, &e);
                return self.finish(true);
            }
        };
        let mut args = match self.arguments(event, epoch, &subject, flow) {
            Ok(a) => a,
            Err(e) => {
                report(&self.stats, "(event setup)", 1, &e);
                return self.finish(true);
            }
        };
        let mut failed = false;
        if let Some((f, _)) = flow {
            if let Err(e) =
                super::policy::run_connection_point(&self.lua, &self.policies[idx], f, args.front())
            {
                report(&self.stats, "(policy)", 1, &e);
                failed = true;
            }
        }
        // Only a policy can have refused the connection before the rules run.
        let refused = !self.policies[idx].is_empty()
            && context(&self.lua).map(|c| c.action.get() >= Action::DropFlow).unwrap_or(false);
        if !refused {
            let last = self.rules[idx].len().saturating_sub(1);
            for (i, rule) in self.rules[idx].iter_mut().enumerate() {
                // The last (usually the only) rule takes the arguments as they are.
                let call_args = if i == last { std::mem::take(&mut args) } else { args.clone() };
                if let Err(e) = rule.eval.call::<()>(call_args) {
                    rule.errors += 1;
                    report(&self.stats, &rule.label, rule.errors, &e);
                    failed = true;
                    if self.budget.exhausted() {
                        // Later rules would fail at once too.
                        break;
                    }
                }
            }
        }
        self.finish(failed)
    }

    /// Starts the event: fresh serial, packet buffer filled, budget reset.
    fn begin(&self, cx: &Context, subject: &Subject<'_, '_>, flow: Option<&FlowInfo>) -> mlua::Result<u64> {
        let ctx = context(&self.lua)?;
        let epoch = ctx.begin(cx.time, flow);
        let busy = |_| mlua::Error::runtime("rule buffers busy");
        match subject {
            Subject::Packet(p) => ctx.packet.try_borrow_mut().map_err(busy)?.fill(p),
            Subject::Data(_) | Subject::Nothing => {}
        }
        self.budget.reset();
        Ok(epoch)
    }

    fn arguments(
        &self,
        event: Event,
        epoch: u64,
        subject: &Subject<'_, '_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> mlua::Result<MultiValue> {
        let lua = &self.lua;
        let flow_v = match flow {
            Some((f, _)) => Value::UserData(lua.create_userdata(FlowUd { epoch, info: f.clone() })?),
            None => Value::Nil,
        };
        let dir_v = match flow {
            Some((_, d)) => Value::String(self.dirs[d.index()].clone()),
            None => Value::Nil,
        };
        let subject_v = match subject {
            Subject::Packet(p) => {
                let layer = Layer::for_packet(layer_of(event), &p.transport);
                Value::UserData(lua.create_userdata(PacketUd { epoch, layer })?)
            }
            Subject::Data(d) => Value::UserData(lua.create_userdata(DataUd {
                epoch,
                source: Source::Stream,
                start: 0,
                len: d.len(),
            })?),
            Subject::Nothing => Value::Nil,
        };
        Ok(match shape_of(event) {
            Shape::Pkt => MultiValue::from_iter([subject_v]),
            Shape::FlowPkt => MultiValue::from_iter([flow_v, subject_v]),
            Shape::FlowSubjectDir => MultiValue::from_iter([flow_v, subject_v, dir_v]),
            Shape::Flow => MultiValue::from_iter([flow_v]),
        })
    }

    /// Ends the event: its objects go stale; the decision, made stricter by
    /// the error policy if a rule failed.
    fn finish(&mut self, failed: bool) -> Action {
        let mut action = context(&self.lua).map(|c| c.end()).unwrap_or(Action::DropPacket);
        if failed {
            if self.on_error == ErrorPolicy::Drop {
                if action == Action::Accept {
                    // The error alone drops the packet (also counted in drop_rule).
                    self.stats.inc(Counter::DropRuleError);
                }
                action = action.combine(Action::DropPacket);
            }
            // A memory error may leave garbage; reclaim it before the next event.
            if self.lua.used_memory() > self.memory_limit / 2 {
                let _ = self.lua.gc_collect();
            }
        }
        action
    }
}

/// Counts a rule error and logs it. A rule failing on every packet would
/// flood the log, so each rule logs its first ten errors, then every
/// thousandth (the counter counts them all).
fn report(stats: &Stats, rule: &str, nth: u64, e: &mlua::Error) {
    stats.inc(Counter::RuleErrors);
    if nth <= 10 || nth % 1000 == 0 {
        tracing::warn!(target: "sluice::rules", rule = %rule, errors = nth, "rule error: {}", error_message(e));
    }
}

impl Inspector for LuaRules {
    fn subscribed(&self, event: Event) -> bool {
        self.subscribed[event.index()]
    }

    fn packet(
        &mut self,
        event: Event,
        ctx: &Context,
        pkt: &Decoded<'_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        self.dispatch(event, ctx, Subject::Packet(pkt), flow)
    }

    fn data(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, data: &[u8]) -> Action {
        self.dispatch(Event::TcpData, ctx, Subject::Data(data), Some((flow, dir)))
    }

    fn end(&mut self, event: Event, ctx: &Context, flow: &FlowInfo) {
        // Decisions at the end of a connection have nothing left to act on.
        let _ = self.dispatch(event, ctx, Subject::Nothing, Some((flow, Direction::Up)));
    }

    fn forget(&mut self, flow_id: u64) {
        if let Err(e) = flow::forget(&self.flow_states, flow_id) {
            tracing::warn!(target: "sluice::rules", "cannot free flow state: {}", error_message(&e));
        }
    }

    fn take_over(&mut self, previous: &mut LuaRules) {
        match carry::carry_flow_states(&previous.flow_states, &self.lua, &self.flow_states) {
            Ok(c) if c.left_out > 0 => tracing::warn!(
                target: "sluice::rules",
                "reload: carried the state of {} flows; left out {} values that are not plain data \
                 (functions, userdata, threads, metatables, nesting over {})",
                c.flows,
                c.left_out,
                carry::MAX_DEPTH
            ),
            Ok(c) => {
                tracing::info!(target: "sluice::rules", "reload: carried the state of {} flows", c.flows)
            }
            Err(e) => tracing::error!(
                target: "sluice::rules",
                "reload: per-flow state only partly carried: {}",
                error_message(&e)
            ),
        }
    }
}
