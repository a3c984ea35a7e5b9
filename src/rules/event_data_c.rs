//! The C side of `data` values (see `event_data.rs`): `data:asstring()`,
//! `tostring(data)`, `#data` and the method lookup of `data:...` are what a
//! `receive_data` rule calls on every event, so they are C functions
//! (`c_closure.rs`). They read the rule context directly: the event serial,
//! to check the value is the running event's, and the lent bytes. Anything
//! they do not serve (a stale or foreign value, no bytes lent, `data[i]`)
//! goes to the Rust function they close over, which gives the same answer
//! or error as before.

use std::ffi::{c_char, c_int, c_void};

use mlua::{ffi, Function, LightUserData, Lua, Table};

use super::c_closure::{call_upvalue, closure};
use super::context::{Ctx, RuleContext, DATA_TAG};

/// The bytes of the `data` value at index 1, if it is the running event's
/// and bytes are lent.
///
/// # Safety
/// Upvalue 1 of the running C function is the light userdata made by
/// [`context_value`] for this Lua state.
unsafe fn lent_bytes(l: *mut ffi::lua_State) -> Option<(*const u8, usize)> {
    if ffi::lua_type(l, 1) != ffi::LUA_TLIGHTUSERDATA {
        return None;
    }
    let value = ffi::lua_touserdata(l, 1) as usize as u64;
    let ctx = ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const RuleContext;
    if ctx.is_null() {
        return None;
    }
    // SAFETY: see `context_value`: the context outlives the Lua state.
    let ctx = &*ctx;
    let epoch = ctx.epoch.get();
    if value & 0xff != DATA_TAG || epoch == 0 || value >> 8 != epoch {
        return None;
    }
    ctx.data.with(|b| b.map(|b| (b.as_ptr(), b.len())))
}

/// `data:asstring()`, `tostring(data)`. Upvalues: 1 the context, 2 the
/// Rust function.
unsafe extern "C-unwind" fn asstring(l: *mut ffi::lua_State) -> c_int {
    match lent_bytes(l) {
        Some((ptr, len)) => {
            // SAFETY: the bytes stay lent while the rule runs (`LentBytes`).
            ffi::lua_pushlstring(l, ptr as *const c_char, len);
            1
        }
        None => call_upvalue(l, 2, 1, 1),
    }
}

/// `#data`. Upvalues: 1 the context, 2 the Rust function.
unsafe extern "C-unwind" fn len(l: *mut ffi::lua_State) -> c_int {
    match lent_bytes(l) {
        Some((_, n)) => {
            ffi::lua_pushinteger(l, n as ffi::lua_Integer);
            1
        }
        None => call_upvalue(l, 2, 1, 1),
    }
}

/// `__index(data, key)`: a method, else the Rust function (`data[i]` and
/// its errors). Upvalues: 1 the methods table, 2 the Rust function.
unsafe extern "C-unwind" fn index(l: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(l, 2);
    ffi::lua_pushvalue(l, 2);
    if ffi::lua_rawget(l, ffi::lua_upvalueindex(1)) != ffi::LUA_TNIL {
        return 1;
    }
    call_upvalue(l, 2, 2, 1)
}

/// The context as the C functions' upvalue.
///
/// The pointer stays valid as long as the Lua state can run anything: the
/// state's app data holds a [`Ctx`] handle on the same context (set in
/// `loader.rs` before any of these functions exist), and mlua drops app
/// data only after `lua_close` (finalisers included) has run.
fn context_value(ctx: &Ctx) -> LightUserData {
    LightUserData(ctx.as_ptr() as *mut c_void)
}

/// `asstring` (and `__tostring`) over the Rust `slow` one.
pub(super) fn asstring_function(lua: &Lua, ctx: &Ctx, slow: Function) -> mlua::Result<Function> {
    closure(lua, asstring, (context_value(ctx), slow))
}

/// `__len` over the Rust `slow` one.
pub(super) fn len_function(lua: &Lua, ctx: &Ctx, slow: Function) -> mlua::Result<Function> {
    closure(lua, len, (context_value(ctx), slow))
}

/// `__index`: `methods`, else `slow`.
pub(super) fn index_function(lua: &Lua, methods: Table, slow: Function) -> mlua::Result<Function> {
    closure(lua, index, (methods, slow))
}
