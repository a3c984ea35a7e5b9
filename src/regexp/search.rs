//! The two walks every match takes: forward over the bytes to the end of
//! the leftmost-first match, then backward from that end to its start.
//! Both step one DFA transition per byte and never go back over a byte, so
//! a search costs O(bytes) whatever the pattern.

use regex_automata::dfa::Automaton;
use regex_automata::util::primitives::StateID;
use regex_automata::Span;

use super::automaton::Automata;

/// Why a forward scan of a chunk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The DFA died at this index of the chunk: the match, if one was seen,
    /// is final.
    Dead(usize),
    /// Every byte of the chunk was stepped.
    End,
}

/// Steps the forward DFA over `bytes`, which start at stream offset `base`.
/// Each match end seen is written to `last_end` (leftmost-first keeps
/// extending the match until the DFA dies). `work` counts bytes stepped.
pub(super) fn scan(
    auto: &Automata,
    state: &mut StateID,
    bytes: &[u8],
    base: u64,
    last_end: &mut Option<u64>,
    work: &mut u64,
) -> Stop {
    let dfa = auto.fwd();
    let mut s = *state;
    let mut i = 0;
    // Counted locally: a store through `work` on every byte would keep the
    // loop from holding the count in a register.
    let mut steps = 0u64;
    if dfa.is_start_state(s) {
        if let Some((j, t)) = skip_to_candidate(auto, bytes, 0) {
            (i, s) = (j, t);
        }
    }
    let stop = loop {
        let Some(&b) = bytes.get(i) else { break Stop::End };
        s = dfa.next_state(s, b);
        steps += 1;
        if !dfa.is_special_state(s) {
            i += 1;
            continue;
        }
        if dfa.is_dead_state(s) {
            break Stop::Dead(i);
        }
        if dfa.is_match_state(s) {
            // Matches are reported one byte late: entering a match state
            // on byte i means a match ended just before it.
            *last_end = Some(base + i as u64);
        } else if dfa.is_start_state(s) {
            if let Some((j, t)) = skip_to_candidate(auto, bytes, i + 1) {
                (i, s) = (j, t);
                continue;
            }
        }
        if dfa.is_accel_state(s) {
            // The state loops on every byte but a few: skip to the next of
            // those, as the DFA would have stayed put meanwhile.
            i = find_any(dfa.accelerator(s), bytes, i + 1).unwrap_or(bytes.len());
            continue;
        }
        i += 1;
    };
    *work += steps;
    *state = s;
    stop
}

/// With nothing in progress at `from` (the DFA is in a start state), the
/// next place a match can start, per the prefilter, and the DFA state to
/// resume there: a start state with the byte before as context. When the
/// prefilter finds nothing, the resume point is the last bytes of the chunk
/// that could begin a match completed by the next chunk. `None`: no skip.
fn skip_to_candidate(auto: &Automata, bytes: &[u8], from: usize) -> Option<(usize, StateID)> {
    let pre = auto.prefilter()?;
    let to = match pre.find(bytes, Span::from(from..bytes.len())) {
        Some(span) => span.start,
        None => bytes.len().saturating_sub(pre.max_needle_len().saturating_sub(1)),
    };
    if to <= from {
        return None;
    }
    Some((to, auto.fwd_idle(Some(bytes[to - 1]))))
}

/// The first index ≥ `from` of one of the (one to three) `needles`.
fn find_any(needles: &[u8], bytes: &[u8], from: usize) -> Option<usize> {
    let hay = bytes.get(from..)?;
    let at = match *needles {
        [a] => memchr::memchr(a, hay),
        [a, b] => memchr::memchr2(a, b, hay),
        [a, b, c] => memchr::memchr3(a, b, c, hay),
        _ => hay.iter().position(|x| needles.contains(x)),
    }?;
    Some(from + at)
}

/// What precedes the first byte a backward walk can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Before {
    /// The start of the stream.
    StreamStart,
    /// This byte, and earlier bytes that are no longer kept.
    Byte(u8),
}

/// Where a backward walk put the start of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Start {
    /// Stream offset of the start.
    pub offset: u64,
    /// The walk ran out of kept bytes before the start was certain; `offset`
    /// is then the first kept byte.
    pub clipped: bool,
}

/// Walks the reverse DFA back from `end` over `segments` (in stream order,
/// ending at `end`, the first at offset `base`); `next` is the byte at `end`
/// (`None` at the end of the stream), `before` what precedes `base`;
/// `nothing_earlier` says no match can start before `base`.
#[allow(clippy::too_many_arguments)]
pub(super) fn match_start(
    auto: &Automata,
    segments: &[&[u8]],
    base: u64,
    end: u64,
    next: Option<u8>,
    before: Before,
    nothing_earlier: bool,
    work: &mut u64,
) -> Start {
    let dfa = auto.rev();
    let mut s = auto.rev_start(next);
    let mut start = None;
    let mut pos = end;
    for seg in segments.iter().rev() {
        for &b in seg.iter().rev() {
            s = dfa.next_state(s, b);
            *work += 1;
            pos -= 1;
            if dfa.is_special_state(s) {
                if dfa.is_match_state(s) {
                    // Reported one byte late, as forward.
                    start = Some(pos + 1);
                } else if dfa.is_dead_state(s) {
                    return Start { offset: start.unwrap_or(pos + 1), clipped: start.is_none() };
                }
            }
        }
    }
    debug_assert_eq!(pos, base);
    s = match before {
        Before::StreamStart => dfa.next_eoi_state(s),
        Before::Byte(b) => dfa.next_state(s, b),
    };
    if dfa.is_match_state(s) {
        start = Some(base);
    }
    let certain = before == Before::StreamStart || nothing_earlier || auto.rev_is_final(s, work);
    match start {
        Some(offset) if certain => Start { offset, clipped: false },
        _ => Start { offset: base, clipped: true },
    }
}
