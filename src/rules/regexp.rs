//! `require("regexp/pcre")`: Haka's regular expression module for rules,
//! on sluice's linear-time engine (`crate::regexp`).
//!
//! ```lua
//! local rem = require("regexp/pcre")
//! local re = rem.re:compile("%d+", rem.re.CASE_INSENSITIVE)  -- % is \
//! local m, first, last = re:match("abc 123")                 -- "123", 4, 7
//! local sub = re:match(data)                                 -- a data view or nil
//! local sink = re:create_sink()
//! sink:feed("ab", false); sink:feed("c", true); sink:ispartial()
//! ```
//!
//! The objects: the module table (`rem.re`, with `compile`, `match` and the
//! flag numbers), compiled patterns ([`RegexUd`]) and sinks ([`SinkUd`]).
//! Time spent inside the engine is not counted by the instruction budget
//! (it counts Lua instructions); the engine is linear in the bytes it is
//! given, so that time is bounded by the data a rule hands it.

use std::collections::HashMap;
use std::sync::Arc;

use mlua::{
    AnyUserData, IntoLuaMulti, Lua, MetaMethod, MultiValue, ObjectLike, Table, UserData, UserDataMethods,
    Value,
};
use parking_lot::Mutex;

use super::data::DataUd;
use super::error::located;
use super::event_data;
use super::match_state::{warn_if_window_exhausted, StreamMatch};
use super::stream_objects::CursorUd;
use crate::regexp::{percent_to_backslash, Feed, Flags, Regex, StreamMatcher, WindowBudget, DEFAULT_WINDOW};

/// The `require` name of the module.
const MODULE_NAME: &str = super::context::REGEXP_MODULE;

/// Total automaton memory the compile cache may hold.
const CACHE_MEMORY: usize = 64 << 20;

/// Bytes all the sinks of one rule state may keep to find match starts
/// (each keeps at most [`DEFAULT_WINDOW`]).
pub(super) const SINK_WINDOW_BUDGET: usize = 64 << 20;

/// Compiled patterns by (pattern, flags), so that `rem.re:match(pattern, ...)`
/// in a rule compiles once, not per event.
#[derive(Default)]
struct CompileCache {
    entries: HashMap<(Vec<u8>, i64), Regex>,
    memory: usize,
}

type SharedCache = Arc<Mutex<CompileCache>>;

/// `rem.re:match(pattern, input[, flags[, createsub]])`'s arguments.
type ModuleMatchArgs = (Value, mlua::String, Value, Option<i64>, Option<bool>);

/// The module table for `require(name)`, or `None` if `name` is not a
/// native module.
pub(super) fn native_module(lua: &Lua, name: &str) -> mlua::Result<Option<Value>> {
    if name != MODULE_NAME {
        return Ok(None);
    }
    let cache: SharedCache = Arc::default();
    let budget = WindowBudget::new(SINK_WINDOW_BUDGET);
    let re = lua.create_table()?;
    re.raw_set("CASE_INSENSITIVE", Flags::CASE_INSENSITIVE)?;
    re.raw_set("EXTENDED", Flags::EXTENDED)?;
    let (c, b) = (cache.clone(), budget.clone());
    re.raw_set(
        "compile",
        lua.create_function(move |lua, (_, pattern, flags): (Value, mlua::String, Option<i64>)| {
            Ok(RegexUd(compile(lua, &c, &pattern.as_bytes(), flags)?, b.clone()))
        })?,
    )?;
    re.raw_set(
        "match",
        lua.create_function(move |lua, (_, pattern, input, flags, createsub): ModuleMatchArgs| {
            let regex = RegexUd(compile(lua, &cache, &pattern.as_bytes(), flags)?, budget.clone());
            match_value(lua, &regex, input, createsub.unwrap_or(false))
        })?,
    )?;
    let module = lua.create_table()?;
    module.raw_set("re", re)?;
    Ok(Some(Value::Table(module)))
}

/// Compiles a Haka pattern (`%` for `\`), through the cache.
fn compile(lua: &Lua, cache: &SharedCache, pattern: &[u8], flags: Option<i64>) -> mlua::Result<Regex> {
    let bits = flags.unwrap_or(0);
    let Some(parsed) = Flags::from_bits(bits) else {
        return Err(located(
            lua,
            format!(
                "{MODULE_NAME}: unknown option bits {bits} (use rem.re.CASE_INSENSITIVE, rem.re.EXTENDED)"
            ),
        ));
    };
    let key = (pattern.to_vec(), bits);
    if let Some(re) = cache.lock().entries.get(&key) {
        return Ok(re.clone());
    }
    let regex = Regex::compile_bytes(&percent_to_backslash(pattern), parsed)
        .map_err(|e| located(lua, format!("{MODULE_NAME}: {}", e.shown_as(pattern))))?;
    let mut c = cache.lock();
    if c.memory + regex.memory_usage() > CACHE_MEMORY {
        c.entries.clear();
        c.memory = 0;
    }
    c.memory += regex.memory_usage();
    c.entries.insert(key, regex.clone());
    Ok(regex)
}

/// A compiled pattern (`rem.re:compile`), and the window budget its sinks
/// share with every other sink of the rule state.
pub(super) struct RegexUd(Regex, WindowBudget);

impl RegexUd {
    /// A new sink of this pattern, in the rule state's window budget.
    fn sink(&self) -> SinkUd {
        SinkUd(self.0.stream_in(DEFAULT_WINDOW, &self.1), self.1.clone())
    }
}

/// Named registry slot of `re:match`, a Lua function (rules/stream_iter.lua):
/// on a streamed iterator it may have to wait for bytes, which only Lua code
/// can; on anything else it calls the Rust `_match`.
pub(super) const RE_MATCH: &str = "sluice.regexp.re_match";

impl UserData for RegexUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("_match", |lua, this, (input, createsub): (Value, Option<bool>)| {
            match_value(lua, this, input, createsub.unwrap_or(false))
        });
        methods.add_meta_function(MetaMethod::Index, |lua, (_, key): (AnyUserData, mlua::String)| {
            if key.as_bytes().as_ref() == b"match" {
                return lua.named_registry_value::<mlua::Function>(RE_MATCH);
            }
            Err(located(lua, format!("regexp object has no field '{}'", key.to_string_lossy())))
        });
        // Starts `re:match(iter)` on an iterator's cursor (stream_match.rs);
        // its steps are the cursor's `match_step`.
        methods.add_method("_begin_match", |lua, this, cursor: AnyUserData| {
            cursor.borrow::<CursorUd>()?.begin_match(lua, |pos, serial| {
                let SinkUd(sink, budget) = this.sink();
                StreamMatch::new(sink, budget, pos, serial)
            })
        });
        methods.add_method("create_sink", |_, this, ()| Ok(this.sink()));
        methods
            .add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(format!("regexp: {}", this.0.pattern())));
    }
}

/// `re:match(input)`: the dispatch on what `input` is.
///
/// * a Lua string: Haka's `match, first, last` (the matched string, the
///   0-based offset of its first byte and the offset just after its last),
///   or `nil, -1, -1`;
/// * a data view (`receive_data`'s `data`, `pkt.payload`, `data:sub`): the
///   view of the match, or `nil`;
/// * anything else: [`match_other`].
fn match_value(lua: &Lua, compiled: &RegexUd, input: Value, createsub: bool) -> mlua::Result<MultiValue> {
    let re = &compiled.0;
    match input {
        Value::String(s) => {
            let bytes = s.as_bytes();
            match re.find(&bytes) {
                Some(r) => (lua.create_string(&bytes[r.clone()])?, r.start, r.end).into_lua_multi(lua),
                None => (Value::Nil, -1, -1).into_lua_multi(lua),
            }
        }
        Value::UserData(ud) if ud.is::<DataUd>() => {
            let view = *ud.borrow::<DataUd>()?;
            match_view(lua, re, view)
        }
        other => match event_data::as_view(lua, &other)? {
            Some(view) => match_view(lua, re, view),
            None => match_other(lua, compiled, other, createsub),
        },
    }
}

/// `re:match` on a data view: the view of the match, or `nil`.
fn match_view(lua: &Lua, re: &Regex, view: DataUd) -> mlua::Result<MultiValue> {
    match view.with_bytes(lua, |b| Ok(re.find(b)))? {
        Some(r) => DataUd { start: view.start + r.start, len: r.len(), ..view }.into_lua_multi(lua),
        None => Value::Nil.into_lua_multi(lua),
    }
}

/// `re:match(x)` for an `x` that is neither a Lua string nor a data view.
/// Streamed iterators never get here: `re:match` is Lua code
/// (`rules/stream_iter.lua`) that runs their match with `stream_match.rs`.
/// Any userdata with an `asstring` method (sub-buffers) is matched as that
/// string, with the string results.
fn match_other(lua: &Lua, compiled: &RegexUd, input: Value, _createsub: bool) -> mlua::Result<MultiValue> {
    if let Value::UserData(ud) = &input {
        if let Some(s) = as_string(ud)? {
            return match_value(lua, compiled, Value::String(s), false);
        }
    }
    Err(located(
        lua,
        format!("{MODULE_NAME}: re:match expects a string or a data object, got a {}", input.type_name()),
    ))
}

/// `ud:asstring()`, if `ud` has that method and it gives a string.
fn as_string(ud: &AnyUserData) -> mlua::Result<Option<mlua::String>> {
    let Ok(method) = ud.get::<mlua::Function>("asstring") else { return Ok(None) };
    match method.call::<Value>(ud.clone())? {
        Value::String(s) => Ok(Some(s)),
        _ => Ok(None),
    }
}

/// A sink (`re:create_sink()`): the pattern matched across the chunks fed.
pub(super) struct SinkUd(StreamMatcher, WindowBudget);

impl SinkUd {
    /// What `feed` returns for `feed` (see the methods).
    fn results(&self, lua: &Lua, feed: Feed, result: Option<Table>) -> mlua::Result<MultiValue> {
        warn_if_window_exhausted(&self.1);
        let found = match feed {
            Feed::Matched(m) => Some(m),
            Feed::NeedMore | Feed::NoMatch => None,
        };
        if let Some(t) = result {
            let (first, last) = found.map_or((-1, -1), |m| (m.start as i64, m.end as i64));
            t.set("first", first)?;
            t.set("last", last)?;
            t.set("clipped", found.is_some_and(|m| m.start_clipped))?;
        }
        match found {
            Some(m) => (true, m.start, m.end, m.start_clipped).into_lua_multi(lua),
            None => false.into_lua_multi(lua),
        }
    }

    fn feed(&mut self, lua: &Lua, chunk: &Value, eof: bool) -> mlua::Result<Feed> {
        match chunk {
            Value::String(s) => Ok(self.0.feed(&s.as_bytes(), eof)),
            Value::UserData(ud) if ud.is::<DataUd>() => {
                let view = *ud.borrow::<DataUd>()?;
                view.with_bytes(lua, |b| Ok(self.0.feed(b, eof)))
            }
            Value::LightUserData(_) if event_data::is_data(chunk) => match event_data::as_view(lua, chunk)? {
                Some(view) => view.with_bytes(lua, |b| Ok(self.0.feed(b, eof))),
                None => {
                    Err(located(lua, format!("{MODULE_NAME}: sink:feed expects a string or a data object")))
                }
            },
            Value::UserData(ud) => match as_string(ud)? {
                Some(s) => Ok(self.0.feed(&s.as_bytes(), eof)),
                None => {
                    Err(located(lua, format!("{MODULE_NAME}: sink:feed expects a string or a data object")))
                }
            },
            other => Err(located(
                lua,
                format!(
                    "{MODULE_NAME}: sink:feed expects a string or a data object, got a {}",
                    other.type_name()
                ),
            )),
        }
    }
}

impl UserData for SinkUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `sink:feed(chunk, eof[, result])` → `matched[, first, last, clipped]`:
        // true once the stream fed so far holds a match (and from then on).
        // The offsets count bytes from the first chunk (0-based, `last` just
        // after the match); `clipped` says the start lay beyond the bytes
        // the sink kept. A `result` table gets `first`/`last` (-1 without a
        // match) like Haka's `regexp_result`, and `clipped`.
        methods.add_method_mut(
            "feed",
            |lua, this, (chunk, eof, result): (Value, Option<bool>, Option<Table>)| {
                let feed = this.feed(lua, &chunk, eof.unwrap_or(false))?;
                this.results(lua, feed, result)
            },
        );
        methods.add_method("ispartial", |_, this, ()| Ok(this.0.is_partial()));
    }
}
