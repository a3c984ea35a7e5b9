//! Sub-buffers (Haka's `vbuffer_sub`): the bytes a streamed rule takes from
//! its iterator, as one Lua object that holds a copy of them.
//!
//! A streamed rule takes one on every chunk (`for sub in
//! iter:foreach_available()`), so it is a plain Lua userdata made and read
//! through the C API: its bytes are a Lua string, its user value, and
//! nothing in it needs dropping, so the collector frees it with no
//! finaliser to run and no Rust object to reach (an mlua userdata holding
//! shares of the stream's blocks cost a finaliser, a Rust allocation and
//! the blocks' late release per chunk). `sub:asstring()` hands out that
//! string, copying nothing. Its bytes count in the Lua memory limit.
//!
//! `#sub`, `sub:size()`, `sub:asstring()`, `tostring(sub)`,
//! `sub:check_size(n)`, `sub[i]` (1-based byte) and `sub:sub(offset, size)`
//! (0-based offset, a size or `'all'`) are C functions (`c_closure.rs`);
//! anything they do not serve (a bad argument, an unknown field) goes to a
//! Rust function given the bytes as a string, which holds the messages.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use mlua::{ffi, Function, Lua, Value};

use super::c_closure::closure;
use super::error::located;
use super::stream_buf::Block;

/// Registry key (its address) of the sub-buffers' metatable.
static METATABLE_KEY: u8 = 0;

fn key() -> *const c_void {
    ptr::addr_of!(METATABLE_KEY).cast()
}

/// Makes the string on top of the stack a sub-buffer: a userdata with no
/// bytes of its own and the string as its user value (so `asstring` hands
/// out that string, copying nothing).
///
/// # Safety
/// `l` is a running Lua state with a string on top and the metatable
/// installed ([`install`]); this may raise a memory error (a longjmp: the
/// caller holds nothing that needs dropping while it runs).
pub(super) unsafe fn wrap(l: *mut ffi::lua_State) {
    ffi::lua_newuserdatauv(l, 0, 1);
    ffi::lua_insert(l, -2);
    ffi::lua_setiuservalue(l, -2, 1);
    ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, key());
    ffi::lua_setmetatable(l, -2);
}

/// Pushes the string of the sub-buffer at `idx` (checked by [`bytes`]).
///
/// # Safety
/// `l` is a running Lua state; the value at `idx` is a sub-buffer.
unsafe fn push_string(l: *mut ffi::lua_State, idx: c_int) {
    ffi::lua_getiuservalue(l, idx, 1);
}

/// The bytes of the sub-buffer at `idx`, if the value there is one.
///
/// # Safety
/// `l` is a running Lua state; the slice lives as long as the value (its
/// user value, a string, which Lua never moves, lives as long as it).
pub(super) unsafe fn bytes<'a>(l: *mut ffi::lua_State, idx: c_int) -> Option<&'a [u8]> {
    if ffi::lua_type(l, idx) != ffi::LUA_TUSERDATA || ffi::lua_getmetatable(l, idx) == 0 {
        return None;
    }
    ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, key());
    let ours = ffi::lua_rawequal(l, -1, -2) != 0;
    ffi::lua_pop(l, 2);
    if !ours {
        return None;
    }
    if ffi::lua_getiuservalue(l, idx, 1) != ffi::LUA_TSTRING {
        ffi::lua_pop(l, 1);
        return None;
    }
    let mut len = 0;
    let p = ffi::lua_tolstring(l, -1, &mut len) as *const u8;
    ffi::lua_pop(l, 1);
    Some(std::slice::from_raw_parts(p, len))
}

/// A sub-buffer of the stream bytes in `parts`, as a Lua value (from Rust
/// code; the hot path makes them in C, `stream_objects.rs`).
pub(super) fn value(lua: &Lua, parts: &[(Block, std::ops::Range<usize>)]) -> mlua::Result<Value> {
    // SAFETY: `exec_raw` runs this in protected mode (a memory error is
    // caught); `parts` is borrowed, so nothing is dropped if it unwinds.
    unsafe {
        lua.exec_raw::<Value>((), |l| {
            for (b, r) in parts {
                let src = b.get(r.clone()).unwrap_or_default();
                ffi::lua_pushlstring(l, src.as_ptr() as *const c_char, src.len());
            }
            match parts.len() {
                0 => {
                    ffi::lua_pushlstring(l, ptr::null(), 0);
                }
                1 => {}
                n => ffi::lua_concat(l, c_int::try_from(n).unwrap_or(c_int::MAX)),
            }
            wrap(l);
        })
    }
}

/// A sub-buffer holding a copy of `bytes`.
fn from_bytes(lua: &Lua, bytes: &[u8]) -> mlua::Result<Value> {
    // SAFETY: as in `value`.
    unsafe {
        lua.exec_raw::<Value>((), |l| {
            ffi::lua_pushlstring(l, bytes.as_ptr() as *const c_char, bytes.len());
            wrap(l);
        })
    }
}

/// Calls the Rust function in upvalue 1 with the arguments, the sub-buffer
/// (argument 1) replaced by its bytes as a string; returns its results.
///
/// # Safety
/// `l` is a running C function's state; argument 1 is a sub-buffer whose
/// bytes are `b`.
unsafe fn slow(l: *mut ffi::lua_State, b: &[u8]) -> c_int {
    let top = ffi::lua_gettop(l);
    ffi::lua_pushlstring(l, b.as_ptr() as *const c_char, b.len());
    ffi::lua_replace(l, 1);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, top, ffi::LUA_MULTRET);
    ffi::lua_gettop(l)
}

/// The integer at `idx` if it is an integer (not a float), else `None`.
unsafe fn integer(l: *mut ffi::lua_State, idx: c_int) -> Option<i64> {
    (ffi::lua_isinteger(l, idx) != 0).then(|| ffi::lua_tointeger(l, idx))
}

/// The bytes of argument 1, or the error of upvalue 2 (the value is not a
/// sub-buffer: `sub.asstring(x)`).
macro_rules! this {
    ($l:expr) => {
        match bytes($l, 1) {
            Some(b) => b,
            None => {
                ffi::lua_settop($l, 0);
                ffi::lua_pushvalue($l, ffi::lua_upvalueindex(2));
                ffi::lua_call($l, 0, 0);
                return 0;
            }
        }
    };
}

/// `sub:asstring()`, `tostring(sub)`.
unsafe extern "C-unwind" fn asstring(l: *mut ffi::lua_State) -> c_int {
    let _ = this!(l);
    push_string(l, 1);
    1
}

/// `#sub`, `sub:size()`.
unsafe extern "C-unwind" fn size(l: *mut ffi::lua_State) -> c_int {
    let b = this!(l);
    ffi::lua_pushinteger(l, b.len() as ffi::lua_Integer);
    1
}

/// `sub:check_size(n)`: `true, n` if it holds `n` bytes, else `false, #sub`.
unsafe extern "C-unwind" fn check_size(l: *mut ffi::lua_State) -> c_int {
    let b = this!(l);
    match integer(l, 2).and_then(|n| usize::try_from(n).ok()) {
        Some(n) => {
            let ok = b.len() >= n;
            ffi::lua_pushboolean(l, c_int::from(ok));
            ffi::lua_pushinteger(l, if ok { n } else { b.len() } as ffi::lua_Integer);
            2
        }
        _ => slow(l, b),
    }
}

/// `sub:sub([offset[, size]])`: 0-based offset, a size or `'all'`.
unsafe extern "C-unwind" fn sub(l: *mut ffi::lua_State) -> c_int {
    let b = this!(l);
    let off = match ffi::lua_type(l, 2) {
        ffi::LUA_TNONE | ffi::LUA_TNIL => Some(0),
        _ => integer(l, 2).and_then(|n| usize::try_from(n).ok()),
    };
    let Some(off) = off else { return slow(l, b) };
    let skip = off.min(b.len());
    let rest = b.len() - skip;
    let take = match ffi::lua_type(l, 3) {
        ffi::LUA_TNONE | ffi::LUA_TNIL => Some(rest),
        ffi::LUA_TSTRING if is_all(l, 3) => Some(rest),
        ffi::LUA_TNUMBER => match integer(l, 3) {
            Some(n) => usize::try_from(n).ok().map(|n| n.min(rest)),
            None => whole_float(ffi::lua_tonumber(l, 3)).map(|n| n.min(rest)),
        },
        _ => None,
    };
    let Some(take) = take else { return slow(l, b) };
    let part = b.get(skip..skip + take).unwrap_or_default();
    // `part` borrows the string of argument 1, which stays on the stack.
    ffi::lua_pushlstring(l, part.as_ptr() as *const c_char, part.len());
    wrap(l);
    1
}

/// True if the string at `idx` is `all`.
unsafe fn is_all(l: *mut ffi::lua_State, idx: c_int) -> bool {
    let mut len = 0;
    let s = ffi::lua_tolstring(l, idx, &mut len);
    !s.is_null() && std::slice::from_raw_parts(s as *const u8, len) == b"all"
}

/// A float size that is a whole non-negative number (as Haka took them).
fn whole_float(n: f64) -> Option<usize> {
    (n >= 0.0 && n.fract() == 0.0).then_some(n as usize)
}

/// `sub[key]`: the methods, the byte at a 1-based integer index (nil out of
/// range), else the slow function's error. Upvalues: 1 the slow function,
/// 2 the not-a-sub-buffer error, 3 the methods table.
unsafe extern "C-unwind" fn index(l: *mut ffi::lua_State) -> c_int {
    let b = this!(l);
    ffi::lua_settop(l, 2);
    if let Some(i) = integer(l, 2) {
        match usize::try_from(i).ok().and_then(|i| i.checked_sub(1)).and_then(|i| b.get(i)) {
            Some(byte) => ffi::lua_pushinteger(l, ffi::lua_Integer::from(*byte)),
            None => ffi::lua_pushnil(l),
        }
        return 1;
    }
    ffi::lua_pushvalue(l, 2);
    if ffi::lua_rawget(l, ffi::lua_upvalueindex(3)) != ffi::LUA_TNIL {
        return 1;
    }
    ffi::lua_pop(l, 1);
    slow(l, b)
}

/// A field name or a value's type, for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{}'", s.to_string_lossy()),
        other => other.type_name().to_string(),
    }
}

/// `'all'`, or a size (what the C `sub` refused, for its message).
fn size_arg(lua: &Lua, v: &Value, rest: usize) -> mlua::Result<usize> {
    match v {
        Value::Nil => Ok(rest),
        Value::String(s) if s.as_bytes() == b"all" => Ok(rest),
        Value::Integer(n) if *n >= 0 => Ok(usize::try_from(*n).unwrap_or(usize::MAX).min(rest)),
        Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Ok((*n as usize).min(rest)),
        _ => Err(located(lua, "sub:sub: size must be a non-negative integer or 'all'")),
    }
}

/// The functions' slow paths: given the bytes as a string (empty when
/// argument 1 was not a sub-buffer), they answer what the C functions did
/// not, mostly with an error.
struct Slow {
    not_a_sub: Function,
    check_size: Function,
    sub: Function,
    index: Function,
}

fn slow_functions(lua: &Lua) -> mlua::Result<Slow> {
    Ok(Slow {
        not_a_sub: lua.create_function(|lua, ()| -> mlua::Result<()> {
            Err(located(lua, "sub-buffer method called on something else (use sub:method())"))
        })?,
        check_size: lua.create_function(|_, (b, n): (mlua::String, usize)| {
            let len = b.as_bytes().len();
            Ok(if len >= n { (true, n) } else { (false, len) })
        })?,
        sub: lua.create_function(|lua, (b, off, size): (mlua::String, Option<i64>, Value)| {
            let b = b.as_bytes();
            let off = off.unwrap_or(0);
            if off < 0 {
                return Err(located(lua, "sub:sub offset starts at 0 (Haka's vbuffer offsets)"));
            }
            let skip = usize::try_from(off).unwrap_or(usize::MAX).min(b.len());
            let take = size_arg(lua, &size, b.len() - skip)?;
            from_bytes(lua, b.get(skip..skip + take).unwrap_or_default())
        })?,
        index: lua.create_function(|lua, (_, key): (Value, Value)| -> mlua::Result<()> {
            Err(located(lua, format!("sub-buffer has no field {}", describe(&key))))
        })?,
    })
}

/// Makes the sub-buffers' metatable, once per state (before any iterator).
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    // SAFETY: reads one registry slot in protected mode.
    let present = unsafe {
        lua.exec_raw::<bool>((), |l| {
            let t = ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, key());
            ffi::lua_pop(l, 1);
            ffi::lua_pushboolean(l, c_int::from(t != ffi::LUA_TNIL));
        })?
    };
    if present {
        return Ok(());
    }
    let slow = slow_functions(lua)?;
    // Upvalues: the slow function, the not-a-sub-buffer error.
    let not = slow.not_a_sub.clone();
    let c = |f: ffi::lua_CFunction, s: &Function| closure(lua, f, (s.clone(), not.clone()));
    let methods = lua.create_table()?;
    methods.raw_set("asstring", c(asstring, &slow.not_a_sub)?)?;
    methods.raw_set("size", c(size, &slow.not_a_sub)?)?;
    methods.raw_set("check_size", c(check_size, &slow.check_size)?)?;
    methods.raw_set("sub", c(sub, &slow.sub)?)?;
    let mt = lua.create_table()?;
    mt.raw_set("__index", closure(lua, index, (slow.index.clone(), slow.not_a_sub.clone(), methods))?)?;
    mt.raw_set("__len", c(size, &slow.not_a_sub)?)?;
    mt.raw_set("__tostring", c(asstring, &slow.not_a_sub)?)?;
    mt.raw_set("__name", "sub-buffer")?;
    mt.raw_set("__metatable", false)?;
    // SAFETY: stores the table (pushed as the argument) in one registry slot.
    unsafe { lua.exec_raw::<()>(mt, |l| ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, key())) }
}
