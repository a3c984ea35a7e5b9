//! The live connections as the rules know them: one flow object per
//! connection (Haka's identity), and the per-direction rule machinery that
//! lives as long as the connection (streamed coroutines, partial-consumption
//! carry, monologue buffers).
//!
//! A connection's entry is made at its first event and removed when it ends
//! (`end_connection`, or when the engine forgets it), which is when sluice
//! lets go of the flow object: tables that rules keyed weakly by it then
//! empty. Events of a connection that already ended (a late retransmission
//! after the FIN exchange) do not reach rules: the connection is over for
//! them, as it is in Haka.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ahash::RandomState;
use mlua::{AnyUserData, Lua, Table};

use super::flow::FlowUd;
use super::monologue::Monologue;
use super::per_direction::PerDirection;
use crate::flow::FlowIdSet;
use crate::inspect::FlowInfo;
use crate::time::Timestamp;

/// One live connection, boxed: the map of live connections then holds 16
/// bytes a bucket (there are up to twice as many buckets as connections: a
/// million idle connections made it 500 MB unboxed), and its growth, the
/// recent slot and taking it out for an event move a pointer.
pub(super) type Slot = Box<Connection>;

/// What the rules keep for one live connection.
pub(super) struct Connection {
    /// The engine's flow id.
    pub id: u64,
    /// Its flow object.
    pub ud: AnyUserData,
    /// The flow object's `last_activity` (microseconds).
    last_activity: Arc<AtomicU64>,
    /// Client → server (`up`) and server → client (`down`) machinery.
    pub dirs: [PerDirection; 2],
    /// The turn being spoken (monologue rules).
    pub monologue: Monologue,
}

/// The live connections, by engine flow id.
#[derive(Default)]
pub(super) struct Flows {
    live: HashMap<u64, Slot, RandomState>,
    /// The slot of the latest event, kept out of `live`: a connection's
    /// events come in runs (99.9% of the `receive_data` events of the bench
    /// capture follow one of the same connection), and this spares the map
    /// a removal and an insertion per event.
    recent: Option<Slot>,
    /// Connections whose `end_connection` ran but that the engine still
    /// holds (it keeps a closed tuple a while for late segments): some
    /// 750,000 on a busy gateway, kept as bits of a window of recent ids so
    /// that marking, forgetting and asking cost the same at any count.
    ended: FlowIdSet,
    /// State tables carried over from the previous rule state by a reload,
    /// waiting for their connection's next event.
    carried: HashMap<u64, Table, RandomState>,
    /// The state the flow objects live in (from the first one made): a
    /// flow's state table is reached through the Lua C API.
    lua: Option<Lua>,
}

impl Flows {
    /// True if `id`'s connection already ended for the rules.
    pub(super) fn has_ended(&self, id: u64) -> bool {
        if self.recent.as_ref().is_some_and(|s| s.id == id) {
            return false;
        }
        self.ended.contains(id)
    }

    /// Takes the slot of `info`'s connection out (made at its first event),
    /// so the rules of an event can use it while the registry stays free;
    /// [`Flows::put_back`] returns it.
    pub(super) fn take(&mut self, lua: &Lua, info: &FlowInfo, now: Timestamp) -> mlua::Result<Slot> {
        let recent = match self.recent.take() {
            Some(s) if s.id == info.id => Some(s),
            Some(other) => {
                self.live.insert(other.id, other);
                None
            }
            None => None,
        };
        if let Some(slot) = recent.or_else(|| self.live.remove(&info.id)) {
            slot.last_activity.store(now.0, Ordering::Relaxed);
            return Ok(slot);
        }
        if self.lua.is_none() {
            self.lua = Some(lua.clone());
        }
        let flow = FlowUd::new(info.clone(), now);
        let last_activity = flow.last_activity.clone();
        let ud = lua.create_userdata(flow)?;
        if let Some(state) = self.carried.remove(&info.id) {
            super::flow_fields::set_state(lua, &ud, state)?;
        }
        Ok(Box::new(Connection {
            id: info.id,
            ud,
            last_activity,
            dirs: Default::default(),
            monologue: Monologue::default(),
        }))
    }

    /// Returns a slot taken with [`Flows::take`].
    pub(super) fn put_back(&mut self, slot: Slot) {
        if let Some(other) = self.recent.replace(slot) {
            self.live.insert(other.id, other);
        }
    }

    /// The connection ended: its flow object goes stale and sluice lets go
    /// of it. Returns the slot, for the caller to wind down.
    pub(super) fn end(&mut self, id: u64) -> Option<Slot> {
        self.ended.insert(id);
        if !self.carried.is_empty() {
            self.carried.remove(&id);
        }
        let slot = match self.recent.take() {
            Some(s) if s.id == id => s,
            other => {
                self.recent = other;
                self.live.remove(&id)?
            }
        };
        if let Ok(f) = slot.ud.borrow::<FlowUd>() {
            f.ended.set(true);
        }
        // Nobody may read it now; without it every field access takes the
        // Rust path, which refuses an ended flow (flow_fields.rs).
        if let Some(lua) = &self.lua {
            if let Err(e) = super::flow_fields::clear_state(lua, &slot.ud) {
                tracing::warn!(target: "sluice::rules", "flow state not released: {e}");
            }
        }
        Some(slot)
    }

    /// The engine forgot the connection: nothing of it is left.
    pub(super) fn forget(&mut self, id: u64) -> Option<Slot> {
        let slot = self.end(id);
        self.ended.remove(id);
        slot
    }

    /// Number of live connections.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.live.len() + usize::from(self.recent.is_some())
    }

    /// The state table of every live connection (for a reload).
    pub(super) fn states(&self) -> impl Iterator<Item = (u64, Table)> + '_ {
        let live = self.live.values().chain(self.recent.as_ref()).filter_map(|s| {
            let state = super::flow_fields::state_of(self.lua.as_ref()?, &s.ud);
            state.ok().flatten().map(|t| (s.id, t))
        });
        live.chain(self.carried.iter().map(|(id, t)| (*id, t.clone())))
    }

    /// Takes state tables carried from a previous rule state.
    pub(super) fn receive_carried(&mut self, carried: HashMap<u64, Table, RandomState>) {
        self.carried = carried;
    }

    /// Streamed-rule coroutines still waiting for bytes (a reload ends them).
    pub(super) fn streamed_coroutines(&self) -> usize {
        use super::per_direction::Coroutine;
        let waiting =
            |d: &PerDirection| d.coroutines.iter().filter(|c| matches!(c, Coroutine::Waiting { .. })).count();
        self.live
            .values()
            .chain(self.recent.as_ref())
            .map(|s| s.dirs.iter().map(waiting).sum::<usize>())
            .sum()
    }
}
