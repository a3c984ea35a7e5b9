//! `haka.policy`: Haka's policies, with Haka's syntax and semantics.
//!
//! A policy point is a place where a decision is taken from values: the
//! built-in `tcp_connection.policies.new_connection` and
//! `udp_connection.policies.new_connection` points (values `srcip`,
//! `srcport`, `dstip`, `dstport`, the context the flow), and points rules
//! make with `haka.policy.new(name)` and run with
//! `point:apply{ values = ..., ctx = ..., desc = ... }`.
//!
//! `haka.policy{ on = point, name = ..., action = ..., <criteria> }`
//! declares a policy: every key other than `on`, `name` and `action` is a
//! criterion on the value of that name. When a point runs, **every** policy
//! declared on it is checked in declaration order and the **last** eligible
//! one (all its criteria hold) applies its actions, as in Haka; so a
//! "drop by default" policy comes first and the exceptions after it.
//!
//! Actions are functions `(point, ctx, values, desc)`: `haka.policy.accept`
//! (nothing), `haka.policy.drop` (`ctx:drop()`: at `new_connection` the
//! connection is refused), `haka.policy.alert{...}` (an alert completed from
//! `desc`), `haka.policy.log(logf, fmt, ...)`, or a rule's own function.
//!
//! At the built-in points sluice knows the values, so a criterion on
//! another name (a typo, or sluice's old `criterion = {...}` form) is a load
//! error instead of a policy that silently never applies.

mod action;
mod criterion;
mod point;

use std::net::IpAddr;
use std::sync::Arc;

use mlua::{AnyUserData, Lua, Table, Value};

use super::addr::{addr_from_value, network_from_value, AddrUd};
use super::context::context;
use super::dissectors::{Hook, Hooks};
use super::error::located;
use crate::inspect::{Event, FlowInfo};
use action::{actions_of, install_actions, Act, ActionCall};
use criterion::{criterion_of, is_kind, kind_of, Criterion, Kind, KindUd, Subject};
pub(super) use point::PointUd;

/// The name Haka gives the built-in `new_connection` points (an alert
/// action without a description gets it).
const CONNECTION_POINT_NAME: &str = "new connection";

/// A value of a built-in `new_connection` point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    SrcIp,
    SrcPort,
    DstIp,
    DstPort,
}

impl Field {
    fn of(name: &str) -> Option<Field> {
        Some(match name {
            "srcip" => Field::SrcIp,
            "srcport" => Field::SrcPort,
            "dstip" => Field::DstIp,
            "dstport" => Field::DstPort,
            _ => return None,
        })
    }

    fn is_addr(self) -> bool {
        matches!(self, Field::SrcIp | Field::DstIp)
    }

    fn subject(self, f: &FlowInfo) -> Subject {
        match self {
            Field::SrcIp => Subject::Addr(f.src),
            Field::DstIp => Subject::Addr(f.dst),
            Field::SrcPort => Subject::Int(i64::from(f.src_port)),
            Field::DstPort => Subject::Int(i64::from(f.dst_port)),
        }
    }
}

/// One criterion: the value it looks at and the criterion object.
#[derive(Debug, Clone)]
struct Crit {
    name: String,
    /// At a built-in point, which flow field `name` is.
    field: Option<Field>,
    obj: Arc<Criterion>,
}

/// What every policy has.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    name: String,
    criteria: Vec<Crit>,
    actions: Vec<Act>,
}

/// A policy on a built-in `new_connection` point.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    /// The `new_connection` event it runs at.
    pub event: Event,
    /// The point's table (the actions' first argument).
    point: Table,
    spec: Spec,
}

/// The values a point compares.
enum Values<'a> {
    Flow(&'a FlowInfo),
    Table(Table),
}

impl Values<'_> {
    fn subject(&self, c: &Crit) -> mlua::Result<Subject> {
        match (self, c.field) {
            (Values::Flow(f), Some(field)) => Ok(field.subject(f)),
            (Values::Flow(_), None) => Ok(Subject::Lua(Value::Nil)),
            (Values::Table(t), _) => Ok(Subject::Lua(t.get::<Value>(c.name.as_str())?)),
        }
    }
}

/// Named registry slot of the `haka.policy` table.
const MODULE: &str = "sluice.policy.module";

/// Runs the policies of a built-in `new_connection` point for `flow`, whose
/// Lua object is `flow_value` (the context the actions act on). A one-line
/// call from the dispatcher, before the event's rules.
pub(super) fn run_connection_point(
    lua: &Lua,
    policies: &[Policy],
    flow: &FlowInfo,
    flow_value: Option<&Value>,
) -> mlua::Result<()> {
    if policies.is_empty() {
        return Ok(());
    }
    let values = Values::Flow(flow);
    let Some(i) = select(lua, policies.iter().map(|p| &p.spec), &values)? else { return Ok(()) };
    let p = &policies[i];
    let needs_lua = p.spec.actions.iter().any(|a| matches!(a, Act::Alert(_) | Act::Call(_)));
    let (vals, desc) = if needs_lua {
        (Value::Table(flow_values(lua, flow)?), Value::Table(flow_desc(lua, flow)?))
    } else {
        (Value::Nil, Value::Nil)
    };
    let call = ActionCall {
        point: Value::Table(p.point.clone()),
        point_name: CONNECTION_POINT_NAME,
        ctx: flow_value.cloned().unwrap_or(Value::Nil),
        values: vals,
        desc,
    };
    call.run(lua, &p.spec)
}

/// The index of the last eligible policy; learning criteria learn.
fn select<'a>(
    lua: &Lua,
    specs: impl Iterator<Item = &'a Spec> + Clone,
    values: &Values<'_>,
) -> mlua::Result<Option<usize>> {
    // Only learning criteria care about `haka.policy.learning` (a Lua lookup).
    let learns = specs.clone().any(|s| s.criteria.iter().any(|c| c.obj.learning));
    let learning = learns && learning_on(lua)?;
    let mut chosen = None;
    for (i, spec) in specs.enumerate() {
        if eligible(lua, spec, values, learning)? {
            chosen = Some(i);
        }
    }
    Ok(chosen)
}

fn eligible(lua: &Lua, spec: &Spec, values: &Values<'_>, learning: bool) -> mlua::Result<bool> {
    let mut learns = false;
    for c in &spec.criteria {
        let obj = &c.obj;
        if learning && obj.learning {
            learns = true;
        } else if !obj.matches(lua, &values.subject(c)?)? {
            return Ok(false);
        }
    }
    if learns {
        for c in &spec.criteria {
            let obj = &c.obj;
            if obj.learning {
                obj.learn(lua, &values.subject(c)?)?;
            }
        }
    }
    Ok(true)
}

/// `haka.policy.learning`, as the rules set it.
fn learning_on(lua: &Lua) -> mlua::Result<bool> {
    let module: Table = lua.named_registry_value(MODULE)?;
    Ok(!matches!(module.raw_get::<Value>("learning")?, Value::Nil | Value::Boolean(false)))
}

/// `{ srcip =, srcport =, dstip =, dstport = }` of a flow.
fn flow_values(lua: &Lua, f: &FlowInfo) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("srcip", AddrUd(f.src))?;
    t.raw_set("srcport", f.src_port)?;
    t.raw_set("dstip", AddrUd(f.dst))?;
    t.raw_set("dstport", f.dst_port)?;
    Ok(t)
}

/// Haka's `desc` at `new_connection`: the client as source, the server as
/// target, each with its address and `proto/port` service.
fn flow_desc(lua: &Lua, f: &FlowInfo) -> mlua::Result<Table> {
    let entry = |key: &str, v: Value| -> mlua::Result<Table> {
        let e = lua.create_table()?;
        e.raw_set(key, lua.create_sequence_from([v])?)?;
        Ok(e)
    };
    let side = |a: IpAddr, port: u16| -> mlua::Result<Table> {
        let addr = entry("address", Value::UserData(lua.create_userdata(AddrUd(a))?))?;
        let service = format!("{}/{}", f.proto.name(), port);
        let svc = entry("service", Value::String(lua.create_string(&service)?))?;
        lua.create_sequence_from([addr, svc])
    };
    let d = lua.create_table()?;
    d.raw_set("sources", side(f.src, f.src_port)?)?;
    d.raw_set("targets", side(f.dst, f.dst_port)?)?;
    Ok(d)
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => format!("'{}'", s.to_string_lossy()),
        Value::Integer(i) => format!("[{i}] (a list entry)"),
        other => format!("of type {}", other.type_name()),
    }
}

/// The `haka.policy` table: callable to declare a policy, with Haka's
/// actions, criterion objects, `new`, `learn` and `learning`.
pub(super) fn install(lua: &Lua, hooks: Hooks) -> mlua::Result<Table> {
    criterion::install(lua)?;
    let t = lua.create_table()?;
    lua.set_named_registry_value(MODULE, t.clone())?;
    install_actions(lua, &t)?;
    for kind in [Kind::Value, Kind::Set, Kind::Range, Kind::OutOfRange, Kind::Present, Kind::Absent] {
        t.raw_set(kind.name(), KindUd(kind))?;
    }
    // Haka's ipv4 module adds `ipv4_in_network`; sluice has IPv6 too.
    t.raw_set("ipv4_in_network", KindUd(Kind::InNetwork))?;
    t.raw_set("ipv6_in_network", KindUd(Kind::InNetwork6))?;
    t.raw_set(
        "learn",
        lua.create_function(|lua, v: Value| match kind_of(&v) {
            Some(k) => Criterion::learner(lua, k),
            None => Err(located(
                lua,
                "haka.policy.learn expects a criterion kind, e.g. haka.policy.learn(haka.policy.set)",
            )),
        })?,
    )?;
    t.raw_set("learning", false)?;
    t.raw_set(
        "new",
        lua.create_function(|lua, name: Value| {
            let name = match name {
                Value::Nil => "<unnamed>".to_owned(),
                Value::String(s) => s.to_string_lossy(),
                _ => return Err(located(lua, "haka.policy.new expects a name (a string)")),
            };
            Ok(PointUd { name, specs: Default::default() })
        })?,
    )?;
    let mt = lua.create_table()?;
    mt.raw_set(
        "__call",
        lua.create_function(move |lua, (_, spec): (Value, Value)| {
            let Value::Table(spec) = spec else {
                return Err(located(
                    lua,
                    "haka.policy expects a table { on = <policy point>, action = ..., <criteria> }",
                ));
            };
            declare(lua, &hooks, &spec)
        })?,
    )?;
    t.set_metatable(Some(mt))?;
    Ok(t)
}

/// Where a declared policy goes.
enum Target {
    Builtin(Event, Table),
    Point(AnyUserData),
}

/// `haka.policy{...}`: parses and registers one policy.
fn declare(lua: &Lua, hooks: &Hooks, spec: &Table) -> mlua::Result<()> {
    let ctx = context(lua)?;
    if !ctx.loading.get() {
        return Err(located(lua, "haka.policy can only be called while the rule files load"));
    }
    let on: Value = spec.raw_get("on")?;
    let target = match (hooks.lookup(&on), &on) {
        (Some(Hook::Policy(e)), Value::Table(t)) => Target::Builtin(e, t.clone()),
        (Some(Hook::Event(e)), Value::Table(t)) if matches!(e, Event::TcpNewConnection | Event::UdpNewConnection) => {
            Target::Builtin(e, t.clone())
        }
        (_, Value::UserData(u)) if u.is::<PointUd>() => Target::Point(u.clone()),
        _ => {
            return Err(located(
                lua,
                "haka.policy: 'on' must be a policy point: haka.dissectors.tcp_connection.policies.new_connection, \
                 haka.dissectors.udp_connection.policies.new_connection, or one made by haka.policy.new(name)",
            ))
        }
    };
    let name = match spec.raw_get::<Value>("name")? {
        Value::Nil => None,
        Value::String(s) => Some(s.to_string_lossy()),
        _ => return Err(located(lua, "haka.policy: 'name' must be a string")),
    };
    let actions = actions_of(lua, spec.raw_get("action")?)?;
    let builtin = matches!(target, Target::Builtin(..));
    let mut criteria = Vec::new();
    for pair in spec.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = match &k {
            Value::String(s) => s.to_string_lossy(),
            other => return Err(located(lua, format!("haka.policy: unexpected key {}", key_text(other)))),
        };
        if !matches!(key.as_str(), "on" | "name" | "action") {
            criteria.push(criterion(lua, builtin, key, v)?);
        }
    }
    // Deterministic order, so evaluation does not depend on table layout.
    criteria.sort_by(|a, b| a.name.cmp(&b.name));
    match target {
        Target::Builtin(event, point) => {
            let n = lua.try_app_data_ref::<Vec<Policy>>().ok().flatten().map_or(0, |l| l.len());
            let name = name.unwrap_or_else(|| format!("policy {}", n + 1));
            super::rule::declare(
                lua,
                Policy { event, point, spec: Spec { name, criteria, actions } },
                "haka.policy",
            )?;
        }
        Target::Point(u) => {
            let point = u.borrow::<PointUd>()?;
            let mut specs =
                point.specs.try_borrow_mut().map_err(|_| located(lua, "haka.policy: the point is busy"))?;
            let name = name.unwrap_or_else(|| format!("policy {}", specs.len() + 1));
            Arc::make_mut(&mut specs).push(Spec { name, criteria, actions });
            let mut count = lua
                .try_app_data_mut::<super::rule::PointPolicies>()
                .map_err(|_| located(lua, "haka.policy called re-entrantly"))?
                .ok_or_else(|| located(lua, "haka.policy can only be called while the rule files load"))?;
            count.0 += 1;
        }
    }
    Ok(())
}

/// One criterion `key = v` of a declaration. At the built-in points the
/// names and the kinds of values are known, so anything that could never
/// match is refused with a hint.
fn criterion(lua: &Lua, builtin: bool, key: String, v: Value) -> mlua::Result<Crit> {
    if is_kind(&v) {
        return Err(located(
            lua,
            format!(
                "haka.policy: criterion '{key}' is a criterion kind; call it, e.g. haka.policy.present()"
            ),
        ));
    }
    let field = if builtin {
        match Field::of(&key) {
            Some(f) => Some(f),
            None => return Err(located(lua, unknown_builtin_key(&key))),
        }
    } else {
        None
    };
    if let Some(obj) = criterion_of(&v) {
        return Ok(Crit { name: key, field, obj });
    }
    let obj = match field {
        None => Criterion::value(v),
        Some(f) if f.is_addr() => addr_criterion(lua, &key, &v)?,
        Some(_) => port_criterion(lua, &key, &v)?,
    };
    Ok(Crit { name: key, field, obj: Arc::new(obj) })
}

fn unknown_builtin_key(key: &str) -> String {
    let mut msg = format!(
        "haka.policy: unknown key '{key}': a new_connection policy has the keys on, name, action and the criteria \
         srcip, srcport, dstip, dstport"
    );
    if key == "criterion" || key == "criteria" {
        msg.push_str(
            ". sluice's old form `criterion = { ... }` is gone (in Haka a key of that name is a criterion): write each \
             criterion as a top-level key, e.g. haka.policy{ on = ..., dstport = 23, action = haka.policy.drop }, with \
             haka.policy.range(min, max) for {min, max} and haka.policy.ipv4_in_network(net) for networks; \
             note that the last eligible policy applies, so put default policies first",
        );
    }
    msg
}

/// `srcip`/`dstip`: an address compares with `==`; a network (or its
/// text) matches the addresses inside it, as `haka.policy.ipv4_in_network`.
fn addr_criterion(lua: &Lua, key: &str, v: &Value) -> mlua::Result<Criterion> {
    if let Value::UserData(u) = v {
        if let Ok(a) = u.borrow::<AddrUd>() {
            return Ok(Criterion::value(Value::UserData(lua.create_userdata(AddrUd(a.0))?)));
        }
    }
    if let Some(a) = addr_from_value(v) {
        return Ok(Criterion::value(Value::UserData(lua.create_userdata(AddrUd(a))?)));
    }
    if let Some(n) = network_from_value(v) {
        return Ok(Criterion::in_network(n));
    }
    Err(located(
        lua,
        format!(
            "haka.policy: '{key}' must be an address, a network (or their text), or a criterion such as \
             haka.policy.set{{...}} or haka.policy.ipv4_in_network(net)"
        ),
    ))
}

/// `srcport`/`dstport`: a port number compares with `==`.
fn port_criterion(lua: &Lua, key: &str, v: &Value) -> mlua::Result<Criterion> {
    let port = match v {
        Value::Integer(i) => u16::try_from(*i).ok(),
        Value::Number(n) if n.fract() == 0.0 && (0.0..=65535.0).contains(n) => Some(*n as u16),
        _ => None,
    };
    match port {
        Some(p) => Ok(Criterion::value(Value::Integer(i64::from(p)))),
        None => Err(located(
            lua,
            format!(
                "haka.policy: '{key}' must be a port number or a criterion such as haka.policy.range(min, max) or \
                 haka.policy.set{{80, 443}} (a table is compared with == and never equals a port)"
            ),
        )),
    }
}
