//! `haka.rule{ on = <event>, eval = function ... end }`: declaring a rule.
//! Rules are only declared while the rule files load; the dispatcher then
//! keeps them in per-event lists.

use mlua::{Function, Lua, Table, Value};

use super::context::context;
use super::dissectors::{Hook, Hooks};
use super::error::located;
use super::policy::Policy;
use crate::inspect::Event;

/// One declared rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The event it hooks.
    pub event: Event,
    /// The `eval` function.
    pub eval: Function,
    /// What logs call it: its `name`, else `file:line` of its `eval`.
    pub label: String,
    /// Runtime errors so far (for log rate limiting).
    pub errors: u64,
    /// Position in declaration order.
    pub order: usize,
    /// `options = { streamed = true }`: eval runs as a coroutine that reads
    /// the stream through a blocking iterator.
    pub streamed: bool,
}

/// Everything the rule files declared.
#[derive(Debug, Default)]
pub struct Registry {
    /// Rules, in declaration order.
    pub rules: Vec<Rule>,
    /// Policies, in declaration order.
    pub policies: Vec<Policy>,
}

/// The `haka.rule` function.
pub fn rule_function(lua: &Lua, hooks: Hooks) -> mlua::Result<Function> {
    lua.create_function(move |lua, spec: Value| {
        let Value::Table(spec) = spec else {
            return Err(located(lua, "haka.rule expects a table { on = <event>, eval = <function> }"));
        };
        let rule = parse(lua, &hooks, &spec)?;
        let ctx = context(lua)?;
        if !ctx.loading.get() {
            return Err(located(lua, "haka.rule can only be called while the rule files load"));
        }
        let mut registry =
            ctx.registry.try_borrow_mut().map_err(|_| located(lua, "haka.rule called re-entrantly"))?;
        let order = registry.rules.len();
        registry.rules.push(Rule { order, ..rule });
        Ok(())
    })
}

fn parse(lua: &Lua, hooks: &Hooks, spec: &Table) -> mlua::Result<Rule> {
    let on: Value = spec.get("on")?;
    let event = match hooks.lookup(&on) {
        Some(Hook::Event(e)) => e,
        Some(Hook::Policy(_)) => {
            return Err(located(lua, "haka.rule: 'on' is a policy point; use haka.policy for it"));
        }
        None if on.is_nil() => {
            return Err(located(
                lua,
                "haka.rule: 'on' is missing or nil (did you require the protocol module and spell the event right?)",
            ));
        }
        None => return Err(located(lua, "haka.rule: 'on' is not a known event")),
    };
    let eval = match spec.get::<Value>("eval")? {
        Value::Function(f) => f,
        _ => return Err(located(lua, "haka.rule: 'eval' must be a function")),
    };
    let name = match spec.get::<Value>("name")? {
        Value::Nil => None,
        Value::String(s) => Some(s.to_string_lossy()),
        _ => return Err(located(lua, "haka.rule: 'name' must be a string")),
    };
    let streamed = match spec.get::<Value>("options")? {
        Value::Nil => false,
        Value::Table(o) => match o.get::<Value>("streamed")? {
            Value::Nil => false,
            Value::Boolean(b) => b,
            _ => return Err(located(lua, "haka.rule: options.streamed must be a boolean")),
        },
        _ => return Err(located(lua, "haka.rule: 'options' must be a table")),
    };
    if streamed && event != Event::TcpData {
        return Err(located(
            lua,
            "haka.rule: options.streamed applies to tcp_connection.events.receive_data only",
        ));
    }
    let info = eval.info();
    let at = format!("{}:{}", info.short_src.as_deref().unwrap_or("?"), info.line_defined.unwrap_or(0));
    let label = match name {
        Some(n) => format!("{n} ({at})"),
        None => at,
    };
    Ok(Rule { event, eval, label, errors: 0, order: 0, streamed })
}
