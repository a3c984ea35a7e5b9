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

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use mlua::{IntoLuaMulti, Lua, MetaMethod, MultiValue, UserData, UserDataMethods, Value};
use parking_lot::Mutex;

use super::error::located;
use super::stream_buf::{Parts, StreamBuf};
use super::stream_match::{Done, Step, StreamMatch};

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
    /// Haka's `iter.meter`, shared with the holder (which moves it when a
    /// parked match moves the holder), readable after the release.
    meter: Arc<AtomicI64>,
}

impl CursorUd {
    /// A cursor at `pos` of `stream`.
    pub(super) fn new(stream: &SharedStream, pos: u64) -> Self {
        let meter = Arc::new(AtomicI64::new(0));
        let holder = stream.lock().hold(pos, meter.clone());
        CursorUd { stream: stream.clone(), holder, meter }
    }

    /// The holder id (the dispatcher releases it when its rule is done).
    pub(super) fn holder(&self) -> u64 {
        self.holder
    }

    fn meter(&self) -> i64 {
        self.meter.load(Ordering::Relaxed)
    }

    /// Runs `f` on the stream and this cursor's position; fails once the
    /// stream overflowed or the cursor was released.
    fn with<R>(&self, lua: &Lua, f: impl FnOnce(&mut StreamBuf, u64) -> R) -> mlua::Result<R> {
        let mut s = self.stream.lock();
        if let Some(limit) = s.overflow() {
            return Err(overflow_error(lua, limit));
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
        self.with(lua, |s, pos| {
            let avail = s.end() - pos;
            let m = n.map_or(avail, |n| n.min(avail));
            s.seek(self.holder, pos + m);
            m
        })
    }

    /// Starts `m` (made for this cursor's position) as this cursor's match
    /// in progress, replacing any earlier one.
    pub(super) fn begin_match(
        &self,
        lua: &Lua,
        make: impl FnOnce(u64, u64) -> StreamMatch,
    ) -> mlua::Result<()> {
        self.with(lua, |s, pos| {
            let serial = s.next_serial();
            if let Some(h) = s.holder_mut(self.holder) {
                h.matching = Some(Box::new(make(pos, serial)));
            }
        })
    }

    /// One step of this cursor's match (`re:match(iter)`, see
    /// `stream_match.rs`): `nil, token` while it waits for bytes; once it
    /// is done, the iterator moves after the match (or to the end) and the
    /// result is `true` (the matched sub-buffer with `createsub`), or
    /// `false` (`nil`) at the end of the stream.
    fn match_step(&self, lua: &Lua, createsub: bool) -> mlua::Result<MultiValue> {
        let step = self.with(lua, |s, _| {
            let mut m = s.holder_mut(self.holder).and_then(|h| h.matching.take())?;
            m.parked = false;
            let step = m.step(s, self.holder, &[]);
            let out = match step {
                Step::Wait => Stepped::Wait(m.token()),
                Step::Done(Done::Matched { first, last, at }) => {
                    s.seek(self.holder, at);
                    Stepped::Matched(createsub.then(|| s.parts(first..last)))
                }
                Step::Done(Done::Ended { at }) => {
                    s.seek(self.holder, at);
                    Stepped::Ended
                }
            };
            if let (Stepped::Wait(_), Some(h)) = (&out, s.holder_mut(self.holder)) {
                h.matching = Some(m);
            }
            Some(out)
        })?;
        match step {
            None => Err(located(lua, "iterator: no regexp match in progress")),
            Some(Stepped::Wait(token)) => (Value::Nil, token).into_lua_multi(lua),
            Some(Stepped::Matched(Some(parts))) => SubUd(parts).into_lua_multi(lua),
            Some(Stepped::Matched(None)) => true.into_lua_multi(lua),
            Some(Stepped::Ended) if createsub => Value::Nil.into_lua_multi(lua),
            Some(Stepped::Ended) => false.into_lua_multi(lua),
        }
    }
}

/// What [`CursorUd::match_step`] came to.
enum Stepped {
    Wait(Value),
    Matched(Option<Parts>),
    Ended,
}

/// The error of a read from a stream held past its limit.
fn overflow_error(lua: &Lua, limit: usize) -> mlua::Error {
    located(
        lua,
        format!(
            "streamed rule holds more than {limit} bytes of the stream: advance the iterator \
             (or raise --max-stream-buffer)"
        ),
    )
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
        methods.add_method("meter", |_, this, ()| Ok(this.meter()));
        methods.add_method("set_meter", |_, this, m: i64| {
            this.meter.store(m, Ordering::Relaxed);
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
                s.seek(this.holder, to);
                s.parts(pos..to)
            })?;
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
                s.seek(this.holder, end);
                (Some(s.parts(pos..end)), s.is_eof())
            })?;
            Ok((parts.map(SubUd), eof))
        });
        // Position, available bytes and whether the stream ended, in one call.
        methods
            .add_method("state", |lua, this, ()| this.with(lua, |s, pos| (pos, s.end() - pos, s.is_eof())));
        // The bytes between two absolute offsets, without moving.
        methods.add_method("peek", |lua, this, (from, to): (u64, u64)| {
            Ok(SubUd(this.peek_parts(lua, from, to)?))
        });
        methods.add_method("seek", |lua, this, to: u64| {
            this.with(lua, |s, _| {
                if to > s.end() {
                    return Err(located(lua, "iterator: cannot move past the available bytes"));
                }
                s.seek(this.holder, to);
                Ok(())
            })?
        });
        // `re:match(iter)`'s steps (rules/stream_iter.lua, stream_match.rs).
        methods.add_method("match_step", |lua, this, createsub: Option<bool>| {
            this.match_step(lua, createsub.unwrap_or(false))
        });
        // Lets go of the bytes this cursor holds; it cannot be used again.
        methods.add_method("release", |_, this, ()| {
            this.stream.lock().release(this.holder);
            Ok(())
        });
        methods.add_method("copy", |lua, this, ()| {
            let pos = this.with(lua, |_, pos| pos)?;
            let c = CursorUd::new(&this.stream, pos);
            c.meter.store(this.meter(), Ordering::Relaxed);
            Ok(c)
        });
    }
}
