//! What the Rust functions called from Lua can reach: the current event (its
//! serial number, packet bytes, data bytes, flow and the action decided so
//! far) and the sinks.
//!
//! The hot path reaches it through a [`Ctx`] handle held where it is needed
//! (the dispatcher, the closures of the per-event API functions, the flow
//! and view objects): a pointer, no lookup. The Lua state's app data holds
//! one more handle for the cold paths (`haka.alert`, `haka.rule`, ...),
//! which look it up by type with [`context`].
//!
//! Callbacks only ever take shared borrows of it; every field they change is
//! a `Cell`. The dispatcher fills the byte buffers (`RefCell::borrow_mut`)
//! only while no Lua code runs, so a callback can never meet a borrow
//! conflict; if one ever did, it becomes a Lua error, not a panic.

use std::cell::{Cell, RefCell};
use std::ops::Deref;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use mlua::{AppDataRef, Lua};

use super::error::located;
use super::lent::LentBytes;
use crate::alert::AlertSink;
use crate::inspect::{Action, FlowInfo};
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::wire::{Decoded, IpInfo, Transport};

/// Bits of the event serial that a `data` value keeps (event_data.rs packs
/// it beside a tag into a light userdata), so serials wrap there.
pub(super) const EPOCH_BITS: u32 = 56;

/// Low byte of a `data` value (event_data.rs, event_data_c.rs), beside the
/// event serial in the other 56 bits.
pub(super) const DATA_TAG: u64 = 0xda;

/// The name rules `require` the regular-expression module by (here, not in
/// `regexp.rs`, so the stream matcher can name it without a module cycle).
pub(super) const REGEXP_MODULE: &str = "regexp/pcre";

/// A copy of the packet of the current event. The buffer is reused from
/// event to event, so filling it does not allocate once it has grown.
#[derive(Debug)]
pub(super) struct PacketCopy {
    /// The IP packet.
    pub bytes: Vec<u8>,
    /// Network layer fields (`None` when the event has no packet).
    pub ip: Option<IpInfo>,
    /// Transport layer fields.
    pub transport: Transport,
}

impl PacketCopy {
    fn empty() -> Self {
        PacketCopy { bytes: Vec::new(), ip: None, transport: Transport::Other }
    }

    /// Copies `pkt` in.
    pub(super) fn fill(&mut self, pkt: &Decoded<'_>) {
        self.bytes.clear();
        self.bytes.extend_from_slice(pkt.bytes);
        self.ip = Some(pkt.ip.clone());
        self.transport = pkt.transport.clone();
    }
}

/// The state shared between the rule dispatcher and the Lua API functions.
pub(super) struct RuleContext {
    /// Serial of the event running now; 0 between events. Every packet, flow
    /// and data object carries the serial it was made for and refuses to
    /// work under another one, so a rule that keeps one never reads freed
    /// or foreign bytes.
    pub epoch: Cell<u64>,
    last_epoch: Cell<u64>,
    /// The strongest action rules decided so far in this event.
    pub action: Cell<Action>,
    /// Packet time of the event (alerts carry it).
    pub time: Cell<Timestamp>,
    /// The flow of the event, if it has one (alerts describe it).
    pub flow: RefCell<Option<FlowInfo>>,
    /// The packet of the event.
    pub packet: RefCell<PacketCopy>,
    /// TCP `receive_data`: the newly deliverable bytes, lent by the engine.
    pub data: LentBytes,
    /// True while the rule files run their top level (`haka.rule` is only
    /// allowed then).
    pub loading: Cell<bool>,
    /// Directory of the rule file (for `require` of rule-local modules).
    pub base_dir: Option<PathBuf>,
    /// Where alerts go.
    pub alerts: AlertSink,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Id of the last alert raised.
    pub last_alert_id: Cell<u64>,
}

impl RuleContext {
    /// A context with no event running.
    pub(super) fn new(base_dir: Option<PathBuf>, alerts: AlertSink, stats: Arc<Stats>) -> Self {
        RuleContext {
            epoch: Cell::new(0),
            last_epoch: Cell::new(0),
            action: Cell::new(Action::Accept),
            time: Cell::new(Timestamp::default()),
            flow: RefCell::new(None),
            packet: RefCell::new(PacketCopy::empty()),
            data: LentBytes::default(),
            loading: Cell::new(false),
            base_dir,
            alerts,
            stats,
            last_alert_id: Cell::new(0),
        }
    }

    /// Starts an event: a fresh serial, nothing decided yet.
    pub(super) fn begin(&self, time: Timestamp, flow: Option<&FlowInfo>) -> u64 {
        let e = (self.last_epoch.get().wrapping_add(1) & ((1 << EPOCH_BITS) - 1)).max(1);
        self.last_epoch.set(e);
        self.epoch.set(e);
        self.action.set(Action::Accept);
        self.time.set(time);
        *self.flow.borrow_mut() = flow.cloned();
        e
    }

    /// Ends the event: every object made for it goes stale.
    pub(super) fn end(&self) -> Action {
        self.epoch.set(0);
        *self.flow.borrow_mut() = None;
        self.action.get()
    }

    /// Records a decision of a rule.
    pub(super) fn decide(&self, a: Action) {
        self.action.set(self.action.get().combine(a));
    }

    /// Errors unless `epoch` is the running event's.
    pub(super) fn check_live(&self, lua: &Lua, epoch: u64, what: &str) -> mlua::Result<()> {
        if epoch != 0 && epoch == self.epoch.get() {
            Ok(())
        } else {
            Err(located(lua, format!("{what} object used after its event ended")))
        }
    }
}

/// A handle on the rule context of one Lua state, reached without a lookup.
///
/// Shared ownership keeps the context alive as long as anything that can
/// run (a closure in the state, an object, the dispatcher) holds a handle,
/// whatever order the state is torn down in.
#[derive(Clone)]
pub(super) struct Ctx(Rc<RuleContext>);

// SAFETY: every handle of one context is held by one Lua state (app data,
// the closures and userdata it owns) or by the `LuaRules` that owns that
// state. They are cloned, used and dropped only by code running for that
// state (mlua serialises it under the state's lock, `send` feature), and
// move between threads only together, when the `LuaRules` does; so the
// non-atomic count and the `Cell`s are never touched from two threads.
unsafe impl Send for Ctx {}

impl Ctx {
    /// A handle on a new context.
    pub(super) fn new(ctx: RuleContext) -> Self {
        Ctx(Rc::new(ctx))
    }

    /// The context's address (the C functions' upvalue, see
    /// `event_data_c.rs`), valid while any handle lives.
    pub(super) fn as_ptr(&self) -> *const RuleContext {
        Rc::as_ptr(&self.0)
    }
}

impl Deref for Ctx {
    type Target = RuleContext;

    fn deref(&self) -> &RuleContext {
        &self.0
    }
}

/// The rule context of `lua` (cold paths; the hot ones hold a [`Ctx`]).
pub(super) fn context(lua: &Lua) -> mlua::Result<AppDataRef<'_, Ctx>> {
    match lua.try_app_data_ref::<Ctx>() {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(mlua::Error::runtime("sluice rule context missing")),
        Err(e) => Err(mlua::Error::runtime(format!("sluice rule context busy: {e}"))),
    }
}
