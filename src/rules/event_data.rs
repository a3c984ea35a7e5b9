//! The `data` argument of TCP `receive_data`: a light userdata, not an
//! object. Making a userdata for every event cost an allocation, a
//! metatable lookup and a finaliser run by the collector; a light userdata
//! is a plain value that costs nothing to make or to drop.
//!
//! Its value names the event it was made for: the event serial, shifted
//! left, with a tag in the low byte. Every function on it checks that the
//! serial is the running event's, so a `data` a rule kept past its event
//! refuses to work (as the object did). Its bytes are the ones the engine
//! lends for the event (`RuleContext::data`); they become a Lua string only
//! when the rule asks (`asstring`, `tostring`); `#data` and `data[i]` read
//! them in place, and `data:sub` makes a view object, copying nothing.
//!
//! All light userdata of the state share one metatable; sluice makes no
//! other light userdata that rules can reach, and the functions refuse a
//! value whose tag is not this one's.

use std::ffi::c_void;

use mlua::{LightUserData, Lua, Table, Value};

use super::context::{context, Ctx, DATA_TAG as TAG};
use super::data::{sub_range, DataUd, Source};
use super::error::located;

/// The `data` of event `epoch` (`epoch < 2^EPOCH_BITS`, see context.rs).
pub(super) fn value(epoch: u64) -> Value {
    Value::LightUserData(LightUserData(((epoch << 8) | TAG) as usize as *mut c_void))
}

/// The event serial of a `data` value.
fn epoch_of(lua: &Lua, v: &Value) -> mlua::Result<u64> {
    match v {
        Value::LightUserData(d) if (d.0 as usize as u64) & 0xff == TAG => Ok(d.0 as usize as u64 >> 8),
        other => Err(located(lua, format!("receive_data data expected, got {}", other.type_name()))),
    }
}

/// True if `v` is a `data` value (of any event).
pub(super) fn is_data(v: &Value) -> bool {
    matches!(v, Value::LightUserData(d) if (d.0 as usize as u64) & 0xff == TAG)
}

/// The view object `v` stands for, if it is a `data` value; an error if
/// its event is over (for the functions that take any data view).
pub(super) fn as_view(lua: &Lua, v: &Value) -> mlua::Result<Option<DataUd>> {
    if !is_data(v) {
        return Ok(None);
    }
    let epoch = epoch_of(lua, v)?;
    let ctx = context(lua)?;
    ctx.check_live(lua, epoch, "data")?;
    let len = ctx.data.with(|b| b.map(<[u8]>::len)).ok_or_else(|| located(lua, "data buffer busy"))?;
    Ok(Some(DataUd { epoch, source: Source::Stream, start: 0, len }))
}

/// Runs `f` on the bytes of `data` after checking its event is running.
fn with_bytes<R>(
    lua: &Lua,
    ctx: &Ctx,
    data: &Value,
    f: impl FnOnce(&[u8]) -> mlua::Result<R>,
) -> mlua::Result<R> {
    ctx.check_live(lua, epoch_of(lua, data)?, "data")?;
    ctx.data.with(|b| f(b.ok_or_else(|| located(lua, "data buffer busy"))?))
}

/// Makes the metatable of `data` values (the light userdata type's).
pub(super) fn install(lua: &Lua, ctx: &Ctx) -> mlua::Result<()> {
    let c = ctx.clone();
    let slow_string =
        lua.create_function(move |lua, d: Value| with_bytes(lua, &c, &d, |b| lua.create_string(b)))?;
    let asstring = super::event_data_c::asstring_function(lua, ctx, slow_string)?;
    let methods = lua.create_table()?;
    methods.raw_set("asstring", asstring.clone())?;
    let c = ctx.clone();
    methods.raw_set(
        "sub",
        lua.create_function(move |lua, (d, off, len): (Value, i64, Option<i64>)| {
            let epoch = epoch_of(lua, &d)?;
            let total = with_bytes(lua, &c, &d, |b| Ok(b.len()))?;
            let (skip, take) = sub_range(lua, total, off, len)?;
            Ok(DataUd { epoch, source: Source::Stream, start: skip, len: take })
        })?,
    )?;
    let c = ctx.clone();
    // `data[i]`: the i-th byte (1-based) as a number, nil past the end.
    let byte = lua.create_function(move |lua, (d, k): (Value, Value)| {
        let i = match k {
            Value::Integer(i) => i,
            Value::Number(n) if n.fract() == 0.0 => n as i64,
            other => {
                let name = match &other {
                    Value::String(s) => format!("'{}'", s.to_string_lossy()),
                    v => v.type_name().to_string(),
                };
                return Err(located(lua, format!("data has no field {name}")));
            }
        };
        with_bytes(lua, &c, &d, |b| {
            Ok(usize::try_from(i).ok().and_then(|i| i.checked_sub(1)).and_then(|i| b.get(i)).copied())
        })
    })?;
    let mt: Table = lua.create_table()?;
    mt.raw_set("__index", super::event_data_c::index_function(lua, methods, byte)?)?;
    let c = ctx.clone();
    let slow_len = lua.create_function(move |lua, d: Value| with_bytes(lua, &c, &d, |b| Ok(b.len())))?;
    mt.raw_set("__len", super::event_data_c::len_function(lua, ctx, slow_len)?)?;
    mt.raw_set("__tostring", asstring)?;
    mt.raw_set(
        "__newindex",
        lua.create_function(|lua, _: mlua::MultiValue| -> mlua::Result<()> {
            Err(located(lua, "data is read-only"))
        })?,
    )?;
    // As for every sluice object: rules cannot reach or change it.
    mt.raw_set("__metatable", false)?;
    lua.set_type_metatable::<LightUserData>(Some(mt));
    Ok(())
}
