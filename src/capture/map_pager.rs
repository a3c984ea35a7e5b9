//! A thread that maps a capture's pages just ahead of its reader and lets
//! go of them well behind it.
//!
//! Reading a mapped file costs the reader page faults: on a 300 MB capture
//! in the page cache, the kernel mapping pages (16 at a time) took 14% of a
//! `sluice pcap --workers 1` run without rules, and unmapping them 10%.
//! Both are work on the process's page tables, which any thread can do:
//! here a helper thread populates the next 16 MiB
//! (`MADV_POPULATE_READ`, which also reads a file not yet cached) and
//! releases what lies more than 64 MiB behind
//! ([`super::file_map::release`]), so the reader neither faults nor, at
//! the end, waits for a long unmap. Both are only hints: a page the reader
//! reaches first faults in as without the helper, and a released page it
//! reads again faults back in with the same bytes.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use memmap2::{Advice, Mmap};

/// How far the helper works from the reader.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// The reader says where it is each time it has read this much (a
    /// power of two).
    step: usize,
    /// Bytes mapped ahead of the reader.
    ahead: usize,
    /// Bytes kept mapped behind the reader: records it handed on (to
    /// worker threads, or held for a verdict) lie there.
    keep: usize,
}

/// The window of a run.
const WINDOW: Window = Window { step: 2 << 20, ahead: 16 << 20, keep: 64 << 20 };

/// The reader's end of the helper.
pub(super) struct MapPager {
    tx: SyncSender<usize>,
    /// The reader reports again when it reaches this offset.
    next: usize,
    step: usize,
}

impl MapPager {
    /// Starts the helper for a reader at offset `from` of `map`; `None` if
    /// no thread could be started (reading works as without it).
    pub(super) fn start(map: Arc<Mmap>, from: usize) -> Option<MapPager> {
        Self::with_window(map, from, WINDOW)
    }

    fn with_window(map: Arc<Mmap>, from: usize, w: Window) -> Option<MapPager> {
        let (tx, rx) = sync_channel(4);
        let thread = std::thread::Builder::new().name("sluice-pager".into());
        thread.spawn(move || follow(&map, from, w, &rx)).ok()?;
        Some(MapPager { tx, next: from, step: w.step })
    }

    /// The reader reached `offset`. One comparison per record; a message
    /// (never waited for) every `step` bytes.
    #[inline]
    pub(super) fn at(&mut self, offset: usize) {
        if offset >= self.next {
            self.next = offset.saturating_add(self.step);
            let _ = self.tx.try_send(offset);
        }
    }
}

/// The helper: follows the reader's reports until the reader is dropped.
fn follow(map: &Mmap, from: usize, w: Window, rx: &Receiver<usize>) {
    let (mut mapped, mut released) = (from, 0);
    let mut at = from;
    loop {
        let ahead = at.saturating_add(w.ahead).min(map.len());
        if ahead > mapped {
            let _ = map.advise_range(Advice::PopulateRead, mapped, ahead - mapped);
            mapped = ahead;
        }
        let behind = at.saturating_sub(w.keep) & !(w.step - 1);
        if behind > released {
            super::file_map::release(map, released..behind);
            released = behind;
        }
        match rx.recv() {
            // Only the latest report matters.
            Ok(next) => at = rx.try_iter().last().unwrap_or(next),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::{Duration, Instant};

    use super::super::file_map::{map, mapped_pages};
    use super::*;

    const PAGE: usize = 4096;

    /// Waits (at most 5 s) until `ok` holds of which pages of `map` are
    /// mapped; false if it never did.
    fn wait_for(map: &Mmap, ok: impl Fn(&[bool]) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ok(&mapped_pages(map)) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn pages_are_mapped_ahead_of_the_reader_and_released_behind_it() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![7u8; 64 * PAGE]).unwrap();
        let map = Arc::new(map(&file).unwrap());
        assert!(mapped_pages(&map).iter().all(|m| !m), "nothing read yet");
        let w = Window { step: 4 * PAGE, ahead: 8 * PAGE, keep: 16 * PAGE };
        let mut pager = MapPager::with_window(Arc::clone(&map), 0, w).unwrap();
        // Before the reader reads anything, the first 8 pages are mapped
        // (the kernel may map more around them).
        assert!(wait_for(&map, |m| m[..8].iter().all(|p| *p)));
        // At page 40: mapped up to page 48, released below 24.
        pager.at(40 * PAGE);
        assert!(wait_for(&map, |m| m[40..48].iter().all(|p| *p) && m[..24].iter().all(|p| !p)));
        // Between steps the reader says nothing.
        pager.at(41 * PAGE);
        assert_eq!(pager.next, 44 * PAGE);
        drop(pager);
        assert!(map.iter().all(|b| *b == 7), "released pages read back the same");
    }
}
