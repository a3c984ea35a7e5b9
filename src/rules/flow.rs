//! Flow objects: the `flow` argument of connection events. As in Haka, a
//! connection has ONE flow object from `new_connection` to `end_connection`,
//! so rules may compare flows with `==` and key tables (strong or weak) by
//! them. `srcip dstip srcport dstport` describe the connection (src is the
//! client); `drop reset halfreset` decide its fate; any other field reads and
//! writes the flow's own state table (`flow.mystate = {...}`; `flow.data`
//! starts as an empty table).
//!
//! The state table is the userdata's Lua *user value* (see
//! `flow_fields.rs`), not a Rust-held reference: the garbage collector
//! traces it, so a state that refers back
//! to its flow (`flow.self = flow`) is still collected once nobody holds the
//! flow. sluice holds each live flow object in [`super::flows::Flows`] and
//! lets go of it when the connection ends; from then on the object refuses
//! to work, so a rule that kept one gets a clear error, never stale state.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mlua::{AnyUserData, Function, Lua, MetaMethod, UserData, UserDataFields, UserDataMethods, Value};

use super::addr::AddrUd;
use super::context::context;
use super::error::located;
use super::time::TimeUd;
use crate::inspect::{Action, FlowInfo};
use crate::time::Timestamp;

/// The flow object of one connection.
#[derive(Debug)]
pub(super) struct FlowUd {
    /// The connection.
    pub info: FlowInfo,
    /// Packet time of the first event rules saw of it.
    pub start: Timestamp,
    /// Packet time of the latest event of it (microseconds), shared with
    /// its slot in [`super::flows::Flows`], which sets it at every event
    /// without a borrow of the userdata.
    pub last_activity: Arc<AtomicU64>,
    /// Set when the connection ended: the object then refuses to work.
    pub ended: Cell<bool>,
}

const FIXED: [&str; 6] = ["srcip", "dstip", "srcport", "dstport", "start_time", "last_activity"];

impl FlowUd {
    /// A live flow object for `info`, first seen at `now`.
    pub(super) fn new(info: FlowInfo, now: Timestamp) -> Self {
        FlowUd { info, start: now, last_activity: Arc::new(AtomicU64::new(now.0)), ended: Cell::new(false) }
    }

    fn check_alive(&self, lua: &Lua) -> mlua::Result<()> {
        if self.ended.get() {
            return Err(located(lua, "flow object used after its connection ended"));
        }
        Ok(())
    }

    /// A decision acts on the packet of the running event, so it is only
    /// taken on that event's own flow.
    fn decide(&self, lua: &Lua, a: Action) -> mlua::Result<()> {
        self.check_alive(lua)?;
        let ctx = context(lua)?;
        let current = ctx.flow.try_borrow().map(|f| f.as_ref().map(|f| f.id)).unwrap_or(None);
        if current != Some(self.info.id) {
            return Err(located(
                lua,
                "flow:drop/reset/halfreset act on the packet being processed: call them on the flow of the running event",
            ));
        }
        ctx.decide(a);
        Ok(())
    }
}

/// A built-in field of `ud`, or what the state lacks: `(value, keep)`,
/// where `keep` asks the caller (the C `__index`) to store the value in the
/// state (`flow.data`'s first read). The state's own fields were looked up
/// before this is called.
fn get_field(lua: &Lua, ud: &AnyUserData, key: &mlua::String) -> mlua::Result<(Value, bool)> {
    let this = ud.borrow::<FlowUd>()?;
    this.check_alive(lua)?;
    let i = &this.info;
    let value = match &key.as_bytes()[..] {
        b"srcip" => Value::UserData(lua.create_userdata(AddrUd(i.src))?),
        b"dstip" => Value::UserData(lua.create_userdata(AddrUd(i.dst))?),
        b"srcport" => Value::Integer(i64::from(i.src_port)),
        b"dstport" => Value::Integer(i64::from(i.dst_port)),
        b"start_time" => Value::UserData(lua.create_userdata(TimeUd(this.start))?),
        b"last_activity" => {
            let t = Timestamp(this.last_activity.load(Ordering::Relaxed));
            Value::UserData(lua.create_userdata(TimeUd(t))?)
        }
        // `flow.data` is a table from the first read on.
        b"data" => return Ok((Value::Table(lua.create_table()?), true)),
        _ => Value::Nil,
    };
    Ok((value, false))
}

/// Checks a write to a field the state table did not take (there is none
/// yet, or the key is not a plain name); true if the value is to be kept
/// in the state (by the C `__newindex`, which makes the table).
fn set_field(lua: &Lua, ud: &AnyUserData, key: &mlua::String, value: &Value) -> mlua::Result<bool> {
    ud.borrow::<FlowUd>()?.check_alive(lua)?;
    if FIXED.iter().any(|f| key.as_bytes() == f.as_bytes()) {
        return Err(located(lua, format!("flow.{} is read-only", key.to_string_lossy())));
    }
    // Nil in a state that does not exist yet: nothing to do.
    Ok(!value.is_nil())
}

/// A decision method of flow objects (`flow:drop()` ...).
fn decision(lua: &Lua, a: Action) -> mlua::Result<Function> {
    lua.create_function(move |lua, ud: AnyUserData| ud.borrow::<FlowUd>()?.decide(lua, a))
}

/// The flow metatable's `__index`: methods, then the state table in C
/// (see `flow_fields.rs`), then [`get_field`].
fn index_function(lua: &Lua) -> mlua::Result<Function> {
    let methods = lua.create_table()?;
    methods.raw_set("drop", decision(lua, Action::DropFlow)?)?;
    methods.raw_set("reset", decision(lua, Action::Reset)?)?;
    methods.raw_set("halfreset", decision(lua, Action::HalfReset)?)?;
    let slow =
        lua.create_function(|lua, (ud, key): (AnyUserData, mlua::String)| get_field(lua, &ud, &key))?;
    super::flow_fields::index_function(lua, methods, slow)
}

/// The flow metatable's `__newindex`: the state table in C when it can,
/// else [`set_field`].
fn newindex_function(lua: &Lua) -> mlua::Result<Function> {
    let slow = lua.create_function(|lua, (ud, key, value): (AnyUserData, mlua::String, Value)| {
        set_field(lua, &ud, &key, &value)
    })?;
    super::flow_fields::newindex_function(lua, &FIXED, slow)
}

impl UserData for FlowUd {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with(MetaMethod::Index, index_function);
        fields.add_meta_field_with(MetaMethod::NewIndex, newindex_function);
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            let i = &this.info;
            Ok(format!("{} flow {}:{} > {}:{}", i.proto.name(), i.src, i.src_port, i.dst, i.dst_port))
        });
    }
}
