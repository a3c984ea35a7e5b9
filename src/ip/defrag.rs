//! IPv4 and IPv6 fragment reassembly.
//!
//! The engine holds every fragment until its datagram is complete, inspects
//! the reassembled datagram, and gives all its fragments the same verdict. So
//! the endpoint only ever receives fragments of datagrams sluice inspected
//! whole, and the policy below only has to make sure that sluice and the
//! endpoint cannot build different datagrams from the fragments sluice lets
//! through. Fragments sluice refuses never reach the endpoint, which is what
//! makes refusing a single fragment safe.
//!
//! # Keys
//!
//! IPv4 datagrams are keyed by (source, destination, protocol, identification),
//! as Linux keys them. IPv6 datagrams by (source, destination, identification),
//! again as Linux does: the next header carried by each fragment header is not
//! part of the key but must agree across the datagram (see below), so sluice
//! never splits into two datagrams fragments the endpoint would join. The
//! address family is the IP version.
//!
//! # Policy
//!
//! * **Receiver model.** Each datagram follows the policy of its destination
//!   (`--target-policy`, [`crate::tcp::receiver_policy`]). Towards a Linux
//!   receiver, overlaps are judged as Linux's `inet_frag_queue_insert` judges
//!   them, by fragment runs: a fragment inside a run already held is a
//!   duplicate, ignored whatever its bytes, so sluice drops it alone
//!   ([`Counter::DropFragmentDuplicate`]) and the first copy stays; any other
//!   overlap makes Linux discard the datagram, and sluice abandons it
//!   ([`Counter::DropFragmentOverlap`]), identical bytes or not. Towards a
//!   strict receiver, the rule below applies.
//! * **Overlaps (strict).** A fragment whose bytes overlap bytes already held is fine if
//!   the overlapping bytes are identical (exact duplicates are ordinary
//!   retransmissions; every copy's id is listed and gets the verdict). If they
//!   differ, the endpoint could keep either version, so the whole datagram is
//!   abandoned: this fragment and every held one are dropped
//!   ([`Counter::DropFragmentOverlap`]). (Linux itself discards datagrams with
//!   partial overlaps even of identical bytes; then the endpoint gets nothing,
//!   which is also safe.)
//! * **Malformed fragments** are dropped alone ([`Counter::DropFragment`]), the
//!   datagram keeps waiting: an empty fragment; a non-last fragment whose
//!   length is not a multiple of 8; a fragment that would make the datagram
//!   longer than its 16-bit length field can say (IPv4 total length, IPv6
//!   payload length, 65,535 bytes); a last fragment (MF=0) whose end differs
//!   from an earlier last fragment's, or that ends before data already held;
//!   a non-last fragment reaching past the known end; a fragment whose
//!   protocol / next header differs from the datagram's.
//! * **Header.** The reassembled packet takes the header of the first fragment
//!   with offset 0 to arrive (a duplicate first fragment's header is ignored,
//!   as the endpoint keeps its first queued copy): for IPv4 with its options,
//!   MF and offset cleared, total length set and checksum recomputed; for IPv6
//!   the unfragmentable part with the fragment header removed and the payload
//!   length set.
//! * **Limits.** A fragment that would start a datagram beyond
//!   `max_datagrams`, or push the held bytes beyond `max_bytes`, is dropped
//!   ([`Counter::DropFragment`]); held datagrams are never evicted to make
//!   room. Eviction would let an attacker flush legitimate reassembly by
//!   sending junk fragments; refusing only hurts new fragments, and held
//!   datagrams free their room when they complete or time out. The exception:
//!   a fragment that completes its datagram is accepted past `max_bytes`,
//!   since it frees the whole datagram at once (otherwise a nearly full table
//!   would stall every datagram at its last fragment). Memory is counted as
//!   the bytes of the held fragment packets.
//! * **Timeouts** run on packet time, from a datagram's first fragment: once
//!   `timeout` has passed, [`Defragmenter::expire`] abandons it.
//!
//! A reassembled IPv6 datagram whose fragmentable part starts with another
//! fragment header is itself a fragment; the engine feeds it back in.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use super::datagram::{PendingDatagram, Piece, Refusal};
use crate::config::EngineConfig;
use crate::packet_id::PacketId;
use crate::stats::Counter;
use crate::tcp::receiver_policy::ReceiverTable;
use crate::time::Timestamp;
use crate::wire::Decoded;

/// Bounds on what the defragmenter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragLimits {
    /// Datagrams being reassembled at once.
    pub max_datagrams: usize,
    /// Bytes of fragments held at once.
    pub max_bytes: usize,
    /// A datagram not complete this long after its first fragment is abandoned.
    pub timeout: Duration,
}

impl From<&EngineConfig> for DefragLimits {
    fn from(c: &EngineConfig) -> Self {
        DefragLimits {
            max_datagrams: c.max_frag_datagrams,
            max_bytes: c.max_frag_bytes,
            timeout: c.frag_timeout,
        }
    }
}

/// What became of a fragment handed to [`Defragmenter::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefragOutcome {
    /// Held: wait for more fragments. No verdict for this packet yet.
    Held,
    /// The datagram is complete. `datagram` is a whole, unfragmented IP packet
    /// (decodable by [`crate::wire::decode`] with correct lengths and a
    /// correct IPv4 header checksum); `fragments` lists the ids of every
    /// fragment that made it, this one included, in arrival order (duplicates
    /// included: each id exactly once).
    Complete {
        /// The reassembled packet.
        datagram: Vec<u8>,
        /// Its fragments' ids in arrival order.
        fragments: Vec<PacketId>,
    },
    /// Drop these packet ids (this fragment, and where the whole datagram is
    /// abandoned, every fragment held for it). `reason` is the counter to bump
    /// once per dropped id: [`Counter::DropFragmentOverlap`] or
    /// [`Counter::DropFragment`].
    Rejected {
        /// Ids to drop.
        drop: Vec<PacketId>,
        /// Counter to bump once per id.
        reason: Counter,
    },
}

/// Identifies the datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: IpAddr,
    dst: IpAddr,
    /// IPv4 protocol; `None` for IPv6 (checked for agreement instead).
    proto: Option<u8>,
    id: u32,
}

/// Position of a datagram in the timeout order: first-fragment time, then a
/// sequence number (packet time may repeat or, across pcaps, go backwards).
type AgeKey = (Timestamp, u64);

#[derive(Debug)]
struct Entry {
    datagram: PendingDatagram,
    age: AgeKey,
}

/// Reassembles IP datagrams from their fragments.
#[derive(Debug)]
pub struct Defragmenter {
    limits: DefragLimits,
    datagrams: HashMap<DatagramKey, Entry>,
    by_age: BTreeMap<AgeKey, DatagramKey>,
    next_seq: u64,
    held_bytes: usize,
    /// Receiver model per destination (Linux everywhere by default).
    receivers: ReceiverTable,
}

impl Defragmenter {
    /// The same, with datagrams judged by their destination's receiver model.
    pub fn with_receivers(mut self, receivers: ReceiverTable) -> Self {
        self.receivers = receivers;
        self
    }

    /// An empty defragmenter.
    pub fn new(limits: DefragLimits) -> Self {
        Defragmenter {
            limits,
            datagrams: HashMap::new(),
            by_age: BTreeMap::new(),
            next_seq: 0,
            held_bytes: 0,
            receivers: ReceiverTable::default(),
        }
    }

    /// Takes one fragment (`pkt.ip.fragment` is `Some`; anything else is
    /// refused as a malformed fragment).
    pub fn push(&mut self, id: PacketId, pkt: &Decoded<'_>, now: Timestamp) -> DefragOutcome {
        let Some(frag) = pkt.ip.fragment else { return refuse(id) };
        let Some(piece) = Piece::from_decoded(pkt, &frag) else { return refuse(id) };
        let key = DatagramKey {
            src: pkt.ip.src,
            dst: pkt.ip.dst,
            proto: (pkt.ip.version == 4).then_some(pkt.ip.proto),
            id: frag.id,
        };
        let counted = pkt.bytes.len();
        let over_bytes = self.held_bytes.saturating_add(counted) > self.limits.max_bytes;

        let Some(entry) = self.datagrams.get_mut(&key) else {
            if self.datagrams.len() >= self.limits.max_datagrams || over_bytes {
                return refuse(id);
            }
            let linux = self.receivers.lookup(pkt.ip.dst).linux();
            let mut datagram = PendingDatagram::with_policy(pkt.ip.version, linux);
            let Ok(plan) = datagram.plan(&piece) else { return refuse(id) };
            let completes = plan.completes;
            datagram.commit(id, &piece, plan, counted);
            if completes {
                // Only reachable with a non-fragment passed in; still correct.
                return finish(datagram);
            }
            let age = (now, self.next_seq);
            self.next_seq += 1;
            self.by_age.insert(age, key);
            self.datagrams.insert(key, Entry { datagram, age });
            self.held_bytes += counted;
            return DefragOutcome::Held;
        };

        match entry.datagram.plan(&piece) {
            Err(Refusal::Malformed) => refuse(id),
            Err(Refusal::Duplicate) => {
                DefragOutcome::Rejected { drop: vec![id], reason: Counter::DropFragmentDuplicate }
            }
            Err(Refusal::Overlap) => {
                let mut drop = self.remove(&key).map(PendingDatagram::into_ids).unwrap_or_default();
                drop.push(id);
                DefragOutcome::Rejected { drop, reason: Counter::DropFragmentOverlap }
            }
            Ok(plan) if !plan.completes && over_bytes => refuse(id),
            Ok(plan) => {
                let completes = plan.completes;
                entry.datagram.commit(id, &piece, plan, counted);
                self.held_bytes += counted;
                if !completes {
                    return DefragOutcome::Held;
                }
                match self.remove(&key) {
                    Some(datagram) => finish(datagram),
                    None => refuse(id),
                }
            }
        }
    }

    /// True if [`Defragmenter::expire`] at `now` would drop something.
    #[inline]
    pub fn due(&self, now: Timestamp) -> bool {
        self.by_age
            .first_key_value()
            .is_some_and(|(&(first_seen, _), _)| now.since(first_seen) >= self.limits.timeout)
    }

    /// Abandons datagrams whose first fragment is at least the timeout older
    /// than `now` (packet time): returns the ids to drop, oldest datagram first.
    pub fn expire(&mut self, now: Timestamp) -> Vec<PacketId> {
        let mut drop = Vec::new();
        while let Some((&(first_seen, _), &key)) = self.by_age.first_key_value() {
            if now.since(first_seen) < self.limits.timeout {
                break;
            }
            match self.remove(&key) {
                Some(d) => drop.extend(d.into_ids()),
                // Cannot happen (the maps are kept in step); never loop on it.
                None => {
                    self.by_age.pop_first();
                }
            }
        }
        drop
    }

    /// Abandons everything (shutdown): the ids to drop, oldest datagram first.
    pub fn drain(&mut self) -> Vec<PacketId> {
        let mut drop = Vec::new();
        for (_, key) in std::mem::take(&mut self.by_age) {
            if let Some(entry) = self.datagrams.remove(&key) {
                drop.extend(entry.datagram.into_ids());
            }
        }
        // Anything the age index missed (it never should).
        for (_, entry) in self.datagrams.drain() {
            drop.extend(entry.datagram.into_ids());
        }
        self.held_bytes = 0;
        drop
    }

    /// Datagrams being reassembled.
    pub fn held_datagrams(&self) -> usize {
        self.datagrams.len()
    }

    /// Bytes of fragments held.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Removes a datagram from both maps and the byte count.
    fn remove(&mut self, key: &DatagramKey) -> Option<PendingDatagram> {
        let entry = self.datagrams.remove(key)?;
        self.by_age.remove(&entry.age);
        self.held_bytes = self.held_bytes.saturating_sub(entry.datagram.counted_bytes());
        Some(entry.datagram)
    }
}

/// Refuses one fragment on its own.
fn refuse(id: PacketId) -> DefragOutcome {
    DefragOutcome::Rejected { drop: vec![id], reason: Counter::DropFragment }
}

/// Turns a complete datagram into the outcome.
fn finish(datagram: PendingDatagram) -> DefragOutcome {
    match datagram.reassemble() {
        Some(bytes) => DefragOutcome::Complete { datagram: bytes, fragments: datagram.into_ids() },
        // Every check passed, so this is unreachable; drop rather than guess.
        None => DefragOutcome::Rejected { drop: datagram.into_ids(), reason: Counter::DropFragment },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::ip::fragment::fragment;
    use crate::ip::fragment::tests::{with_v4_options, with_v6_hop_by_hop};
    use crate::wire::decode::{decode, v4};
    use crate::wire::forge::TcpSegment;
    use crate::wire::header::{Ipv4, Ipv6, IPV6_HEADER_LEN};
    use crate::wire::{checksum, tcp_flags, DecodeError, SeqNumber};

    const T0: Timestamp = Timestamp(1_000_000_000);

    /// A defragmenter judging every datagram strictly (today's overlap rule).
    fn strict(limits: DefragLimits) -> Defragmenter {
        let mut t = ReceiverTable::default();
        for net in ["0.0.0.0/0", "::/0"] {
            t.set_policy(net.parse().unwrap(), crate::tcp::receiver_policy::TargetPolicy::Strict);
        }
        Defragmenter::new(limits).with_receivers(t)
    }

    fn limits() -> DefragLimits {
        DefragLimits { max_datagrams: 16, max_bytes: 1 << 20, timeout: Duration::from_secs(30) }
    }

    fn bytes(n: usize, salt: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
    }

    fn tcp_packet(v6: bool, payload: &[u8]) -> Vec<u8> {
        let (a, b) = if v6 {
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            (v4(192, 0, 2, 1), v4(198, 51, 100, 2))
        };
        let mut s = TcpSegment::new(a, 40000, b, 80);
        s.seq = SeqNumber(1000);
        s.ack = SeqNumber(2000);
        s.flags = tcp_flags::ACK | tcp_flags::PSH;
        s.payload = payload;
        s.ttl = 57;
        s.ip_id = 0x4242;
        s.build()
    }

    /// What reassembling `fragment(original, _, id)` must give: for IPv6 the
    /// original itself; for IPv4 the original with the identification `id`,
    /// DF cleared (fragments never carry it) and the checksum recomputed.
    fn expected(original: &[u8], id: u16) -> Vec<u8> {
        let mut p = original.to_vec();
        if let Some(mut h) = Ipv4::new_checked(&mut p[..]) {
            h.set_identification(id);
            h.clear_dont_fragment();
            h.fill_checksum();
        }
        p
    }

    fn push(d: &mut Defragmenter, id: PacketId, frag: &[u8], now: Timestamp) -> DefragOutcome {
        let pkt = decode(frag).expect("test fragment decodes");
        assert!(pkt.ip.fragment.is_some(), "test input is a fragment");
        d.push(id, &pkt, now)
    }

    /// Pushes fragments in the given order (ids are 100 + index into `frags`),
    /// checks every push but the last is held, and returns the last outcome.
    fn push_order(d: &mut Defragmenter, frags: &[Vec<u8>], order: &[usize]) -> DefragOutcome {
        let (last, rest) = order.split_last().expect("non-empty order");
        for &i in rest {
            assert_eq!(push(d, 100 + i as u64, &frags[i], T0), DefragOutcome::Held, "fragment {i}");
        }
        push(d, 100 + *last as u64, &frags[*last], T0)
    }

    fn dropped(ids: &[PacketId], reason: Counter) -> DefragOutcome {
        DefragOutcome::Rejected { drop: ids.to_vec(), reason }
    }

    /// A hand-made IPv4 fragment (offset in bytes, protocol UDP).
    fn v4_fragment(id: u16, offset: u32, more: bool, data: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p.extend_from_slice(data);
        let total = p.len() as u16;
        let mut h = Ipv4::new_checked(&mut p[..]).unwrap();
        h.set_total_len(total);
        h.set_identification(id);
        h.set_fragment_field((offset / 8) as u16 | if more { 0x2000 } else { 0 });
        h.fill_checksum();
        p
    }

    /// A hand-made IPv6 fragment with fragment header (next header `nh`).
    fn v6_fragment(id: u32, offset: u32, more: bool, nh: u8, data: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 44, 64];
        p.extend_from_slice(&"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let payload = (8 + data.len()) as u16;
        Ipv6::new_checked(&mut p[..]).unwrap().set_payload_len(payload);
        let field = offset as u16 | u16::from(more);
        p.extend_from_slice(&[nh, 0]);
        p.extend_from_slice(&field.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(data);
        p
    }

    #[test]
    fn reassembles_in_order_reverse_and_shuffled() {
        for v6 in [false, true] {
            let original = tcp_packet(v6, &bytes(1000, 1));
            let frags = fragment(&original, &[256, 256, 256], 77);
            let whole = expected(&original, 77);
            assert_eq!(frags.len(), 4);
            for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]] {
                let mut d = strict(limits());
                let out = push_order(&mut d, &frags, &order);
                let want_ids: Vec<PacketId> = order.iter().map(|&i| 100 + i as u64).collect();
                assert_eq!(
                    out,
                    DefragOutcome::Complete { datagram: whole.clone(), fragments: want_ids },
                    "v6={v6} order={order:?}"
                );
                assert_eq!(d.held_datagrams(), 0);
                assert_eq!(d.held_bytes(), 0);
            }
        }
    }

    #[test]
    fn v4_reassembly_keeps_the_first_fragments_header_fields_and_options() {
        // NOP, record route (not copied into later fragments), stream id (copied).
        let options = [1u8, 7, 7, 4, 0, 0, 0, 0, 0x88, 4, 0xbe, 0xef];
        let original = with_v4_options(&tcp_packet(false, &bytes(600, 9)), &options);
        let frags = fragment(&original, &[200, 200], 5);
        let mut d = strict(limits());
        let DefragOutcome::Complete { datagram, .. } = push_order(&mut d, &frags, &[2, 1, 0]) else {
            panic!("not complete")
        };
        let got = decode(&datagram).expect("reassembled datagram decodes");
        let want = decode(&original).unwrap();
        assert_eq!(got.ip.fragment, None);
        assert!(!got.ip.flag_mf);
        assert_eq!(got.ip.frag_offset, 0);
        assert_eq!(got.ip.header_len, 32);
        assert_eq!(&datagram[20..32], &options[..]);
        assert_eq!(usize::from(u16::from_be_bytes([datagram[2], datagram[3]])), original.len());
        for (a, b) in [(got.ip.src, want.ip.src), (got.ip.dst, want.ip.dst)] {
            assert_eq!(a, b);
        }
        assert_eq!((got.ip.proto, got.ip.ttl, got.ip.tos, got.ip.id), (6, 57, want.ip.tos, 5));
        assert_eq!(got.ip.flag_rb, want.ip.flag_rb);
        let (gt, wt) = (got.tcp().expect("tcp"), want.tcp().unwrap());
        assert_eq!((gt.seq, gt.ack, gt.flags, gt.checksum), (wt.seq, wt.ack, wt.flags, wt.checksum));
        assert_eq!(got.payload(), want.payload());
        assert!(checksum::transport_ok(got.ip.src, got.ip.dst, 6, got.l4_bytes()));
    }

    #[test]
    fn v6_reassembly_with_extension_header_equals_the_original() {
        let original = with_v6_hop_by_hop(&tcp_packet(true, &bytes(3000, 4)));
        let frags = fragment(&original, &[1232, 1232], 0x0102_0304);
        let mut d = strict(limits());
        let out = push_order(&mut d, &frags, &[1, 2, 0]);
        let DefragOutcome::Complete { datagram, fragments } = out else { panic!("not complete: {out:?}") };
        assert_eq!(datagram, original);
        assert_eq!(fragments, vec![101, 102, 100]);
        assert!(decode(&datagram).expect("decodes").tcp().is_some());
    }

    #[test]
    fn duplicates_are_listed_once_each_and_the_first_header_wins() {
        let original = tcp_packet(false, &bytes(100, 2));
        let frags = fragment(&original, &[64], 3);
        // A copy of the first fragment with another TTL: its header is ignored.
        let mut other_ttl = frags[0].clone();
        let mut h = Ipv4::new_checked(&mut other_ttl[..]).unwrap();
        h.set_ttl(3);
        h.fill_checksum();

        let mut d = strict(limits());
        assert_eq!(push(&mut d, 1, &frags[0], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 2, &frags[0], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 3, &other_ttl, T0), DefragOutcome::Held);
        assert_eq!(d.held_bytes(), 3 * frags[0].len());
        let out = push(&mut d, 4, &frags[1], T0);
        assert_eq!(
            out,
            DefragOutcome::Complete { datagram: expected(&original, 3), fragments: vec![1, 2, 3, 4] }
        );
    }

    #[test]
    fn overlap_with_identical_bytes_is_accepted() {
        for v6 in [false, true] {
            let original = tcp_packet(v6, &bytes(200, 5));
            let a = fragment(&original, &[64, 64], 8); // [0,64) [64,128) [128,..)
            let b = fragment(&original, &[32, 64], 8); // [0,32) [32,96) [96,..)
            let mut d = strict(limits());
            assert_eq!(push(&mut d, 1, &a[0], T0), DefragOutcome::Held);
            assert_eq!(push(&mut d, 2, &b[1], T0), DefragOutcome::Held, "overlaps [32,64) of id 1");
            assert_eq!(push(&mut d, 3, &a[2], T0), DefragOutcome::Held);
            let out = push(&mut d, 4, &a[1], T0);
            let want =
                DefragOutcome::Complete { datagram: expected(&original, 8), fragments: vec![1, 2, 3, 4] };
            assert_eq!(out, want, "v6={v6}");
        }
    }

    #[test]
    fn overlap_with_different_bytes_abandons_the_datagram() {
        for v6 in [false, true] {
            let original = tcp_packet(v6, &bytes(200, 5));
            let mut altered = original.clone();
            // Data byte 40: inside [32,64), which b[1] and a[0] both carry.
            let at = if v6 { 40 } else { 20 } + 40;
            altered[at] ^= 0xff;
            let a = fragment(&original, &[64, 64], 8);
            let b = fragment(&altered, &[32, 64], 8);
            let mut d = strict(limits());
            assert_eq!(push(&mut d, 1, &a[0], T0), DefragOutcome::Held);
            assert_eq!(push(&mut d, 2, &a[2], T0), DefragOutcome::Held);
            assert_eq!(
                push(&mut d, 3, &b[1], T0),
                dropped(&[1, 2, 3], Counter::DropFragmentOverlap),
                "v6={v6}"
            );
            assert_eq!((d.held_datagrams(), d.held_bytes()), (0, 0));
            // The key is free again: a later fragment starts a new datagram.
            assert_eq!(push(&mut d, 4, &a[1], T0), DefragOutcome::Held);
            assert_eq!(d.held_bytes(), a[1].len());
        }
    }

    #[test]
    fn linux_a_duplicate_inside_a_run_is_dropped_alone_and_the_first_copy_kept() {
        for v6 in [false, true] {
            let original = tcp_packet(v6, &bytes(200, 5));
            let mut altered = original.clone();
            let at = if v6 { 40 } else { 20 } + 70;
            altered[at] ^= 0xff;
            let a = fragment(&original, &[64, 64], 8); // [0,64) [64,128) [128,..)
            let b = fragment(&altered, &[64, 64], 8);
            let mut d = Defragmenter::new(limits());
            assert_eq!(push(&mut d, 1, &a[0], T0), DefragOutcome::Held);
            assert_eq!(push(&mut d, 2, &a[1], T0), DefragOutcome::Held);
            // [64,128) again with other bytes: inside the run [0,128).
            assert_eq!(push(&mut d, 3, &b[1], T0), dropped(&[3], Counter::DropFragmentDuplicate), "v6={v6}");
            let out = push(&mut d, 4, &a[2], T0);
            let want = DefragOutcome::Complete { datagram: expected(&original, 8), fragments: vec![1, 2, 4] };
            assert_eq!(out, want, "v6={v6}: the first copy is kept");
        }
    }

    #[test]
    fn linux_runs_are_formed_in_arrival_order() {
        let original = tcp_packet(false, &bytes(200, 5));
        let a = fragment(&original, &[64, 64], 8); // [0,64) [64,128) [128,..)
        let half = fragment(&original, &[32, 64], 8); // [0,32) [32,96) [96,..)
                                                      // Arrival 0, 2: two runs. [32,96) reaches out of run [0,64): an
                                                      // overlap (Linux discards the datagram) though every byte agrees.
        let mut d = Defragmenter::new(limits());
        assert_eq!(push(&mut d, 1, &a[0], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 2, &a[2], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 3, &half[1], T0), dropped(&[1, 2, 3], Counter::DropFragmentOverlap));
        // Arrival 0, 1: one run [0,128); [32,96) is inside it: a duplicate.
        let mut d = Defragmenter::new(limits());
        assert_eq!(push(&mut d, 1, &a[0], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 2, &a[1], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 3, &half[1], T0), dropped(&[3], Counter::DropFragmentDuplicate));
        // Past the last fragment's end but starting before it: an overlap.
        let mut d = Defragmenter::new(limits());
        assert_eq!(push(&mut d, 1, &half[0], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 2, &a[1], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 3, &half[2], T0), dropped(&[1, 2, 3], Counter::DropFragmentOverlap));
    }

    #[test]
    fn datagrams_time_out_from_their_first_fragment() {
        let frags_a = fragment(&tcp_packet(false, &bytes(100, 1)), &[32], 1);
        let frags_b = fragment(&tcp_packet(true, &bytes(100, 1)), &[32], 2);
        let mut d = strict(limits());
        assert_eq!(push(&mut d, 1, &frags_a[0], T0), DefragOutcome::Held);
        let later = T0.saturating_add(Duration::from_secs(10));
        assert_eq!(push(&mut d, 2, &frags_b[1], later), DefragOutcome::Held);
        // More fragments do not refresh the datagram's age.
        assert_eq!(push(&mut d, 3, &frags_a[0], later), DefragOutcome::Held);
        assert_eq!(d.expire(T0.saturating_add(Duration::from_micros(29_999_999))), Vec::<PacketId>::new());
        assert_eq!(d.expire(T0.saturating_add(Duration::from_secs(30))), vec![1, 3]);
        assert_eq!(d.held_datagrams(), 1);
        assert_eq!(d.held_bytes(), frags_b[1].len());
        assert_eq!(d.expire(later.saturating_add(Duration::from_secs(40))), vec![2]);
        assert_eq!((d.held_datagrams(), d.held_bytes()), (0, 0));
        // Packet time going backwards expires nothing.
        assert_eq!(push(&mut d, 4, &frags_a[1], later), DefragOutcome::Held);
        assert_eq!(d.expire(T0), Vec::<PacketId>::new());
    }

    #[test]
    fn drain_abandons_everything() {
        let frags = fragment(&tcp_packet(false, &bytes(100, 1)), &[32, 32], 1);
        let other = fragment(&tcp_packet(true, &bytes(100, 1)), &[32], 1);
        let mut d = strict(limits());
        push(&mut d, 1, &frags[0], T0);
        push(&mut d, 2, &other[0], T0);
        push(&mut d, 3, &frags[2], T0);
        let mut ids = d.drain();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!((d.held_datagrams(), d.held_bytes()), (0, 0));
        assert_eq!(d.drain(), Vec::<PacketId>::new());
    }

    #[test]
    fn the_datagram_limit_refuses_new_datagrams_and_keeps_held_ones() {
        let mut d = strict(DefragLimits { max_datagrams: 2, ..limits() });
        let sets: Vec<Vec<Vec<u8>>> =
            (0..3).map(|i| fragment(&tcp_packet(false, &bytes(100, i)), &[64], u32::from(i))).collect();
        assert_eq!(push(&mut d, 1, &sets[0][0], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 2, &sets[1][0], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 3, &sets[2][0], T0), dropped(&[3], Counter::DropFragment));
        assert_eq!(d.held_datagrams(), 2);
        assert!(matches!(push(&mut d, 4, &sets[0][1], T0), DefragOutcome::Complete { .. }));
        // Room again.
        assert_eq!(push(&mut d, 5, &sets[2][0], T0), DefragOutcome::Held);
    }

    #[test]
    fn the_byte_limit_refuses_new_fragments_except_completing_ones() {
        let original = tcp_packet(false, &bytes(300, 7));
        let frags = fragment(&original, &[96, 96], 1);
        let other = fragment(&tcp_packet(false, &bytes(300, 8)), &[96], 2);
        // Room for the first two fragments only.
        let max_bytes = frags[0].len() + frags[2].len();
        let mut d = strict(DefragLimits { max_bytes, ..limits() });
        assert_eq!(push(&mut d, 1, &frags[0], T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 2, &frags[2], T0), DefragOutcome::Held);
        assert_eq!(d.held_bytes(), max_bytes);
        // Neither a new datagram nor a non-completing fragment fits.
        assert_eq!(push(&mut d, 3, &other[0], T0), dropped(&[3], Counter::DropFragment));
        assert_eq!(push(&mut d, 4, &frags[0], T0), dropped(&[4], Counter::DropFragment));
        // The completing fragment is let in: it frees the datagram at once.
        let out = push(&mut d, 5, &frags[1], T0);
        assert_eq!(
            out,
            DefragOutcome::Complete { datagram: expected(&original, 1), fragments: vec![1, 2, 5] }
        );
        assert_eq!(d.held_bytes(), 0);
    }

    #[test]
    fn malformed_fragments_are_refused_alone() {
        let data = bytes(64, 3);
        let refused = |id| dropped(&[id], Counter::DropFragment);
        let mut d = strict(limits());
        assert_eq!(push(&mut d, 1, &v4_fragment(9, 0, true, &data[..32]), T0), DefragOutcome::Held);
        assert_eq!(push(&mut d, 2, &v4_fragment(9, 64, false, &data[..20]), T0), DefragOutcome::Held);
        // Non-last fragment whose length is not a multiple of 8.
        assert_eq!(push(&mut d, 3, &v4_fragment(9, 32, true, &data[..12]), T0), refused(3));
        // Empty fragment.
        assert_eq!(push(&mut d, 4, &v4_fragment(9, 32, true, &[]), T0), refused(4));
        // A second last fragment with another end.
        assert_eq!(push(&mut d, 5, &v4_fragment(9, 32, false, &data[..8]), T0), refused(5));
        // A non-last fragment past the known end.
        assert_eq!(push(&mut d, 6, &v4_fragment(9, 80, true, &data[..8]), T0), refused(6));
        // Past 65,535 bytes (20-byte header + 65,528 + 16).
        assert_eq!(push(&mut d, 7, &v4_fragment(9, 65_528, true, &data[..16]), T0), refused(7));
        assert_eq!(d.held_bytes(), 20 + 32 + 20 + 20);
        // The datagram is intact.
        let out = push(&mut d, 8, &v4_fragment(9, 32, true, &data[32..64]), T0);
        let DefragOutcome::Complete { datagram, fragments } = out else { panic!("{out:?}") };
        assert_eq!(fragments, vec![1, 2, 8]);
        assert_eq!(&datagram[20..84], &data[..]);
        assert_eq!(&datagram[84..], &data[..20]);
        assert_eq!(u16::from_be_bytes([datagram[2], datagram[3]]), 104);
    }

    #[test]
    fn a_last_fragment_must_not_end_before_held_data() {
        let data = bytes(64, 3);
        let mut d = strict(limits());
        assert_eq!(push(&mut d, 1, &v4_fragment(9, 48, true, &data[..16]), T0), DefragOutcome::Held);
        assert_eq!(
            push(&mut d, 2, &v4_fragment(9, 8, false, &data[..16]), T0),
            dropped(&[2], Counter::DropFragment)
        );
        assert_eq!(d.held_datagrams(), 1);
    }

    #[test]
    fn the_first_fragments_header_counts_toward_the_length_limit() {
        // Data up to 65,512 fits a 20-byte header but not a 24-byte one.
        let data = bytes(8, 1);
        let mut d = strict(limits());
        assert_eq!(push(&mut d, 1, &v4_fragment(9, 65_504, false, &data), T0), DefragOutcome::Held);
        let with_option = with_v4_options(&v4_fragment(9, 0, true, &data), &[0x88, 4, 0, 1]);
        assert_eq!(push(&mut d, 2, &with_option, T0), dropped(&[2], Counter::DropFragment));
        assert_eq!(push(&mut d, 3, &v4_fragment(9, 0, true, &data), T0), DefragOutcome::Held);
    }

    #[test]
    fn v6_fragments_must_agree_on_the_next_header() {
        let data = bytes(32, 1);
        let mut d = strict(limits());
        assert_eq!(push(&mut d, 1, &v6_fragment(5, 0, true, 17, &data[..16]), T0), DefragOutcome::Held);
        assert_eq!(
            push(&mut d, 2, &v6_fragment(5, 16, false, 6, &data[16..]), T0),
            dropped(&[2], Counter::DropFragment)
        );
        let out = push(&mut d, 3, &v6_fragment(5, 16, false, 17, &data[16..]), T0);
        let DefragOutcome::Complete { datagram, fragments } = out else { panic!("{out:?}") };
        assert_eq!(fragments, vec![1, 3]);
        assert_eq!((datagram[6], &datagram[40..]), (17, &data[..]));
        assert_eq!(u16::from_be_bytes([datagram[4], datagram[5]]), 32);
    }

    #[test]
    fn v6_fragments_beyond_the_payload_length_limit_are_refused() {
        let data = bytes(16, 1);
        let mut d = strict(limits());
        assert_eq!(push(&mut d, 1, &v6_fragment(5, 65_512, true, 17, &data), T0), DefragOutcome::Held);
        assert_eq!(
            push(&mut d, 2, &v6_fragment(5, 65_528, false, 17, &data), T0),
            dropped(&[2], Counter::DropFragment)
        );
        // Ending exactly at 65,535 fits.
        assert_eq!(push(&mut d, 3, &v6_fragment(5, 65_528, false, 17, &data[..7]), T0), DefragOutcome::Held);
        assert_eq!(
            push(&mut d, 4, &v6_fragment(5, 65_520, true, 17, &data), T0),
            dropped(&[4], Counter::DropFragment)
        );
    }

    #[test]
    fn ipv4_keys_include_the_protocol() {
        let data = bytes(16, 1);
        let mut udp_first = v4_fragment(9, 0, true, &data[..8]);
        let mut d = strict(limits());
        assert_eq!(push(&mut d, 1, &udp_first, T0), DefragOutcome::Held);
        let mut h = Ipv4::new_checked(&mut udp_first[..]).unwrap();
        h.set_protocol(6);
        h.fill_checksum();
        assert_eq!(push(&mut d, 2, &udp_first, T0), DefragOutcome::Held);
        assert_eq!(d.held_datagrams(), 2);
    }

    #[test]
    fn a_whole_packet_is_refused() {
        let p = tcp_packet(false, b"x");
        let pkt = decode(&p).unwrap();
        let mut d = strict(limits());
        assert_eq!(d.push(7, &pkt, T0), dropped(&[7], Counter::DropFragment));
    }

    /// A deterministic shuffle (xorshift), so proptest can drive it by a seed.
    fn shuffle<T>(items: &mut [T], mut seed: u64) {
        for i in (1..items.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            items.swap(i, (seed % (i as u64 + 1)) as usize);
        }
    }

    proptest! {
        /// Any fragmentation, in any order, with duplicates, reassembles to
        /// the original packet exactly when its last missing fragment arrives.
        #[test]
        fn any_fragmentation_and_order_reassembles(
            v6 in any::<bool>(),
            options in any::<bool>(),
            len in 1usize..4000,
            units in prop::collection::vec(1usize..80, 0..12),
            seed in 1u64..,
            dups in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..4),
        ) {
            let mut original = tcp_packet(v6, &bytes(len, len as u8));
            if options && !v6 {
                original = with_v4_options(&original, &[1, 7, 7, 4, 0, 0, 0, 0, 0x88, 4, 1, 2]);
            } else if options {
                original = with_v6_hop_by_hop(&original);
            }
            let sizes: Vec<usize> = units.iter().map(|u| u * 8).collect();
            let frags = fragment(&original, &sizes, 0xfeed);
            let whole = expected(&original, 0xfeed);
            if frags.len() == 1 {
                // One piece: the unfragmented packet (IPv4) or an IPv6 atomic
                // fragment, which is not a fragment at all.
                let single = decode(&frags[0]).unwrap();
                prop_assert_eq!(single.ip.fragment, None);
                if !v6 {
                    prop_assert_eq!(&frags[0], &whole);
                }
                return Ok(());
            }
            let mut arrival: Vec<usize> = (0..frags.len()).collect();
            shuffle(&mut arrival, seed);
            // Duplicates go anywhere before the final fragment (after it they
            // would start a new datagram).
            for (which, at) in dups {
                let at = at.index(arrival.len());
                let copy = arrival[which.index(arrival.len() - 1)];
                arrival.insert(at, copy);
            }
            let mut d = strict(limits());
            let (last, rest) = arrival.split_last().unwrap();
            for (n, &i) in rest.iter().enumerate() {
                prop_assert_eq!(push(&mut d, n as u64, &frags[i], T0), DefragOutcome::Held);
            }
            let pkt = decode(&frags[*last]).unwrap();
            let out = d.push(rest.len() as u64, &pkt, T0);
            let ids: Vec<PacketId> = (0..arrival.len() as u64).collect();
            prop_assert_eq!(out, DefragOutcome::Complete { datagram: whole, fragments: ids });
            prop_assert_eq!((d.held_datagrams(), d.held_bytes()), (0, 0));
        }

        /// Whatever arrives (fragments of several datagrams, bytes flipped,
        /// offsets and flags rewritten, data cut short), every fragment gets
        /// exactly one fate, the limits hold, and complete datagrams decode.
        #[test]
        fn every_fragment_gets_exactly_one_fate(
            packets in prop::collection::vec((any::<bool>(), 1usize..600, prop::collection::vec(1usize..20, 0..6)), 1..4),
            mutations in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u16>()), 0..12),
            seed in 1u64..,
            expire_every in 2usize..20,
            linux in any::<bool>(),
        ) {
            let mut frags = Vec::new();
            for (n, (v6, len, units)) in packets.iter().enumerate() {
                let original = tcp_packet(*v6, &bytes(*len, n as u8));
                let sizes: Vec<usize> = units.iter().map(|u| u * 8).collect();
                // Same id for all: datagrams of one family collide on purpose.
                frags.extend(fragment(&original, &sizes, 7));
            }
            // Duplicate some, then mutate some copies.
            let copies: Vec<Vec<u8>> = frags.iter().step_by(2).cloned().collect();
            frags.extend(copies);
            for (which, kind, value) in mutations {
                let i = which.index(frags.len());
                mutate(&mut frags[i], kind, value);
            }
            shuffle(&mut frags, seed);

            let limits = DefragLimits { max_datagrams: 2, max_bytes: 3000, timeout: Duration::from_secs(1) };
            // Under either receiver policy (Linux: fragment runs, duplicates dropped alone).
            let mut d = if linux { Defragmenter::new(limits) } else { strict(limits) };
            let mut fate: HashMap<PacketId, usize> = HashMap::new();
            let mut pushed = 0usize;
            let mut now = T0;
            for (n, f) in frags.iter().enumerate() {
                now = now.saturating_add(Duration::from_millis(300));
                if n % expire_every == 0 {
                    for id in d.expire(now) {
                        *fate.entry(id).or_default() += 1;
                    }
                }
                let Ok(pkt) = decode(f) else { continue };
                if pkt.ip.fragment.is_none() {
                    continue;
                }
                pushed += 1;
                match d.push(n as u64, &pkt, now) {
                    DefragOutcome::Held => {}
                    DefragOutcome::Complete { datagram, fragments } => {
                        match decode(&datagram) {
                            Ok(_) | Err(DecodeError::BadTcpHeader(_)) => {}
                            Err(e) => prop_assert!(false, "reassembled datagram does not decode: {e}"),
                        }
                        for id in fragments {
                            *fate.entry(id).or_default() += 1;
                        }
                    }
                    DefragOutcome::Rejected { drop, .. } => {
                        for id in drop {
                            *fate.entry(id).or_default() += 1;
                        }
                    }
                }
                prop_assert!(d.held_datagrams() <= limits.max_datagrams);
                prop_assert!(d.held_bytes() <= limits.max_bytes);
            }
            for id in d.drain() {
                *fate.entry(id).or_default() += 1;
            }
            prop_assert_eq!(fate.len(), pushed);
            prop_assert!(fate.values().all(|&n| n == 1), "some id got several fates: {:?}", fate);
        }
    }

    /// Damages a fragment while keeping it decodable as IP most of the time.
    fn mutate(f: &mut Vec<u8>, kind: u8, value: u16) {
        let v6 = f[0] >> 4 == 6;
        let (hlen, field_at) = if v6 { (48, 42) } else { (usize::from(f[0] & 0x0f) * 4, 6) };
        match kind {
            // Flip a data byte.
            0 if f.len() > hlen => {
                let i = hlen + usize::from(value) % (f.len() - hlen);
                f[i] ^= 0x5a;
            }
            // Rewrite the offset (and MF).
            1 => {
                let field = if v6 { value & 0xfff9 } else { value & 0x3fff };
                f[field_at..field_at + 2].copy_from_slice(&field.to_be_bytes());
            }
            // Toggle MF.
            2 if v6 => f[field_at + 1] ^= 1,
            2 => f[field_at] ^= 0x20,
            // Cut data short.
            _ => {
                let cut = usize::from(value) % 16;
                let keep = f.len().saturating_sub(cut).max(hlen);
                f.truncate(keep);
            }
        }
        let len = f.len();
        if let Some(mut h) = Ipv6::new_checked(&mut f[..]) {
            h.set_payload_len((len - IPV6_HEADER_LEN) as u16);
        } else if let Some(mut h) = Ipv4::new_checked(&mut f[..]) {
            h.set_total_len(len as u16);
            h.fill_checksum();
        }
    }
}
