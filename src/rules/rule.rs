//! `haka.rule{ on = <event>, eval = function ... end }`: declaring a rule.
//! Rules are only declared while the rule files load; the dispatcher then
//! keeps them in per-event lists.

use mlua::{Function, Lua, Table, Value};

use super::context::context;
use super::dissectors::{Hook, Hooks};
use super::error::located;
use crate::inspect::Event;

/// One declared rule.
#[derive(Debug, Clone)]
pub(super) struct Rule {
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
    /// `options = { streamed = true }`: eval runs as a coroutine over a
    /// blocking stream iterator (Haka's streamed rules).
    pub streamed: bool,
}

/// The policies declared on points made by `haka.policy.new` (they live in
/// their point; the loader only counts them). Lua app data while loading.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PointPolicies(pub usize);

/// Appends `item` to the declarations of its kind (`Vec<Rule>` or
/// `Vec<Policy>`, Lua app data while the rule files load); returns its
/// position.
pub(super) fn declare<T: 'static>(lua: &Lua, item: T, what: &str) -> mlua::Result<usize> {
    let mut list = lua
        .try_app_data_mut::<Vec<T>>()
        .map_err(|_| located(lua, format!("{what} called re-entrantly")))?
        .ok_or_else(|| located(lua, format!("{what} can only be called while the rule files load")))?;
    list.push(item);
    Ok(list.len() - 1)
}

/// The `haka.rule` function.
pub(super) fn rule_function(lua: &Lua, hooks: Hooks) -> mlua::Result<Function> {
    lua.create_function(move |lua, spec: Value| {
        let Value::Table(spec) = spec else {
            return Err(located(lua, "haka.rule expects a table { on = <event>, eval = <function> }"));
        };
        let rule = parse(lua, &hooks, &spec)?;
        let ctx = context(lua)?;
        if !ctx.loading.get() {
            return Err(located(lua, "haka.rule can only be called while the rule files load"));
        }
        drop(ctx);
        let order = lua.try_app_data_ref::<Vec<Rule>>().ok().flatten().map_or(0, |l| l.len());
        declare(lua, Rule { order, ..rule }, "haka.rule")?;
        Ok(())
    })
}

/// The keys `haka.rule{}` knows (Haka's, with its deprecated `hook`).
const RULE_KEYS: &[&str] = &["on", "eval", "name", "options", "hook"];
/// The options a rule may give.
const OPTION_KEYS: &[&str] = &["streamed"];

fn parse(lua: &Lua, hooks: &Hooks, spec: &Table) -> mlua::Result<Rule> {
    check_keys(lua, spec, RULE_KEYS, "haka.rule", "key")?;
    let on = hook_value(lua, spec)?;
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
    let eval = match spec.raw_get::<Value>("eval")? {
        Value::Function(f) => f,
        _ => return Err(located(lua, "haka.rule: 'eval' must be a function")),
    };
    let name = match spec.raw_get::<Value>("name")? {
        Value::Nil => None,
        Value::String(s) => Some(s.to_string_lossy()),
        _ => return Err(located(lua, "haka.rule: 'name' must be a string")),
    };
    let streamed = options(lua, spec.raw_get("options")?)?;
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

/// `on`, or Haka's deprecated `hook` (accepted with a warning, as Haka does).
fn hook_value(lua: &Lua, spec: &Table) -> mlua::Result<Value> {
    let on: Value = spec.raw_get("on")?;
    let hook: Value = spec.raw_get("hook")?;
    match (on.is_nil(), hook.is_nil()) {
        (_, true) => Ok(on),
        (true, false) => {
            let at = super::error::rule_location(lua).unwrap_or_default();
            tracing::warn!(target: "sluice::rules", "{at}: haka.rule: 'hook' is deprecated, write 'on'");
            Ok(hook)
        }
        (false, false) => Err(located(lua, "haka.rule: give 'on' only ('hook' is its deprecated name)")),
    }
}

/// `options = { streamed = true }`; returns `streamed`.
fn options(lua: &Lua, v: Value) -> mlua::Result<bool> {
    let t = match v {
        Value::Nil => return Ok(false),
        Value::Table(t) => t,
        _ => {
            return Err(located(
                lua,
                "haka.rule: 'options' must be a table, e.g. options = { streamed = true }",
            ))
        }
    };
    check_keys(lua, &t, OPTION_KEYS, "haka.rule: options", "option")?;
    match t.raw_get::<Value>("streamed")? {
        Value::Nil => Ok(false),
        Value::Boolean(b) => Ok(b),
        _ => Err(located(lua, "haka.rule: option 'streamed' must be true or false")),
    }
}

/// Refuses any key of `t` not in `known`, naming it: a misspelt key must
/// not silently turn a rule into something else.
fn check_keys(lua: &Lua, t: &Table, known: &[&str], what: &str, noun: &str) -> mlua::Result<()> {
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let bad = match &k {
            Value::String(s) => {
                let s = s.to_string_lossy();
                if known.contains(&s.as_str()) {
                    continue;
                }
                format!("unknown {noun} '{s}'")
            }
            Value::Integer(i) => format!("unexpected list entry [{i}]"),
            other => format!("unexpected {noun} of type {}", other.type_name()),
        };
        let known = known.iter().filter(|k| **k != "hook").copied().collect::<Vec<_>>().join(", ");
        return Err(located(lua, format!("{what}: {bad} (known: {known})")));
    }
    Ok(())
}
