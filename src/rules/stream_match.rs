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

use mlua::Value;

use super::match_state::{warn_if_window_exhausted, Done, Step, StreamMatch, MATCH_WINDOW};
use super::stream_buf::StreamBuf;
use crate::regexp::Feed;

impl StreamMatch {
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
        warn_if_window_exhausted(&self.budget);
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
