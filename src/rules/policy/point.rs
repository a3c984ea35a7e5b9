//! Policy points rules make: `haka.policy.new(name)` returns one, policies
//! are declared `on` it, and `point:apply{ values =, ctx =, desc = }` runs
//! them: the last eligible policy's actions act on `ctx`.

use std::cell::RefCell;
use std::sync::Arc;

use mlua::{AnyUserData, Lua, Table, UserData, UserDataFields, UserDataMethods, Value};

use super::super::error::located;
use super::action::ActionCall;
use super::{key_text, select, Spec, Values};

/// A policy point made by `haka.policy.new(name)`.
#[derive(Debug)]
pub(crate) struct PointUd {
    pub(super) name: String,
    /// Shared so `apply` can hold them while actions use the point.
    pub(super) specs: RefCell<Arc<Vec<Spec>>>,
}

impl UserData for PointUd {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("name", |_, this| Ok(this.name.clone()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_function("apply", |lua, (this, p): (AnyUserData, Value)| apply(lua, &this, p));
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| {
            Ok(format!("policy point '{}'", this.name))
        });
    }
}

/// `point:apply{ values = {...}, ctx = obj, desc = {...} }`.
fn apply(lua: &Lua, this: &AnyUserData, p: Value) -> mlua::Result<()> {
    let Value::Table(p) = p else {
        return Err(located(lua, "policy:apply expects a table { values = ..., ctx = ..., desc = ... }"));
    };
    for pair in p.pairs::<Value, Value>() {
        let (k, _) = pair?;
        if !matches!(&k, Value::String(s) if matches!(s.as_bytes().as_ref(), b"values" | b"ctx" | b"desc")) {
            return Err(located(
                lua,
                format!("policy:apply: unknown key {} (known: values, ctx, desc)", key_text(&k)),
            ));
        }
    }
    let ctx: Value = p.raw_get("ctx")?;
    if ctx.is_nil() {
        return Err(located(
            lua,
            "policy:apply: 'ctx' is missing (the object the actions act on, e.g. the flow or the packet)",
        ));
    }
    let table_or_empty = |key: &str| -> mlua::Result<Table> {
        match p.raw_get::<Value>(key)? {
            Value::Nil => lua.create_table(),
            Value::Table(t) => Ok(t),
            _ => Err(located(lua, format!("policy:apply: '{key}' must be a table"))),
        }
    };
    let values = table_or_empty("values")?;
    let desc = table_or_empty("desc")?;
    // Copied out (they are handles), so the actions may use the point.
    let (name, specs) = {
        let point = this.borrow::<PointUd>()?;
        let specs = point.specs.try_borrow().map_err(|_| located(lua, "policy:apply: the point is busy"))?;
        (point.name.clone(), Arc::clone(&specs))
    };
    let Some(i) = select(lua, specs.iter(), &Values::Table(values.clone()))? else { return Ok(()) };
    let call = ActionCall {
        point: Value::UserData(this.clone()),
        point_name: &name,
        ctx,
        values: Value::Table(values),
        desc: Value::Table(desc),
    };
    call.run(lua, &specs[i])
}
