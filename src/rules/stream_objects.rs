//! The Rust object behind Haka's streamed API: the non-blocking cursor
//! (`CursorUd`) that the blocking iterator of `rules/stream_iter.lua` is
//! built on. Blocking (waiting for bytes that have not arrived) is a
//! `coroutine.yield()` in that Lua code: Rust functions cannot yield a
//! coroutine. What it takes comes as sub-buffers (`sub_buffer.rs`), which
//! hold their bytes and stay valid after their event.
//!
//! `take_available`, what `for sub in iter:foreach_available()` calls twice
//! per chunk, is also a C function per cursor (`take_function`).

use std::ffi::{c_int, c_void};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use mlua::{
    ffi, AnyUserData, Function, IntoLuaMulti, LightUserData, Lua, MultiValue, UserData, UserDataMethods,
    Value,
};
use parking_lot::Mutex;

use super::c_closure::closure;
use super::error::located;
use super::match_state::{Done, Step, StreamMatch};
use super::stream_buf::{Parts, StreamBuf};

/// A stream shared by the cursors reading it.
pub(super) type SharedStream = Arc<Mutex<StreamBuf>>;

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

    /// Moves by up to `n` bytes (all available if `None`), then returns
    /// what `read` makes of the stream and the range moved over.
    fn advance<R>(
        &self,
        lua: &Lua,
        n: Option<u64>,
        read: impl FnOnce(&StreamBuf, Range<u64>) -> R,
    ) -> mlua::Result<R> {
        self.with(lua, |s, pos| {
            let avail = s.end() - pos;
            let to = pos + n.map_or(avail, |n| n.min(avail));
            s.seek(self.holder, to);
            read(s, pos..to)
        })
    }

    /// Takes every available byte as a sub-buffer (nil if none), and
    /// whether the stream ended: the blocking iterator's `sub('available')`.
    fn take_available(&self, lua: &Lua) -> mlua::Result<(Value, bool)> {
        let (parts, eof) =
            self.advance(lua, None, |s, moved| ((!moved.is_empty()).then(|| s.parts(moved)), s.is_eof()))?;
        match parts {
            Some(p) => Ok((super::sub_buffer::value(lua, &p.parts)?, eof)),
            None => Ok((Value::Nil, eof)),
        }
    }

    /// What the cursor can take now, if it can be read (the stream is
    /// within its limit and the cursor not released).
    fn next_run(&self) -> Option<Run> {
        let s = self.stream.lock();
        if s.overflow().is_some() {
            return None;
        }
        let pos = s.pos(self.holder)?;
        let (end, eof) = (s.end(), s.is_eof());
        let mut bytes = None;
        let mut parts = 0;
        if end > pos {
            s.each_part(pos..end, |b, r, _| {
                parts += 1;
                let part = b.get(r).unwrap_or_default();
                bytes = Some((part.as_ptr(), part.len()));
            });
        }
        // Only a run within one block is handed out as a pointer.
        let bytes = if parts == 1 { bytes.filter(|(_, n)| *n as u64 == end - pos) } else { None };
        Some(Run { end, eof, empty: end == pos, bytes })
    }

    /// Moves the cursor to `to` (after the bytes it took).
    fn seek_to(&self, to: u64) {
        self.stream.lock().seek(self.holder, to);
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
            Some(Stepped::Matched(Some(parts))) => {
                super::sub_buffer::value(lua, &parts.parts)?.into_lua_multi(lua)
            }
            Some(Stepped::Matched(None)) => true.into_lua_multi(lua),
            Some(Stepped::Ended) if createsub => Value::Nil.into_lua_multi(lua),
            Some(Stepped::Ended) => false.into_lua_multi(lua),
        }
    }
}

/// `cursor:take_available()` as a C function bound to one cursor: what
/// `iter:sub('available')` calls; it makes the sub-buffer in place, without
/// mlua's call glue. Upvalues: 1 the cursor's address, 2 the cursor
/// userdata (which keeps it alive), 3 the Rust method (errors).
unsafe extern "C-unwind" fn take_available_c(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: upvalue 1 is the address of the `CursorUd` in upvalue 2 (see
    // `take_function`), alive while this closure is, and only ever
    // borrowed shared (every cursor method takes `&self`).
    let cursor = &*(ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const CursorUd);
    let run = match cursor.next_run() {
        Some(Run { empty: true, eof, .. }) => {
            ffi::lua_pushnil(l);
            ffi::lua_pushboolean(l, c_int::from(eof));
            return 2;
        }
        Some(Run { bytes: Some((p, n)), end, eof, .. }) => (p, n, end, eof),
        // An error (overflow, released; the Rust method says which), or
        // bytes spanning blocks: the Rust method.
        _ => {
            ffi::lua_settop(l, 0);
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(3));
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
            ffi::lua_call(l, 1, 2);
            return 2;
        }
    };
    let (p, n, end, eof) = run;
    // SAFETY: the block stays retained while the cursor has not moved past
    // it, and nothing here moves it (a collection run by the allocation
    // may release other cursors only). The string is made before the
    // cursor moves, and without the stream's lock held: a memory error (a
    // longjmp) must not skip the lock's release.
    ffi::lua_pushlstring(l, p as *const std::ffi::c_char, n);
    super::sub_buffer::wrap(l);
    cursor.seek_to(end);
    ffi::lua_pushboolean(l, c_int::from(eof));
    2
}

/// What a cursor can take now (see [`CursorUd::next_run`]).
struct Run {
    /// The stream's end (where the cursor goes after taking).
    end: u64,
    /// The stream ended.
    eof: bool,
    /// Nothing to take.
    empty: bool,
    /// The bytes, when they lie in one block.
    bytes: Option<(*const u8, usize)>,
}

/// The C `take_available` of the cursor userdata `ud`.
pub(super) fn take_function(lua: &Lua, ud: &AnyUserData) -> mlua::Result<Function> {
    let address = {
        let c = ud.borrow::<CursorUd>()?;
        &*c as *const CursorUd as *mut c_void
    };
    let slow = lua.create_function(|lua, c: AnyUserData| c.borrow::<CursorUd>()?.take_available(lua))?;
    closure(lua, take_available_c, (LightUserData(address), ud.clone(), slow))
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
            this.advance(lua, n, |_, moved| moved.end - moved.start)
        });
        // Takes up to `n` bytes (all available if nil) as a sub-buffer.
        methods.add_method("take", |lua, this, n: Option<i64>| {
            let n = opt_count(lua, n)?;
            let parts = this.advance(lua, n, |s, moved| s.parts(moved))?;
            super::sub_buffer::value(lua, &parts.parts)
        });
        // Takes every available byte as a sub-buffer (nil if none), and
        // whether the stream ended: the blocking iterator's
        // `sub('available')` in one call instead of three.
        methods.add_method("take_available", |lua, this, ()| this.take_available(lua));
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
        // Another cursor at this position, and its `take_available`.
        methods.add_method("copy", |lua, this, ()| {
            let pos = this.with(lua, |_, pos| pos)?;
            let c = CursorUd::new(&this.stream, pos);
            c.meter.store(this.meter(), Ordering::Relaxed);
            let ud = lua.create_userdata(c)?;
            let take = take_function(lua, &ud)?;
            Ok((ud, take))
        });
    }
}
