//! The stream bytes of a running `receive_data` event, lent to the Lua API
//! for the duration of the event instead of copied.
//!
//! The engine hands rules a slice of its stream record that lives for the
//! whole call, and a chunk can be tens of kilobytes (a batch of segments):
//! copying it into a buffer the Lua state owns cost one more pass over every
//! stream byte. The slice is lent only inside [`LentBytes::lend_during`],
//! which clears it again before it returns (also when it unwinds), so the
//! bytes are never read after their owner may change or free them. Data
//! objects also carry their event's serial (`RuleContext::epoch`), so one kept
//! past its event is refused before it gets here.

use std::cell::Cell;

/// A slice lent for the length of one call, or nothing.
#[derive(Debug)]
pub(super) struct LentBytes {
    ptr: Cell<*const u8>,
    len: Cell<usize>,
}

impl Default for LentBytes {
    fn default() -> Self {
        LentBytes { ptr: Cell::new(std::ptr::null()), len: Cell::new(0) }
    }
}

// SAFETY: the pointer is set only inside `lend_during`, which borrows this
// value for the whole loan and clears it before returning, so a value moved
// to another thread never carries a loan; `Cell` keeps it from being shared
// across threads (it is not `Sync`). The Lua state that holds it (app data
// under mlua's `send` feature) must be `Send`.
unsafe impl Send for LentBytes {}

/// Clears the loan when `lend_during` ends, however it ends.
struct Return<'a>(&'a LentBytes);

impl Drop for Return<'_> {
    fn drop(&mut self) {
        self.0.ptr.set(std::ptr::null());
        self.0.len.set(0);
    }
}

impl LentBytes {
    /// Runs `f` with `bytes` readable through [`LentBytes::with`]; a loan
    /// already running is put back afterwards.
    pub(super) fn lend_during<R>(&self, bytes: &[u8], f: impl FnOnce() -> R) -> R {
        let outer = (self.ptr.get(), self.len.get());
        self.ptr.set(bytes.as_ptr());
        self.len.set(bytes.len());
        let r = {
            let _back = Return(self);
            f()
        };
        self.ptr.set(outer.0);
        self.len.set(outer.1);
        r
    }

    /// Calls `f` with the lent bytes, or with `None` when nothing is lent.
    pub(super) fn with<R>(&self, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let ptr = self.ptr.get();
        if ptr.is_null() {
            return f(None);
        }
        // SAFETY: `ptr`/`len` were set from a live `&[u8]` by `lend_during`,
        // which is still running (it clears them before it returns or
        // unwinds, and restores only loans of calls still running around
        // it); the slice it borrowed stays borrowed, so unchanged, meanwhile.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, self.len.get()) };
        f(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lent_only_during_the_call() {
        let l = LentBytes::default();
        assert_eq!(l.with(|b| b.map(<[u8]>::len)), None);
        let data = vec![1u8, 2, 3];
        let seen = l.lend_during(&data, || l.with(|b| b.map(<[u8]>::to_vec)));
        assert_eq!(seen, Some(vec![1, 2, 3]));
        assert_eq!(l.with(|b| b.map(<[u8]>::len)), None, "returned after the call");
    }

    #[test]
    fn returned_when_the_call_unwinds() {
        let l = LentBytes::default();
        let data = [7u8; 4];
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            l.lend_during(&data, || panic!("rule"))
        }));
        assert!(r.is_err());
        assert_eq!(l.with(|b| b.map(<[u8]>::len)), None);
    }

    #[test]
    fn nested_loan_gives_the_outer_one_back() {
        let l = LentBytes::default();
        let (outer, inner) = ([1u8; 2], [2u8; 3]);
        l.lend_during(&outer, || {
            l.lend_during(&inner, || assert_eq!(l.with(|b| b.map(<[u8]>::len)), Some(3)));
            assert_eq!(l.with(|b| b.map(<[u8]>::to_vec)), Some(vec![1, 1]));
        });
    }
}
