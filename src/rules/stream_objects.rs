//! The Rust objects behind Haka's streamed API: sub-buffers (`SubUd`) and the
//! non-blocking cursor (`CursorUd`) that the blocking iterator of
//! `rules/stream_iter.lua` is built on. Blocking (waiting for bytes that
//! have not arrived) is a `coroutine.yield()` in that Lua code: Rust
//! functions cannot yield a coroutine.
//!
//! Sub-buffers follow Haka's `vbuffer_sub`: `#sub`, `sub:asstring()`,
//! `sub:sub(offset, size)` with a 0-based offset and a size or `'all'`,
//! `sub[i]` with a 1-based byte index, `sub:size()`, `tostring(sub)`. They
//! own shares of the stream blocks they cover, so they stay valid after
//! their event.

use std::cell::Cell;
use std::sync::Arc;

use mlua::{Lua, MetaMethod, UserData, UserDataMethods, Value};
use parking_lot::Mutex;

use super::error::located;
use super::stream_buf::{Parts, StreamBuf};

/// A stream shared by the cursors reading it.
pub(super) type SharedStream = Arc<Mutex<StreamBuf>>;

/// A sub-buffer.
#[derive(Debug, Clone)]
pub(super) struct SubUd(pub Parts);

/// `'all'`, or a size.
fn size_arg(lua: &Lua, v: &Value, rest: usize, what: &str) -> mlua::Result<usize> {
    match v {
        Value::Nil => Ok(rest),
        Value::String(s) if s.as_bytes() == b"all" => Ok(rest),
        Value::Integer(n) if *n >= 0 => Ok(usize::try_from(*n).unwrap_or(usize::MAX).min(rest)),
        Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Ok((*n as usize).min(rest)),
        _ => Err(located(lua, format!("{what}: size must be a non-negative integer or 'all'"))),
    }
}

impl SubUd {
    /// The bytes as a Lua string, copied once.
    fn lua_string(&self, lua: &Lua) -> mlua::Result<mlua::String> {
        match self.0.parts.as_slice() {
            [] => lua.create_string(b""),
            [(b, r)] => lua.create_string(b.get(r.clone()).unwrap_or_default()),
            _ => lua.create_string(self.0.to_vec()),
        }
    }
}

impl UserData for SubUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("asstring", |lua, this, ()| this.lua_string(lua));
        methods.add_method("size", |_, this, ()| Ok(this.0.len));
        methods.add_method("sub", |lua, this, (off, size): (Option<i64>, Value)| {
            let off = off.unwrap_or(0);
            if off < 0 {
                return Err(located(lua, "sub:sub offset starts at 0 (Haka's vbuffer offsets)"));
            }
            let skip = usize::try_from(off).unwrap_or(usize::MAX).min(this.0.len);
            let take = size_arg(lua, &size, this.0.len - skip, "sub:sub")?;
            Ok(SubUd(this.0.slice(skip, take)))
        });
        methods.add_method("check_size", |_, this, n: usize| {
            Ok(if this.0.len >= n { (true, n) } else { (false, this.0.len) })
        });
        methods.add_meta_method(MetaMethod::Len, |_, this, ()| Ok(this.0.len));
        methods.add_meta_method(MetaMethod::ToString, |lua, this, ()| this.lua_string(lua));
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: Value| match key {
            Value::Integer(i) if i >= 1 => Ok(this.0.byte((i - 1) as usize).map(i64::from)),
            Value::Integer(_) => Ok(None),
            other => Err(located(lua, format!("sub-buffer has no field {}", describe(&other)))),
        });
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{}'", s.to_string_lossy()),
        other => other.type_name().to_string(),
    }
}

/// A position in a stream: the non-blocking primitives of an iterator.
#[derive(Debug)]
pub(super) struct CursorUd {
    stream: SharedStream,
    holder: u64,
    meter: Cell<i64>,
}

impl CursorUd {
    /// A cursor at `pos` of `stream`.
    pub(super) fn new(stream: &SharedStream, pos: u64) -> Self {
        let holder = stream.lock().hold(pos);
        CursorUd { stream: stream.clone(), holder, meter: Cell::new(0) }
    }

    /// The holder id (the dispatcher releases it when its rule is done).
    pub(super) fn holder(&self) -> u64 {
        self.holder
    }

    /// Runs `f` on the stream and this cursor's position; fails once the
    /// stream overflowed or the cursor was released.
    fn with<R>(&self, lua: &Lua, f: impl FnOnce(&mut StreamBuf, u64) -> R) -> mlua::Result<R> {
        let mut s = self.stream.lock();
        if let Some(limit) = s.overflow() {
            return Err(located(
                lua,
                format!(
                    "streamed rule holds more than {limit} bytes of the stream: advance the iterator \
                     (or raise --max-stream-buffer)"
                ),
            ));
        }
        let Some(pos) = s.pos(self.holder) else {
            return Err(located(lua, "stream iterator used after its rule finished"));
        };
        Ok(f(&mut s, pos))
    }

    /// The bytes between two absolute offsets, without moving.
    pub(super) fn peek_parts(&self, lua: &Lua, from: u64, to: u64) -> mlua::Result<Parts> {
        self.with(lua, |s, _| s.parts(from..to.max(from)))
    }

    /// Moves by up to `n` bytes (all available if `None`); returns the move.
    fn advance(&self, lua: &Lua, n: Option<u64>) -> mlua::Result<u64> {
        let moved = self.with(lua, |s, pos| {
            let avail = s.end() - pos;
            let m = n.map_or(avail, |n| n.min(avail));
            s.set_pos(self.holder, pos + m);
            m
        })?;
        self.meter.set(self.meter.get().saturating_add(moved as i64));
        Ok(moved)
    }
}

impl Drop for CursorUd {
    fn drop(&mut self) {
        self.stream.lock().release(self.holder);
    }
}

fn opt_count(lua: &Lua, n: Option<i64>) -> mlua::Result<Option<u64>> {
    match n {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        Some(_) => Err(located(lua, "iterator: a count must not be negative")),
    }
}

impl UserData for CursorUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("available", |lua, this, ()| this.with(lua, |s, pos| s.end() - pos));
        methods.add_method("iseof", |lua, this, ()| this.with(lua, |s, pos| s.is_eof() && pos == s.end()));
        methods.add_method("finished", |lua, this, ()| this.with(lua, |s, _| s.is_eof()));
        methods.add_method("pos", |lua, this, ()| this.with(lua, |_, pos| pos));
        methods.add_method("meter", |_, this, ()| Ok(this.meter.get()));
        methods.add_method("set_meter", |_, this, m: i64| {
            this.meter.set(m);
            Ok(())
        });
        methods.add_method("advance", |lua, this, n: Option<i64>| {
            let n = opt_count(lua, n)?;
            this.advance(lua, n)
        });
        // Takes up to `n` bytes (all available if nil) as a sub-buffer.
        methods.add_method("take", |lua, this, n: Option<i64>| {
            let n = opt_count(lua, n)?;
            let parts = this.with(lua, |s, pos| {
                let avail = s.end() - pos;
                let to = pos + n.map_or(avail, |n| n.min(avail));
                s.set_pos(this.holder, to);
                s.parts(pos..to)
            })?;
            this.meter.set(this.meter.get().saturating_add(parts.len as i64));
            Ok(SubUd(parts))
        });
        // Takes every available byte as a sub-buffer (nil if none), and
        // whether the stream ended: the blocking iterator's
        // `sub('available')` in one call instead of three.
        methods.add_method("take_available", |lua, this, ()| {
            let (parts, eof) = this.with(lua, |s, pos| {
                let end = s.end();
                if end == pos {
                    return (None, s.is_eof());
                }
                s.set_pos(this.holder, end);
                (Some(s.parts(pos..end)), s.is_eof())
            })?;
            if let Some(p) = &parts {
                this.meter.set(this.meter.get().saturating_add(p.len as i64));
            }
            Ok((parts.map(SubUd), eof))
        });
        // Position, available bytes and whether the stream ended, in one
        // call (regexp matching on an iterator asks for all three).
        methods
            .add_method("state", |lua, this, ()| this.with(lua, |s, pos| (pos, s.end() - pos, s.is_eof())));
        // The bytes between two absolute offsets, without moving.
        methods.add_method("peek", |lua, this, (from, to): (u64, u64)| {
            Ok(SubUd(this.peek_parts(lua, from, to)?))
        });
        methods.add_method("seek", |lua, this, to: u64| {
            this.with(lua, |s, pos| {
                if to > s.end() {
                    return Err(located(lua, "iterator: cannot move past the available bytes"));
                }
                s.set_pos(this.holder, to);
                Ok(to as i64 - pos as i64)
            })?
            .map(|delta| this.meter.set(this.meter.get().saturating_add(delta)))
        });
        // Lets go of the bytes this cursor holds; it cannot be used again.
        methods.add_method("release", |_, this, ()| {
            this.stream.lock().release(this.holder);
            Ok(())
        });
        methods.add_method("copy", |lua, this, ()| {
            let pos = this.with(lua, |_, pos| pos)?;
            let c = CursorUd::new(&this.stream, pos);
            c.meter.set(this.meter.get());
            Ok(c)
        });
    }
}
