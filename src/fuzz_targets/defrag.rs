//! `ip_defrag`: sequences of IPv4 and IPv6 fragments, with time steps,
//! through the [`Defragmenter`].
//!
//! The input (through `arbitrary`) describes up to four datagrams (family,
//! identification, payload, how to cut them) and a sequence of operations:
//! push fragment `n` of datagram `d` (possibly damaged: a byte overwritten,
//! cut short, its offset or MF flag changed; headers repaired so it still
//! decodes), let time pass (forward or back), run the timeout.
//!
//! Invariants: every fragment id pushed is verdicted exactly once, by being
//! part of a completed datagram, rejected, expired or drained at the end; a
//! completed datagram decodes, and when it was built only from undamaged
//! fragments of one datagram it carries exactly that datagram's payload; the
//! held byte count is the sum of the held fragments' sizes and stays within
//! the limits; once time only went forward, nothing older than the timeout
//! survives `expire`.

use std::collections::HashMap;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use super::wire::repair;
use crate::engine::PacketId;
use crate::ip::defrag::{DefragLimits, DefragOutcome, Defragmenter};
use crate::ip::fragment::fragment;
use crate::stats::Counter;
use crate::time::Timestamp;
use crate::wire::decode::v4;
use crate::wire::forge::udp_packet;
use crate::wire::header::{Ipv4, Ipv6, IPV6_HEADER_LEN};
use crate::wire::{checksum, decode, DecodeError};

#[derive(Debug, Arbitrary)]
struct Input {
    max_datagrams: u8,
    max_bytes: u16,
    timeout_ms: u16,
    datagrams: Vec<Spec>,
    ops: Vec<Op>,
}

/// One datagram to cut into fragments.
#[derive(Debug, Arbitrary)]
struct Spec {
    v6: bool,
    id: u32,
    payload_len: u16,
    fill: u8,
    /// Fragment sizes in 8-byte units.
    sizes: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Push { datagram: u8, fragment: u8, damage: Option<Damage> },
    Wait(u16),
    Back(u16),
    Expire,
}

#[derive(Debug, Arbitrary)]
enum Damage {
    Byte { at: u16, value: u8 },
    Cut(u16),
    Offset(u16),
    FlipMore,
}

/// A fragment held by the defragmenter, as the harness knows it.
struct Held {
    len: usize,
    pushed_at: Timestamp,
}

/// What the harness tracks across operations.
struct State {
    defrag: Defragmenter,
    limits: DefragLimits,
    held: HashMap<PacketId, Held>,
    /// For each pushed id: the datagram it came from, or `None` if damaged.
    origin: HashMap<PacketId, Option<usize>>,
    next_id: PacketId,
    now: Timestamp,
    monotonic: bool,
}

/// The structured input, for reading a crash.
pub(super) fn describe(data: &[u8]) -> String {
    format!("{:#?}", Input::arbitrary_take_rest(Unstructured::new(data)))
}

pub(super) fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let limits = DefragLimits {
        max_datagrams: usize::from(input.max_datagrams % 8) + 1,
        max_bytes: usize::from(input.max_bytes) + 1,
        timeout: Duration::from_millis(u64::from(input.timeout_ms)),
    };
    let datagrams: Vec<(Vec<u8>, Vec<Vec<u8>>)> =
        input.datagrams.iter().take(4).enumerate().map(build).collect();
    let mut s = State {
        defrag: Defragmenter::new(limits),
        limits,
        held: HashMap::new(),
        origin: HashMap::new(),
        next_id: 0,
        now: Timestamp(1_000_000_000_000),
        monotonic: true,
    };
    for op in input.ops.iter().take(256) {
        match op {
            Op::Push { datagram, fragment, damage } => {
                let Some((_, frags)) = datagrams.get(usize::from(*datagram) % datagrams.len().max(1)) else {
                    continue;
                };
                let Some(f) = frags.get(usize::from(*fragment) % frags.len().max(1)) else { continue };
                let origin = usize::from(*datagram) % datagrams.len();
                s.push(f, damage.as_ref(), origin, &datagrams);
            }
            Op::Wait(ms) => s.now = Timestamp(s.now.0 + u64::from(*ms) * 1000),
            Op::Back(ms) => {
                s.now = Timestamp(s.now.0 - u64::from(*ms) * 1000);
                s.monotonic = false;
            }
            Op::Expire => s.expire(),
        }
        s.check_counts();
    }
    s.drain();
}

/// The datagram (a UDP packet from 10.0.0.(n+1)) and its fragments.
fn build((n, spec): (usize, &Spec)) -> (Vec<u8>, Vec<Vec<u8>>) {
    let len = usize::from(spec.payload_len % 3000);
    let payload: Vec<u8> = (0..len).map(|i| spec.fill.wrapping_add(i as u8)).collect();
    let src = v4(10, 0, 0, n as u8 + 1);
    let dst = v4(10, 0, 1, 1);
    let (src, dst) = if spec.v6 {
        let six = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(a) => std::net::IpAddr::V6(a.to_ipv6_mapped()),
            v6 => v6,
        };
        (six(src), six(dst))
    } else {
        (src, dst)
    };
    let packet = udp_packet(src, 1000, dst, 2000, &payload);
    let sizes: Vec<usize> = spec.sizes.iter().take(16).map(|&u| usize::from(u) * 8).collect();
    let frags = fragment(&packet, &sizes, spec.id);
    (packet, frags)
}

impl State {
    fn push(
        &mut self,
        frag: &[u8],
        damage: Option<&Damage>,
        origin: usize,
        datagrams: &[(Vec<u8>, Vec<Vec<u8>>)],
    ) {
        let mut bytes = frag.to_vec();
        if let Some(d) = damage {
            apply(&mut bytes, d);
        }
        let Ok(pkt) = decode(&bytes) else { return };
        let id = self.next_id;
        self.next_id += 1;
        self.origin.insert(id, damage.is_none().then_some(origin));
        let before = self.held.len();
        match self.defrag.push(id, &pkt, self.now) {
            DefragOutcome::Held => {
                self.held.insert(id, Held { len: pkt.bytes.len(), pushed_at: self.now });
                assert_eq!(self.held.len(), before + 1);
            }
            DefragOutcome::Complete { datagram, fragments } => {
                self.verdicted(id, &fragments, "completed");
                self.check_complete(&datagram, &fragments, datagrams);
            }
            DefragOutcome::Rejected { drop, reason } => {
                assert!(
                    matches!(
                        reason,
                        Counter::DropFragment | Counter::DropFragmentOverlap | Counter::DropFragmentDuplicate
                    ),
                    "{reason:?}"
                );
                self.verdicted(id, &drop, "rejected");
            }
        }
    }

    /// `ids` got their verdict now: the pushed `id` once, the rest held.
    fn verdicted(&mut self, id: PacketId, ids: &[PacketId], how: &str) {
        assert_eq!(
            ids.iter().filter(|&&i| i == id).count(),
            1,
            "{how}: the pushed fragment {id} not once in {ids:?}"
        );
        for &i in ids.iter().filter(|&&i| i != id) {
            assert!(self.held.remove(&i).is_some(), "{how}: fragment {i} verdicted but not held (twice?)");
        }
    }

    fn check_complete(&self, datagram: &[u8], fragments: &[PacketId], datagrams: &[(Vec<u8>, Vec<Vec<u8>>)]) {
        let d = match decode(datagram) {
            Ok(d) => d,
            // Damaged fragments may carry a broken transport header: the
            // promise is a well-formed IP packet, whatever it carries.
            Err(DecodeError::BadTcpHeader(_) | DecodeError::BadUdpHeader | DecodeError::BadIcmpHeader) => {
                return check_ip_header(datagram);
            }
            Err(DecodeError::BadExtensionHeader) if datagram.first().is_some_and(|b| b >> 4 == 6) => {
                return check_ip_header(datagram);
            }
            Err(e) => panic!(
                "a reassembled datagram does not decode ({e}): {:02x?}",
                &datagram[..datagram.len().min(64)]
            ),
        };
        let origins: Vec<Option<usize>> =
            fragments.iter().map(|i| self.origin.get(i).copied().flatten()).collect();
        let Some(Some(first)) = origins.first().copied() else { return };
        if d.ip.fragment.is_some() || origins.iter().any(|o| *o != Some(first)) {
            return;
        }
        let Ok(original) = decode(&datagrams[first].0) else { return };
        assert_eq!(d.payload(), original.payload(), "reassembled payload differs from the datagram's");
        assert_eq!((d.ip.src, d.ip.dst, d.ip.proto), (original.ip.src, original.ip.dst, original.ip.proto));
    }

    fn expire(&mut self) {
        for id in self.defrag.expire(self.now) {
            assert!(self.held.remove(&id).is_some(), "expired fragment {id} was not held");
        }
        if self.monotonic {
            for (id, h) in &self.held {
                assert!(
                    self.now.since(h.pushed_at) < self.limits.timeout,
                    "fragment {id} outlived the timeout"
                );
            }
        }
    }

    fn check_counts(&self) {
        let bytes: usize = self.held.values().map(|h| h.len).sum();
        assert_eq!(self.defrag.held_bytes(), bytes, "held bytes vs the held fragments");
        assert!(self.defrag.held_bytes() <= self.limits.max_bytes, "held bytes over the limit");
        assert!(self.defrag.held_datagrams() <= self.limits.max_datagrams, "datagrams over the limit");
        assert!(self.defrag.held_datagrams() <= self.held.len(), "a datagram with no fragment");
    }

    fn drain(&mut self) {
        let mut drained = self.defrag.drain();
        drained.sort_unstable();
        let mut held: Vec<PacketId> = self.held.keys().copied().collect();
        held.sort_unstable();
        assert_eq!(drained, held, "drain returns exactly the held fragments");
        assert_eq!((self.defrag.held_datagrams(), self.defrag.held_bytes()), (0, 0));
    }
}

/// The IP header of a reassembled datagram: its length field says the
/// datagram's length, and an IPv4 header checksum is right.
fn check_ip_header(p: &[u8]) {
    if let Some(h) = Ipv4::new_checked(p) {
        assert_eq!(usize::from(h.total_len()), p.len(), "IPv4 total length");
        assert!(checksum::ipv4_header_ok(h.header()), "IPv4 header");
    } else if let Some(h) = Ipv6::new_checked(p) {
        assert_eq!(usize::from(h.payload_len()) + IPV6_HEADER_LEN, p.len(), "IPv6 payload length");
    } else {
        panic!("a reassembled datagram is no IP packet: {:02x?}", &p[..p.len().min(64)]);
    }
}

/// Damages a fragment, then repairs its length and checksum fields so it
/// still decodes.
fn apply(p: &mut Vec<u8>, d: &Damage) {
    let v6 = p.first().is_some_and(|b| b >> 4 == 6);
    match *d {
        Damage::Byte { at, value } => {
            let at = usize::from(at) % p.len().max(1);
            if let Some(b) = p.get_mut(at) {
                *b = value;
            }
        }
        Damage::Cut(n) => p.truncate(p.len().saturating_sub(usize::from(n % 64))),
        Damage::Offset(o) => {
            let at = if v6 { 42 } else { 6 };
            if let Some(field) = p.get_mut(at..at + 2) {
                let keep = u16::from_be_bytes([field[0], field[1]]) & if v6 { 0x0007 } else { 0xe000 };
                let off = if v6 { o & 0xfff8 } else { o & 0x1fff };
                field.copy_from_slice(&(keep | off).to_be_bytes());
            }
        }
        Damage::FlipMore => {
            let (at, bit) = if v6 { (43, 0x01) } else { (6, 0x20) };
            if let Some(b) = p.get_mut(at) {
                *b ^= bit;
            }
        }
    }
    repair(p, 3);
}
