//! The bytes of one captured frame: a slice of the mapped capture file
//! (regular files, see [`super::file_map`]), or bytes of its own (captures
//! read through `read()`: pipes, pcapng, in-memory captures).
//!
//! A mapped frame is a shared handle on the map and a range in it, so
//! handing a record out, to the engine, to a worker thread and to the
//! output pcap, never copies its bytes.
//!
//! Frames share their handle by runs ([`MapHandle`]): with `--workers N`
//! the thread that reads the file takes references while the thread that
//! writes the output drops them, and one reference count for every frame
//! would be a cache line the two fight over at every record.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use memmap2::Mmap;

/// A frame's bytes. Reads as a `[u8]` (it derefs to one).
#[derive(Clone)]
pub struct Frame(Bytes);

#[derive(Clone)]
enum Bytes {
    Owned(Vec<u8>),
    Mapped { map: Arc<MapHandle>, start: usize, end: usize },
}

/// A reference to the map, shared by a run of frames (see the module
/// comment).
pub(super) struct MapHandle(pub(super) Arc<Mmap>);

impl Frame {
    /// The bytes `range` of `map`, which the caller checked lie within it.
    /// (Out of range, the frame is empty: never a panic.)
    pub(super) fn mapped(map: &Arc<MapHandle>, range: Range<usize>) -> Frame {
        let (start, end) = if range.start <= range.end && range.end <= map.0.len() {
            (range.start, range.end)
        } else {
            (0, 0)
        };
        Frame(Bytes::Mapped { map: Arc::clone(map), start, end })
    }

    /// The bytes as a slice.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Bytes::Owned(v) => v,
            Bytes::Mapped { map, start, end } => map.0.get(*start..*end).unwrap_or(&[]),
        }
    }

    /// The bytes as a vector of their own.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_slice().to_vec()
    }
}

impl From<Vec<u8>> for Frame {
    fn from(v: Vec<u8>) -> Frame {
        Frame(Bytes::Owned(v))
    }
}

impl Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Frame {
    type Item = &'a u8;
    type IntoIter = std::slice::Iter<'a, u8>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Frame {}

impl PartialEq<[u8]> for Frame {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<Vec<u8>> for Frame {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == &other[..]
    }
}

impl PartialEq<Frame> for Vec<u8> {
    fn eq(&self, other: &Frame) -> bool {
        &self[..] == other.as_slice()
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}
