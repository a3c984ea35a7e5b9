//! `haka.dissectors`: one table per dissector (ipv4, ipv6, tcp, udp, icmp,
//! tcp_connection, udp_connection) holding its `events` and, for the
//! connection dissectors, its `policies`. Each event and policy point is a
//! distinct table, so `on = haka.dissectors.tcp.events.receive_packet`
//! identifies the hook by identity; a private Lua table maps each of them
//! back to its hook.

use mlua::{Lua, Table, Value};

use super::addr;
use crate::inspect::Event;

/// What an `on` value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hook {
    /// An event (`haka.rule` and policies on `new_connection`).
    Event(Event),
    /// A policy point (`<dissector>.policies.new_connection`): policies run
    /// at that dissector's `new_connection` event.
    Policy(Event),
}

const POLICY_BASE: i64 = 100;

impl Hook {
    fn code(self) -> i64 {
        match self {
            Hook::Event(e) => e.index() as i64,
            Hook::Policy(e) => POLICY_BASE + e.index() as i64,
        }
    }

    fn from_code(c: i64) -> Option<Hook> {
        let ev = |i: i64| usize::try_from(i).ok().and_then(|i| Event::ALL.get(i).copied());
        if c >= POLICY_BASE {
            ev(c - POLICY_BASE).map(Hook::Policy)
        } else {
            ev(c).map(Hook::Event)
        }
    }
}

/// The identity map from event and policy-point tables to hooks.
#[derive(Clone)]
pub(super) struct Hooks {
    map: Table,
}

impl Hooks {
    /// The hook `v` names, if any.
    pub(super) fn lookup(&self, v: &Value) -> Option<Hook> {
        if !matches!(v, Value::Table(_)) {
            return None;
        }
        self.map.raw_get::<Option<i64>>(v.clone()).ok().flatten().and_then(Hook::from_code)
    }
}

/// Builds `haka.dissectors` and the hook map.
pub(super) fn build(lua: &Lua) -> mlua::Result<(Table, Hooks)> {
    let dissectors = lua.create_table()?;
    let map = lua.create_table()?;
    let hook_mt = lua.create_table()?;
    hook_mt.set(
        "__tostring",
        lua.create_function(|_, t: Table| {
            let name: String = t.raw_get("name")?;
            Ok(format!("hook {name}"))
        })?,
    )?;
    let new_hook = |dissector: &str, kind: &str, name: &str, hook: Hook| -> mlua::Result<Table> {
        let t = lua.create_table()?;
        t.raw_set("name", format!("{dissector}.{kind}.{name}"))?;
        t.set_metatable(Some(hook_mt.clone()))?;
        map.raw_set(t.clone(), hook.code())?;
        Ok(t)
    };
    for ev in Event::ALL {
        let (dname, ename) = ev.lua_name();
        let d = dissector_table(lua, &dissectors, dname)?;
        let events: Table = d.raw_get("events")?;
        events.raw_set(ename, new_hook(dname, "events", ename, Hook::Event(ev))?)?;
        if ename == "new_connection" {
            let policies: Table = d.raw_get("policies")?;
            policies.raw_set(ename, new_hook(dname, "policies", ename, Hook::Policy(ev))?)?;
        }
    }
    let ipv4 = dissector_table(lua, &dissectors, "ipv4")?;
    ipv4.raw_set("addr", lua.create_function(addr::ipv4_addr)?)?;
    ipv4.raw_set("network", lua.create_function(addr::ipv4_network)?)?;
    let ipv6 = dissector_table(lua, &dissectors, "ipv6")?;
    ipv6.raw_set("addr", lua.create_function(addr::ipv6_addr)?)?;
    ipv6.raw_set("network", lua.create_function(addr::ipv6_network)?)?;
    Ok((dissectors, Hooks { map }))
}

fn dissector_table(lua: &Lua, dissectors: &Table, name: &str) -> mlua::Result<Table> {
    if let Some(t) = dissectors.raw_get::<Option<Table>>(name)? {
        return Ok(t);
    }
    let t = lua.create_table()?;
    t.raw_set("name", name)?;
    t.raw_set("events", lua.create_table()?)?;
    if name.ends_with("_connection") {
        t.raw_set("policies", lua.create_table()?)?;
    }
    dissectors.raw_set(name, t.clone())?;
    Ok(t)
}
