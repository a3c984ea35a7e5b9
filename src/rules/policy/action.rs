//! Policy actions: functions `(point, ctx, values, desc)` as in Haka.
//! `haka.policy.accept`, `drop`, `alert{...}` and `log(...)` are such
//! functions; sluice knows its own by identity and runs them without a Lua
//! call, and calls any other function (a rule's own action) as it is.

use mlua::{Function, Lua, MultiValue, ObjectLike, Table, Value};

use super::super::alert;
use super::super::context::context;
use super::super::error::located;
use super::{PointUd, Spec, CONNECTION_POINT_NAME};
use crate::inspect::Action;

/// One action of a policy.
#[derive(Debug, Clone)]
pub(super) enum Act {
    Accept,
    Drop,
    /// `haka.policy.alert{...}` with its table.
    Alert(Table),
    /// Any other function (`haka.policy.log(...)`, a rule's own).
    Call(Function),
}

// Named registry slots.
const ACCEPT: &str = "sluice.policy.accept";
const DROP: &str = "sluice.policy.drop";
const ALERTS: &str = "sluice.policy.alerts";

/// The arguments every action of one applied policy gets.
pub(super) struct ActionCall<'a> {
    pub(super) point: Value,
    pub(super) point_name: &'a str,
    pub(super) ctx: Value,
    pub(super) values: Value,
    pub(super) desc: Value,
}

impl ActionCall<'_> {
    pub(super) fn run(&self, lua: &Lua, spec: &Spec) -> mlua::Result<()> {
        for a in &spec.actions {
            match a {
                Act::Accept => {}
                Act::Drop => drop_ctx(lua, &self.ctx)?,
                Act::Alert(t) => raise_alert(lua, t, self.point_name, &self.desc, Some(&spec.name))?,
                Act::Call(f) => f.call::<()>((
                    self.point.clone(),
                    self.ctx.clone(),
                    self.values.clone(),
                    self.desc.clone(),
                ))?,
            }
        }
        Ok(())
    }
}

/// `haka.policy.drop`: `ctx:drop()`, as in Haka.
fn drop_ctx(lua: &Lua, ctx: &Value) -> mlua::Result<()> {
    match ctx {
        // A built-in point always passes the flow; without one, refuse it anyway.
        Value::Nil => {
            context(lua)?.decide(Action::DropFlow);
            Ok(())
        }
        Value::Table(t) => t.call_method::<()>("drop", ()),
        Value::UserData(u) => u.call_method::<()>("drop", ()),
        other => Err(located(
            lua,
            format!("haka.policy.drop: the context ({}) has no drop method", other.type_name()),
        )),
    }
}

/// `haka.policy.alert{...}` applied: the alert's fields, completed with the
/// `desc` fields it lacks, described by the point's name if it has no
/// description, as in Haka.
fn raise_alert(
    lua: &Lua,
    spec: &Table,
    point_name: &str,
    desc: &Value,
    policy: Option<&str>,
) -> mlua::Result<()> {
    let t = lua.create_table()?;
    for pair in spec.pairs::<Value, Value>() {
        let (k, v) = pair?;
        t.raw_set(k, v)?;
    }
    if let Value::Table(d) = desc {
        for pair in d.pairs::<Value, Value>() {
            let (k, v) = pair?;
            if t.raw_get::<Value>(k.clone())?.is_nil() {
                t.raw_set(k, v)?;
            }
        }
    }
    if t.raw_get::<Value>("description")?.is_nil() {
        t.raw_set("description", point_name)?;
    }
    let ctx = context(lua)?;
    alert::raise(lua, &ctx, &t, policy).map(|_| ())
}

/// `accept`, `drop`, `alert` and `log`: functions `(point, ctx, values, desc)`.
pub(super) fn install_actions(lua: &Lua, t: &Table) -> mlua::Result<()> {
    let accept = lua.create_function(|_, _: MultiValue| Ok(()))?;
    let drop = lua.create_function(|lua, (_, ctx): (Value, Value)| match ctx {
        Value::Nil => Err(located(lua, "haka.policy.drop: no context to drop (its second argument)")),
        ctx => drop_ctx(lua, &ctx),
    })?;
    lua.set_named_registry_value(ACCEPT, accept.clone())?;
    lua.set_named_registry_value(DROP, drop.clone())?;
    t.raw_set("accept", accept)?;
    t.raw_set("drop", drop)?;
    // Alert actions are known by their function, kept weakly.
    let alerts = lua.create_table()?;
    let weak = lua.create_table()?;
    weak.raw_set("__mode", "k")?;
    alerts.set_metatable(Some(weak))?;
    lua.set_named_registry_value(ALERTS, alerts.clone())?;
    t.raw_set(
        "alert",
        lua.create_function(move |lua, spec: Value| {
            let spec = match spec {
                Value::Nil => lua.create_table()?,
                Value::Table(s) => s,
                _ => return Err(located(lua, "haka.policy.alert expects a table (an alert)")),
            };
            let s = spec.clone();
            let f = lua.create_function(move |lua, (point, _, _, desc): (Value, Value, Value, Value)| {
                raise_alert(lua, &s, &point_name_of(&point), &desc, None)
            })?;
            alerts.raw_set(f.clone(), spec)?;
            Ok(f)
        })?,
    )?;
    t.raw_set(
        "log",
        lua.create_function(|lua, args: MultiValue| {
            let mut args = args.into_iter();
            let logf = args.next().unwrap_or(Value::Nil);
            if !matches!(logf, Value::Function(_) | Value::Table(_)) {
                return Err(located(lua, "haka.policy.log expects a log function first, e.g. haka.policy.log(haka.log.info, \"refused %s\", x)"));
            }
            let rest: Vec<Value> = args.collect();
            lua.create_function(move |_, _: MultiValue| match &logf {
                Value::Function(f) => f.call::<()>(MultiValue::from_iter(rest.iter().cloned())),
                Value::Table(t) => t.call::<()>(MultiValue::from_iter(rest.iter().cloned())),
                _ => Ok(()),
            })
        })?,
    )?;
    Ok(())
}

fn point_name_of(v: &Value) -> String {
    match v {
        Value::UserData(u) => match u.borrow::<PointUd>() {
            Ok(p) => p.name.clone(),
            Err(_) => CONNECTION_POINT_NAME.to_owned(),
        },
        _ => CONNECTION_POINT_NAME.to_owned(),
    }
}

const ACTION_HELP: &str = "a function or a list of functions: haka.policy.accept, haka.policy.drop, \
                           haka.policy.alert{...}, haka.policy.log(...) or your own function(point, ctx, values, desc)";

pub(super) fn actions_of(lua: &Lua, v: Value) -> mlua::Result<Vec<Act>> {
    match v {
        Value::Nil => Err(located(lua, format!("haka.policy: 'action' is missing; it is {ACTION_HELP}"))),
        Value::Function(f) => Ok(vec![action_of(lua, f)?]),
        Value::Table(t) => {
            let mut out = Vec::new();
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                match (k, v) {
                    (Value::Integer(_), Value::Function(f)) => out.push(action_of(lua, f)?),
                    _ => return Err(located(lua, format!("haka.policy: 'action' must be {ACTION_HELP}"))),
                }
            }
            Ok(out)
        }
        _ => Err(located(lua, format!("haka.policy: 'action' must be {ACTION_HELP}"))),
    }
}

fn action_of(lua: &Lua, f: Function) -> mlua::Result<Act> {
    let accept: Function = lua.named_registry_value(ACCEPT)?;
    let drop: Function = lua.named_registry_value(DROP)?;
    let alerts: Table = lua.named_registry_value(ALERTS)?;
    Ok(if f == accept {
        Act::Accept
    } else if f == drop {
        Act::Drop
    } else if let Some(spec) = alerts.raw_get::<Option<Table>>(f.clone())? {
        Act::Alert(spec)
    } else {
        Act::Call(f)
    })
}
