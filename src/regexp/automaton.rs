//! The two DFAs of a pattern and the questions the matchers ask them.
//!
//! The forward DFA (unanchored, leftmost-first) finds where a match ends;
//! the reverse DFA (anchored, all matches) walks back from that end to the
//! leftmost start, as `regex-automata`'s own DFA regex does. Both are fully
//! built at compile time, with a size limit, so matching is one table
//! lookup per byte whatever the pattern or the input.
//!
//! A stream matcher must also know, at the end of a chunk, whether the match
//! it is following can still change: [`Automata::can_match_later`] answers
//! it by exploring the states reachable from one state. The answer depends
//! only on the (immutable) DFA, so it is remembered per state.

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::Hir;

/// The largest DFA (each direction) a pattern may compile to.
pub const DFA_SIZE_LIMIT: usize = 16 << 20;

type Dfa = dense::DFA<Vec<u32>>;

/// The compiled automata of one pattern.
#[derive(Debug)]
pub(super) struct Automata {
    fwd: Dfa,
    rev: Dfa,
    /// Forward start state at the beginning of a stream.
    fwd_start: StateID,
    /// Forward start state after each byte: the state of a search that has
    /// nothing in progress (see `StreamMatcher::is_partial`).
    fwd_idle: Vec<StateID>,
    /// Reverse start state at the end of the stream, then after each byte.
    rev_start: Vec<StateID>,
    /// See [`Automata::rev_start_classes`].
    rev_start_classes: Vec<Option<u8>>,
    /// One byte of each equivalence class of the forward DFA's alphabet.
    representatives: Vec<u8>,
    /// The same for the reverse DFA.
    rev_representatives: Vec<u8>,
    /// Finds where a match can start (its literal prefixes), to skip the
    /// bytes between while the forward DFA has nothing in progress.
    prefilter: Option<Prefilter>,
    /// See [`start_never_reentered`].
    fresh_starts: bool,
    /// Remembered answers of `can_match_later`.
    later: Mutex<HashMap<StateID, bool>>,
}

fn nfa_config(reverse: bool) -> thompson::Config {
    thompson::Config::new()
        .utf8(false)
        .reverse(reverse)
        .which_captures(thompson::WhichCaptures::None)
        .nfa_size_limit(Some(DFA_SIZE_LIMIT))
}

fn dfa_config(reverse: bool, prefilter: bool) -> dense::Config {
    let c = dense::Config::new()
        .specialize_start_states(prefilter)
        .dfa_size_limit(Some(DFA_SIZE_LIMIT))
        .determinize_size_limit(Some(DFA_SIZE_LIMIT))
        .unicode_word_boundary(false);
    if reverse {
        c.start_kind(StartKind::Anchored).match_kind(MatchKind::All).accelerate(false)
    } else {
        c.start_kind(StartKind::Unanchored).match_kind(MatchKind::LeftmostFirst)
    }
}

fn build_dfa(hir: &Hir, reverse: bool, prefilter: bool) -> Result<(Dfa, thompson::NFA), String> {
    let nfa = thompson::Compiler::new()
        .configure(nfa_config(reverse))
        .build_from_hir(hir)
        .map_err(|e| format!("cannot build the automaton: {e}"))?;
    let dfa = dense::Builder::new().configure(dfa_config(reverse, prefilter)).build_from_nfa(&nfa).map_err(
        |e| {
            format!(
                "the pattern needs a larger automaton than sluice allows ({} MiB): {e}",
                DFA_SIZE_LIMIT >> 20
            )
        },
    )?;
    Ok((dfa, nfa))
}

/// NFA size beyond which [`start_never_reentered`] does not look and
/// answers `false`.
const REENTRY_CHECK_LIMIT: usize = 50_000;

/// True if no thread of the pattern that has read a byte can be back in
/// one of the states a match starts from (the closure of the anchored
/// start). Then a forward DFA in its start state has no match in progress
/// that began earlier, and the bytes before can be forgotten. False for
/// `a*b` (after `aaa` the thread is where it started), true for `attack`.
fn start_never_reentered(nfa: &thompson::NFA) -> bool {
    use thompson::State;
    let n = nfa.states().len();
    if n > REENTRY_CHECK_LIMIT {
        return false;
    }
    let epsilon = |s: &State| -> Vec<StateID> {
        match s {
            State::Look { next, .. } | State::Capture { next, .. } => vec![*next],
            State::Union { alternates } => alternates.to_vec(),
            State::BinaryUnion { alt1, alt2 } => vec![*alt1, *alt2],
            _ => Vec::new(),
        }
    };
    let bytes = |s: &State| -> Vec<StateID> {
        match s {
            State::ByteRange { trans } => vec![trans.next],
            State::Sparse(t) => t.transitions.iter().map(|t| t.next).collect(),
            State::Dense(t) => t.transitions.to_vec(),
            _ => Vec::new(),
        }
    };
    // Every state the pattern reaches from its anchored start (this leaves
    // out the unanchored prefix loop in front of it).
    let mut pattern = vec![false; n];
    let mut stack = vec![nfa.start_anchored()];
    while let Some(s) = stack.pop() {
        if std::mem::replace(&mut pattern[s.as_usize()], true) {
            continue;
        }
        let st = nfa.state(s);
        stack.extend(epsilon(st).into_iter().chain(bytes(st)));
    }
    // The start closure, then every state with an epsilon path into it.
    let mut back: Vec<Vec<StateID>> = vec![Vec::new(); n];
    for (i, st) in nfa.states().iter().enumerate() {
        for t in epsilon(st) {
            back[t.as_usize()].push(StateID::new_unchecked(i));
        }
    }
    let mut start = vec![false; n];
    let mut stack = vec![nfa.start_anchored()];
    while let Some(s) = stack.pop() {
        if !std::mem::replace(&mut start[s.as_usize()], true) {
            stack.extend(epsilon(nfa.state(s)));
        }
    }
    let mut leads_to_start = start.clone();
    let mut stack: Vec<StateID> = (0..n).filter(|&i| start[i]).map(StateID::new_unchecked).collect();
    while let Some(s) = stack.pop() {
        for &p in &back[s.as_usize()] {
            if !std::mem::replace(&mut leads_to_start[p.as_usize()], true) {
                stack.push(p);
            }
        }
    }
    !nfa.states()
        .iter()
        .enumerate()
        .filter(|(i, _)| pattern[*i])
        .any(|(_, st)| bytes(st).into_iter().any(|t| leads_to_start[t.as_usize()]))
}

/// One `next` per distinct state of `rev_start` (indexed as
/// [`Automata::rev_start`] reads it: the end of the stream, then each byte).
fn start_classes(rev_start: &[StateID]) -> Vec<Option<u8>> {
    let mut seen: Vec<StateID> = Vec::new();
    let mut classes = Vec::new();
    for (next, s) in std::iter::once(None).chain((0..=255u8).map(Some)).zip(rev_start) {
        if !seen.contains(s) {
            seen.push(*s);
            classes.push(next);
        }
    }
    classes
}

fn start_state(dfa: &Dfa, anchored: Anchored, look_behind: Option<u8>) -> Result<StateID, String> {
    let config = start::Config::new().anchored(anchored).look_behind(look_behind);
    dfa.start_state(&config).map_err(|e| format!("automaton has no start state: {e}"))
}

impl Automata {
    /// Builds both DFAs of `hir`.
    pub(super) fn build(hir: &Hir) -> Result<Automata, String> {
        let prefilter = Prefilter::from_hir_prefix(MatchKind::LeftmostFirst, hir).filter(Prefilter::is_fast);
        let (fwd, fwd_nfa) = build_dfa(hir, false, prefilter.is_some())?;
        let (rev, _) = build_dfa(hir, true, false)?;
        let fresh_starts = start_never_reentered(&fwd_nfa);
        let fwd_start = start_state(&fwd, Anchored::No, None)?;
        let fwd_idle =
            (0..=255u8).map(|b| start_state(&fwd, Anchored::No, Some(b))).collect::<Result<_, _>>()?;
        let mut rev_start = vec![start_state(&rev, Anchored::Yes, None)?];
        for b in 0..=255u8 {
            rev_start.push(start_state(&rev, Anchored::Yes, Some(b))?);
        }
        let rev_start_classes = start_classes(&rev_start);
        let representatives = fwd.byte_classes().representatives(..).filter_map(|u| u.as_u8()).collect();
        let rev_representatives = rev.byte_classes().representatives(..).filter_map(|u| u.as_u8()).collect();
        Ok(Automata {
            fwd,
            rev,
            fwd_start,
            fwd_idle,
            rev_start,
            rev_start_classes,
            representatives,
            rev_representatives,
            prefilter,
            fresh_starts,
            later: Mutex::new(HashMap::new()),
        })
    }

    /// The forward DFA.
    pub(super) fn fwd(&self) -> &Dfa {
        &self.fwd
    }

    /// True if, with the forward DFA in a start state, no match in progress
    /// began before (see [`start_never_reentered`]).
    pub(super) fn idle_means_nothing_started(&self) -> bool {
        self.fresh_starts
    }

    /// The prefilter, when the pattern has literal prefixes worth one.
    pub(super) fn prefilter(&self) -> Option<&Prefilter> {
        self.prefilter.as_ref()
    }

    /// The reverse DFA.
    pub(super) fn rev(&self) -> &Dfa {
        &self.rev
    }

    /// The forward state at the start of a stream.
    pub(super) fn fwd_start(&self) -> StateID {
        self.fwd_start
    }

    /// The forward state of a search with nothing in progress after `byte`
    /// (`None`: at the start of the stream).
    pub(super) fn fwd_idle(&self, byte: Option<u8>) -> StateID {
        match byte {
            Some(b) => self.fwd_idle[usize::from(b)],
            None => self.fwd_start,
        }
    }

    /// The reverse start state for a match ending before `next` (`None`: at
    /// the end of the stream).
    pub(super) fn rev_start(&self, next: Option<u8>) -> StateID {
        match next {
            Some(b) => self.rev_start[usize::from(b) + 1],
            None => self.rev_start[0],
        }
    }

    /// A `next` (byte, or `None` for the end of the stream) for each
    /// distinct reverse start state: more than one when the pattern looks
    /// past a match's end (`\z`, `\b`, `$`), so that where a match ending
    /// at the end of the bytes seen so far starts may depend on what comes
    /// next.
    pub(super) fn rev_start_classes(&self) -> &[Option<u8>] {
        &self.rev_start_classes
    }

    /// Memory used by the automata, in bytes.
    pub(super) fn memory_usage(&self) -> usize {
        self.fwd.memory_usage()
            + self.rev.memory_usage()
            + self.prefilter.as_ref().map_or(0, Prefilter::memory_usage)
    }

    /// True if, from `state`, whatever comes next (any byte, or the end of
    /// the stream), a match ends right here. `work` counts transitions.
    pub(super) fn match_ends_here(&self, state: StateID, work: &mut u64) -> bool {
        *work += 1;
        if !self.fwd.is_match_state(self.fwd.next_eoi_state(state)) {
            return false;
        }
        self.representatives.iter().all(|&b| {
            *work += 1;
            self.fwd.is_match_state(self.fwd.next_state(state, b))
        })
    }

    /// True if the backward walk, in `state`, cannot find an earlier start
    /// whatever bytes precede: every next state is dead.
    pub(super) fn rev_is_final(&self, state: StateID, work: &mut u64) -> bool {
        if self.rev.is_dead_state(state) {
            return true;
        }
        *work += 1 + self.rev_representatives.len() as u64;
        !self.rev.is_match_state(self.rev.next_eoi_state(state))
            && self.rev_representatives.iter().all(|&b| self.rev.is_dead_state(self.rev.next_state(state, b)))
    }

    /// The forward state after `byte` from `state`, for each class.
    pub(super) fn successors(&self, state: StateID) -> impl Iterator<Item = StateID> + '_ {
        self.representatives.iter().map(move |&b| self.fwd.next_state(state, b))
    }

    /// True if a match state can be reached from `state` in one or more
    /// steps (bytes, or the end of the stream). When false, the search from
    /// `state` can only die: the match it has found is final.
    pub(super) fn can_match_later(&self, state: StateID, work: &mut u64) -> bool {
        if let Some(&known) = self.later.lock().get(&state) {
            return known;
        }
        let mut seen = HashSet::from([state]);
        let mut queue = vec![state];
        let mut found = false;
        'search: while let Some(s) = queue.pop() {
            *work += 1;
            if self.fwd.is_match_state(self.fwd.next_eoi_state(s)) {
                found = true;
                break;
            }
            for t in self.successors(s) {
                *work += 1;
                if self.fwd.is_dead_state(t) {
                    continue;
                }
                if self.fwd.is_match_state(t) {
                    found = true;
                    break 'search;
                }
                if seen.insert(t) {
                    queue.push(t);
                }
            }
        }
        let mut later = self.later.lock();
        later.insert(state, found);
        if !found {
            // Nothing reachable from `state` matches, so nothing reachable
            // from the states it reaches does either.
            for s in seen {
                later.insert(s, false);
            }
        }
        found
    }
}
