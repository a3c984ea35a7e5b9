//! Finding the hosts of a capture that left checksums to their NIC
//! (`sluice pcap --checksums auto`).
//!
//! A capture taken on a host whose NIC computes checksums holds that host's
//! outgoing packets as the kernel handed them to the NIC: the TCP/UDP
//! checksum field has only the pseudo-header sum, and on some loopback
//! captures the IPv4 header checksum is 0. Verified as they stand, every
//! such packet would be dropped as damaged.
//!
//! The decision is made before the replay, by reading the whole capture
//! once, so it is deterministic and no packet is judged before its host's
//! verdict is known: a host is **offloaded** for TCP/UDP checksums if more
//! than half of its unfragmented TCP and UDP packets (UDP over IPv4 with a
//! zero checksum, "no checksum", not counted) carry a wrong checksum, and
//! for the IPv4 header checksum if more than half of its IPv4 packets have
//! a header checksum field of 0 that is wrong. ICMP checksums are computed
//! in software, so they are never left to a NIC and always verified, as are
//! fragmented datagrams.
//!
//! The scan computes every unfragmented TCP/UDP checksum; it keeps which
//! records had a right one ([`GoodChecksums`], a bit per record), so the
//! replay does not compute them a second time.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::pcap::{CaptureError, PcapSource};
use crate::config::Offload;
use crate::engine::{transport_checksum_ok, ChecksumState};
use crate::wire::decode::decode_ignoring_ip_checksum;
use crate::wire::{checksum, Decoded, Transport};

/// A host that left checksums to its NIC: what it left, and its counts.
pub type OffloadedHost = (IpAddr, Offload, HostChecksums);

/// What one sending host's packets in the capture carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostChecksums {
    /// Unfragmented TCP and UDP packets with a checksum.
    pub transport_seen: u64,
    /// Of those, with a wrong checksum.
    pub transport_bad: u64,
    /// IPv4 packets.
    pub ipv4_seen: u64,
    /// Of those, with a wrong header checksum that reads 0.
    pub ip_header_zero: u64,
}

impl HostChecksums {
    /// What this host left to its NIC, by the majority rule.
    pub fn offload(&self) -> Offload {
        Offload {
            transport: self.transport_bad > 0 && self.transport_bad * 2 > self.transport_seen,
            ip_header: self.ip_header_zero > 0 && self.ip_header_zero * 2 > self.ipv4_seen,
        }
    }

    /// Counts one packet sent by this host. True if its TCP/UDP checksum
    /// was computed and is right.
    pub fn count(&mut self, ip: &[u8]) -> bool {
        let Ok(pkt) = decode_ignoring_ip_checksum(ip) else { return false };
        self.count_decoded(&pkt, ip)
    }

    /// [`HostChecksums::count`] of `pkt`, decoded from `ip`.
    fn count_decoded(&mut self, pkt: &Decoded<'_>, ip: &[u8]) -> bool {
        if pkt.ip.version == 4 {
            self.ipv4_seen += 1;
            let field_zero = pkt.ip.checksum == 0;
            if field_zero && ip.get(..pkt.ip.header_len).is_some_and(|h| !checksum::ipv4_header_ok(h)) {
                self.ip_header_zero += 1;
            }
        }
        let carries_sum = match &pkt.transport {
            Transport::Tcp(_) => true,
            Transport::Udp(u) => !(u.checksum == 0 && pkt.ip.version == 4),
            _ => false,
        };
        if carries_sum && pkt.ip.fragment.is_none() {
            self.transport_seen += 1;
            if transport_checksum_ok(pkt) {
                return true;
            }
            self.transport_bad += 1;
        }
        false
    }
}

/// Records beyond this many get no bit (their checksums are computed again
/// in the replay): the set stays under 128 MiB whatever the capture.
const MAX_GOOD_RECORDS: u64 = 1 << 30;

/// The records whose TCP/UDP checksum the scan computed and found right,
/// by record index (one bit each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoodChecksums {
    words: Vec<u64>,
}

impl GoodChecksums {
    /// Notes that record `index` has a right checksum.
    pub fn insert(&mut self, index: u64) {
        if index >= MAX_GOOD_RECORDS {
            return;
        }
        let word = (index / 64) as usize;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (index % 64);
    }

    /// True if record `index` has a right checksum (as far as the scan knows).
    pub fn contains(&self, index: u64) -> bool {
        let word = usize::try_from(index / 64).unwrap_or(usize::MAX);
        self.words.get(word).is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// Adds `other`'s records, numbered from `base`.
    fn add_shifted(&mut self, other: &GoodChecksums, base: u64) {
        for (w, &word) in other.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let bit = u64::from(bits.trailing_zeros());
                self.insert(base + w as u64 * 64 + bit);
                bits &= bits - 1;
            }
        }
    }

    /// The checksum state the engine gets for record `index`.
    pub fn state(&self, index: u64) -> ChecksumState {
        if self.contains(index) {
            ChecksumState::CheckedGood
        } else {
            ChecksumState::Unchecked
        }
    }
}

/// The checksums of every sending host of a capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffloadScan {
    /// By source address.
    pub hosts: BTreeMap<IpAddr, HostChecksums>,
    /// The records with a right TCP/UDP checksum.
    pub good: GoodChecksums,
}

impl OffloadScan {
    /// Reads the capture at `path` to its end (or its first damaged record:
    /// the replay reports that) and counts every host's checksums.
    pub fn of_file(path: &Path) -> Result<OffloadScan, CaptureError> {
        Ok(Self::of_source(PcapSource::open(path)?))
    }

    /// Reads `source` to its end (or its first damaged record) and counts
    /// every host's checksums. (A mapped file is not read again: see
    /// [`PcapSource::rewound`].)
    pub fn of_source(source: PcapSource) -> OffloadScan {
        let mut scan = OffloadScan::default();
        for record in source {
            let Ok(record) = record else { break };
            if let Some(ip) = record.ip() {
                if scan.count(ip) {
                    scan.good.insert(record.index);
                }
            }
        }
        scan
    }

    /// [`OffloadScan::of_source`] on up to `threads` threads: a mapped
    /// classic pcap is cut in parts ([`PcapSource::split`]) read in
    /// parallel, then added up in file order. The result is the same as
    /// reading it on one thread: a part counts only if the part before it
    /// stopped exactly where it starts (else the rest is read again from
    /// there), and nothing after the first damaged record counts.
    pub fn of_source_threads(source: PcapSource, threads: usize) -> OffloadScan {
        let parts = match source.split(threads) {
            Some(parts) if threads > 1 && parts.len() > 1 => parts,
            _ => return Self::of_source(source),
        };
        let starts: Vec<u64> = parts.iter().map(PcapSource::offset).collect();
        let scanned: Vec<Option<PartScan>> = std::thread::scope(|s| {
            let handles: Vec<_> = parts.into_iter().map(|p| s.spawn(move || PartScan::of(p))).collect();
            handles.into_iter().map(|h| h.join().ok()).collect()
        });
        let mut total = OffloadScan::default();
        let (mut records, mut at) = (0u64, starts[0]);
        for (start, part) in starts.into_iter().zip(scanned) {
            let Some(part) = part.filter(|_| start == at) else { break };
            total.add(&part.scan, records);
            records += part.records;
            at = part.stop;
            if part.damaged {
                return total;
            }
        }
        // A wrong cut (or a part that failed): read the rest here.
        if let Some(mut rest) = source.split(1).and_then(|v| v.into_iter().next()) {
            if rest.skip_to(at) {
                total.add(&PartScan::of(rest).scan, records);
            }
        }
        total
    }

    /// Adds `other`, whose records are numbered from `base`.
    fn add(&mut self, other: &OffloadScan, base: u64) {
        for (host, c) in &other.hosts {
            let t = self.hosts.entry(*host).or_default();
            t.transport_seen += c.transport_seen;
            t.transport_bad += c.transport_bad;
            t.ipv4_seen += c.ipv4_seen;
            t.ip_header_zero += c.ip_header_zero;
        }
        self.good.add_shifted(&other.good, base);
    }

    /// Counts one IP packet. True if its TCP/UDP checksum was computed and
    /// is right.
    pub fn count(&mut self, ip: &[u8]) -> bool {
        let Ok(pkt) = decode_ignoring_ip_checksum(ip) else { return false };
        self.hosts.entry(pkt.ip.src).or_default().count_decoded(&pkt, ip)
    }

    /// The hosts that left some checksum to their NIC, with what they left
    /// and their counts.
    pub fn offloaded(&self) -> Vec<OffloadedHost> {
        self.hosts
            .iter()
            .map(|(host, c)| (*host, c.offload(), *c))
            .filter(|(_, o, _)| o.transport || o.ip_header)
            .collect()
    }
}

/// What reading one part of a capture found.
struct PartScan {
    scan: OffloadScan,
    /// Records read.
    records: u64,
    /// Where reading stopped (the next record's offset).
    stop: u64,
    /// Reading stopped at a damaged record.
    damaged: bool,
}

impl PartScan {
    fn of(mut source: PcapSource) -> PartScan {
        let mut scan = OffloadScan::default();
        let (mut records, mut damaged) = (0, false);
        while let Some(record) = source.next_record() {
            let Ok(record) = record else {
                damaged = true;
                break;
            };
            records += 1;
            if let Some(ip) = record.ip() {
                if scan.count(ip) {
                    scan.good.insert(record.index);
                }
            }
        }
        PartScan { scan, records, stop: source.offset(), damaged }
    }
}

/// One line about a host whose checksums are not verified.
pub fn describe(host: IpAddr, offload: Offload, c: &HostChecksums) -> String {
    let mut parts = Vec::new();
    if offload.transport {
        parts.push(format!("TCP/UDP checksums ({} of {} wrong)", c.transport_bad, c.transport_seen));
    }
    if offload.ip_header {
        parts.push(format!("IPv4 header checksums ({} of {} zero)", c.ip_header_zero, c.ipv4_seen));
    }
    format!("{host}: {} not verified (left to NIC offload)", parts.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode::v4;
    use crate::wire::forge::udp_packet;
    use crate::wire::header::{Ipv4, Udp};

    fn corrupt_udp_sum(mut p: Vec<u8>) -> Vec<u8> {
        let mut u = Udp::of_packet(&mut p).unwrap();
        let sum = u.checksum();
        u.set_checksum(sum ^ 0x5500);
        p
    }

    #[test]
    fn majority_of_bad_sums_makes_a_host_offloaded() {
        let (a, b) = (v4(10, 0, 0, 1), v4(10, 0, 0, 2));
        let mut scan = OffloadScan::default();
        for i in 0..5u16 {
            let p = udp_packet(a, 1000 + i, b, 53, b"query");
            // Host a: 3 of 5 wrong. Host b: 2 of 5 wrong.
            scan.count(&if i < 3 { corrupt_udp_sum(p) } else { p });
            let q = udp_packet(b, 53, a, 1000 + i, b"answer");
            scan.count(&if i < 2 { corrupt_udp_sum(q) } else { q });
        }
        let off = scan.offloaded();
        assert_eq!(off.len(), 1, "{off:?}");
        assert_eq!(off[0].0, a);
        assert_eq!(off[0].1, Offload { transport: true, ip_header: false });
        assert_eq!((off[0].2.transport_bad, off[0].2.transport_seen), (3, 5));
        assert!(describe(off[0].0, off[0].1, &off[0].2).contains("3 of 5 wrong"));
    }

    /// A capture of `n` UDP packets from a few hosts, every third with a
    /// wrong checksum; each payload is a chain of fake pcap record headers
    /// (16-byte records), so most cuts found by looking for plausible
    /// headers land inside a packet.
    fn capture_with_fake_records(n: u16) -> Vec<u8> {
        let mut fake = Vec::new();
        for _ in 0..80 {
            for w in [1_700_000_000u32, 0, 16, 16] {
                fake.extend_from_slice(&w.to_le_bytes());
            }
            fake.extend_from_slice(&[0x11; 16]);
        }
        let packets: Vec<_> = (0..n)
            .map(|i| {
                let src = v4(10, 0, 0, (i % 3) as u8 + 1);
                let p = udp_packet(src, 1000 + i, v4(10, 0, 0, 9), 53, &fake);
                let p = if i % 3 == 0 { corrupt_udp_sum(p) } else { p };
                (crate::time::Timestamp(1_700_000_000_000_000 + u64::from(i)), p)
            })
            .collect();
        crate::pcapgen::write_pcap(Vec::new(), &crate::pcapgen::Framing::Ethernet, &packets).unwrap()
    }

    #[test]
    fn reading_in_parts_finds_what_one_reader_finds() {
        let bytes = capture_with_fake_records(400);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        // Whole, cut short, and with a damaged record (length over the limit) in the middle.
        let mut damaged = bytes.clone();
        let middle = {
            let mut s = PcapSource::from_reader("x", std::io::Cursor::new(bytes.clone())).unwrap();
            (0..200).for_each(|_| drop(s.next_record()));
            s.offset() as usize
        };
        damaged[middle + 8..middle + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut wrong_cuts = 0;
        for (name, file) in
            [("whole", &bytes[..]), ("cut", &bytes[..bytes.len() * 2 / 3]), ("damaged", &damaged[..])]
        {
            std::fs::write(&path, file).unwrap();
            let one = OffloadScan::of_file(&path).unwrap();
            assert!(one.hosts.len() == 3 && one.good.contains(1), "{name}: {one:?}");
            for threads in 2..=5 {
                let source = PcapSource::open(&path).unwrap();
                let starts: Vec<u64> =
                    source.split(threads).unwrap().iter().map(PcapSource::offset).collect();
                let mut real = PcapSource::open(&path).unwrap();
                let mut offsets = vec![real.offset()];
                while let Some(Ok(_)) = real.next_record() {
                    offsets.push(real.offset());
                }
                wrong_cuts += starts.iter().filter(|s| !offsets.contains(s)).count();
                assert_eq!(OffloadScan::of_source_threads(source, threads), one, "{name}, {threads} threads");
            }
        }
        assert!(wrong_cuts > 0, "some cut landed inside a packet, and was caught");
    }

    #[test]
    fn zero_header_checksums_count_only_when_wrong() {
        let (a, b) = (v4(127, 0, 0, 1), v4(127, 0, 0, 1));
        let mut p = udp_packet(a, 1, b, 2, b"x");
        Ipv4::new_checked(&mut p[..]).unwrap().set_checksum(0);
        let mut scan = OffloadScan::default();
        scan.count(&p);
        scan.count(&udp_packet(a, 1, b, 2, b"y"));
        let c = scan.hosts[&a];
        assert_eq!((c.ip_header_zero, c.ipv4_seen), (1, 2));
        assert!(!c.offload().ip_header, "half is not most");
        scan.count(&p);
        assert!(scan.hosts[&a].offload().ip_header);
    }
}
