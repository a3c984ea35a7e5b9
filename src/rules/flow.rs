//! Flow objects: the `flow` argument of connection events. `srcip dstip
//! srcport dstport` describe the connection (src is the client);
//! `drop reset halfreset` decide its fate; any other field reads and writes a
//! per-flow Lua table kept until the engine forgets the flow
//! (`flow.mystate = {...}` as Haka rules do; `flow.data` starts as an empty
//! table).

use mlua::{Lua, MetaMethod, Table, UserData, UserDataMethods, Value};

use super::addr::AddrUd;
use super::context::{context, RuleContext};
use super::error::located;
use crate::inspect::{Action, FlowInfo};

/// A flow object, valid during the event it was made for.
#[derive(Debug, Clone)]
pub struct FlowUd {
    /// The event it belongs to.
    pub epoch: u64,
    /// The connection.
    pub info: FlowInfo,
}

const FIXED: [&str; 4] = ["srcip", "dstip", "srcport", "dstport"];

fn state_key(id: u64) -> i64 {
    // Ids are opaque; reinterpreting the bits keeps them distinct.
    id as i64
}

/// The state table of flow `id`, created if `create` and absent.
fn state_table(lua: &Lua, ctx: &RuleContext, id: u64, create: bool) -> mlua::Result<Option<Table>> {
    if let Some(t) = ctx.flow_states.raw_get::<Option<Table>>(state_key(id))? {
        return Ok(Some(t));
    }
    if !create {
        return Ok(None);
    }
    let t = lua.create_table()?;
    ctx.flow_states.raw_set(state_key(id), t.clone())?;
    Ok(Some(t))
}

/// Frees the rule state of flow `id`.
pub fn forget(states: &Table, id: u64) -> mlua::Result<()> {
    states.raw_set(state_key(id), Value::Nil)
}

impl FlowUd {
    fn decide(&self, lua: &Lua, a: Action) -> mlua::Result<()> {
        let ctx = context(lua)?;
        ctx.check_live(lua, self.epoch, "flow")?;
        ctx.decide(a);
        Ok(())
    }
}

impl UserData for FlowUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("drop", |lua, this, ()| this.decide(lua, Action::DropFlow));
        methods.add_method("reset", |lua, this, ()| this.decide(lua, Action::Reset));
        methods.add_method("halfreset", |lua, this, ()| this.decide(lua, Action::HalfReset));
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: mlua::String| {
            let ctx = context(lua)?;
            ctx.check_live(lua, this.epoch, "flow")?;
            let i = &this.info;
            match &key.as_bytes()[..] {
                b"srcip" => return Ok(Value::UserData(lua.create_userdata(AddrUd(i.src))?)),
                b"dstip" => return Ok(Value::UserData(lua.create_userdata(AddrUd(i.dst))?)),
                b"srcport" => return Ok(Value::Integer(i64::from(i.src_port))),
                b"dstport" => return Ok(Value::Integer(i64::from(i.dst_port))),
                b"data" => {
                    // `flow.data` is a table from the first read on.
                    let state =
                        state_table(lua, &ctx, i.id, true)?.ok_or_else(|| located(lua, "no flow state"))?;
                    if let Some(t) = state.raw_get::<Option<Table>>("data")? {
                        return Ok(Value::Table(t));
                    }
                    let t = lua.create_table()?;
                    state.raw_set("data", t.clone())?;
                    return Ok(Value::Table(t));
                }
                _ => {}
            }
            match state_table(lua, &ctx, i.id, false)? {
                Some(t) => t.raw_get::<Value>(key),
                None => Ok(Value::Nil),
            }
        });
        methods.add_meta_method(MetaMethod::NewIndex, |lua, this, (key, value): (mlua::String, Value)| {
            let ctx = context(lua)?;
            ctx.check_live(lua, this.epoch, "flow")?;
            if FIXED.iter().any(|f| key.as_bytes() == f.as_bytes()) {
                return Err(located(lua, "flow address and port fields are read-only"));
            }
            if value.is_nil() {
                if let Some(t) = state_table(lua, &ctx, this.info.id, false)? {
                    t.raw_set(key, Value::Nil)?;
                }
                return Ok(());
            }
            let state =
                state_table(lua, &ctx, this.info.id, true)?.ok_or_else(|| located(lua, "no flow state"))?;
            state.raw_set(key, value)
        });
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            let i = &this.info;
            Ok(format!("{} flow {}:{} > {}:{}", i.proto.name(), i.src, i.src_port, i.dst, i.dst_port))
        });
    }
}
