//! `haka.policy{...}`: connection policies. At a `new_connection` event the
//! policies of that point are tried in declaration order; the first whose
//! every criterion matches the new flow applies its actions, and the rest
//! are not tried:
//!
//! * `haka.policy.accept`: nothing (the connection goes on to the rules);
//! * `haka.policy.drop`: the connection is refused (`DropFlow`);
//! * `haka.policy.alert{...}`: the alert is raised.
//!
//! Criteria compare against the flow: `srcip`/`dstip` with an address, a
//! network or their text; `srcport`/`dstport` with a number or `{min, max}`.

use std::net::IpAddr;

use ipnet::IpNet;
use mlua::{Lua, Table, Value};

use super::addr::{addr_from_value, network_from_value};
use super::alert;
use super::context::{context, RuleContext};
use super::dissectors::{Hook, Hooks};
use super::error::located;
use crate::inspect::{Action, Event, FlowInfo};

/// Which flow field a criterion looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
}

/// What the field must be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Addr(IpAddr),
    Net(IpNet),
    Ports(u16, u16),
}

/// One action of a policy.
#[derive(Debug, Clone)]
pub enum PolicyAction {
    /// Let the connection through.
    Accept,
    /// Refuse the connection.
    Drop,
    /// Raise this alert.
    Alert(Table),
}

/// A declared policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The `new_connection` event it runs at.
    pub event: Event,
    /// Its `name` (alerts carry it).
    pub name: String,
    criteria: Vec<(Field, Want)>,
    actions: Vec<PolicyAction>,
}

impl Policy {
    /// True if every criterion matches `flow`.
    pub fn matches(&self, flow: &FlowInfo) -> bool {
        self.criteria.iter().all(|(field, want)| {
            let (addr, port) = match field {
                Field::SrcIp => (Some(flow.src), None),
                Field::DstIp => (Some(flow.dst), None),
                Field::SrcPort => (None, Some(flow.src_port)),
                Field::DstPort => (None, Some(flow.dst_port)),
            };
            match (want, addr, port) {
                (Want::Addr(a), Some(x), _) => *a == x,
                (Want::Net(n), Some(x), _) => n.contains(&x),
                (Want::Ports(lo, hi), _, Some(p)) => (*lo..=*hi).contains(&p),
                _ => false,
            }
        })
    }

    /// Applies the actions (the flow is already set in `ctx`).
    pub fn apply(&self, lua: &Lua, ctx: &RuleContext) -> mlua::Result<()> {
        for a in &self.actions {
            match a {
                PolicyAction::Accept => {}
                PolicyAction::Drop => ctx.decide(Action::DropFlow),
                PolicyAction::Alert(t) => {
                    alert::raise(lua, ctx, t, Some(&self.name))?;
                }
            }
        }
        Ok(())
    }
}

const ACTION_KEY: &str = "_sluice_policy_action";

/// The `haka.policy` table: callable, with `accept`, `drop` and `alert`.
pub fn install(lua: &Lua, hooks: Hooks) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let marker = |kind: &str| -> mlua::Result<Table> {
        let m = lua.create_table()?;
        m.raw_set(ACTION_KEY, kind)?;
        Ok(m)
    };
    t.raw_set("accept", marker("accept")?)?;
    t.raw_set("drop", marker("drop")?)?;
    t.raw_set(
        "alert",
        lua.create_function(|lua, spec: Value| {
            let Value::Table(spec) = spec else {
                return Err(located(lua, "haka.policy.alert expects a table"));
            };
            let m = lua.create_table()?;
            m.raw_set(ACTION_KEY, "alert")?;
            m.raw_set("alert", spec)?;
            Ok(m)
        })?,
    )?;
    let mt = lua.create_table()?;
    mt.raw_set(
        "__call",
        lua.create_function(move |lua, (_, spec): (Value, Value)| {
            let Value::Table(spec) = spec else {
                return Err(located(lua, "haka.policy expects a table"));
            };
            let mut policy = parse(lua, &hooks, &spec)?;
            let ctx = context(lua)?;
            if !ctx.loading.get() {
                return Err(located(lua, "haka.policy can only be called while the rule files load"));
            }
            let mut reg =
                ctx.registry.try_borrow_mut().map_err(|_| located(lua, "haka.policy called re-entrantly"))?;
            if policy.name.is_empty() {
                policy.name = format!("policy {}", reg.policies.len() + 1);
            }
            reg.policies.push(policy);
            Ok(())
        })?,
    )?;
    t.set_metatable(Some(mt))?;
    Ok(t)
}

fn parse(lua: &Lua, hooks: &Hooks, spec: &Table) -> mlua::Result<Policy> {
    let on: Value = spec.get("on")?;
    let event = match hooks.lookup(&on) {
        Some(Hook::Policy(e)) => e,
        Some(Hook::Event(e)) if matches!(e, Event::TcpNewConnection | Event::UdpNewConnection) => e,
        _ => {
            return Err(located(
                lua,
                "haka.policy: 'on' must be haka.dissectors.tcp_connection.policies.new_connection \
                 or haka.dissectors.udp_connection.policies.new_connection",
            ))
        }
    };
    let name = match spec.get::<Value>("name")? {
        Value::Nil => String::new(),
        Value::String(s) => s.to_string_lossy(),
        _ => return Err(located(lua, "haka.policy: 'name' must be a string")),
    };
    let mut criteria = Vec::new();
    let crit = match spec.get::<Value>("criterion")? {
        Value::Nil => spec.get::<Value>("criteria")?,
        v => v,
    };
    match crit {
        Value::Nil => {}
        Value::Table(t) => {
            for pair in t.pairs::<String, Value>() {
                let (k, v) = pair?;
                criteria.push(criterion(lua, &k, &v)?);
            }
        }
        _ => return Err(located(lua, "haka.policy: 'criterion' must be a table")),
    }
    // Deterministic order, so evaluation does not depend on table layout.
    criteria.sort_by_key(|(f, _)| *f as u8);
    let actions = match spec.get::<Value>("action")? {
        Value::Table(t) if t.raw_get::<Value>(ACTION_KEY)?.is_nil() => {
            let mut v = Vec::new();
            for item in t.sequence_values::<Value>() {
                v.push(action(lua, &item?)?);
            }
            v
        }
        Value::Nil => return Err(located(lua, "haka.policy: 'action' is missing")),
        other => vec![action(lua, &other)?],
    };
    Ok(Policy { event, name, criteria, actions })
}

fn criterion(lua: &Lua, key: &str, v: &Value) -> mlua::Result<(Field, Want)> {
    let field = match key {
        "srcip" => Field::SrcIp,
        "dstip" => Field::DstIp,
        "srcport" => Field::SrcPort,
        "dstport" => Field::DstPort,
        _ => return Err(located(lua, format!("haka.policy: unknown criterion '{key}'"))),
    };
    let want = match field {
        Field::SrcIp | Field::DstIp => {
            if let Some(a) = addr_from_value(v) {
                Want::Addr(a)
            } else if let Some(n) = network_from_value(v) {
                Want::Net(n)
            } else {
                return Err(located(lua, format!("haka.policy: '{key}' must be an address or a network")));
            }
        }
        Field::SrcPort | Field::DstPort => {
            let port = |v: &Value| match v {
                Value::Integer(i) => u16::try_from(*i).ok(),
                Value::Number(n) if n.fract() == 0.0 && (0.0..=65535.0).contains(n) => Some(*n as u16),
                _ => None,
            };
            let bad = || located(lua, format!("haka.policy: '{key}' must be a port or {{min, max}}"));
            match v {
                Value::Table(t) => {
                    let lo = port(&t.raw_get::<Value>(1)?).ok_or_else(bad)?;
                    let hi = port(&t.raw_get::<Value>(2)?).ok_or_else(bad)?;
                    if lo > hi {
                        return Err(bad());
                    }
                    Want::Ports(lo, hi)
                }
                v => {
                    let p = port(v).ok_or_else(bad)?;
                    Want::Ports(p, p)
                }
            }
        }
    };
    Ok((field, want))
}

fn action(lua: &Lua, v: &Value) -> mlua::Result<PolicyAction> {
    let kind = match v {
        Value::Table(t) => t.raw_get::<Option<String>>(ACTION_KEY)?,
        _ => None,
    };
    match (kind.as_deref(), v) {
        (Some("accept"), _) => Ok(PolicyAction::Accept),
        (Some("drop"), _) => Ok(PolicyAction::Drop),
        (Some("alert"), Value::Table(t)) => Ok(PolicyAction::Alert(t.raw_get("alert")?)),
        _ => Err(located(
            lua,
            "haka.policy: 'action' must be haka.policy.accept, haka.policy.drop, haka.policy.alert{...} or a list of them",
        )),
    }
}
