//! `flow.key` and `flow.key = value` without a Rust callback, and where a
//! flow's state lives.
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
//! first write, errors) goes to the Rust functions in `flow.rs`, which hold
//! the rules; when they allow the value to be kept they say so, and the C
//! function stores it, making the state table at the first one. A flow
//! whose connection ended has no state table any more ([`clear_state`],
//! from [`super::flows::Flows::end`]), so it always takes the Rust path,
//! which refuses it.
//!
//! The state table is the userdata's own user value 1 (`lua_newuserdata`
//! gives every userdata that one slot), set and read with
//! `lua_setiuservalue`/`lua_getiuservalue`: no wrapping table, as mlua's
//! `set_user_value` makes, so a flow with state costs its userdata and one
//! table, and a field access one table lookup. mlua's user-value methods
//! must not be used on flow objects (they expect their wrapping table).

use std::ffi::c_int;

use mlua::{ffi, AnyUserData, Function, Lua, Table};

use super::c_closure::closure;

/// `__index(flow, key)`. Upvalues: 1 the methods table, 2 the Rust
/// `__index`, which returns the value and whether to keep it in the state.
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
    ffi::lua_settop(l, 2);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
    ffi::lua_pushvalue(l, 1);
    ffi::lua_pushvalue(l, 2);
    ffi::lua_call(l, 2, 2);
    // flow, key, value, keep
    if ffi::lua_toboolean(l, 4) != 0 {
        store(l);
    }
    ffi::lua_settop(l, 3);
    1
}

/// `__newindex(flow, key, value)`. Upvalues: 1 the set of read-only names
/// (name → true), 2 the Rust `__newindex`, which raises the errors and
/// returns whether to keep the value.
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
    ffi::lua_settop(l, 3);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
    ffi::lua_pushvalue(l, 1);
    ffi::lua_pushvalue(l, 2);
    ffi::lua_pushvalue(l, 3);
    ffi::lua_call(l, 3, 1);
    // flow, key, value, keep
    if ffi::lua_toboolean(l, 4) != 0 {
        store(l);
    }
    0
}

/// `state[key] = value` for the flow, key and value at 1, 2 and 3, making
/// the flow's state table if it has none. Leaves the stack at 3.
unsafe fn store(l: *mut ffi::lua_State) {
    ffi::lua_settop(l, 3);
    if !push_state(l) {
        ffi::lua_settop(l, 3);
        // Empty: it grows with the fields (most flows keep one or two).
        ffi::lua_createtable(l, 0, 0);
        ffi::lua_pushvalue(l, -1);
        ffi::lua_setiuservalue(l, 1, 1);
    }
    ffi::lua_pushvalue(l, 2);
    ffi::lua_pushvalue(l, 3);
    ffi::lua_rawset(l, -3);
    ffi::lua_settop(l, 3);
}

/// Pushes the state table of the userdata at index 1 and returns true, or
/// pushes whatever it found instead and returns false.
unsafe fn push_state(l: *mut ffi::lua_State) -> bool {
    ffi::lua_type(l, 1) == ffi::LUA_TUSERDATA && ffi::lua_getiuservalue(l, 1, 1) == ffi::LUA_TTABLE
}

/// The flow metatable's `__index`: `methods` first, then the state table,
/// then `slow` (the Rust one), keeping what it says to keep.
pub(super) fn index_function(lua: &Lua, methods: Table, slow: Function) -> mlua::Result<Function> {
    closure(lua, index, (methods, slow))
}

/// The flow metatable's `__newindex`: into the state table unless the key
/// is one of `read_only` or there is no state table yet, else `slow`, and
/// into the state (made then) if it says so.
pub(super) fn newindex_function(lua: &Lua, read_only: &[&str], slow: Function) -> mlua::Result<Function> {
    let names = lua.create_table()?;
    for n in read_only {
        names.raw_set(*n, true)?;
    }
    closure(lua, newindex, (names, slow))
}

/// The state table of flow object `ud`, if it has one.
pub(super) fn state_of(lua: &Lua, ud: &AnyUserData) -> mlua::Result<Option<Table>> {
    // SAFETY: `exec_raw` pushes `ud` at 1 and runs this in protected mode;
    // the user value (or nil) is left alone on the stack for it to return.
    unsafe {
        lua.exec_raw::<Option<Table>>(ud, |l| {
            if ffi::lua_getiuservalue(l, 1, 1) != ffi::LUA_TTABLE {
                ffi::lua_pop(l, 1);
                ffi::lua_pushnil(l);
            }
            ffi::lua_remove(l, 1);
        })
    }
}

/// Makes `state` the state table of flow object `ud` (a reload carries it).
pub(super) fn set_state(lua: &Lua, ud: &AnyUserData, state: Table) -> mlua::Result<()> {
    // SAFETY: `exec_raw` pushes `ud` and `state` at 1 and 2 and runs this
    // in protected mode; `lua_setiuservalue` pops the state, `ud` is
    // removed, nothing is returned.
    unsafe {
        lua.exec_raw::<()>((ud, state), |l| {
            ffi::lua_setiuservalue(l, 1, 1);
            ffi::lua_pop(l, 1);
        })
    }
}

/// Lets go of the state table of flow object `ud` (its connection ended).
pub(super) fn clear_state(lua: &Lua, ud: &AnyUserData) -> mlua::Result<()> {
    // SAFETY: as in `set_state`, with nil for the state.
    unsafe {
        lua.exec_raw::<()>(ud, |l| {
            ffi::lua_pushnil(l);
            ffi::lua_setiuservalue(l, 1, 1);
            ffi::lua_pop(l, 1);
        })
    }
}
