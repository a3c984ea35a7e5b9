//! Reading capture files: classic pcap (either byte order, micro- or
//! nanosecond timestamps) and pcapng, told apart by their magic number.
//!
//! Classic pcap records are parsed here rather than by `pcap-file`'s
//! `PcapReader`, because that reader rejects records whose original length
//! exceeds the snapshot length (every snaplen-truncated capture has them) and
//! cannot say where in the file a problem sits. pcapng's block framing is
//! read here too: `pcap-file`'s reader holds each block in a fixed 8 MB
//! buffer, so a larger block looked like the end of the file. The contents
//! of the blocks sluice uses go through `pcap-file`'s block parser; we only
//! add the interface timestamp resolution and offset, which that parser
//! leaves to us.
//!
//! Every problem in a file is a [`CaptureError`] naming the file, the record
//! number and the byte offset; nothing in a file can make this code panic.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use pcap_file::pcap::PcapHeader;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, RawBlock};
use pcap_file::{Endianness, PcapError, TsResolution};

pub use super::frame::Frame;
use super::frame::MapHandle;
use super::link::{locate_ip, LinkType};
use super::map_pager::MapPager;
use crate::time::Timestamp;

/// Largest record we accept. Real captures use snap lengths up to 256 KiB;
/// a larger length field means the file is corrupt, and trusting it would
/// make us allocate whatever a broken file claims.
pub const MAX_RECORD_LEN: u32 = 16 << 20;

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// The capture path that means standard input.
pub const STDIN: &str = "-";

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position of the record in the file, from 0 (the engine's packet id).
    pub index: u64,
    /// Capture time, in microseconds (what the engine runs on).
    pub time: Timestamp,
    /// Capture time in nanoseconds since the epoch, as exact as the file has it
    /// (the output pcap keeps it).
    pub time_ns: u64,
    /// The captured bytes, link-layer header included (a slice of the
    /// mapped file, or bytes of its own: see [`Frame`]).
    pub frame: Frame,
    /// Length of the frame on the wire; larger than `frame.len()` when the
    /// capture's snap length cut it.
    pub orig_len: u32,
    /// Where the IP packet sits in `frame`; `None` if the frame is not IPv4/IPv6.
    pub l3: Option<Range<usize>>,
}

impl Record {
    /// The IP packet of the frame, if it carries one.
    pub fn ip(&self) -> Option<&[u8]> {
        self.l3.clone().and_then(|r| self.frame.get(r))
    }

    /// The link-layer header (everything before the IP packet), if IP.
    pub fn link_header(&self) -> Option<&[u8]> {
        self.l3.as_ref().and_then(|r| self.frame.get(..r.start))
    }
}

/// Why a capture file could not be read.
#[derive(Debug)]
pub enum CaptureError {
    /// The file could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is neither pcap nor pcapng.
    NotACapture {
        /// The file.
        path: PathBuf,
    },
    /// The file's link type is not one sluice can find IP packets in.
    UnsupportedLinkType {
        /// The file.
        path: PathBuf,
        /// The `LINKTYPE_*` number.
        link: u32,
    },
    /// The file ends in the middle of a header or record.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Index of the record that is cut (0-based; equals the records
        /// read). Messages show it 1-based, as Wireshark numbers records.
        record: u64,
        /// Byte offset where that record starts.
        offset: u64,
    },
    /// A header or record is malformed.
    Malformed {
        /// The file.
        path: PathBuf,
        /// Index of the record (0-based) at which reading stopped. Messages
        /// show it 1-based, as Wireshark numbers records.
        record: u64,
        /// Byte offset of that record or block.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl CaptureError {
    /// True if the file is cut short (its records so far are good).
    pub fn is_truncation(&self) -> bool {
        matches!(self, CaptureError::Truncated { .. })
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CaptureError::NotACapture { path } => {
                write!(f, "{}: not a pcap or pcapng file (unknown magic number)", path.display())
            }
            CaptureError::UnsupportedLinkType { path, link } => write!(
                f,
                "{}: unsupported link type {link} (supported: 0 NULL, 1 Ethernet, 9 PPP, 50 PPP HDLC, \
                 101 raw IP, 104 Cisco HDLC, 108 LOOP, 113 Linux SLL, 228 IPv4, 229 IPv6, 276 Linux SLL2)",
                path.display()
            ),
            CaptureError::Truncated { path, offset: 0, .. } => {
                write!(f, "{}: file is truncated in its header", path.display())
            }
            CaptureError::Truncated { path, record, offset } => {
                write!(
                    f,
                    "{}: file is truncated in record {} (at byte offset {offset})",
                    path.display(),
                    record.saturating_add(1)
                )
            }
            CaptureError::Malformed { path, record, offset, reason } => {
                write!(
                    f,
                    "{}: malformed record {} at byte offset {offset}: {reason}",
                    path.display(),
                    record.saturating_add(1)
                )
            }
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The container format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap format.
    Pcap,
    /// pcapng.
    PcapNg,
}

/// The bytes being read: the magic number already taken, then the rest of
/// the file (or of an in-memory capture, see [`PcapSource::from_reader`]).
type FileReader = io::Chain<Cursor<Vec<u8>>, BufReader<Box<dyn Read + Send>>>;

/// A capture file being read record by record.
pub struct PcapSource {
    path: PathBuf,
    /// Opened from a regular file, which can be opened and read again from
    /// its start (see [`PcapSource::rereadable`]).
    regular_file: bool,
    link: LinkType,
    nanosecond: bool,
    snaplen: u32,
    next_index: u64,
    done: bool,
    inner: Inner,
}

enum Inner {
    /// A classic pcap file, mapped (see [`super::file_map`]).
    Mapped(MappedClassic),
    Pcap(ClassicReader),
    PcapNg(Box<NgReader>),
}

impl PcapSource {
    /// Opens a capture file and reads its header. A classic pcap in a
    /// regular file is mapped and its records are slices of the map; any
    /// other file is read with `read()`. `-` is standard input.
    pub fn open(path: impl AsRef<Path>) -> Result<PcapSource, CaptureError> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str() == STDIN {
            return Self::from_reader(path, io::stdin());
        }
        let file = File::open(&path).map_err(|source| CaptureError::Io { path: path.clone(), source })?;
        let regular_file = file.metadata().is_ok_and(|m| m.is_file());
        let mut source = match super::file_map::map(&file) {
            Some(map) if map.len() >= 4 && map[..4] != PCAPNG_MAGIC => Self::mapped(path, Arc::new(map)),
            _ => Self::from_reader(path, file),
        }?;
        source.regular_file = regular_file;
        Ok(source)
    }

    /// Whether the capture can be read again from its start
    /// ([`PcapSource::rewound`]): a regular file can; a pipe, a FIFO, a
    /// device, standard input or an in-memory capture can be read only once.
    pub fn rereadable(&self) -> bool {
        self.regular_file || matches!(self.inner, Inner::Mapped(_))
    }

    /// A classic pcap in `map`.
    fn mapped(path: PathBuf, map: Arc<Mmap>) -> Result<PcapSource, CaptureError> {
        let classic = MappedClassic::open(map, &path)?;
        let header = classic.header;
        Self::classic(path, header, Inner::Mapped(classic))
    }

    /// A classic pcap source, once its file header is read.
    fn classic(path: PathBuf, header: PcapHeader, inner: Inner) -> Result<PcapSource, CaptureError> {
        let link_number = u32::from(header.datalink);
        let link = LinkType::from_number(link_number)
            .ok_or(CaptureError::UnsupportedLinkType { path: path.clone(), link: link_number })?;
        Ok(PcapSource {
            path,
            regular_file: false,
            link,
            nanosecond: header.ts_resolution == TsResolution::NanoSecond,
            snaplen: header.snaplen,
            next_index: 0,
            done: false,
            inner,
        })
    }

    /// Reads a capture from `reader` (e.g. a `Cursor` over bytes in memory,
    /// as the fuzz harness does); `name` stands for the file in errors.
    pub fn from_reader(
        name: impl Into<PathBuf>,
        reader: impl Read + Send + 'static,
    ) -> Result<PcapSource, CaptureError> {
        let path = name.into();
        let io_err = |source| CaptureError::Io { path: path.clone(), source };
        let boxed: Box<dyn Read + Send> = Box::new(reader);
        let mut reader = BufReader::with_capacity(1 << 16, boxed);
        let mut magic = [0u8; 4];
        let n = read_full(&mut reader, &mut magic).map_err(io_err)?;
        if n < 4 {
            return Err(CaptureError::Truncated { path, record: 0, offset: 0 });
        }
        if magic == PCAPNG_MAGIC {
            let reader = Cursor::new(magic.to_vec()).chain(reader);
            let ng = NgReader::open(reader, &path)?;
            let link = ng.link;
            let nanosecond = ng.nanosecond;
            let snaplen = ng.snaplen;
            Ok(PcapSource {
                path,
                regular_file: false,
                link,
                nanosecond,
                snaplen,
                next_index: 0,
                done: false,
                inner: Inner::PcapNg(Box::new(ng)),
            })
        } else {
            let reader = Cursor::new(magic.to_vec()).chain(reader);
            let classic = ClassicReader::open(reader, &path)?;
            let header = classic.header;
            Self::classic(path, header, Inner::Pcap(classic))
        }
    }

    /// A new source reading this one's file from its first record. A
    /// mapped file is not mapped or read again: the new source shares the
    /// map. Any other regular file is opened again. A capture that can be
    /// read only once ([`PcapSource::rereadable`]) is an error, never opened
    /// again by its name: a FIFO would wait for a new writer, and standard
    /// input would give the bytes after ours.
    pub fn rewound(&self) -> Result<PcapSource, CaptureError> {
        match &self.inner {
            Inner::Mapped(m) => Self::mapped(self.path.clone(), Arc::clone(&m.map)),
            Inner::Pcap(_) | Inner::PcapNg(_) if self.regular_file => Self::open(&self.path),
            Inner::Pcap(_) | Inner::PcapNg(_) => Err(CaptureError::Io {
                path: self.path.clone(),
                source: io::Error::new(io::ErrorKind::Unsupported, "a stream can be read only once"),
            }),
        }
    }

    /// A mapped classic pcap not read yet, cut into up to `parts` sources
    /// over consecutive byte ranges, to be read in parallel; `None` for any
    /// other source. Each part reads the records that start in its range,
    /// numbering them from 0. The cuts are found by looking for a chain of
    /// plausible record headers, so a cut may be wrong (a packet's bytes
    /// that look like record headers): a part is right only if the part
    /// before it, read to its end, stopped exactly where it starts
    /// ([`PcapSource::offset`]); the reader must check that.
    pub fn split(&self, parts: usize) -> Option<Vec<PcapSource>> {
        let Inner::Mapped(m) = &self.inner else { return None };
        if m.offset != 24 || self.next_index != 0 {
            return None;
        }
        // Cuts at most this far past the even share (2 MiB).
        const SEARCH: usize = 2 << 20;
        let len = m.map.len();
        let mut starts = vec![24];
        for k in 1..parts.max(1) {
            let guess = (len / parts * k).max(starts.last().copied().unwrap_or(24) + 1);
            let limit = guess.saturating_add(SEARCH).min(len);
            if let Some(at) = (guess..limit).find(|&at| m.plausible_start(at)) {
                starts.push(at);
            }
        }
        let ends = starts.iter().skip(1).copied().chain([len]);
        let sources = starts.iter().zip(ends).map(|(&start, end)| {
            let part = MappedClassic {
                map: Arc::clone(&m.map),
                handle: (Arc::new(MapHandle(Arc::clone(&m.map))), 0),
                header: m.header,
                offset: start,
                end,
                prefetched: 0,
                pager: None,
            };
            PcapSource {
                path: self.path.clone(),
                regular_file: self.regular_file,
                link: self.link,
                nanosecond: self.nanosecond,
                snaplen: self.snaplen,
                next_index: 0,
                done: false,
                inner: Inner::Mapped(part),
            }
        });
        Some(sources.collect())
    }

    /// Makes a mapped source have a helper thread map the file's pages
    /// ahead of the reader and release them behind it ([`MapPager`]): the
    /// reader of a run then neither waits on page faults nor, at the end,
    /// on unmapping the whole file. No effect on other sources.
    pub fn page_ahead(&mut self) {
        if let Inner::Mapped(m) = &mut self.inner {
            if m.pager.is_none() {
                m.pager = MapPager::start(Arc::clone(&m.map), m.offset);
            }
        }
    }

    /// Makes a mapped source ask the CPU for the file's bytes a little
    /// ahead of the record being read, for a reader that looks only at
    /// record headers and hands the records to other threads (the
    /// dispatcher of `--workers N`): each header would otherwise be a cache
    /// miss it waits on, and the threads it hands the records to find
    /// their bytes in the shared cache. A reader that reads every record's
    /// bytes itself gains nothing (the hardware streams them in). No effect
    /// on other sources.
    pub fn prefetch_ahead(&mut self) {
        if let Inner::Mapped(m) = &mut self.inner {
            m.prefetched = m.prefetched.max(m.offset).max(1);
        }
    }

    /// Moves a mapped source to read from byte `offset` on (records then
    /// numbered from 0); false (and nothing changed) for any other source
    /// or an offset before the current one.
    pub fn skip_to(&mut self, offset: u64) -> bool {
        match &mut self.inner {
            Inner::Mapped(m) if offset >= m.offset as u64 => {
                m.offset = usize::try_from(offset).unwrap_or(usize::MAX);
                self.next_index = 0;
                true
            }
            _ => false,
        }
    }

    /// The file this reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container format.
    pub fn format(&self) -> Format {
        match self.inner {
            Inner::Mapped(_) | Inner::Pcap(_) => Format::Pcap,
            Inner::PcapNg(_) => Format::PcapNg,
        }
    }

    /// The link type of every record.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// True if the file's timestamps are finer than microseconds.
    pub fn nanosecond_timestamps(&self) -> bool {
        self.nanosecond
    }

    /// The capture's snap length (0 if the file does not say).
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        match &self.inner {
            Inner::Mapped(m) => m.offset as u64,
            Inner::Pcap(c) => c.offset,
            Inner::PcapNg(n) => n.offset,
        }
    }

    /// The next record, `None` at the end of the file. After an error every
    /// later call returns `None`.
    pub fn next_record(&mut self) -> Option<Result<Record, CaptureError>> {
        if self.done {
            return None;
        }
        let index = self.next_index;
        let raw = match &mut self.inner {
            Inner::Mapped(m) => m.next(&self.path, index),
            Inner::Pcap(c) => c.next(&self.path, index),
            Inner::PcapNg(n) => n.next(&self.path, index, self.link),
        };
        match raw {
            Some(Ok(raw)) => {
                self.next_index += 1;
                let l3 = locate_ip(self.link, &raw.frame);
                Some(Ok(Record {
                    index,
                    time: Timestamp(raw.time_ns / 1000),
                    time_ns: raw.time_ns,
                    frame: raw.frame,
                    orig_len: raw.orig_len,
                    l3,
                }))
            }
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

impl Iterator for PcapSource {
    type Item = Result<Record, CaptureError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

struct RawRecord {
    time_ns: u64,
    frame: Frame,
    orig_len: u32,
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct ClassicReader {
    reader: FileReader,
    header: PcapHeader,
    offset: u64,
}

impl ClassicReader {
    fn open(mut reader: FileReader, path: &Path) -> Result<ClassicReader, CaptureError> {
        let mut buf = [0u8; 24];
        let n = read_full(&mut reader, &mut buf)
            .map_err(|source| CaptureError::Io { path: path.into(), source })?;
        if n < 24 {
            return Err(CaptureError::Truncated { path: path.into(), record: 0, offset: 0 });
        }
        let header = file_header(&buf, path)?;
        Ok(ClassicReader { reader, header, offset: 24 })
    }

    fn next(&mut self, path: &Path, index: u64) -> Option<Result<RawRecord, CaptureError>> {
        let offset = self.offset;
        let truncated = || CaptureError::Truncated { path: path.into(), record: index, offset };
        let io_err = |source| CaptureError::Io { path: path.into(), source };
        let mut hdr = [0u8; 16];
        match read_full(&mut self.reader, &mut hdr) {
            Ok(0) => return None,
            Ok(16) => {}
            Ok(_) => return Some(Err(truncated())),
            Err(e) => return Some(Err(io_err(e))),
        }
        let h = match RecordHeader::parse(&self.header, &hdr, path, index, offset) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        // Read into spare capacity: no zero-filling of bytes about to be
        // overwritten.
        let mut frame = Vec::with_capacity(h.incl_len as usize);
        match (&mut self.reader).take(u64::from(h.incl_len)).read_to_end(&mut frame) {
            Ok(n) if n == h.incl_len as usize => {}
            Ok(_) => return Some(Err(truncated())),
            Err(e) => return Some(Err(io_err(e))),
        }
        self.offset += 16 + u64::from(h.incl_len);
        Some(Ok(h.record(frame.into())))
    }
}

/// The classic pcap file header in `buf` (24 bytes).
fn file_header(buf: &[u8], path: &Path) -> Result<PcapHeader, CaptureError> {
    match PcapHeader::from_slice(buf) {
        Ok((_, h)) => Ok(h),
        Err(PcapError::InvalidField(_)) => Err(CaptureError::NotACapture { path: path.into() }),
        Err(e) => Err(CaptureError::Malformed {
            path: path.into(),
            record: 0,
            offset: 0,
            reason: format!("file header: {e}"),
        }),
    }
}

/// One classic pcap record header, checked.
struct RecordHeader {
    time_ns: u64,
    incl_len: u32,
    orig_len: u32,
}

impl RecordHeader {
    /// Parses the 16 bytes of `hdr` for the record `index` at `offset`.
    fn parse(
        file: &PcapHeader,
        hdr: &[u8; 16],
        path: &Path,
        index: u64,
        offset: u64,
    ) -> Result<RecordHeader, CaptureError> {
        let e = file.endianness;
        let secs = u64::from(u32_in(e, &hdr[0..4]));
        let frac = u64::from(u32_in(e, &hdr[4..8]));
        let incl_len = u32_in(e, &hdr[8..12]);
        let orig_len = u32_in(e, &hdr[12..16]);
        if incl_len > MAX_RECORD_LEN {
            return Err(CaptureError::Malformed {
                path: path.into(),
                record: index,
                offset,
                reason: format!("captured length {incl_len} exceeds the {MAX_RECORD_LEN}-byte limit"),
            });
        }
        let frac_ns = match file.ts_resolution {
            TsResolution::MicroSecond => frac.saturating_mul(1000),
            TsResolution::NanoSecond => frac,
        };
        let time_ns = secs.saturating_mul(1_000_000_000).saturating_add(frac_ns);
        Ok(RecordHeader { time_ns, incl_len, orig_len })
    }

    /// The record with this header and `frame`.
    fn record(&self, frame: Frame) -> RawRecord {
        RawRecord { time_ns: self.time_ns, frame, orig_len: self.orig_len.max(self.incl_len) }
    }
}

/// A classic pcap file read from its map: each record's bytes are a slice
/// of the map, never copied.
struct MappedClassic {
    map: Arc<Mmap>,
    /// The handle the next frames share, and how many share it so far.
    handle: (Arc<MapHandle>, u32),
    header: PcapHeader,
    /// Byte offset of the next record.
    offset: usize,
    /// No record starts at or after this offset ([`PcapSource::split`]; the
    /// map's length otherwise).
    end: usize,
    /// Prefetch the bytes ahead ([`PcapSource::prefetch_ahead`]): up to
    /// where they were asked for, or 0 when not prefetching.
    prefetched: usize,
    /// Maps the pages ahead and releases those behind
    /// ([`PcapSource::page_ahead`]).
    pager: Option<MapPager>,
}

/// How far ahead of the record being read [`PcapSource::prefetch_ahead`]
/// asks for the file's bytes.
const PREFETCH_AHEAD: usize = 16 << 10;
/// A cache line.
const LINE: usize = 64;
/// Frames that share one [`MapHandle`].
const FRAMES_PER_HANDLE: u32 = 256;

impl MappedClassic {
    fn open(map: Arc<Mmap>, path: &Path) -> Result<MappedClassic, CaptureError> {
        let Some(buf) = map.get(..24) else {
            return Err(CaptureError::Truncated { path: path.into(), record: 0, offset: 0 });
        };
        let header = file_header(buf, path)?;
        let end = map.len();
        let handle = (Arc::new(MapHandle(Arc::clone(&map))), 0);
        Ok(MappedClassic { map, handle, header, offset: 24, end, prefetched: 0, pager: None })
    }

    fn next(&mut self, path: &Path, index: u64) -> Option<Result<RawRecord, CaptureError>> {
        let offset = self.offset;
        let rest = self.map.get(offset..).unwrap_or(&[]);
        if rest.is_empty() || offset >= self.end {
            return None;
        }
        let truncated =
            || CaptureError::Truncated { path: path.into(), record: index, offset: offset as u64 };
        let Some(hdr) = rest.first_chunk::<16>() else { return Some(Err(truncated())) };
        let h = match RecordHeader::parse(&self.header, hdr, path, index, offset as u64) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        let start = offset + 16;
        let end = start + h.incl_len as usize;
        if end > self.map.len() {
            return Some(Err(truncated()));
        }
        self.offset = end;
        // The frame first: taking a reference to the map is an atomic
        // increment, which would wait for the prefetches below.
        if self.handle.1 >= FRAMES_PER_HANDLE {
            self.handle = (Arc::new(MapHandle(Arc::clone(&self.map))), 0);
        }
        self.handle.1 += 1;
        let record = h.record(Frame::mapped(&self.handle.0, start..end));
        if let Some(pager) = &mut self.pager {
            pager.at(end);
        }
        if self.prefetched > 0 {
            let until = (end + PREFETCH_AHEAD).min(self.map.len());
            while self.prefetched < until {
                if let Some(line) = self.map.get(self.prefetched..) {
                    prefetch(line);
                }
                self.prefetched += LINE;
            }
        }
        Some(Ok(record))
    }

    /// Whether a record plausibly starts at `at`: it and the next few
    /// record headers chain within the file with sane lengths and close
    /// timestamps. Used to cut the file for parallel reading; a wrong
    /// guess is caught there (see [`PcapSource::split`]).
    fn plausible_start(&self, at: usize) -> bool {
        const CHAIN: usize = 8;
        let e = self.header.endianness;
        let max_len = self.header.snaplen.clamp(1, MAX_RECORD_LEN);
        let (mut o, mut secs) = (at, None);
        for _ in 0..CHAIN {
            let Some(h) = self.map.get(o..o + 16) else { return o == self.map.len() && secs.is_some() };
            let (s, incl, orig) = (u32_in(e, &h[0..4]), u32_in(e, &h[8..12]), u32_in(e, &h[12..16]));
            let frac_ok = match self.header.ts_resolution {
                TsResolution::MicroSecond => u32_in(e, &h[4..8]) < 1_000_000,
                TsResolution::NanoSecond => u32_in(e, &h[4..8]) < 1_000_000_000,
            };
            let close = secs.is_none_or(|p: u32| p.abs_diff(s) < 3600);
            if !frac_ok || !close || incl == 0 || incl > max_len || orig < incl {
                return false;
            }
            secs = Some(s);
            o += 16 + incl as usize;
        }
        true
    }
}

/// Asks the CPU to bring the cache line at the start of `bytes` closer (a
/// hint: no effect on what the program computes).
#[inline]
fn prefetch(bytes: &[u8]) {
    // SAFETY: SSE is part of every x86_64 CPU, and a prefetch reads
    // nothing and never faults, whatever the address.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(bytes.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// The 32-bit word at the start of `b` in byte order `e`.
fn u32_in(e: Endianness, b: &[u8]) -> u32 {
    let w = [b[0], b[1], b[2], b[3]];
    match e {
        Endianness::Big => u32::from_be_bytes(w),
        Endianness::Little => u32::from_le_bytes(w),
    }
}

/// What pcapng tells about one interface.
#[derive(Debug, Clone, Copy)]
struct NgInterface {
    link: u32,
    snaplen: u32,
    /// Timestamp units: `Some(d)` for 10^-d seconds, `None` with `bin` for 2^-bin.
    decimal: Option<u32>,
    bin: u32,
    /// if_tsoffset, seconds added to every timestamp.
    offset_secs: u64,
}

impl NgInterface {
    fn from_block(b: &InterfaceDescriptionBlock<'_>) -> NgInterface {
        let mut i = NgInterface {
            link: u32::from(b.linktype),
            snaplen: b.snaplen,
            decimal: Some(6),
            bin: 0,
            offset_secs: 0,
        };
        for opt in &b.options {
            match opt {
                InterfaceDescriptionOption::IfTsResol(r) if r & 0x80 == 0 => i.decimal = Some(u32::from(*r)),
                InterfaceDescriptionOption::IfTsResol(r) => {
                    i.decimal = None;
                    i.bin = u32::from(r & 0x7f);
                }
                InterfaceDescriptionOption::IfTsOffset(o) => i.offset_secs = *o,
                _ => {}
            }
        }
        i
    }

    fn finer_than_micros(&self) -> bool {
        match self.decimal {
            Some(d) => d > 6,
            None => self.bin > 20,
        }
    }

    /// Converts a timestamp in this interface's units to nanoseconds.
    fn units_to_ns(self, units: u64) -> u64 {
        let units = u128::from(units);
        let ns = match self.decimal {
            Some(d) if d <= 9 => units.saturating_mul(10u128.pow(9 - d)),
            Some(d) => units / 10u128.saturating_pow(d - 9),
            None => units.saturating_mul(1_000_000_000) >> self.bin.min(127),
        };
        let ns = ns.saturating_add(u128::from(self.offset_secs).saturating_mul(1_000_000_000));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// Block types this reader parses; any other block is read past, not kept.
const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const INTERFACE_DESCRIPTION: u32 = 1;
const PACKET: u32 = 2;
const SIMPLE_PACKET: u32 = 3;
const ENHANCED_PACKET: u32 = 6;
/// Largest block of a parsed type: a record at [`MAX_RECORD_LEN`] with room
/// for its header and options.
const MAX_PARSED_BLOCK: u32 = MAX_RECORD_LEN + (1 << 20);

/// A pcapng file read block by block. The framing (type, length, trailer)
/// is read here, so a block of any size that sluice does not parse is
/// skipped without being held in memory; the blocks it parses go to
/// `pcap-file`'s block parser.
struct NgReader {
    reader: FileReader,
    /// The byte order of the current section.
    endianness: Endianness,
    /// The block being parsed.
    block: Vec<u8>,
    interfaces: Vec<NgInterface>,
    /// The first interface's link type, which every packet must share.
    link: LinkType,
    nanosecond: bool,
    snaplen: u32,
    offset: u64,
    last_time_ns: u64,
}

impl NgReader {
    fn open(reader: FileReader, path: &Path) -> Result<NgReader, CaptureError> {
        let mut ng = NgReader {
            reader,
            endianness: Endianness::Little,
            block: Vec::new(),
            interfaces: Vec::new(),
            link: LinkType::Ethernet,
            nanosecond: false,
            snaplen: 0,
            offset: 0,
            last_time_ns: 0,
        };
        // Read up to the first interface description to learn the link type.
        // pcapng allows other blocks before it, but no packets.
        while ng.interfaces.is_empty() {
            match ng.next_block(path, 0, None) {
                None => break,
                Some(Err(e)) => return Err(e),
                Some(Ok(Some(_))) => {
                    return Err(CaptureError::Malformed {
                        path: path.into(),
                        record: 0,
                        offset: ng.offset,
                        reason: "packet block before any interface description".into(),
                    })
                }
                Some(Ok(None)) => {}
            }
        }
        if let Some(first) = ng.interfaces.first().copied() {
            ng.link = LinkType::from_number(first.link)
                .ok_or(CaptureError::UnsupportedLinkType { path: path.into(), link: first.link })?;
            ng.nanosecond = first.finer_than_micros();
            ng.snaplen = first.snaplen;
        }
        Ok(ng)
    }

    /// Reads one block. `Ok(Some(record))` for a packet, `Ok(None)` for any
    /// other block (interfaces are recorded).
    fn next_block(
        &mut self,
        path: &Path,
        index: u64,
        link: Option<LinkType>,
    ) -> Option<Result<Option<RawRecord>, CaptureError>> {
        let offset = self.offset;
        match self.read_block(path, index) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        if self.block.is_empty() {
            // A block of a type sluice does not parse, skipped.
            return Some(Ok(None));
        }
        let raw = match self.endianness {
            Endianness::Big => RawBlock::from_slice::<byteorder::BigEndian>(&self.block),
            Endianness::Little => RawBlock::from_slice::<byteorder::LittleEndian>(&self.block),
        };
        let block = raw.and_then(|(_, raw)| match self.endianness {
            Endianness::Big => raw.try_into_block::<byteorder::BigEndian>(),
            Endianness::Little => raw.try_into_block::<byteorder::LittleEndian>(),
        });
        let block = match block {
            Ok(b) => b,
            Err(e) => return Some(Err(ng_error(e, path, index, offset))),
        };
        let malformed =
            |reason: String| CaptureError::Malformed { path: path.into(), record: index, offset, reason };
        let (iface, units, data, orig_len) = match block {
            Block::SectionHeader(_) => {
                // A new section starts a new interface list (its byte order
                // was read with its length).
                self.interfaces.clear();
                return Some(Ok(None));
            }
            Block::InterfaceDescription(idb) => {
                self.interfaces.push(NgInterface::from_block(&idb));
                return Some(Ok(None));
            }
            Block::EnhancedPacket(p) => {
                (p.interface_id, Some(p.timestamp.as_nanos()), p.data.into_owned(), p.original_len)
            }
            Block::Packet(p) => (
                u32::from(p.interface_id),
                Some(u128::from(p.timestamp)),
                p.data.into_owned(),
                p.original_len,
            ),
            Block::SimplePacket(p) => {
                // The block body is padded to 32 bits; the captured length is
                // the smaller of the original length and the interface snaplen.
                let mut data = p.data.into_owned();
                let snap = self.interfaces.first().map(|i| i.snaplen).filter(|s| *s > 0).unwrap_or(u32::MAX);
                data.truncate(p.original_len.min(snap) as usize);
                (0, None, data, p.original_len)
            }
            _ => return Some(Ok(None)),
        };
        let Some(interface) = self.interfaces.get(iface as usize).copied() else {
            return Some(Err(malformed(format!("packet refers to undeclared interface {iface}"))));
        };
        if let Some(file_link) = link {
            if interface.link != file_link.number() {
                return Some(Err(malformed(format!(
                    "interface {iface} has link type {}, the file's first interface {file_link}: \
                     sluice reads one link type per file",
                    interface.link
                ))));
            }
        }
        let time_ns = match units {
            Some(u) => interface.units_to_ns(u64::try_from(u).unwrap_or(u64::MAX)),
            None => self.last_time_ns,
        };
        self.last_time_ns = time_ns;
        let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
        Some(Ok(Some(RawRecord { time_ns, frame: data.into(), orig_len })))
    }

    /// Reads the next block's framing: a block sluice parses is left whole
    /// in `self.block`; any other is read past (its body discarded as it is
    /// read, whatever its size) and `self.block` left empty. A section header
    /// sets the byte order. `Ok(false)` at the end of the file.
    fn read_block(&mut self, path: &Path, index: u64) -> Result<bool, CaptureError> {
        let offset = self.offset;
        let truncated = || CaptureError::Truncated { path: path.into(), record: index, offset };
        let malformed =
            |reason: String| CaptureError::Malformed { path: path.into(), record: index, offset, reason };
        let io_err = |source| CaptureError::Io { path: path.into(), source };
        let fill = |r: &mut FileReader, buf: &mut [u8]| match read_full(r, buf) {
            Ok(n) if n == buf.len() => Ok(()),
            Ok(_) => Err(truncated()),
            Err(e) => Err(io_err(e)),
        };
        let mut head = [0u8; 12];
        match read_full(&mut self.reader, &mut head[..8]) {
            Ok(0) => return Ok(false),
            Ok(8) => {}
            Ok(_) => return Err(truncated()),
            Err(e) => return Err(io_err(e)),
        }
        // A section header's type reads the same in both byte orders; its
        // byte-order magic, right after the length, says which one the
        // section (this length included) uses.
        let mut head_len = 8;
        if u32_in(Endianness::Little, &head[0..4]) == SECTION_HEADER {
            fill(&mut self.reader, &mut head[8..12])?;
            self.endianness = match head[8..12] {
                [0x1a, 0x2b, 0x3c, 0x4d] => Endianness::Big,
                [0x4d, 0x3c, 0x2b, 0x1a] => Endianness::Little,
                _ => return Err(malformed("section header with an unknown byte-order magic".into())),
            };
            head_len = 12;
        }
        let type_ = u32_in(self.endianness, &head[0..4]);
        let len = u32_in(self.endianness, &head[4..8]);
        if len % 4 != 0 || len < 12 || (type_ == SECTION_HEADER && len < 28) {
            return Err(malformed(format!("block length {len}")));
        }
        let parsed = matches!(
            type_,
            SECTION_HEADER | INTERFACE_DESCRIPTION | PACKET | SIMPLE_PACKET | ENHANCED_PACKET
        );
        self.block.clear();
        if parsed {
            if len > MAX_PARSED_BLOCK {
                return Err(malformed(format!(
                    "block of {len} bytes exceeds the {MAX_PARSED_BLOCK}-byte limit"
                )));
            }
            // The block parser checks the trailing length.
            self.block.extend_from_slice(&head[..head_len]);
            self.block.resize(len as usize, 0);
            fill(&mut self.reader, &mut self.block[head_len..])?;
        } else {
            let body = u64::from(len) - 12;
            match io::copy(&mut (&mut self.reader).take(body), &mut io::sink()) {
                Ok(n) if n == body => {}
                Ok(_) => return Err(truncated()),
                Err(e) => return Err(io_err(e)),
            }
            let mut tail = [0u8; 4];
            fill(&mut self.reader, &mut tail)?;
            let trailer = u32_in(self.endianness, &tail);
            if trailer != len {
                return Err(malformed(format!("block length {len}, trailing length {trailer}")));
            }
        }
        self.offset += u64::from(len);
        Ok(true)
    }

    fn next(&mut self, path: &Path, index: u64, link: LinkType) -> Option<Result<RawRecord, CaptureError>> {
        loop {
            match self.next_block(path, index, Some(link))? {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Maps a pcap-file error to ours: running out of bytes mid-block is truncation.
fn ng_error(e: PcapError, path: &Path, record: u64, offset: u64) -> CaptureError {
    match e {
        PcapError::IncompleteBuffer => CaptureError::Truncated { path: path.into(), record, offset },
        PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            CaptureError::Truncated { path: path.into(), record, offset }
        }
        PcapError::IoError(source) => CaptureError::Io { path: path.into(), source },
        other => CaptureError::Malformed { path: path.into(), record, offset, reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcapgen::{write_pcap, Conversation, Framing};

    /// A small capture: a handshake, data both ways, a close.
    fn capture() -> Vec<u8> {
        let mut c = Conversation::new("10.0.0.1:4000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
        c.handshake().send(crate::flow::Direction::Up, b"GET / HTTP/1.1\r\n\r\n");
        c.send(crate::flow::Direction::Down, &[b'x'; 3000]).close();
        write_pcap(Vec::new(), &Framing::Ethernet, c.packets()).unwrap()
    }

    /// Every record and the error that ended the reading, as text.
    fn read_all(mut source: PcapSource) -> (Vec<Record>, Option<String>) {
        let mut records = Vec::new();
        while let Some(r) = source.next_record() {
            match r {
                Ok(r) => records.push(r),
                Err(e) => return (records, Some(format!("{e} truncation={}", e.is_truncation()))),
            }
        }
        (records, None)
    }

    #[test]
    fn a_mapped_file_reads_as_the_reader_reads_it_cut_anywhere() {
        let bytes = capture();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        let mut seen_records = 0;
        for cut in (0..=bytes.len()).rev() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let mapped = PcapSource::open(&path);
            let read = PcapSource::from_reader(&path, Cursor::new(bytes[..cut].to_vec()));
            match (mapped, read) {
                (Ok(m), Ok(r)) => {
                    assert!(matches!(m.inner, Inner::Mapped(_)), "cut {cut}: mapped");
                    let rewound = m.rewound().unwrap();
                    let (got, want) = (read_all(m), read_all(r));
                    assert_eq!(got, want, "cut at {cut}");
                    assert_eq!(read_all(rewound), want, "cut at {cut}: rewound");
                    seen_records = seen_records.max(got.0.len());
                }
                (Err(m), Err(r)) => assert_eq!(m.to_string(), r.to_string(), "cut at {cut}"),
                (m, r) => panic!("cut at {cut}: mapped {:?}, read {:?}", m.err(), r.err()),
            }
        }
        assert!(seen_records >= 9, "the whole capture has its records ({seen_records})");
    }

    #[test]
    fn only_a_regular_file_is_read_again() {
        let bytes = capture();
        let dir = tempfile::tempdir().unwrap();
        // A file of that name exists: a stream must still not open it.
        let path = dir.path().join("c.pcap");
        std::fs::write(&path, &bytes).unwrap();
        let stream = PcapSource::from_reader(&path, Cursor::new(bytes.clone())).unwrap();
        assert!(!stream.rereadable());
        let err = stream.rewound().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("can be read only once"), "{err}");
        let mapped = PcapSource::open(&path).unwrap();
        assert!(mapped.rereadable() && mapped.rewound().is_ok());
        // A regular pcapng file is read with read(), and can be read again.
        let ng = dir.path().join("c.pcapng");
        let mut c = Conversation::new("10.0.0.1:4000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
        c.handshake();
        std::fs::write(
            &ng,
            crate::pcapgen::write_pcapng(Vec::new(), &Framing::Ethernet, c.packets()).unwrap(),
        )
        .unwrap();
        let ng = PcapSource::open(&ng).unwrap();
        assert!(!matches!(ng.inner, Inner::Mapped(_)) && ng.rereadable());
        assert_eq!(read_all(ng.rewound().unwrap()).0.len(), 3);
    }
}
