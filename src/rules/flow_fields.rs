//! `flow.key` and `flow.key = value` without a Rust callback.
//!
//! A rule that keeps per-connection state reads and writes a flow field on
//! every event. Going through mlua for that cost a Lua-side `__index`
//! wrapper, a Rust callback, a userdata borrow and registry references for
//! the object, the key and the value: most of what such a rule spent
//! outside its own code. The flow's metatable instead has two small C
//! functions that do what the Rust path does for the common case, on the
//! Lua stack alone:
//!
//! * `__index`: a method (`drop`, `reset`, `halfreset`) first, as before;
//!   then the value in the flow's state table, if there is one;
//! * `__newindex`: a string key that is not a read-only field, stored in
//!   the state table if the flow has one.
//!
//! Everything else (the built-in fields, `flow.data`'s first read, the
//! first write that makes the state table, errors) goes to the Rust
//! functions in `flow.rs`, which hold the rules. A flow whose connection
//! ended has no state table any more ([`super::flows::Flows::end`] drops
//! it), so it always takes the Rust path, which refuses it.
//!
//! The state table sits where `AnyUserData::set_user_value` puts it: entry
//! 1 of the table that is the userdata's first user value (mlua's layout for
//! user values, read with `lua_getiuservalue`).

use std::ffi::c_int;

use mlua::{ffi, Function, Lua, Table};

use super::c_closure::{call_upvalue, closure};

/// `__index(flow, key)`. Upvalues: 1 the methods table, 2 the Rust
/// `__index`.
unsafe extern "C-unwind" fn index(l: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(l, 2);
    ffi::lua_pushvalue(l, 2);
    if ffi::lua_rawget(l, ffi::lua_upvalueindex(1)) != ffi::LUA_TNIL {
        return 1;
    }
    ffi::lua_settop(l, 2);
    if push_state(l) {
        ffi::lua_pushvalue(l, 2);
        if ffi::lua_rawget(l, -2) != ffi::LUA_TNIL {
            return 1;
        }
    }
    call_upvalue(l, 2, 2, 1)
}

/// `__newindex(flow, key, value)`. Upvalues: 1 the set of read-only names
/// (name → true), 2 the Rust `__newindex`.
unsafe extern "C-unwind" fn newindex(l: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(l, 3);
    if ffi::lua_type(l, 2) == ffi::LUA_TSTRING {
        ffi::lua_pushvalue(l, 2);
        let read_only = ffi::lua_rawget(l, ffi::lua_upvalueindex(1)) != ffi::LUA_TNIL;
        ffi::lua_settop(l, 3);
        if !read_only && push_state(l) {
            ffi::lua_pushvalue(l, 2);
            ffi::lua_pushvalue(l, 3);
            ffi::lua_rawset(l, -3);
            return 0;
        }
    }
    call_upvalue(l, 2, 3, 0)
}

/// Pushes the state table of the userdata at index 1 and returns true, or
/// pushes whatever it found instead and returns false.
unsafe fn push_state(l: *mut ffi::lua_State) -> bool {
    ffi::lua_type(l, 1) == ffi::LUA_TUSERDATA
        && ffi::lua_getiuservalue(l, 1, 1) == ffi::LUA_TTABLE
        && ffi::lua_rawgeti(l, -1, 1) == ffi::LUA_TTABLE
}

/// The flow metatable's `__index`: `methods` first, then the state table,
/// then `slow` (the Rust one).
pub(super) fn index_function(lua: &Lua, methods: Table, slow: Function) -> mlua::Result<Function> {
    closure(lua, index, (methods, slow))
}

/// The flow metatable's `__newindex`: into the state table unless the key
/// is one of `read_only` or there is no state table yet, else `slow`.
pub(super) fn newindex_function(lua: &Lua, read_only: &[&str], slow: Function) -> mlua::Result<Function> {
    let names = lua.create_table()?;
    for n in read_only {
        names.raw_set(*n, true)?;
    }
    closure(lua, newindex, (names, slow))
}
