//! The state of one `re:match(iter)` on a streamed iterator (see
//! [`super::stream_match`], which steps it): kept on the iterator's holder
//! in the stream (`stream_buf.rs`), so it is its own leaf module.

use std::ffi::c_void;

use mlua::{LightUserData, Value};

use crate::regexp::{StreamMatcher, WindowBudget};

/// Bytes a match keeps behind its scan position (the matcher keeps as many
/// to find match starts), so the iterator can be moved back to the end of a
/// match reported after more bytes were fed.
pub(super) const MATCH_WINDOW: u64 = crate::regexp::DEFAULT_WINDOW as u64;

/// Low byte of a park token (a light userdata, which rule code cannot make);
/// differs from the data values' tag (`context::DATA_TAG`).
const PARK_TAG: u64 = 0x9a;

/// Park token serials wrap below this (they sit above the tag byte).
const SERIAL_LIMIT: u64 = 1 << 48;

/// Says once per rule state, when its sinks' shared window budget runs out
/// (for `re:match(iter)` and sinks alike), that matches starting further
/// back now get a clipped start.
pub(super) fn warn_if_window_exhausted(budget: &WindowBudget) {
    if budget.newly_exhausted() {
        tracing::warn!(
            "{}: the sinks of this rule state keep {} MiB to find match starts, all in use: \
             matches starting further back are reported with a clipped start",
            super::context::REGEXP_MODULE,
            budget.limit() >> 20
        );
    }
}

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
    pub(super) sink: StreamMatcher,
    /// The window budget the sink shares (for its warning).
    pub(super) budget: WindowBudget,
    /// Stream offset of the first byte fed (the sink counts from there).
    pub(super) start: u64,
    /// Stream offset after the last byte fed.
    pub(super) scan: u64,
    /// The result, once there is one (steps then return it again).
    pub(super) done: Option<Done>,
    /// Identifies this match in park tokens.
    pub(super) serial: u64,
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
}
