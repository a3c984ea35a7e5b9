//! The end of a connection for the rules: each direction's stream ends
//! (streamed rules get Haka's EOF results, partially consuming rules their
//! last bytes), the turn being spoken ends (monologue rules), then the
//! `end_connection` rules run with the connection's flow object, and sluice
//! lets go of that object.

use mlua::{MultiValue, Value};

use super::LuaRules;
use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo};

impl LuaRules {
    /// `dir`'s stream of `info` ended (its FIN was delivered).
    pub(super) fn on_stream_end(&mut self, cx: &Context, info: &FlowInfo, dir: Direction) -> Action {
        if self.flows.has_ended(info.id) || !self.subscribed[Event::TcpData.index()] {
            return Action::Accept;
        }
        let (epoch, mut slot) = match self.open_connection_event(cx, info) {
            Ok(opened) => opened,
            Err(action) => return action,
        };
        let failed = self.finish_direction(epoch, &mut slot, dir);
        self.flows.put_back(slot);
        self.finish(failed)
    }

    /// `end_connection` of `info` (TCP or UDP).
    pub(super) fn on_end(&mut self, event: Event, cx: &Context, info: &FlowInfo) {
        if self.flows.has_ended(info.id) {
            return;
        }
        let (epoch, mut slot) = match self.open_connection_event(cx, info) {
            Ok(opened) => opened,
            Err(_) => {
                self.flows.end(info.id);
                return;
            }
        };
        let mut failed = false;
        if event == Event::TcpEndConnection {
            for dir in [Direction::Up, Direction::Down] {
                failed |= self.finish_direction(epoch, &mut slot, dir);
            }
            failed |= self.end_turn(epoch, &slot.ud, &mut slot.monologue);
        }
        if !self.rules[event.index()].is_empty() && !self.budget.exhausted() {
            failed |= self.call_rules(event, MultiValue::from_iter([Value::UserData(slot.ud.clone())]));
        }
        self.flows.put_back(slot);
        self.flows.end(info.id);
        // Decisions at the end of a connection have nothing left to act on.
        let _ = self.finish(failed);
    }
}
