//! Calling the rules of an event: building the callback arguments, running
//! the event's policies and rules under the instruction budget, combining
//! their decisions, and turning rule errors into counted warnings and the
//! configured error action.

use mlua::{MultiValue, Value};

use super::carry;
use super::error::error_message;
use super::error_log::{log_rule_error, ErrorLineSink, RuleErrorLine};
use super::packet::{Layer, PacketUd};
use super::LuaRules;
use crate::config::ErrorPolicy;
use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, EventArgs, FlowInfo, Inspector};
use crate::stats::{Counter, Stats};
use crate::wire::Decoded;

/// What an event carries besides its flow.
enum Subject<'a, 'p> {
    Packet(&'a Decoded<'p>),
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
        if flow.is_some_and(|(f, _)| self.flows.has_ended(f.id)) {
            // The connection is over for the rules (late segments after
            // the FIN exchange): the engine decides alone.
            return Action::Accept;
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
        let Some(epoch) = self.start_event(cx, flow.map(|(f, _)| f)) else { return self.finish(true) };
        {
            let Subject::Packet(p) = &subject;
            let filled = self
                .ctx
                .packet
                .try_borrow_mut()
                .map_err(|_| mlua::Error::runtime("rule buffers busy"))
                .map(|mut b| b.fill(p));
            if let Err(e) = filled {
                self.report_setup(&e);
                return self.finish(true);
            }
        }
        let slot = match flow {
            Some((f, _)) => match self.flows.take(&self.lua, f, cx.time) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.report_setup(&e);
                    return self.finish(true);
                }
            },
            None => None,
        };
        let flow_v = slot.as_ref().map_or(Value::Nil, |s| Value::UserData(s.ud.clone()));
        let mut failed = false;
        match self.arguments(event, epoch, &subject, flow_v, flow.map(|(_, d)| d)) {
            Ok(args) => {
                if let Some((f, _)) = flow {
                    if let Err(e) =
                        super::policy::run_connection_point(&self.lua, &self.policies[idx], f, args.front())
                    {
                        report(&self.stats, self.error_lines.as_ref(), None, "(policy)", 1, &e);
                        failed = true;
                    }
                }
                // Only a policy can have refused the connection before the rules run.
                let refused = !self.policies[idx].is_empty() && self.ctx.action.get() >= Action::DropFlow;
                if !refused {
                    failed |= self.call_rules(event, args);
                }
            }
            Err(e) => {
                self.report_setup(&e);
                failed = true;
            }
        }
        if let Some(s) = slot {
            self.flows.put_back(s);
        }
        self.finish(failed)
    }

    /// Calls every rule of `event` with `args`. True if one failed.
    pub(super) fn call_rules(&mut self, event: Event, mut args: MultiValue) -> bool {
        let mut failed = false;
        let n = self.rules[event.index()].len();
        for i in 0..n {
            // The last (usually the only) rule takes the arguments as they are.
            let call_args = if i + 1 == n { std::mem::take(&mut args) } else { args.clone() };
            if let Err(e) = self.rules[event.index()][i].eval.call::<()>(call_args) {
                self.rule_failed(event, i, &e);
                failed = true;
                if self.budget.exhausted() {
                    // Later rules would fail at once too.
                    break;
                }
            }
        }
        failed
    }

    /// Counts and logs an error of rule `i` of `event`.
    pub(super) fn rule_failed(&mut self, event: Event, i: usize, e: &mlua::Error) {
        let Some(rule) = self.rules[event.index()].get_mut(i) else { return };
        rule.errors += 1;
        report(&self.stats, self.error_lines.as_ref(), Some(rule.order), &rule.label, rule.errors, e);
    }

    /// An event could not be set up (no rule ran).
    pub(super) fn report_setup(&self, e: &mlua::Error) {
        report(&self.stats, self.error_lines.as_ref(), None, "(event setup)", 1, e);
    }

    /// Starts an event of `info`'s connection and takes its slot out of
    /// the registry (the caller puts it back with `self.flows.put_back`).
    /// `Err(action)`: the event could not be set up; it is reported and
    /// finished, and `action` is its decision.
    pub(super) fn open_connection_event(
        &mut self,
        cx: &Context,
        info: &FlowInfo,
    ) -> Result<(u64, super::flows::Slot), Action> {
        let Some(epoch) = self.start_event(cx, Some(info)) else { return Err(self.finish(true)) };
        match self.flows.take(&self.lua, info, cx.time) {
            Ok(slot) => Ok((epoch, slot)),
            Err(e) => {
                self.report_setup(&e);
                Err(self.finish(true))
            }
        }
    }

    /// Starts an event: fresh serial, nothing decided, budget reset.
    pub(super) fn start_event(&self, cx: &Context, flow: Option<&FlowInfo>) -> Option<u64> {
        let epoch = self.ctx.begin(cx.time, flow);
        self.budget.reset();
        Some(epoch)
    }

    fn arguments(
        &self,
        event: Event,
        epoch: u64,
        subject: &Subject<'_, '_>,
        flow_v: Value,
        dir: Option<Direction>,
    ) -> mlua::Result<MultiValue> {
        let lua = &self.lua;
        let dir_v = match dir {
            Some(d) => Value::String(self.dirs[d.index()].clone()),
            None => Value::Nil,
        };
        let Subject::Packet(p) = subject;
        let layer = Layer::for_packet(Layer::of(event.layer()), &p.transport);
        let subject_v = Value::UserData(lua.create_userdata(PacketUd { epoch, layer })?);
        Ok(match event.args() {
            EventArgs::Packet => MultiValue::from_iter([subject_v]),
            EventArgs::FlowPacket => MultiValue::from_iter([flow_v, subject_v]),
            EventArgs::FlowSubjectDir => MultiValue::from_iter([flow_v, subject_v, dir_v]),
            EventArgs::Flow => MultiValue::from_iter([flow_v]),
            EventArgs::FlowDir => MultiValue::from_iter([flow_v, dir_v]),
        })
    }

    /// Ends the event: its objects go stale; the decision, made stricter by
    /// the error policy if a rule failed.
    pub(super) fn finish(&mut self, failed: bool) -> Action {
        let mut action = self.ctx.end();
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

/// Counts error `nth` of `rule` (see [`RuleErrorLine::rule`]) and logs it,
/// or hands it over to be logged. The message is made only when it is
/// logged or handed over: a rule failing on every packet logs few.
fn report(
    stats: &Stats,
    hand_over: Option<&ErrorLineSink>,
    rule: Option<usize>,
    label: &str,
    nth: u64,
    e: &mlua::Error,
) {
    stats.inc(Counter::RuleErrors);
    let message = || match e {
        // Lua gives no location for an allocation that failed: the rule is the location.
        mlua::Error::MemoryError(_) => format!("{label}: Lua memory limit exceeded"),
        _ => error_message(e),
    };
    match hand_over {
        Some(hand_over) => hand_over(RuleErrorLine { rule, label: label.to_string(), message: message() }),
        None => log_rule_error(label, nth, message),
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
        self.on_data(ctx, flow, dir, data)
    }

    fn stream_end(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        self.on_stream_end(ctx, flow, dir)
    }

    fn gap(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, offset: u64, len: u64) -> Action {
        self.on_gap(ctx, flow, dir, offset, len)
    }

    fn depth_reached(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        self.on_depth_reached(ctx, flow, dir)
    }

    fn end(&mut self, event: Event, ctx: &Context, flow: &FlowInfo) {
        self.on_end(event, ctx, flow);
    }

    fn forget(&mut self, flow_id: u64) {
        self.flows.forget(flow_id);
    }

    fn take_over(&mut self, previous: &mut LuaRules) {
        match carry::carry_flow_states(previous.flows.states(), &self.lua) {
            Ok((states, c)) => {
                self.flows.receive_carried(states);
                if c.left_out > 0 {
                    tracing::warn!(
                        target: "sluice::rules",
                        "reload: carried the state of {} flows; left out {} values that are not plain data \
                         (functions, userdata, threads, metatables, nesting over {})",
                        c.flows,
                        c.left_out,
                        carry::MAX_DEPTH
                    );
                } else {
                    tracing::info!(target: "sluice::rules", "reload: carried the state of {} flows", c.flows);
                }
            }
            Err(e) => tracing::error!(
                target: "sluice::rules",
                "reload: per-flow state not carried: {}",
                error_message(&e)
            ),
        }
        let streamed = previous.flows.streamed_coroutines();
        if streamed > 0 {
            tracing::warn!(
                target: "sluice::rules",
                "reload: ended {streamed} streamed-rule coroutines of the old rules; the new rules' streamed \
                 rules start on each connection's next bytes"
            );
        }
    }
}
