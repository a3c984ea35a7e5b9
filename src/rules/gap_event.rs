//! `tcp_connection.events.gap(flow, gap, dir)`: in passive analysis, bytes
//! of `dir`'s stream that the receiver acknowledged are missing from the
//! capture. `gap.offset` is the stream offset of the first missing byte
//! (offsets count every byte of the direction, gaps included), `gap.length`
//! the number missing.
//!
//! Nothing is ever joined across a gap: streamed rules of that direction
//! get the end of their stream (and start afresh on the bytes after the
//! gap, with `iter.meter` counting from there), partially consuming rules
//! get what they left, and a monologue of that direction ends there.

use mlua::{MultiValue, Value};

use super::per_direction::PerDirection;
use super::LuaRules;
use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo};

impl LuaRules {
    /// A gap of `len` bytes at `offset` in `info`'s `dir` stream.
    pub(super) fn on_gap(
        &mut self,
        cx: &Context,
        info: &FlowInfo,
        dir: Direction,
        offset: u64,
        len: u64,
    ) -> Action {
        if self.flows.has_ended(info.id) {
            return Action::Accept;
        }
        let (epoch, mut slot) = match self.open_connection_event(cx, info) {
            Ok(opened) => opened,
            Err(action) => return action,
        };
        let mut failed = self.finish_direction(epoch, &mut slot, dir);
        slot.dirs[dir.index()] =
            PerDirection { delivered: offset.saturating_add(len), ..PerDirection::default() };
        if slot.monologue.speaker() == Some(dir) {
            failed |= self.end_turn(epoch, &slot.ud, &mut slot.monologue);
        }
        if !self.rules[Event::TcpGap.index()].is_empty() && !self.budget.exhausted() {
            let gap = self.lua.create_table().and_then(|t| {
                t.raw_set("offset", offset)?;
                t.raw_set("length", len)?;
                Ok(t)
            });
            match gap {
                Ok(gap) => {
                    let dir_v = Value::String(self.dirs[dir.index()].clone());
                    let args =
                        MultiValue::from_iter([Value::UserData(slot.ud.clone()), Value::Table(gap), dir_v]);
                    failed |= self.call_rules(Event::TcpGap, args);
                }
                Err(e) => {
                    self.report_setup(&e);
                    failed = true;
                }
            }
        }
        self.flows.put_back(slot);
        self.finish(failed)
    }
}
