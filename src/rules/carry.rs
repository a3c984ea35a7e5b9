//! Carrying per-flow rule state across a reload. The flows stay in the
//! engine's table when new rules replace the old ones, so what rules stored
//! on a flow (`flow.tail = ...`) should stay too. The two rule sets live in
//! separate Lua states, and only plain data means the same in both: nil,
//! booleans, numbers, strings and tables of these. Functions, userdata
//! (address objects included), threads and metatables belong to the old
//! state's code and are left out; so is anything nested deeper than
//! [`MAX_DEPTH`] (the copy recurses, and must not run out of stack on a
//! rule's arbitrarily deep structure). Shared and cyclic tables stay shared.

use std::collections::HashMap;
use std::ffi::c_void;

use mlua::{Lua, Table, Value};

/// Deepest table nesting that is carried.
pub(super) const MAX_DEPTH: usize = 64;

/// What a carry-over did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Carried {
    /// Flows whose state table was carried.
    pub flows: usize,
    /// Values (or metatables) left out because they were not plain data.
    pub left_out: usize,
}

/// The copies, in the new state, of each flow's state table, by flow id.
pub(super) type CarriedStates = HashMap<u64, Table, ahash::RandomState>;

/// Copies every flow's state table of `from` (tables of the old state) into
/// the new state `to_lua`. Fails only when the new state cannot allocate
/// (its memory limit).
pub(super) fn carry_flow_states(
    from: impl Iterator<Item = (u64, Table)>,
    to_lua: &Lua,
) -> mlua::Result<(CarriedStates, Carried)> {
    let mut copier = Copier { to: to_lua, copies: HashMap::new(), left_out: 0 };
    let mut out = CarriedStates::default();
    for (id, state) in from {
        let copy = copier.table(&state, 0)?;
        out.insert(id, copy);
    }
    let flows = out.len();
    Ok((out, Carried { flows, left_out: copier.left_out }))
}

struct Copier<'a> {
    to: &'a Lua,
    /// Tables already copied, by their address in the old state.
    copies: HashMap<*const c_void, Table>,
    left_out: usize,
}

impl Copier<'_> {
    fn table(&mut self, t: &Table, depth: usize) -> mlua::Result<Table> {
        if let Some(done) = self.copies.get(&t.to_pointer()) {
            return Ok(done.clone());
        }
        let copy = self.to.create_table()?;
        self.copies.insert(t.to_pointer(), copy.clone());
        if t.metatable().is_some() {
            self.left_out += 1;
        }
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            let Some(v) = self.value(v, depth + 1)? else {
                self.left_out += 1;
                continue;
            };
            match self.value(k, depth + 1)? {
                Some(k) => copy.raw_set(k, v)?,
                None => self.left_out += 1,
            }
        }
        Ok(copy)
    }

    /// The copy of a plain value, or `None` if it cannot be carried.
    fn value(&mut self, v: Value, depth: usize) -> mlua::Result<Option<Value>> {
        Ok(Some(match v {
            Value::Nil => Value::Nil,
            Value::Boolean(b) => Value::Boolean(b),
            Value::Integer(i) => Value::Integer(i),
            Value::Number(n) => Value::Number(n),
            Value::String(s) => Value::String(self.to.create_string(s.as_bytes())?),
            Value::Table(t) if depth < MAX_DEPTH => Value::Table(self.table(&t, depth)?),
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(src: &str) -> (Lua, Table, Lua, Table) {
        let old = Lua::new();
        let from: Table = old.load(src).eval().expect("old state builds");
        let new = Lua::new();
        let to = new.create_table().expect("table");
        (old, from, new, to)
    }

    /// `carry_flow_states` from a table `{ [id] = state }` into the table `to`.
    fn carry_into(from: &Table, new: &Lua, to: &Table) -> mlua::Result<Carried> {
        let pairs: Vec<(u64, Table)> =
            from.pairs::<i64, Table>().map(|p| p.map(|(k, v)| (k as u64, v))).collect::<mlua::Result<_>>()?;
        let (states, c) = carry_flow_states(pairs.into_iter(), new)?;
        for (id, t) in states {
            to.raw_set(id as i64, t)?;
        }
        Ok(c)
    }

    #[test]
    fn plain_values_are_copied_and_the_rest_left_out() {
        let (_old, from, new, to) = states(
            r#"
            local shared = { n = 1 }
            local t = { s = "tail\0bytes", i = 7, f = 1.5, b = true, nested = { a = shared, b = shared },
                        fn = function () end, [{}] = "table key" }
            t.self = t
            setmetatable(shared, {})
            return { [3] = t, [9] = { x = "y" } }
            "#,
        );
        let c = carry_into(&from, &new, &to).expect("carries");
        assert_eq!(c.flows, 2);
        // Left out: the function and the metatable of `shared` (a table key
        // is plain data and is carried).
        assert_eq!(c.left_out, 2);
        new.globals().set("states", to).expect("set");
        let ok: bool = new
            .load(
                r#"
                local t = states[3]
                return t.s == "tail\0bytes" and t.i == 7 and math.type(t.i) == "integer"
                   and t.f == 1.5 and t.b == true and t.fn == nil and t.self == t
                   and t.nested.a == t.nested.b and t.nested.a.n == 1
                   and getmetatable(t.nested.a) == nil and states[9].x == "y"
                "#,
            )
            .eval()
            .expect("evaluates");
        assert!(ok);
    }

    #[test]
    fn userdata_is_left_out() {
        let old = Lua::new();
        let from = old.create_table().expect("table");
        let state = old.create_table().expect("table");
        state.set("addr", old.create_any_userdata(5u32).expect("userdata")).expect("set");
        state.set("kept", "yes").expect("set");
        from.raw_set(1, state).expect("set");
        let new = Lua::new();
        let to = new.create_table().expect("table");
        let c = carry_into(&from, &new, &to).expect("carries");
        assert_eq!((c.flows, c.left_out), (1, 1));
        let t: Table = to.raw_get(1).expect("carried");
        assert_eq!(t.get::<String>("kept").expect("kept"), "yes");
        assert_eq!(t.get::<Value>("addr").expect("read"), Value::Nil);
    }

    #[test]
    fn deep_nesting_is_cut_not_a_stack_overflow() {
        let (_old, from, new, to) = states(
            "local t = {} local head = t for i = 1, 100000 do t.next = {} t = t.next end return { [1] = head }",
        );
        let c = carry_into(&from, &new, &to).expect("carries");
        assert_eq!((c.flows, c.left_out), (1, 1));
        new.globals().set("states", to).expect("set");
        let depth: i64 = new
            .load("local n, t = 0, states[1] while t.next do n = n + 1 t = t.next end return n")
            .eval()
            .expect("evaluates");
        assert_eq!(depth as usize, MAX_DEPTH - 1);
    }

    #[test]
    fn the_new_states_memory_limit_stops_the_copy_with_an_error() {
        let (_old, from, new, to) = states(
            "local t = {} for i = 1, 100000 do t[i] = string.rep('x', 100) .. i end return { [1] = t }",
        );
        new.set_memory_limit(new.used_memory() + 64 * 1024).expect("limit");
        assert!(carry_into(&from, &new, &to).is_err());
    }
}
