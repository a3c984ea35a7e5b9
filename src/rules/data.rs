//! Byte views: the `data` of TCP `receive_data` and every `pkt.payload`.
//! A view is a range over the current event's buffer, so making one copies
//! nothing; `asstring()` and `tostring()` copy the bytes into a Lua string
//! only when a rule asks. A view kept past its event refuses to work.

use mlua::{Lua, MetaMethod, UserData, UserDataMethods};

use super::context::context;
use super::error::located;

/// Which buffer a view reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The TCP stream bytes of `receive_data`.
    Stream,
    /// The packet of the event.
    Packet,
}

/// A byte view (`data`, `pkt.payload`, `data:sub(...)`).
#[derive(Debug, Clone, Copy)]
pub(super) struct DataUd {
    /// The event it belongs to.
    pub epoch: u64,
    /// The buffer.
    pub source: Source,
    /// Offset of the first byte in the buffer.
    pub start: usize,
    /// Number of bytes.
    pub len: usize,
}

impl DataUd {
    /// Runs `f` on the bytes of the view, after checking it is still live.
    /// The borrows held meanwhile are shared ones; only the dispatcher writes
    /// the buffers, and never while Lua code runs.
    pub(super) fn with_bytes<R>(
        &self,
        lua: &Lua,
        f: impl FnOnce(&[u8]) -> mlua::Result<R>,
    ) -> mlua::Result<R> {
        let ctx = context(lua)?;
        ctx.check_live(lua, self.epoch, "data")?;
        let range = self.start..self.start + self.len;
        let busy = || located(lua, "data buffer busy");
        let out_of_range = || located(lua, "data view out of range");
        match self.source {
            Source::Stream => ctx.data.with(|b| f(b.and_then(|b| b.get(range)).ok_or_else(out_of_range)?)),
            Source::Packet => {
                let p = ctx.packet.try_borrow().map_err(|_| busy())?;
                f(p.bytes.get(range).ok_or_else(out_of_range)?)
            }
        }
    }

    fn lua_string(&self, lua: &Lua) -> mlua::Result<mlua::String> {
        self.with_bytes(lua, |b| lua.create_string(b))
    }
}

/// `data:sub(off, len)` of a view of `total` bytes: `off` counts from 1
/// like Lua strings; without `len` the view runs to the end. Out-of-range
/// parts are cut off. Returns (bytes skipped, bytes taken).
pub(super) fn sub_range(lua: &Lua, total: usize, off: i64, len: Option<i64>) -> mlua::Result<(usize, usize)> {
    if off < 1 {
        return Err(located(lua, "data:sub offset starts at 1"));
    }
    if matches!(len, Some(l) if l < 0) {
        return Err(located(lua, "data:sub length must not be negative"));
    }
    let skip = usize::try_from(off - 1).unwrap_or(usize::MAX).min(total);
    let rest = total - skip;
    let take = len.map(|l| usize::try_from(l).unwrap_or(usize::MAX).min(rest)).unwrap_or(rest);
    Ok((skip, take))
}

impl UserData for DataUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("asstring", |lua, this, ()| this.lua_string(lua));
        // `data:sub(off, len)`, see `sub_range`.
        methods.add_method("sub", |lua, this, (off, len): (i64, Option<i64>)| {
            let ctx = context(lua)?;
            ctx.check_live(lua, this.epoch, "data")?;
            let (skip, take) = sub_range(lua, this.len, off, len)?;
            Ok(DataUd { epoch: this.epoch, source: this.source, start: this.start + skip, len: take })
        });
        methods.add_meta_method(MetaMethod::Len, |lua, this, ()| {
            context(lua)?.check_live(lua, this.epoch, "data")?;
            Ok(this.len)
        });
        methods.add_meta_method(MetaMethod::ToString, |lua, this, ()| this.lua_string(lua));
    }
}
