//! Mapping a capture file into memory instead of reading it.
//!
//! Reading a capture with `read()` copies every byte from the page cache
//! into a buffer, and then into each record's own buffer; with `--checksums
//! auto` the file is read twice. A map hands records out as slices of the
//! page cache itself ([`super::frame::Frame`]): no copy, no system call per
//! buffer, and the second pass costs only the page-table walk.
//!
//! Only regular files are mapped. Pipes, FIFOs, character devices and
//! empty files are read with `read()` as before (a pipe cannot be mapped,
//! and its bytes can be read only once).
//!
//! The map is read-only and shared. A file that another process truncates
//! while sluice has it mapped makes the pages past the new end disappear:
//! touching them raises SIGBUS, which ends sluice (the same holds for every
//! tool that maps its input, e.g. `grep --mmap`, ripgrep). sluice takes
//! that risk: captures given to `sluice pcap` are finished files, and
//! copying 300 MB twice to guard against a file being cut under us cost a
//! third of the run time. A capture still being *written* (tcpdump
//! appending) is safe: sluice reads the records that were there when it
//! opened the file, and one cut short at that end is reported as a
//! truncated record, as with `read()`.
//!
//! So that the end is not a bare "Bus error", the first map installs a
//! SIGBUS handler that says what happened (the capture shrank while it was
//! read) and exits with status 1; the outputs written so far are cut short.

use std::fs::File;

use memmap2::{Advice, Mmap, MmapOptions, UncheckedAdvice};

/// Maps `file` read-only if it is a regular, non-empty file that fits the
/// address space; `None` means read it with `read()` instead (a failed map
/// is no error: the reader path handles every file).
pub(super) fn map(file: &File) -> Option<Mmap> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    let len = usize::try_from(meta.len()).ok()?;
    // SAFETY: the map is only read, through `&[u8]`. The one way its bytes
    // can change under us is another process writing or truncating the
    // file; the module comment says what then happens and why we accept it.
    let map = unsafe { MmapOptions::new().len(len).map(file) }.ok()?;
    explain_sigbus();
    // Records are read front to back: ask for aggressive read-ahead. Only
    // a hint; if refused, reading still works.
    let _ = map.advise(Advice::Sequential);
    Some(map)
}

/// What the SIGBUS handler writes before it ends the process.
const SHRANK: &[u8] = b"sluice: the capture file shrank while it was being read (truncated by another \
process?); stopping: the outputs written so far are incomplete\n";

/// Installs (once) a SIGBUS handler that explains a capture truncated
/// under its map and exits with status 1.
fn explain_sigbus() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        extern "C" fn on_sigbus(_: libc::c_int) {
            // Only async-signal-safe calls: write(2) and _exit(2).
            // SAFETY: a static buffer and its length; _exit never returns.
            unsafe {
                libc::write(2, SHRANK.as_ptr().cast(), SHRANK.len());
                libc::_exit(1);
            }
        }
        // SAFETY: a zeroed sigaction with a handler that only calls
        // async-signal-safe functions; an empty mask.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut());
        }
    });
}

/// Drops the pages of `map` in `range` (page-aligned by the caller) from
/// this process's page tables: a reader done with them says so, so that
/// unmapping the file at the end has little left to do. The page cache
/// keeps them, and the map is shared and read-only: a later read of the
/// range faults the same bytes back in, so nothing can be lost. Only a
/// hint; an error changes nothing.
pub(super) fn release(map: &Mmap, range: std::ops::Range<usize>) {
    if range.start >= range.end || range.end > map.len() {
        return;
    }
    // SAFETY: MADV_DONTNEED on a shared file mapping never changes what a
    // read returns (see above); no one writes through this map.
    let _ = unsafe {
        map.unchecked_advise_range(UncheckedAdvice::DontNeed, range.start, range.end - range.start)
    };
}

/// Which 4 KiB pages of `map` are in this process's page tables (bit 63
/// of each page's entry in /proc/self/pagemap: present).
#[cfg(test)]
pub(super) fn mapped_pages(map: &Mmap) -> Vec<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let pages = map.len().div_ceil(4096);
    let mut f = File::open("/proc/self/pagemap").expect("pagemap");
    f.seek(SeekFrom::Start((map.as_ptr() as u64 / 4096) * 8)).expect("seek");
    let mut raw = vec![0u8; pages * 8];
    f.read_exact(&mut raw).expect("read");
    raw.chunks_exact(8).map(|e| e[7] & 0x80 != 0).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn released_pages_read_back_the_same_bytes() {
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i * 7 % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        let map = map(&file).unwrap();
        assert_eq!(&map[..], &bytes[..]);
        assert_eq!(mapped_pages(&map), [true; 4]);
        release(&map, 0..2 * 4096);
        assert_eq!(mapped_pages(&map), [false, false, true, true], "two pages left the page tables");
        // Out of range or empty: nothing happens (no panic, no error).
        release(&map, 4096..map.len() + 1);
        release(&map, 4096..4096);
        assert_eq!(&map[..], &bytes[..], "faulted back in, unchanged");
        assert_eq!(mapped_pages(&map), [true; 4]);
    }
}
