//! The bytes a stream matcher keeps to find where a match started: the
//! last `limit` bytes of the chunks fed before the current one, and the
//! byte before them (its context for `\b` and `^`).
//!
//! Many matchers (one sink per connection and direction) can share a
//! [`WindowBudget`]: the total bytes all their windows keep. A window that
//! cannot get more from the budget keeps fewer bytes, so a long match it
//! reports has a clipped start, which the match says; memory stays bounded
//! by the budget however many sinks rules make.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::search::Before;

/// A limit on the bytes kept by all the windows that share it.
#[derive(Debug, Clone)]
pub struct WindowBudget {
    shared: Arc<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    used: AtomicUsize,
    limit: usize,
    /// Set the first time a window got less than it asked for.
    exhausted: AtomicBool,
    /// Set once that has been reported.
    reported: AtomicBool,
}

impl WindowBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> WindowBudget {
        WindowBudget {
            shared: Arc::new(BudgetState {
                used: AtomicUsize::new(0),
                limit,
                exhausted: AtomicBool::new(false),
                reported: AtomicBool::new(false),
            }),
        }
    }

    /// Bytes kept now by the windows sharing it.
    pub fn used(&self) -> usize {
        self.shared.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    /// True once some window had to keep less than its own limit.
    pub fn was_exhausted(&self) -> bool {
        self.shared.exhausted.load(Ordering::Relaxed)
    }

    /// True exactly once, the first time it is asked after the budget was
    /// exhausted: the caller reports it.
    pub fn newly_exhausted(&self) -> bool {
        self.was_exhausted() && !self.shared.reported.swap(true, Ordering::Relaxed)
    }

    /// Takes up to `want` bytes; returns how many were granted.
    fn take(&self, want: usize) -> usize {
        let s = &self.shared;
        let mut granted = 0;
        let _ = s.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            granted = want.min(s.limit.saturating_sub(used));
            Some(used + granted)
        });
        if granted < want {
            s.exhausted.store(true, Ordering::Relaxed);
        }
        granted
    }

    fn give_back(&self, n: usize) {
        self.shared.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The last bytes of the earlier chunks of one stream.
#[derive(Debug)]
pub(super) struct Window {
    bytes: VecDeque<u8>,
    /// Most bytes this window keeps.
    limit: usize,
    /// What precedes the first kept byte.
    before: Before,
    /// No match can start before the first kept byte (the window has not
    /// dropped bytes since it last forgot them all).
    complete: bool,
    budget: Option<WindowBudget>,
    /// Bytes taken from the budget (at least `bytes.len()`).
    reserved: usize,
}

impl Window {
    /// A window of `limit` bytes, drawing on `budget` if given.
    pub(super) fn new(limit: usize, budget: Option<WindowBudget>) -> Window {
        Window {
            bytes: VecDeque::new(),
            limit,
            before: Before::StreamStart,
            complete: true,
            budget,
            reserved: 0,
        }
    }

    /// Appends `chunk`, dropping the oldest bytes beyond the limit (or
    /// beyond what the budget grants).
    pub(super) fn push(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let want = (self.bytes.len() + chunk.len()).min(self.limit);
        let room = self.reserve(want);
        if chunk.len() >= room {
            let cut = chunk.len() - room;
            self.complete &= cut == 0 && self.bytes.is_empty();
            self.before = match cut.checked_sub(1) {
                Some(i) => Before::Byte(chunk[i]),
                None => self.last().map_or(self.before, Before::Byte),
            };
            self.bytes.clear();
            self.bytes.extend(&chunk[cut..]);
            return;
        }
        let over = (self.bytes.len() + chunk.len()).saturating_sub(room);
        if over > 0 {
            self.complete = false;
            self.before = Before::Byte(self.bytes[over - 1]);
            self.bytes.drain(..over);
        }
        self.bytes.extend(chunk);
    }

    /// Grows the reservation towards `want` bytes; returns the room there is.
    fn reserve(&mut self, want: usize) -> usize {
        if want > self.reserved {
            let more = want - self.reserved;
            self.reserved += match &self.budget {
                Some(b) => b.take(more),
                None => more,
            };
        }
        self.reserved
    }

    /// The last byte seen (kept or not), `None` at the start of the stream.
    pub(super) fn last(&self) -> Option<u8> {
        match (self.bytes.back(), self.before) {
            (Some(&b), _) | (None, Before::Byte(b)) => Some(b),
            (None, Before::StreamStart) => None,
        }
    }

    /// The kept bytes, oldest first, in two slices.
    pub(super) fn as_slices(&self) -> (&[u8], &[u8]) {
        self.bytes.as_slices()
    }

    /// Number of bytes kept.
    pub(super) fn kept(&self) -> usize {
        self.bytes.len()
    }

    /// What precedes the first kept byte.
    pub(super) fn before(&self) -> Before {
        self.before
    }

    /// Forgets the kept bytes and `chunk`, the bytes that follow them (no
    /// match can start among them), remembering only the last byte seen as
    /// context.
    pub(super) fn forget_through(&mut self, chunk: &[u8]) {
        if let Some(b) = chunk.last().copied().or_else(|| self.last()) {
            self.before = Before::Byte(b);
        }
        self.complete = true;
        self.free();
    }

    /// True if no match can start before the first kept byte.
    pub(super) fn complete(&self) -> bool {
        self.complete
    }

    /// Drops the bytes and their memory, and returns them to the budget.
    pub(super) fn free(&mut self) {
        self.bytes = VecDeque::new();
        if let Some(b) = &self.budget {
            b.give_back(self.reserved);
        }
        self.reserved = 0;
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.free();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_the_one_before() {
        let mut w = Window::new(4, None);
        w.push(b"abc");
        w.push(b"");
        w.push(b"de");
        assert_eq!(w.as_slices().0.iter().chain(w.as_slices().1).copied().collect::<Vec<u8>>(), b"bcde");
        assert_eq!(w.before(), Before::Byte(b'a'));
        w.push(b"123456");
        assert_eq!(w.kept(), 4);
        assert_eq!(w.before(), Before::Byte(b'2'));
        assert_eq!(w.last(), Some(b'6'));
    }

    #[test]
    fn budget_is_shared_and_given_back() {
        let budget = WindowBudget::new(10);
        let mut a = Window::new(8, Some(budget.clone()));
        let mut b = Window::new(8, Some(budget.clone()));
        a.push(b"12345678");
        assert_eq!(a.kept(), 8);
        b.push(b"abcdefgh");
        assert_eq!(b.kept(), 2, "only 2 bytes left in the budget");
        assert_eq!(b.before(), Before::Byte(b'f'));
        assert!(budget.was_exhausted());
        assert_eq!(budget.used(), 10);
        drop(a);
        assert_eq!(budget.used(), 2, "a dropped window gives its bytes back");
        b.push(b"ij");
        assert_eq!(b.kept(), 4);
        b.free();
        assert_eq!(budget.used(), 0);
    }
}
