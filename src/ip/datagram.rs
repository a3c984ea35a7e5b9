//! One IP datagram being reassembled: which byte ranges its fragments have
//! brought, the bytes themselves, and the first fragment's header. The
//! [`super::defrag::Defragmenter`] keeps one per datagram key and applies the
//! limits; this file holds the per-datagram rules (lengths, last fragment,
//! overlaps) and builds the whole packet.
//!
//! Bytes are kept once: a fragment contributes only the ranges no earlier
//! fragment covered, appended to one buffer per datagram, and a sorted map of
//! disjoint segments says where each range sits. Checking a fragment against
//! what is held costs its length plus a logarithmic lookup, however many
//! fragments came before (an attacker's thousands of 8-byte fragments included).

use std::collections::BTreeMap;

use crate::packet_id::PacketId;
use crate::wire::header::{Ipv4, Ipv6};
use crate::wire::{Decoded, FragmentInfo};

/// The largest value of the 16-bit IP length fields.
const MAX_IP_LEN: usize = 65_535;
/// An IPv4 header without options.
const V4_MIN_HEADER: usize = 20;
/// The IPv6 base header.
const V6_BASE_HEADER: usize = 40;
/// The IPv6 fragment header.
const V6_FRAGMENT_HEADER: usize = 8;

/// A fragment as reassembly sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Piece<'a> {
    /// Offset of the data in the datagram, in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    /// The fragment's share of the datagram.
    pub data: &'a [u8],
    /// What the reassembled packet starts with when this is the first
    /// fragment: the IPv4 header with its options, or the IPv6 unfragmentable
    /// part (every byte before the fragment header).
    pub head: &'a [u8],
    /// IPv6: offset in `head` of the next-header byte naming the fragment header.
    pub v6_next_header_field: usize,
    /// The IPv4 protocol, or the next header named by the IPv6 fragment header.
    pub next_header: u8,
}

impl<'a> Piece<'a> {
    /// Splits a decoded fragment into head and data; `None` if its offsets do
    /// not fit the packet (decode guarantees they do; checked all the same).
    pub(super) fn from_decoded(pkt: &Decoded<'a>, frag: &FragmentInfo) -> Option<Self> {
        let (head, data) = if pkt.ip.version == 4 {
            let head = pkt.bytes.get(..pkt.ip.header_len)?;
            if head.len() < V4_MIN_HEADER {
                return None;
            }
            (head, pkt.bytes.get(pkt.ip.header_len..)?)
        } else {
            let at = frag.v6_fragment_header;
            let head = pkt.bytes.get(..at)?;
            if head.len() < V6_BASE_HEADER || frag.v6_next_header_field >= head.len() {
                return None;
            }
            (head, pkt.bytes.get(at.checked_add(V6_FRAGMENT_HEADER)?..)?)
        };
        Some(Piece {
            offset: frag.offset,
            more: frag.more,
            data,
            head,
            v6_next_header_field: frag.v6_next_header_field,
            next_header: pkt.ip.proto,
        })
    }
}

/// Why a fragment cannot join its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The fragment is malformed or contradicts the datagram's length: refuse
    /// it alone, the datagram stays.
    Malformed,
    /// The fragment overlaps held bytes with different content (or, for a
    /// Linux receiver, overlaps them other than as a duplicate): the datagram
    /// is abandoned.
    Overlap,
    /// Linux receiver: the fragment lies inside a run already held, which
    /// Linux ignores whatever its bytes (`IPFRAG_DUP`): refuse it alone,
    /// the first copy stays.
    Duplicate,
}

/// Linux's fragment runs (`inet_frag_queue_insert`, net/ipv4/inet_fragment.c):
/// a fragment starting where the last one (the highest so far) ends joins its
/// run; any other fragment starts a run of its own, never merged with its
/// neighbours. A fragment inside one run is a duplicate; one ending past the
/// last fragment but starting before its end, or straddling runs, overlaps.
#[derive(Debug, Default)]
struct Runs {
    /// (start, end) of each run.
    runs: Vec<(u32, u32)>,
    /// End of the last fragment (`fragments_tail`) and the run holding it.
    tail: Option<(u32, usize)>,
}

/// Where a fragment goes among the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fits {
    /// Inserted (`IPFRAG_OK`).
    Fresh,
    /// Inside a run (`IPFRAG_DUP`).
    Duplicate,
    /// Any other overlap (`IPFRAG_OVERLAP`).
    Overlap,
}

impl Runs {
    fn fits(&self, start: u32, end: u32) -> Fits {
        match self.tail {
            None => Fits::Fresh,
            // The common case: the fragment goes to the end.
            Some((last_end, _)) if last_end < end => {
                if start < last_end {
                    Fits::Overlap
                } else {
                    Fits::Fresh
                }
            }
            Some(_) => {
                let mut hits = self.runs.iter().filter(|(a, b)| start < *b && *a < end);
                match hits.next() {
                    None => Fits::Fresh,
                    Some((a, b)) if *a <= start && end <= *b => Fits::Duplicate,
                    Some(_) => Fits::Overlap,
                }
            }
        }
    }

    /// Records a fragment that [`Runs::fits`] found fresh.
    fn insert(&mut self, start: u32, end: u32) {
        match self.tail {
            Some((last_end, run)) if last_end == start => {
                self.runs[run].1 = end;
                self.tail = Some((end, run));
            }
            Some((last_end, _)) if last_end >= end => self.runs.push((start, end)),
            _ => {
                self.runs.push((start, end));
                self.tail = Some((end, self.runs.len() - 1));
            }
        }
    }
}

/// What accepting a fragment would do, computed before anything changes so
/// the caller can still apply its limits.
#[derive(Debug)]
pub(super) struct Plan {
    /// Datagram ranges (start, end) this fragment brings for the first time.
    new_ranges: Vec<(u32, u32)>,
    /// The datagram is whole once they are added.
    pub completes: bool,
}

/// Where a range of datagram bytes sits in the buffer.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// End (exclusive) in the datagram; the start is the map key.
    end: u32,
    /// Position of the first byte in `PendingDatagram::data`.
    at: usize,
}

/// The first fragment's header, from which the whole packet is rebuilt.
#[derive(Debug)]
struct Head {
    bytes: Vec<u8>,
    v6_next_header_field: usize,
}

/// A datagram whose fragments are still arriving.
#[derive(Debug)]
pub(super) struct PendingDatagram {
    version: u8,
    /// Every fragment accepted, in arrival order.
    ids: Vec<PacketId>,
    /// Bytes counted against the memory limit (whole fragment packets).
    counted_bytes: usize,
    /// Datagram bytes, in arrival order of the ranges (see `segments`).
    data: Vec<u8>,
    /// Disjoint ranges received, by start offset.
    segments: BTreeMap<u32, Segment>,
    /// Bytes covered by `segments`.
    covered: u32,
    /// Largest end offset of any fragment.
    max_end: u32,
    /// Datagram data length, once the last fragment (MF=0) arrived.
    total_len: Option<u32>,
    /// Protocol / next header every fragment must agree on.
    next_header: Option<u8>,
    /// The first fragment's header (offset 0), once it arrived.
    head: Option<Head>,
    /// Linux's runs, when the receiver is modelled as Linux.
    runs: Option<Runs>,
}

impl PendingDatagram {
    /// An empty datagram of IP version `version`.
    pub(super) fn new(version: u8) -> Self {
        PendingDatagram {
            version,
            ids: Vec::new(),
            counted_bytes: 0,
            data: Vec::new(),
            segments: BTreeMap::new(),
            covered: 0,
            max_end: 0,
            total_len: None,
            next_header: None,
            head: None,
            runs: None,
        }
    }

    /// An empty datagram towards a receiver modelled as Linux (`linux`) or
    /// strictly (overlaps of identical bytes accepted, of other bytes abandon
    /// the datagram).
    pub(super) fn with_policy(version: u8, linux: bool) -> Self {
        PendingDatagram { runs: linux.then(Runs::default), ..PendingDatagram::new(version) }
    }

    /// Consumes the datagram, returning its fragment ids.
    pub(super) fn into_ids(self) -> Vec<PacketId> {
        self.ids
    }

    /// Bytes counted against the memory limit.
    pub(super) fn counted_bytes(&self) -> usize {
        self.counted_bytes
    }

    /// How many bytes precede the data in the length field's reckoning: the
    /// IPv4 header (total length counts it), or the IPv6 extension headers of
    /// the unfragmentable part (payload length counts them). Before the first
    /// fragment is known, the least it can be.
    fn length_overhead(&self, head: Option<&[u8]>) -> usize {
        let head = self.head.as_ref().map(|h| &h.bytes[..]).or(head);
        match (self.version, head) {
            (4, Some(h)) => h.len(),
            (4, None) => V4_MIN_HEADER,
            (_, Some(h)) => h.len().saturating_sub(V6_BASE_HEADER),
            (_, None) => 0,
        }
    }

    /// Checks `p` against the datagram and works out what it would add.
    pub(super) fn plan(&self, p: &Piece<'_>) -> Result<Plan, Refusal> {
        let len = u32::try_from(p.data.len()).map_err(|_| Refusal::Malformed)?;
        // An empty fragment carries nothing and Linux discards its datagram;
        // a non-last fragment must end on an 8-byte boundary (the next one's
        // offset could not be expressed otherwise).
        if len == 0 || (p.more && len % 8 != 0) {
            return Err(Refusal::Malformed);
        }
        let end = p.offset.checked_add(len).ok_or(Refusal::Malformed)?;
        let first_head = (p.offset == 0).then_some(p.head);
        let furthest = usize::try_from(end.max(self.max_end)).map_err(|_| Refusal::Malformed)?;
        if self.length_overhead(first_head).saturating_add(furthest) > MAX_IP_LEN {
            return Err(Refusal::Malformed);
        }
        if self.next_header.is_some_and(|nh| nh != p.next_header) {
            return Err(Refusal::Malformed);
        }
        match (p.more, self.total_len) {
            (false, Some(total)) if total != end => return Err(Refusal::Malformed),
            (false, None) if self.max_end > end => return Err(Refusal::Malformed),
            (true, Some(total)) if end > total => return Err(Refusal::Malformed),
            _ => {}
        }

        match self.runs.as_ref().map(|r| r.fits(p.offset, end)) {
            Some(Fits::Duplicate) => return Err(Refusal::Duplicate),
            Some(Fits::Overlap) => return Err(Refusal::Overlap),
            _ => {}
        }
        let mut new_ranges = Vec::new();
        let mut cursor = p.offset;
        for (start, seg) in self.overlapping(p.offset, end) {
            let lo = start.max(p.offset);
            let hi = seg.end.min(end);
            let held = self.slice_of(start, &seg, lo, hi);
            let incoming = p.data.get(to_usize(lo - p.offset)..to_usize(hi - p.offset));
            if held.is_none() || held != incoming {
                return Err(Refusal::Overlap);
            }
            if start > cursor {
                new_ranges.push((cursor, start));
            }
            cursor = cursor.max(seg.end);
        }
        if cursor < end {
            new_ranges.push((cursor, end));
        }
        let added: u32 = new_ranges.iter().map(|(s, e)| e - s).sum();
        let total = if p.more { self.total_len } else { Some(end) };
        let completes = total == Some(self.covered + added);
        Ok(Plan { new_ranges, completes })
    }

    /// Adds a fragment that [`PendingDatagram::plan`] accepted. `counted` is
    /// what it costs against the memory limit.
    pub(super) fn commit(&mut self, id: PacketId, p: &Piece<'_>, plan: Plan, counted: usize) {
        self.ids.push(id);
        self.counted_bytes += counted;
        for (start, end) in plan.new_ranges {
            let bytes = p.data.get(to_usize(start - p.offset)..to_usize(end - p.offset)).unwrap_or(&[]);
            let at = self.data.len();
            self.data.extend_from_slice(bytes);
            self.segments.insert(start, Segment { end, at });
            self.covered += end - start;
        }
        let end = p.offset + u32::try_from(p.data.len()).unwrap_or(0);
        if let Some(r) = self.runs.as_mut() {
            r.insert(p.offset, end);
        }
        self.max_end = self.max_end.max(end);
        if !p.more {
            self.total_len = Some(end);
        }
        self.next_header.get_or_insert(p.next_header);
        // Duplicates of the first fragment keep the first one's header, as the
        // endpoint keeps the first copy it queued.
        if p.offset == 0 && self.head.is_none() {
            self.head = Some(Head { bytes: p.head.to_vec(), v6_next_header_field: p.v6_next_header_field });
        }
    }

    /// The whole packet, once every byte arrived: the first fragment's header
    /// with the fragmentation undone, followed by the data in order.
    pub(super) fn reassemble(&self) -> Option<Vec<u8>> {
        let head = self.head.as_ref()?;
        let total = self.total_len?;
        if self.covered != total {
            return None;
        }
        let mut out = Vec::with_capacity(head.bytes.len() + to_usize(total));
        out.extend_from_slice(&head.bytes);
        if self.version == 4 {
            let len = u16::try_from(head.bytes.len() + to_usize(total)).ok()?;
            let mut h = Ipv4::new_checked(&mut out)?;
            h.set_total_len(len);
            h.clear_fragmentation();
            h.fill_checksum();
        } else {
            let payload = head.bytes.len().checked_sub(V6_BASE_HEADER)? + to_usize(total);
            Ipv6::new_checked(&mut out)?.set_payload_len(u16::try_from(payload).ok()?);
            // The Next Header field that named the Fragment header: in the
            // base header or in the last unfragmentable extension header.
            *out.get_mut(head.v6_next_header_field)? = self.next_header?;
        }
        for (&start, seg) in &self.segments {
            out.extend_from_slice(self.slice_of(start, seg, start, seg.end)?);
        }
        (out.len() == head.bytes.len() + to_usize(total)).then_some(out)
    }

    /// The held segments that intersect [start, end), in order.
    fn overlapping(&self, start: u32, end: u32) -> Vec<(u32, Segment)> {
        let mut out = Vec::new();
        if let Some((&s, seg)) = self.segments.range(..start).next_back() {
            if seg.end > start {
                out.push((s, *seg));
            }
        }
        out.extend(self.segments.range(start..end).map(|(&s, &seg)| (s, seg)));
        out
    }

    /// The held bytes [lo, hi) of the segment starting at `start`.
    fn slice_of(&self, start: u32, seg: &Segment, lo: u32, hi: u32) -> Option<&[u8]> {
        let from = seg.at.checked_add(to_usize(lo.checked_sub(start)?))?;
        let to = seg.at.checked_add(to_usize(hi.checked_sub(start)?))?;
        self.data.get(from..to)
    }
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
