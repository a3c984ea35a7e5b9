//! TCP `receive_data`: the rules of one chunk of stream bytes, and the end of
//! a direction's stream.
//!
//! * Plain rules get `(flow, data, dir)`. A rule may return a count `n`:
//!   the last `#data - n` bytes are then handed to it again, ahead of the
//!   next bytes of that direction (Net::Inspect's partial consumption), and
//!   once more at the end of the stream.
//! * Streamed rules (`options = { streamed = true }`) run as one coroutine
//!   per rule, connection and direction, started at the first bytes with
//!   `(flow, iter, dir)`; each chunk resumes the ones waiting for bytes.
//!   Whatever they decide acts on the packet being processed: the one whose
//!   bytes let them go on.
//! * Monologue rules see each side's turns (see `monologue.rs`).
//!
//! All of them run in declaration order within the one event, under one
//! instruction budget, and their decisions combine.

use std::sync::Arc;

use mlua::{AnyUserData, Value};
use parking_lot::Mutex;

use super::error::located;
use super::flows::Slot;
use super::per_direction::{Coroutine, PerDirection};
use super::stream_buf::StreamBuf;
use super::stream_match;
use super::stream_objects::CursorUd;
use super::LuaRules;
use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo};

/// What one rule call came to.
pub(super) enum Outcome {
    Ran,
    Failed(mlua::Error),
}

impl LuaRules {
    /// `receive_data` for `bytes` of `flow`'s `dir` stream.
    pub(super) fn on_data(&mut self, cx: &Context, info: &FlowInfo, dir: Direction, bytes: &[u8]) -> Action {
        if self.flows.has_ended(info.id) {
            return Action::Accept;
        }
        let (epoch, mut slot) = match self.open_connection_event(cx, info) {
            Ok(opened) => opened,
            Err(action) => return action,
        };
        let mut failed = false;
        let chunk_start = slot.dirs[dir.index()].delivered;
        slot.dirs[dir.index()].delivered += bytes.len() as u64;
        if !self.rules[Event::TcpMonologue.index()].is_empty() {
            failed |= self.monologue_turn(epoch, &slot.ud, &mut slot.monologue, dir, bytes, chunk_start);
        }
        if !self.rules[Event::TcpData.index()].is_empty() {
            failed |= self.data_rules(epoch, &mut slot, dir, bytes, chunk_start);
        }
        self.flows.put_back(slot);
        self.finish(failed)
    }

    /// Runs the `receive_data` rules on one chunk. True if one failed.
    fn data_rules(
        &mut self,
        epoch: u64,
        slot: &mut Slot,
        dir: Direction,
        bytes: &[u8],
        chunk_start: u64,
    ) -> bool {
        // The chunk goes into the stream before any rule code runs, but a
        // rule waiting in `re:match(iter)` is fed it directly: when every
        // streamed rule is such a one and no longer needs the bytes, they
        // are never copied into the stream.
        let mut pending: &[u8] = &[];
        if self.streamed_rules > 0 {
            let d = &mut slot.dirs[dir.index()];
            d.stream.get_or_insert_with(|| Arc::new(Mutex::new(StreamBuf::new(chunk_start, self.max_held))));
            pending = bytes;
        }
        let mut failed = false;
        for i in 0..self.rules[Event::TcpData.index()].len() {
            if self.budget.exhausted() {
                break;
            }
            let d = &mut slot.dirs[dir.index()];
            let outcome = if self.rules[Event::TcpData.index()][i].streamed {
                if parked_waits(d, i, pending) {
                    continue;
                }
                push_pending(d, &mut pending);
                self.resume_streamed(i, &slot.ud, d, dir, chunk_start, false)
            } else {
                push_pending(d, &mut pending);
                self.plain_data_rule(i, epoch, &slot.ud, d, dir, bytes)
            };
            if let Outcome::Failed(e) = outcome {
                self.rule_failed(Event::TcpData, i, &e);
                failed = true;
            }
        }
        if let Some(s) = &slot.dirs[dir.index()].stream {
            let mut s = s.lock();
            if !pending.is_empty() {
                s.pass(pending);
            }
            s.trim();
        }
        failed
    }

    /// A plain `receive_data` rule: `(flow, data, dir)`, with what it left
    /// unconsumed last time in front of `bytes`.
    fn plain_data_rule(
        &mut self,
        i: usize,
        epoch: u64,
        flow: &AnyUserData,
        d: &mut PerDirection,
        dir: Direction,
        bytes: &[u8],
    ) -> Outcome {
        let carry = std::mem::take(d.carry(i));
        let joined;
        let view: &[u8] = if carry.is_empty() {
            bytes
        } else {
            joined = [carry.as_slice(), bytes].concat();
            &joined
        };
        let eval = &self.rules[Event::TcpData.index()][i].eval;
        let data = super::event_data::value(epoch);
        // Arguments by reference: no registry reference is made for them.
        let dir_s = &self.dirs[dir.index()];
        let ret = self.ctx.data.lend_during(view, || eval.call::<Value>((flow, data, dir_s)));
        match ret {
            Ok(v) => match self.consumed(&v, view.len()) {
                Ok(Some(n)) if n < view.len() => {
                    if view.len() - n > self.max_held {
                        return Outcome::Failed(located(
                            &self.lua,
                            format!(
                                "receive_data rule left {} bytes unconsumed, more than the {} a stream may hold",
                                view.len() - n,
                                self.max_held
                            ),
                        ));
                    }
                    *d.carry(i) = view[n..].to_vec();
                    Outcome::Ran
                }
                Ok(_) => Outcome::Ran,
                Err(e) => Outcome::Failed(e),
            },
            Err(e) => Outcome::Failed(e),
        }
    }

    /// The count a plain rule returned: how many bytes it consumed.
    fn consumed(&self, v: &Value, len: usize) -> mlua::Result<Option<usize>> {
        let n = match v {
            Value::Integer(n) => *n as f64,
            Value::Number(n) => *n,
            // Anything else (usually nothing) consumes everything.
            _ => return Ok(None),
        };
        if n.fract() != 0.0 || n < 0.0 || n > len as f64 {
            return Err(mlua::Error::runtime(format!(
                "receive_data eval returned {n}: a rule returns how many of the {len} bytes it consumed"
            )));
        }
        Ok(Some(n as usize))
    }

    /// Starts or resumes streamed rule `i` on one direction.
    fn resume_streamed(
        &mut self,
        i: usize,
        flow: &AnyUserData,
        d: &mut PerDirection,
        dir: Direction,
        start: u64,
        at_eof: bool,
    ) -> Outcome {
        let Some(stream) = d.stream.clone() else { return Outcome::Ran };
        let co = d.coroutine(i);
        let (thread, holder, resumed) = match std::mem::take(co) {
            Coroutine::Done => {
                *co = Coroutine::Done;
                return Outcome::Ran;
            }
            Coroutine::Waiting { thread, holder } => {
                if stream_match::stays_parked(&mut stream.lock(), holder, &[]) {
                    // Waiting in `re:match(iter)` for more than came.
                    *co = Coroutine::Waiting { thread, holder };
                    return Outcome::Ran;
                }
                let r = thread.resume::<Value>(());
                (thread, holder, r)
            }
            Coroutine::NotStarted => {
                if !at_eof && stream.lock().end() == start {
                    // Nothing new for it yet (an empty chunk).
                    return Outcome::Ran;
                }
                let eval = self.rules[Event::TcpData.index()][i].eval.clone();
                let started = (|| {
                    let cursor = CursorUd::new(&stream, start);
                    let holder = cursor.holder();
                    super::sub_buffer::install(&self.lua)?;
                    let cursor = self.lua.create_userdata(cursor)?;
                    let take = super::stream_objects::take_function(&self.lua, &cursor)?;
                    let iter: Value = self.new_iter.call((cursor, take))?;
                    let thread = self.lua.create_thread(eval)?;
                    let r = thread.resume::<Value>((flow, iter, &self.dirs[dir.index()]));
                    Ok::<_, mlua::Error>((thread, holder, r))
                })();
                match started {
                    Ok(t) => t,
                    Err(e) => {
                        *co = Coroutine::Done;
                        return Outcome::Failed(e);
                    }
                }
            }
        };
        match resumed {
            Ok(yielded) if thread.status() == mlua::ThreadStatus::Resumable => {
                // What it yields matters only if it waits in a regexp match.
                stream_match::park_if_token(&mut stream.lock(), holder, &yielded);
                *co = Coroutine::Waiting { thread, holder };
                Outcome::Ran
            }
            other => {
                *co = Coroutine::Done;
                stream.lock().release(holder);
                match other {
                    Err(e) => Outcome::Failed(e),
                    Ok(_) => Outcome::Ran,
                }
            }
        }
    }

    /// The end of `dir`'s stream: streamed rules resume with Haka's EOF
    /// results (and those that never ran start, as in Haka), and partially
    /// consuming rules get what they left. True if a rule failed.
    pub(super) fn finish_direction(&mut self, epoch: u64, slot: &mut Slot, dir: Direction) -> bool {
        let d = &mut slot.dirs[dir.index()];
        if d.finished {
            return false;
        }
        d.finished = true;
        let end = d.delivered;
        if self.streamed_rules > 0 {
            d.stream
                .get_or_insert_with(|| Arc::new(Mutex::new(StreamBuf::new(end, self.max_held))))
                .lock()
                .finish();
        }
        let mut failed = false;
        for i in 0..self.rules[Event::TcpData.index()].len() {
            if self.budget.exhausted() {
                break;
            }
            let d = &mut slot.dirs[dir.index()];
            let outcome = if self.rules[Event::TcpData.index()][i].streamed {
                self.resume_streamed(i, &slot.ud, d, dir, end, true)
            } else if d.carry.get(i).is_some_and(|c| !c.is_empty()) {
                // Handed once more; what it returns now has nowhere to go.
                let rest = std::mem::take(d.carry(i));
                let r = self.plain_data_rule(i, epoch, &slot.ud, d, dir, &rest);
                d.carry(i).clear();
                r
            } else {
                Outcome::Ran
            };
            if let Outcome::Failed(e) = outcome {
                self.rule_failed(Event::TcpData, i, &e);
                failed = true;
            }
        }
        failed
    }
}

/// True if streamed rule `i` waits in `re:match(iter)` on `d` and, fed
/// `pending` (the chunk, not in the stream yet), still waits.
fn parked_waits(d: &PerDirection, i: usize, pending: &[u8]) -> bool {
    match (&d.stream, d.coroutines.get(i)) {
        (Some(stream), Some(Coroutine::Waiting { holder, .. })) if !pending.is_empty() => {
            stream_match::stays_parked(&mut stream.lock(), *holder, pending)
        }
        _ => false,
    }
}

/// Puts the chunk into the stream, before rule code that may read it runs.
fn push_pending(d: &PerDirection, pending: &mut &[u8]) {
    if let (Some(stream), false) = (&d.stream, pending.is_empty()) {
        stream.lock().push(pending);
        *pending = &[];
    }
}
