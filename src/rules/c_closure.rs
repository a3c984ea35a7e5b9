//! C functions on the hot path: the metamethods and methods a rule calls on
//! every event, written against the Lua C API so that calling one costs a
//! C call, not an mlua callback (a guard, a protected call, registry
//! references for every argument and result). Each does the common case on
//! the Lua stack and hands anything else (built-in fields, errors) to the
//! Rust function it closes over, which holds the rules and the messages.

use std::ffi::c_int;

use mlua::{ffi, Function, IntoLuaMulti, Lua};

/// Makes a C closure of `f` over `upvalues` (at most 3 values).
pub(super) fn closure(
    lua: &Lua,
    f: ffi::lua_CFunction,
    upvalues: impl IntoLuaMulti,
) -> mlua::Result<Function> {
    let values = upvalues.into_lua_multi(lua)?;
    let n = c_int::try_from(values.len()).map_err(|_| mlua::Error::runtime("too many upvalues"))?;
    if n > 3 {
        return Err(mlua::Error::runtime("too many upvalues"));
    }
    // SAFETY: `exec_raw` pushes the `n` upvalues and runs the closure in
    // protected mode with room for 3 more slots; `lua_pushcclosure` pops
    // them and pushes the function, which `exec_raw` returns.
    unsafe { lua.exec_raw::<Function>(values, |l| ffi::lua_pushcclosure(l, f, n)) }
}

/// Calls the Rust function in upvalue `upvalue` with the first `nargs`
/// arguments and returns its one result (or raises its error).
///
/// # Safety
/// `l` is the state of a running C function whose upvalue `upvalue` is a
/// function.
pub(super) unsafe fn call_upvalue(
    l: *mut ffi::lua_State,
    upvalue: c_int,
    nargs: c_int,
    nresults: c_int,
) -> c_int {
    ffi::lua_settop(l, nargs);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(upvalue));
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, nargs, nresults);
    nresults
}
