//! A set of flow ids that is cheap for ids near the newest ones.
//!
//! The rules remember which connections already ended while the engine
//! still holds them (a closed tuple lingers for late segments): on a busy
//! gateway that is the ~750,000 connections of the last closing timeout.
//! In a hash set each of them cost a random probe into a table of several
//! MB (a cache miss at the end of the connection, another when it is
//! forgotten, another for the first event of every new connection), and
//! the table's growth zeroed fresh pages: time per connection went up with
//! the number of connections.
//!
//! Flow ids grow with creation, and connections mostly end and are
//! forgotten in about the order they were made. So the ids are kept as bits
//! of a sliding window of words: inserting touches a word near the newest
//! ids, forgetting one near the oldest, and an id past the window's end is
//! known to be absent without a memory access. An id too far below the
//! window (a long-lived connection ending), or pushed out because the
//! window spans more than [`MAX_WORDS`], goes to a hash set beside it
//! (`below`; an id is in one of the two, never both).

use std::collections::{HashSet, VecDeque};

use ahash::RandomState;

use super::FlowId;

/// Longest window, in 64-bit words (4M ids, 512 KiB): ids further below
/// the newest go to the hash set.
const MAX_WORDS: usize = 1 << 16;

/// Words the window grows downwards by at most for one id; an id further
/// below goes to the hash set (so one old id never costs a long copy).
const MAX_PREPEND: u64 = 64;

/// Flow ids.
#[derive(Debug, Default)]
pub struct FlowIdSet {
    /// Id of bit 0 of `words[0]` (a multiple of 64).
    base: u64,
    /// Bit `i % 64` of `words[i / 64]` is id `base + i`.
    words: VecDeque<u64>,
    /// Ids below the window.
    below: HashSet<FlowId, RandomState>,
}

impl FlowIdSet {
    /// True if `id` is in the set.
    pub fn contains(&self, id: FlowId) -> bool {
        self.position(id).is_some_and(|(w, bit)| self.words[w] & bit != 0) || self.below_contains(id)
    }

    /// Adds `id`; false if it was there already.
    pub fn insert(&mut self, id: FlowId) -> bool {
        if self.below_contains(id) {
            return false;
        }
        if self.words.is_empty() {
            self.base = id & !63;
            self.words.push_back(0);
        }
        if id < self.base {
            let down = (self.base - (id & !63)) / 64;
            if down > MAX_PREPEND || self.words.len() + down as usize > MAX_WORDS {
                return self.below.insert(id);
            }
            for _ in 0..down {
                self.words.push_front(0);
            }
            self.base -= down * 64;
        }
        let w = self.word_for(id);
        let bit = 1u64 << (id % 64);
        let fresh = self.words[w] & bit == 0;
        self.words[w] |= bit;
        fresh
    }

    /// Removes `id`; false if it was not there.
    pub fn remove(&mut self, id: FlowId) -> bool {
        let Some((w, bit)) = self.position(id).filter(|&(w, bit)| self.words[w] & bit != 0) else {
            return self.below.remove(&id);
        };
        self.words[w] &= !bit;
        // Empty words at either end leave the window.
        while self.words.front() == Some(&0) {
            self.words.pop_front();
            self.base += 64;
        }
        while self.words.back() == Some(&0) {
            self.words.pop_back();
        }
        true
    }

    /// Number of ids (counts the window's bits: for tests).
    #[cfg(test)]
    fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum::<usize>() + self.below.len()
    }

    /// Words in the window (for tests).
    #[cfg(test)]
    fn window_words(&self) -> usize {
        self.words.len()
    }

    /// An id is in the window's bits or in `below`, never both; `below` is
    /// empty unless ids ended far out of order.
    fn below_contains(&self, id: FlowId) -> bool {
        !self.below.is_empty() && self.below.contains(&id)
    }

    /// The word index and bit of `id` if it is inside the window.
    fn position(&self, id: FlowId) -> Option<(usize, u64)> {
        let w = usize::try_from(id.checked_sub(self.base)? / 64).ok()?;
        (w < self.words.len()).then(|| (w, 1u64 << (id % 64)))
    }

    /// The word index of `id` (at or above `base`), growing the window up
    /// to it; the oldest words move to `below` if it would get too long.
    fn word_for(&mut self, id: FlowId) -> usize {
        let w = (id - self.base) / 64;
        if w >= MAX_WORDS as u64 {
            // Keep the newest MAX_WORDS words ending at `id`'s.
            let new_base = (id & !63) - (MAX_WORDS as u64 - 1) * 64;
            while !self.words.is_empty() && self.base < new_base {
                self.spill_front();
            }
            if self.words.is_empty() {
                self.base = new_base;
            }
        }
        let w = ((id - self.base) / 64) as usize;
        while self.words.len() <= w {
            self.words.push_back(0);
        }
        w
    }

    /// Moves the first word's ids to `below`.
    fn spill_front(&mut self) {
        if let Some(mut word) = self.words.pop_front() {
            while word != 0 {
                let bit = u64::from(word.trailing_zeros());
                self.below.insert(self.base + bit);
                word &= word - 1;
            }
            self.base += 64;
        }
    }
}

#[cfg(test)]
#[path = "id_set_tests.rs"]
mod tests;
