//! Regular expressions for rules (`require("regexp/pcre")`), on a
//! linear-time engine.
//!
//! Patterns are written in PCRE syntax, as Haka's rules wrote them, and are
//! translated (`translate.rs`) into `regex-syntax`'s dialect with the same
//! meaning on bytes (PCRE without UTF mode, multi-line as Haka forced it).
//! They compile to a forward and a reverse DFA (`automaton.rs`), so a search
//! costs one table lookup per byte: no backtracking, no pattern or input
//! can make it slower. PCRE features an automaton cannot do (backreferences,
//! lookaround, atomic groups, ...) are compile errors that name the feature.
//!
//! * [`Regex::find`] searches one buffer: the leftmost-first match, as
//!   `regex::bytes::Regex::find`.
//! * [`Regex::stream`] gives a [`StreamMatcher`] that is fed a stream chunk
//!   by chunk and finds the same match without joining the chunks (`stream.rs`).
//!
//! Nothing here knows Lua; the bindings are in `rules/regexp.rs`.

mod automaton;
mod search;
mod stream;
mod translate;
mod window;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

pub use automaton::DFA_SIZE_LIMIT;
pub use stream::{Feed, Match, StreamMatcher, DEFAULT_WINDOW};
pub use translate::percent_to_backslash;
pub use window::WindowBudget;

use automaton::Automata;
use search::{match_start, scan, Before, Stop};

/// Compile options, as Haka's `rem.re.CASE_INSENSITIVE` and `EXTENDED`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// PCRE's `i`: letters match either case (ASCII).
    pub case_insensitive: bool,
    /// PCRE's `x`: white space outside classes and `#` comments are ignored.
    pub extended: bool,
}

impl Flags {
    /// Bit of [`Flags::case_insensitive`] in Haka's option numbers.
    pub const CASE_INSENSITIVE: i64 = 1;
    /// Bit of [`Flags::extended`] in Haka's option numbers.
    pub const EXTENDED: i64 = 2;

    /// Flags from Haka's option number (a sum of the bits above); `None` if
    /// it has other bits.
    pub fn from_bits(bits: i64) -> Option<Flags> {
        if bits & !(Self::CASE_INSENSITIVE | Self::EXTENDED) != 0 {
            return None;
        }
        Some(Flags {
            case_insensitive: bits & Self::CASE_INSENSITIVE != 0,
            extended: bits & Self::EXTENDED != 0,
        })
    }
}

/// A pattern that does not compile: the pattern, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pattern: String,
    offset: Option<usize>,
    message: String,
}

impl CompileError {
    /// Byte offset in the pattern of what is wrong, when one place is.
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }

    /// What is wrong, without the pattern.
    pub fn reason(&self) -> &str {
        &self.message
    }

    /// The same error showing `pattern` (the rule's spelling, with `%` for
    /// `\`, which has the same offsets) instead of the compiled one.
    pub fn shown_as(mut self, pattern: &[u8]) -> CompileError {
        self.pattern = String::from_utf8_lossy(pattern).into_owned();
        self
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad regular expression \"{}\"", self.pattern)?;
        match self.offset {
            Some(o) if o >= self.pattern.len() => write!(f, " at offset {o} (the end)")?,
            Some(o) => {
                let rest = self.pattern.get(o..).unwrap_or("");
                write!(f, " at offset {o} (at \"{rest}\")")?;
            }
            None => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CompileError {}

/// A compiled pattern. Cloning shares the automata.
#[derive(Debug, Clone)]
pub struct Regex {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pattern: String,
    automata: Automata,
}

/// Deepest group nesting a pattern may have.
const NEST_LIMIT: u32 = 100;

impl Regex {
    /// Compiles a PCRE pattern (with `\`, not Haka's `%`).
    pub fn compile(pattern: &str, flags: Flags) -> Result<Regex, CompileError> {
        Self::compile_bytes(pattern.as_bytes(), flags)
    }

    /// Compiles a PCRE pattern given as bytes (Lua strings need not be
    /// UTF-8; bytes ≥ 0x80 are literal bytes).
    pub fn compile_bytes(pattern: &[u8], flags: Flags) -> Result<Regex, CompileError> {
        let shown = String::from_utf8_lossy(pattern).into_owned();
        let error =
            |offset: Option<usize>, message: String| CompileError { pattern: shown.clone(), offset, message };
        let translated =
            translate::translate(pattern, flags.extended).map_err(|e| error(Some(e.offset), e.message))?;
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .multi_line(true)
            .case_insensitive(flags.case_insensitive)
            .nest_limit(NEST_LIMIT)
            .build()
            .parse(&translated.pattern)
            .map_err(|e| {
                let (at, why) = syntax_error(&e);
                error(Some(translated.source_offset(at)), why)
            })?;
        let automata = Automata::build(&hir).map_err(|m| error(None, m))?;
        Ok(Regex { inner: Arc::new(Inner { pattern: shown.clone(), automata }) })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.inner.pattern
    }

    /// Memory of the compiled automata, in bytes.
    pub fn memory_usage(&self) -> usize {
        self.inner.automata.memory_usage()
    }

    fn automata(&self) -> &Automata {
        &self.inner.automata
    }

    /// The leftmost-first match in `haystack`.
    pub fn find(&self, haystack: &[u8]) -> Option<Range<usize>> {
        self.find_counting(haystack).0
    }

    /// [`Regex::find`], also returning the DFA transitions it took.
    pub fn find_counting(&self, haystack: &[u8]) -> (Option<Range<usize>>, u64) {
        let auto = self.automata();
        let mut work = 0;
        let mut state = auto.fwd_start();
        let mut last_end = None;
        if scan(auto, &mut state, haystack, 0, &mut last_end, &mut work) == Stop::End {
            use regex_automata::dfa::Automaton;
            if auto.fwd().is_match_state(auto.fwd().next_eoi_state(state)) {
                last_end = Some(haystack.len() as u64);
            }
        }
        let Some(end) = last_end.and_then(|e| usize::try_from(e).ok()) else { return (None, work) };
        let next = haystack.get(end).copied();
        let start =
            match_start(auto, &[&haystack[..end]], 0, end as u64, next, Before::StreamStart, true, &mut work);
        let start = usize::try_from(start.offset).unwrap_or(end).min(end);
        (Some(start..end), work)
    }

    /// A matcher for one stream, keeping [`DEFAULT_WINDOW`] bytes to find
    /// match starts.
    pub fn stream(&self) -> StreamMatcher {
        self.stream_with_window(DEFAULT_WINDOW)
    }

    /// A matcher for one stream, keeping up to `window` bytes of earlier
    /// chunks to find match starts.
    pub fn stream_with_window(&self, window: usize) -> StreamMatcher {
        StreamMatcher::new(self.clone(), window, None)
    }

    /// A matcher for one stream whose window (at most `window` bytes) draws
    /// on `budget`, shared with other matchers.
    pub fn stream_in(&self, window: usize, budget: &WindowBudget) -> StreamMatcher {
        StreamMatcher::new(self.clone(), window, Some(budget.clone()))
    }
}

/// Offset (in the translated pattern) and text of a `regex-syntax` error.
fn syntax_error(e: &regex_syntax::Error) -> (usize, String) {
    match e {
        regex_syntax::Error::Parse(p) => (p.span().start.offset, p.kind().to_string()),
        regex_syntax::Error::Translate(t) => (t.span().start.offset, t.kind().to_string()),
        other => (0, other.to_string()),
    }
}

#[cfg(test)]
mod tests;
