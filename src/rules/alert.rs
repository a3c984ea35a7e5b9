//! `haka.alert{...}`: turns the alert table into one JSON object on the
//! alert sink. Every given field is converted (tables become arrays or
//! objects, address and network objects their text), and sluice adds
//! `id`, `time` (packet time, seconds) and, inside a flow event, `flow`.

use mlua::{Lua, Table, Value};
use serde_json::{Map, Value as Json};

use super::addr::{AddrUd, NetworkUd};
use super::context::{context, RuleContext};
use super::error::located;
use crate::stats::Counter;

/// Tables nested deeper than this are cut off (also stops cycles).
const MAX_DEPTH: usize = 16;
/// At most this many values are converted per alert.
const MAX_VALUES: usize = 10_000;

/// The `haka.alert` table: callable, plus Haka's `address` and `service`
/// helpers for `sources` and `targets`.
pub(super) fn install(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    // haka.alert.address(a, ...): an address entry for sources/targets.
    t.raw_set(
        "address",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            let e = lua.create_table()?;
            let list = lua.create_sequence_from(args)?;
            e.raw_set("address", list)?;
            Ok(e)
        })?,
    )?;
    // haka.alert.service(name, ...): e.g. "tcp/80".
    t.raw_set(
        "service",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            let e = lua.create_table()?;
            let list = lua.create_sequence_from(args)?;
            e.raw_set("service", list)?;
            Ok(e)
        })?,
    )?;
    let mt = lua.create_table()?;
    mt.raw_set(
        "__call",
        lua.create_function(|lua, (_, spec): (Value, Value)| match spec {
            Value::Table(t) => {
                let ctx = context(lua)?;
                raise(lua, &ctx, &t, None)
            }
            _ => Err(located(lua, "haka.alert expects a table")),
        })?,
    )?;
    t.set_metatable(Some(mt))?;
    Ok(t)
}

/// Emits the alert described by `spec`; returns its id. `policy` names the
/// policy that raised it, if any.
pub(super) fn raise(lua: &Lua, ctx: &RuleContext, spec: &Table, policy: Option<&str>) -> mlua::Result<u64> {
    let mut budget = MAX_VALUES;
    let mut fields = Vec::new();
    for pair in spec.pairs::<Value, Value>() {
        let (k, v) = pair?;
        if budget == 0 {
            break;
        }
        let Some(key) = key_string(&k) else { continue };
        fields.push((key, to_json(&v, 0, &mut budget)));
    }
    let id = ctx.last_alert_id.get() + 1;
    ctx.last_alert_id.set(id);
    let mut obj = Map::new();
    obj.insert("id".into(), Json::from(id));
    obj.insert("time".into(), Json::from(ctx.time.get().as_secs_f64()));
    // Lua iterates tables in a per-state random order; sort so alert lines
    // are reproducible: Haka's fields first, in their documented order.
    for (k, v) in sorted(fields, ALERT_FIELDS) {
        obj.insert(k, v);
    }
    if let Some(p) = policy {
        obj.insert("policy".into(), Json::from(p));
    }
    if let Some(f) = ctx.flow.try_borrow().map_err(|_| located(lua, "flow busy"))?.as_ref() {
        let mut flow = Map::new();
        flow.insert("proto".into(), Json::from(f.proto.name()));
        flow.insert("src".into(), Json::from(f.src.to_string()));
        flow.insert("sport".into(), Json::from(f.src_port));
        flow.insert("dst".into(), Json::from(f.dst.to_string()));
        flow.insert("dport".into(), Json::from(f.dst_port));
        obj.insert("flow".into(), Json::Object(flow));
    }
    ctx.alerts.emit(&Json::Object(obj));
    ctx.stats.inc(Counter::Alerts);
    Ok(id)
}

/// Haka's alert fields, in the order alert lines show them.
const ALERT_FIELDS: &[&str] =
    &["description", "severity", "confidence", "method", "sources", "targets", "ref", "completion"];

/// Orders object fields: `first` in its order, then the rest by name.
fn sorted(mut fields: Vec<(String, Json)>, first: &[&str]) -> Vec<(String, Json)> {
    let rank = |k: &str| first.iter().position(|f| *f == k).unwrap_or(first.len());
    fields.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    fields
}

fn key_string(k: &Value) -> Option<String> {
    match k {
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Converts a Lua value to JSON.
pub(super) fn to_json(v: &Value, depth: usize, budget: &mut usize) -> Json {
    if *budget == 0 {
        return Json::Null;
    }
    *budget -= 1;
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(n) => serde_json::Number::from_f64(*n).map(Json::Number).unwrap_or(Json::Null),
        Value::String(s) => Json::String(s.to_string_lossy()),
        Value::Table(_) if depth >= MAX_DEPTH => Json::Null,
        Value::Table(t) => table_to_json(t, depth, budget),
        Value::UserData(ud) => {
            if let Ok(a) = ud.borrow::<AddrUd>() {
                Json::String(a.0.to_string())
            } else if let Ok(n) = ud.borrow::<NetworkUd>() {
                Json::String(n.0.to_string())
            } else {
                // Other objects (packets, data) print through their __tostring.
                v.to_string().map(Json::String).unwrap_or(Json::Null)
            }
        }
        other => Json::String(other.type_name().to_owned()),
    }
}

fn table_to_json(t: &Table, depth: usize, budget: &mut usize) -> Json {
    // A sequence 1..n with nothing else is an array; anything else an object.
    let n = t.raw_len();
    let mut count = 0usize;
    for pair in t.pairs::<Value, Value>() {
        if pair.is_err() {
            break;
        }
        count += 1;
        if count > n {
            break;
        }
    }
    if count == n && n > 0 {
        let mut arr = Vec::with_capacity(n.min(*budget));
        for i in 1..=n {
            if *budget == 0 {
                break;
            }
            let v: Value = t.raw_get(i).unwrap_or(Value::Nil);
            arr.push(to_json(&v, depth + 1, budget));
        }
        return Json::Array(arr);
    }
    let mut fields = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let Ok((k, v)) = pair else { break };
        if *budget == 0 {
            break;
        }
        if let Some(key) = key_string(&k) {
            fields.push((key, to_json(&v, depth + 1, budget)));
        }
    }
    Json::Object(sorted(fields, &[]).into_iter().collect())
}
