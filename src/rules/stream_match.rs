//! `re:match(iter)` on a streamed iterator, in Rust: the matcher is fed the
//! stream bytes past its scan position each time there are new ones, until
//! it finds a match or the stream ends.
//!
//! The state lives on the iterator's holder in the stream
//! (`stream_buf.rs`), not in the rule's coroutine. `rules/stream_iter.lua`
//! runs the steps while the rule runs, and yields a park token when the
//! matcher waits for bytes; if the match is on the rule's own iterator, the
//! dispatcher (`data_event.rs`) then steps it itself on each later chunk and
//! resumes the coroutine only once the match or the end of the stream is
//! there. The rule sees the same results, iterator positions and meters as
//! when its coroutine ran every step; it just is not woken for chunks that
//! do not end its wait (those ran no rule code but this loop, so the
//! instruction budget has nothing to count for them; matcher time was never
//! counted by it).

use std::ffi::c_void;

use mlua::{LightUserData, Value};

use super::stream_buf::StreamBuf;
use crate::regexp::{Feed, StreamMatcher, WindowBudget};

/// Bytes a match keeps behind its scan position (the matcher keeps as many
/// to find match starts), so the iterator can be moved back to the end of a
/// match reported after more bytes were fed.
const MATCH_WINDOW: u64 = crate::regexp::DEFAULT_WINDOW as u64;

/// Low byte of a park token (a light userdata, which rule code cannot make);
/// differs from the data values' tag (`context::DATA_TAG`).
const PARK_TAG: u64 = 0x9a;

/// Park token serials wrap below this (they sit above the tag byte).
const SERIAL_LIMIT: u64 = 1 << 48;

/// How a match ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Done {
    /// Matched bytes `first..last` (stream offsets); the iterator goes to `at`.
    Matched { first: u64, last: u64, at: u64 },
    /// The stream ended without a match; the iterator goes to `at`.
    Ended { at: u64 },
}

/// What a step came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// No result yet: wait for more bytes.
    Wait,
    /// The result.
    Done(Done),
}

/// A match in progress on one holder.
#[derive(Debug)]
pub(super) struct StreamMatch {
    sink: StreamMatcher,
    /// The window budget the sink shares (for its warning).
    budget: WindowBudget,
    /// Stream offset of the first byte fed (the sink counts from there).
    start: u64,
    /// Stream offset after the last byte fed.
    scan: u64,
    /// The result, once there is one (steps then return it again).
    done: Option<Done>,
    /// Identifies this match in park tokens.
    serial: u64,
    /// Its rule's coroutine yielded this match's token and waits in it: the
    /// dispatcher steps it.
    pub parked: bool,
}

impl StreamMatch {
    /// A match of `sink` starting at stream offset `start`.
    pub(super) fn new(sink: StreamMatcher, budget: WindowBudget, start: u64, serial: u64) -> StreamMatch {
        let serial = serial % SERIAL_LIMIT;
        StreamMatch { sink, budget, start, scan: start, done: None, serial, parked: false }
    }

    /// The token the waiting coroutine yields.
    pub(super) fn token(&self) -> Value {
        Value::LightUserData(LightUserData(((self.serial << 8) | PARK_TAG) as usize as *mut c_void))
    }

    /// True if `v` is this match's token.
    pub(super) fn is_token(&self, v: &Value) -> bool {
        matches!(v, Value::LightUserData(d) if d.0 as usize as u64 == (self.serial << 8) | PARK_TAG)
    }

    /// Feeds the bytes of `s` past the scan position, then `pending` (the
    /// bytes that follow the stream's end, not pushed yet), if any. While a
    /// match may have begun, holder `holder` (this match's) is kept
    /// [`MATCH_WINDOW`] behind the scan, for the matched sub-buffer and the
    /// end of a match reported late; otherwise it moves to the scan.
    pub(super) fn step(&mut self, s: &mut StreamBuf, holder: u64, pending: &[u8]) -> Step {
        if let Some(done) = self.done {
            return Step::Done(done);
        }
        let Some(pos) = s.pos(holder) else { return Step::Wait };
        let (stop, eof) = (s.end() + pending.len() as u64, s.is_eof());
        if stop <= self.scan && !eof {
            return Step::Wait;
        }
        let feed = self.feed(s, pending, eof);
        self.scan = stop;
        if self.budget.newly_exhausted() {
            tracing::warn!(
                "{}: the sinks of this rule state keep {} MiB to find match starts, all in use: \
                 matches starting further back are reported with a clipped start",
                super::regexp::MODULE_NAME,
                self.budget.limit() >> 20
            );
        }
        let done = match feed {
            Feed::Matched(m) => {
                let last = self.start + m.end;
                Done::Matched { first: self.start + m.start, last, at: last.max(pos) }
            }
            Feed::NeedMore | Feed::NoMatch if eof => Done::Ended { at: stop },
            Feed::NeedMore | Feed::NoMatch => {
                let keep = if self.sink.nothing_started() { stop } else { stop.saturating_sub(MATCH_WINDOW) };
                if keep > pos {
                    s.seek(holder, keep);
                }
                return Step::Wait;
            }
        };
        self.done = Some(done);
        Step::Done(done)
    }

    /// Feeds the retained bytes from the scan position to the stream's end,
    /// block by block without a copy, then `pending`; `eof` goes with the
    /// last.
    fn feed(&mut self, s: &StreamBuf, pending: &[u8], eof: bool) -> Feed {
        let mut fed = None;
        let tail = !pending.is_empty();
        s.each_part(self.scan..s.end(), |b, r, last| {
            if !matches!(fed, Some(Feed::Matched(_))) {
                fed = Some(self.sink.feed(b.get(r).unwrap_or_default(), eof && last && !tail));
            }
        });
        match fed {
            Some(f @ Feed::Matched(_)) => f,
            Some(f) if !tail => f,
            _ => self.sink.feed(pending, eof),
        }
    }
}

/// Steps the match parked on `holder` (the rule's own iterator) with the
/// bytes that came since its last step: those of the stream and `pending`,
/// which follow them but are not pushed yet. True if it still waits, so its
/// coroutine need not be resumed; false if there is none, or its result is
/// there for the coroutine to take, or the stream holds (with `pending`)
/// more than its limit (the coroutine's next read then fails, as any read
/// does).
pub(super) fn stays_parked(s: &mut StreamBuf, holder: u64, pending: &[u8]) -> bool {
    let Some(mut m) = s.holder_mut(holder).and_then(|h| h.matching.take()) else { return false };
    let wait = m.parked && !s.would_overflow(pending.len()) && m.step(s, holder, pending) == Step::Wait;
    m.parked = wait;
    if let Some(h) = s.holder_mut(holder) {
        h.matching = Some(m);
    }
    wait
}

/// After the coroutine of `holder`'s rule yielded `yielded`: if that is the
/// token of the match running on `holder`, the match is parked.
pub(super) fn park_if_token(s: &mut StreamBuf, holder: u64, yielded: &Value) {
    if let Some(m) = s.holder_mut(holder).and_then(|h| h.matching.as_mut()) {
        m.parked = m.is_token(yielded);
    }
}
