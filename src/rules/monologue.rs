//! Monologues (Net::Analysis's `tcp_monologue`): the bytes one side sent
//! between two turns of the conversation, as one event,
//! `tcp_connection.events.monologue(flow, data, dir, part)`.
//!
//! A turn ends when the other side starts sending, or when the connection
//! ends. The rules then get the whole turn. A turn longer than the cap
//! (`monologue_cap`, 1 MiB by default) comes in parts of the cap's size as
//! it grows; `part` says which: `part.index` (1, 2, ...), `part.last` (true
//! for a turn's last part), `part.offset` (stream offset of its first byte).
//!
//! The event fires during the event that shows the turn is over, so its
//! decisions act on the packet being processed then: the other side's first
//! packet of the next turn. Inline, the turn's own packets were already let
//! through; a rule can still reset the connection.

use mlua::Value;

use super::context::context;
use super::data::{DataUd, Source};
use super::LuaRules;
use crate::flow::Direction;
use crate::inspect::Event;
use mlua::AnyUserData;

/// The turn being spoken on one connection.
#[derive(Debug, Default)]
pub(super) struct Monologue {
    speaker: Option<Direction>,
    bytes: Vec<u8>,
    /// Stream offset of the first byte in `bytes`.
    offset: u64,
    /// Parts already handed out of this turn.
    parts: u32,
}

impl Monologue {
    /// The side speaking now, if any.
    pub(super) fn speaker(&self) -> Option<Direction> {
        self.speaker
    }
}

impl LuaRules {
    /// Adds a chunk of `dir` to the conversation; fires what it completes.
    /// True if a rule failed.
    pub(super) fn monologue_turn(
        &mut self,
        epoch: u64,
        flow: &AnyUserData,
        m: &mut Monologue,
        dir: Direction,
        bytes: &[u8],
        offset: u64,
    ) -> bool {
        let mut failed = false;
        if m.speaker.is_some_and(|s| s != dir) {
            failed |= self.end_turn(epoch, flow, m);
        }
        if m.speaker.is_none() {
            m.speaker = Some(dir);
            m.offset = offset;
        }
        m.bytes.extend_from_slice(bytes);
        while m.bytes.len() > self.monologue_cap {
            failed |= self.fire_part(epoch, flow, m, self.monologue_cap, false);
        }
        failed
    }

    /// Hands out the rest of the current turn, if any.
    pub(super) fn end_turn(&mut self, epoch: u64, flow: &AnyUserData, m: &mut Monologue) -> bool {
        let n = m.bytes.len();
        let failed = n > 0 && self.fire_part(epoch, flow, m, n, true);
        *m = Monologue::default();
        failed
    }

    /// Runs the monologue rules on the first `n` bytes of the turn.
    fn fire_part(&mut self, epoch: u64, flow: &AnyUserData, m: &mut Monologue, n: usize, last: bool) -> bool {
        let Some(dir) = m.speaker else { return false };
        m.parts += 1;
        let text: Vec<u8> = m.bytes.drain(..n).collect();
        let (index, offset) = (m.parts, m.offset);
        m.offset += n as u64;
        let lua = self.lua.clone();
        let mut failed = false;
        let rules = self.rules[Event::TcpMonologue.index()].clone();
        for (i, rule) in rules.iter().enumerate() {
            if self.budget.exhausted() {
                break;
            }
            let r = (|| {
                let part = lua.create_table()?;
                part.raw_set("index", index)?;
                part.raw_set("last", last)?;
                part.raw_set("offset", offset)?;
                let data =
                    lua.create_userdata(DataUd { epoch, source: Source::Stream, start: 0, len: text.len() })?;
                let dir_v = Value::String(self.dirs[dir.index()].clone());
                let ctx = context(&lua)?;
                ctx.data.lend_during(&text, || rule.eval.call::<()>((flow.clone(), data, dir_v, part)))
            })();
            if let Err(e) = r {
                self.rule_failed(Event::TcpMonologue, i, &e);
                failed = true;
            }
        }
        failed
    }
}
