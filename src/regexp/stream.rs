//! Matching a stream chunk by chunk, without ever joining the chunks.
//!
//! A [`StreamMatcher`] keeps the forward DFA's state between chunks, so a
//! match may span any number of them, and it steps each byte once. It
//! reports the leftmost-first match of the whole stream (what
//! `regex::bytes::Regex::find` would return on the concatenation) as soon
//! as no later byte can change it: at the chunk where the DFA dies after a
//! match, or at the end of a chunk from which no longer match is reachable
//! (so `foo` is reported with the chunk that ends in `o`, while `a+` must see
//! the byte after the last `a`, or the end of the stream).
//!
//! To find where the match started it keeps the last `window` bytes of
//! earlier chunks (64 KiB unless told otherwise) and walks back over them
//! and the current chunk with the reverse DFA. A match whose start lies
//! further back is reported with `start_clipped` set and `start` at the
//! first byte still kept. Nothing else is retained: memory is the window
//! plus a few words, whatever the traffic, and many matchers can share one
//! budget for their windows ([`WindowBudget`]).

use regex_automata::dfa::Automaton;
use regex_automata::util::primitives::StateID;

use super::automaton::Automata;
use super::search::{match_start, scan, Stop};
use super::window::{Window, WindowBudget};
use super::Regex;

/// Bytes of earlier chunks a matcher keeps by default to find match starts.
pub const DEFAULT_WINDOW: usize = 64 * 1024;

/// A match, in stream offsets (bytes since the first chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Offset of the first byte of the match, unless `start_clipped`.
    pub start: u64,
    /// Offset just after the last byte of the match.
    pub end: u64,
    /// The walk back to the start ran out of kept bytes (the window) before
    /// it could tell where the match starts: `start` is then the first kept
    /// byte of the match (or `end` when none was kept), not its real start.
    pub start_clipped: bool,
}

/// What one [`StreamMatcher::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The stream's match, final. Later feeds return it again.
    Matched(Match),
    /// No match yet, but the last bytes began one (or a match was seen that
    /// a longer one may still replace): feed more.
    NeedMore,
    /// No match so far and none in progress (at end of stream: no match).
    NoMatch,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Searching,
    Found(Match),
    /// The stream ended, or the DFA died, without a match.
    Exhausted,
}

/// Matches one pattern against one stream fed in chunks (see the module
/// documentation). Made by [`Regex::stream`].
#[derive(Debug)]
pub struct StreamMatcher {
    re: Regex,
    state: StateID,
    /// Bytes fed before the current chunk.
    consumed: u64,
    /// End of the longest match seen so far, while the DFA may extend it.
    last_end: Option<u64>,
    window: Window,
    outcome: Outcome,
    partial: bool,
    work: u64,
    /// The end of a match found at the end of a chunk, whose start waits
    /// for the next byte (see [`StreamMatcher::start_settled`]).
    pending_end: Option<u64>,
}

impl StreamMatcher {
    pub(super) fn new(re: Regex, window: usize, budget: Option<WindowBudget>) -> StreamMatcher {
        let state = re.automata().fwd_start();
        StreamMatcher {
            re,
            state,
            consumed: 0,
            last_end: None,
            window: Window::new(window, budget),
            outcome: Outcome::Searching,
            partial: false,
            work: 0,
            pending_end: None,
        }
    }

    /// Feeds the next chunk of the stream; `eof` says it is the last one.
    /// Chunks may be empty. Once a match is found, or the stream has ended,
    /// later feeds change nothing and return the same answer.
    pub fn feed(&mut self, chunk: &[u8], eof: bool) -> Feed {
        match self.outcome {
            Outcome::Found(m) => return Feed::Matched(m),
            Outcome::Exhausted => return Feed::NoMatch,
            Outcome::Searching => {}
        }
        let re = self.re.clone();
        let auto = re.automata();
        if let Some(end) = self.pending_end {
            if chunk.is_empty() && !eof {
                return Feed::NeedMore;
            }
            // The byte after the match (or the end) is known now.
            let m = self.conclude(auto, chunk, end);
            self.outcome = Outcome::Found(m);
            self.partial = false;
            self.window.free();
            return Feed::Matched(m);
        }
        let stop = scan(auto, &mut self.state, chunk, self.consumed, &mut self.last_end, &mut self.work);
        let end = match stop {
            Stop::Dead(_) => self.last_end,
            Stop::End if eof => {
                self.partial = self.in_progress(auto, chunk);
                let s = auto.fwd().next_eoi_state(self.state);
                if auto.fwd().is_match_state(s) {
                    self.last_end = Some(self.consumed + chunk.len() as u64);
                }
                self.last_end
            }
            Stop::End => match self.settled_end(auto, chunk.len()) {
                Some(end) if !self.start_settled(auto, chunk, end) => {
                    // The match ends with the bytes fed so far, and where it
                    // starts depends on what comes next (`(?:[^a]|aA\z)` on
                    // `aA`: 0 if the stream ends there, else 1): wait for
                    // the next byte or the end.
                    self.pending_end = Some(end);
                    self.window.push(chunk);
                    self.consumed += chunk.len() as u64;
                    self.partial = true;
                    return Feed::NeedMore;
                }
                Some(end) => Some(end),
                None => {
                    let busy = self.in_progress(auto, chunk);
                    self.partial = self.last_end.is_some() || busy;
                    if !self.partial && auto.idle_means_nothing_started() {
                        // No match can start in the bytes so far: keep none.
                        self.window.forget_through(chunk);
                    } else {
                        self.window.push(chunk);
                    }
                    self.consumed += chunk.len() as u64;
                    return if self.partial { Feed::NeedMore } else { Feed::NoMatch };
                }
            },
        };
        let Some(end) = end else {
            self.outcome = Outcome::Exhausted;
            self.window.free();
            return Feed::NoMatch;
        };
        let m = self.conclude(auto, chunk, end);
        self.outcome = Outcome::Found(m);
        self.partial = false;
        self.window.free();
        Feed::Matched(m)
    }

    /// Haka's `ispartial`: true when the bytes fed so far end inside a
    /// match that has not completed (also after the end of the stream, as
    /// in Haka: the stream then ended in the middle of one). A hint: a
    /// pattern whose start loops (`a*b`) looks idle while in its loop.
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// True when no match can have begun in the bytes fed so far: the next
    /// match (if any) starts at or after the next byte fed. (What the
    /// matcher itself goes by to keep none of them.)
    pub fn nothing_started(&self) -> bool {
        matches!(self.outcome, Outcome::Searching)
            && !self.partial
            && self.re.automata().idle_means_nothing_started()
    }

    /// Bytes fed so far (up to the match, once one is found).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Bytes of earlier chunks kept now to find match starts.
    pub fn retained(&self) -> usize {
        self.window.kept()
    }

    /// DFA transitions taken so far (forward, backward and the checks at
    /// chunk ends): the matcher's whole work, for tests of its linearity.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// True when the state after `chunk` is not that of a search with
    /// nothing in progress.
    fn in_progress(&self, auto: &Automata, chunk: &[u8]) -> bool {
        let last = chunk.last().copied().or_else(|| self.window.last());
        let dead = auto.fwd().is_dead_state(self.state);
        !dead && self.state != auto.fwd_idle(last)
    }

    /// At the end of a chunk (not the last): the end of the match if no
    /// later byte can change it.
    fn settled_end(&mut self, auto: &Automata, chunk_len: usize) -> Option<u64> {
        let here = self.consumed + chunk_len as u64;
        let work = &mut self.work;
        if auto.match_ends_here(self.state, work) {
            // A match ends here whatever comes next; it is final if none of
            // the next states can match again.
            let successors: Vec<StateID> = auto.successors(self.state).collect();
            return successors.into_iter().all(|t| !auto.can_match_later(t, work)).then_some(here);
        }
        match self.last_end {
            Some(end) if !auto.can_match_later(self.state, work) => Some(end),
            _ => None,
        }
    }

    /// True unless the match ending at `end`, the end of `chunk` (not the
    /// last), would start elsewhere depending on what follows it.
    fn start_settled(&mut self, auto: &Automata, chunk: &[u8], end: u64) -> bool {
        if end != self.consumed + chunk.len() as u64 {
            return true;
        }
        let classes = auto.rev_start_classes();
        if classes.len() < 2 {
            return true;
        }
        let (w0, w1) = self.window.as_slices();
        let base = self.consumed - self.window.kept() as u64;
        let segments: [&[u8]; 3] = [w0, w1, chunk];
        let (before, complete) = (self.window.before(), self.window.complete());
        let mut starts = classes.iter().map(|&next| {
            let s = match_start(auto, &segments, base, end, next, before, complete, &mut self.work);
            (s.offset, s.clipped)
        });
        let first = starts.next();
        starts.all(|s| Some(s) == first)
    }

    /// Finds the start of the match ending at `end`, in the window and
    /// `chunk` (which begins at `consumed`), and records what was consumed.
    fn conclude(&mut self, auto: &Automata, chunk: &[u8], end: u64) -> Match {
        let (w0, w1) = self.window.as_slices();
        let base = self.consumed - self.window.kept() as u64;
        if end < base {
            // The DFA went on past the match for longer than the window:
            // none of the match is kept.
            self.consumed = self.consumed.max(end);
            return Match { start: end, end, start_clipped: true };
        }
        let mut segments: Vec<&[u8]> = vec![w0, w1, chunk];
        // Cut the segments at `end`, noting the byte at `end` if kept.
        let mut next = None;
        let mut left = end - base;
        for seg in segments.iter_mut() {
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(seg.len());
            if take < seg.len() && next.is_none() {
                next = Some(seg[take]);
            }
            *seg = &seg[..take];
            left -= take as u64;
        }
        let (before, complete) = (self.window.before(), self.window.complete());
        let start = match_start(auto, &segments, base, end, next, before, complete, &mut self.work);
        self.consumed = self.consumed.max(end);
        Match { start: start.offset, end, start_clipped: start.clipped }
    }
}
