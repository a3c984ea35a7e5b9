//! The offline "injector": writes what would have left the filter to a
//! classic pcap with the input's link type. Accepted frames are written
//! byte-identical; modified and forged IP packets get a link header borrowed
//! from the traffic (see [`LinkHeaders`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

use pcap_file::pcap::{PcapHeader, PcapWriter, RawPcapPacket};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

use crate::capture::link::{reverse_header, set_ip_version, zero_header, LinkType};
use crate::wire::header::addresses;

/// Snap length written in the output header: at least this, so every frame
/// we write (up to the reader's record limit) is within it.
const MIN_OUTPUT_SNAPLEN: u32 = 262_144;

/// Link headers remembered per direction; past this many the book is
/// emptied (headers are re-learnt from the next frames) so memory stays bounded.
const MAX_REMEMBERED_HEADERS: usize = 65_536;

/// The source, destination and version of an IP packet, if its header has them.
pub fn ip_endpoints(ip: &[u8]) -> Option<(IpAddr, IpAddr, u8)> {
    let (src, dst) = addresses(ip)?;
    Some((src, dst, if src.is_ipv4() { 4 } else { 6 }))
}

/// The last link header seen for each (source IP, destination IP), so that a
/// packet sluice writes looks like the traffic around it.
#[derive(Debug)]
pub struct LinkHeaders {
    link: LinkType,
    by_direction: HashMap<(IpAddr, IpAddr), Vec<u8>>,
}

impl LinkHeaders {
    /// An empty book for frames of `link`.
    pub fn new(link: LinkType) -> Self {
        LinkHeaders { link, by_direction: HashMap::new() }
    }

    /// Remembers the header of a frame whose IP packet is `ip`.
    pub fn learn(&mut self, header: &[u8], ip: &[u8]) {
        let Some((src, dst, _)) = ip_endpoints(ip) else { return };
        if let Some(h) = self.by_direction.get_mut(&(src, dst)) {
            if h.as_slice() != header {
                h.clear();
                h.extend_from_slice(header);
            }
            return;
        }
        if self.by_direction.len() >= MAX_REMEMBERED_HEADERS {
            self.by_direction.clear();
        }
        self.by_direction.insert((src, dst), header.to_vec());
    }

    /// A link header for the IP packet `ip`: the last one seen in its
    /// direction, else the reverse direction's turned around, else zeros;
    /// always announcing `ip`'s IP version.
    pub fn header_for(&self, ip: &[u8]) -> Vec<u8> {
        let Some((src, dst, version)) = ip_endpoints(ip) else {
            return zero_header(self.link, 4);
        };
        let mut h = if let Some(h) = self.by_direction.get(&(src, dst)) {
            h.clone()
        } else if let Some(h) = self.by_direction.get(&(dst, src)) {
            let mut h = h.clone();
            reverse_header(self.link, &mut h);
            h
        } else {
            return zero_header(self.link, version);
        };
        set_ip_version(self.link, &mut h, version);
        h
    }
}

/// Why the output could not be written.
#[derive(Debug)]
pub struct WriteError(pub io::Error);

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for WriteError {}

fn to_io(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// A classic pcap being written.
pub struct PcapOutput<W: Write = BufWriter<File>> {
    writer: PcapWriter<W>,
    nanosecond: bool,
    headers: LinkHeaders,
    records: u64,
}

impl PcapOutput<BufWriter<File>> {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path, link: LinkType, nanosecond: bool, snaplen: u32) -> io::Result<Self> {
        let file = File::create(path)?;
        Self::new(BufWriter::with_capacity(1 << 16, file), link, nanosecond, snaplen)
    }
}

impl<W: Write> PcapOutput<W> {
    /// Writes the file header to `w`. Timestamps are written in nanoseconds
    /// if `nanosecond`, else microseconds (match the input's precision).
    pub fn new(w: W, link: LinkType, nanosecond: bool, snaplen: u32) -> io::Result<Self> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: snaplen.max(MIN_OUTPUT_SNAPLEN),
            datalink: DataLink::from(link.number()),
            ts_resolution: if nanosecond { TsResolution::NanoSecond } else { TsResolution::MicroSecond },
            endianness: Endianness::Little,
        };
        let writer = PcapWriter::with_header(w, header).map_err(to_io)?;
        Ok(PcapOutput { writer, nanosecond, headers: LinkHeaders::new(link), records: 0 })
    }

    /// Learns the link header of an input frame (call for every IP frame
    /// read, before its verdict, so forged packets find it).
    pub fn learn(&mut self, header: &[u8], ip: &[u8]) {
        self.headers.learn(header, ip);
    }

    /// Writes a frame as it is (accepted packets, non-IP frames).
    pub fn write_frame(&mut self, time_ns: u64, frame: &[u8], orig_len: u32) -> io::Result<()> {
        let incl_len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too large"))?;
        let ts_sec = u32::try_from(time_ns / 1_000_000_000).unwrap_or(u32::MAX);
        let sub_ns = (time_ns % 1_000_000_000) as u32;
        let ts_frac = if self.nanosecond { sub_ns } else { sub_ns / 1000 };
        let raw = RawPcapPacket {
            ts_sec,
            ts_frac,
            incl_len,
            orig_len: orig_len.max(incl_len),
            data: std::borrow::Cow::Borrowed(frame),
        };
        self.writer.write_raw_packet(&raw).map_err(to_io)?;
        self.records += 1;
        Ok(())
    }

    /// Writes `ip` behind the given link header (an accepted-modified packet
    /// keeps its frame's header).
    pub fn write_with_header(&mut self, time_ns: u64, header: &[u8], ip: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(header.len() + ip.len());
        frame.extend_from_slice(header);
        frame.extend_from_slice(ip);
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.write_frame(time_ns, &frame, len)
    }

    /// Writes an IP packet sluice made (an RST) behind a link header borrowed
    /// from the traffic of its connection.
    pub fn write_forged(&mut self, time_ns: u64, ip: &[u8]) -> io::Result<()> {
        let header = self.headers.header_for(ip);
        self.write_with_header(time_ns, &header, ip)
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        let mut w = self.writer.into_writer();
        w.flush()?;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::link::locate_ip;

    fn ip4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p
    }

    fn ip6() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 6, 64];
        p.extend_from_slice(&[0xfd; 16]);
        p.extend_from_slice(&[0xfe; 16]);
        p
    }

    fn eth(dst: u8, src: u8, ethertype: [u8; 2]) -> Vec<u8> {
        let mut h = vec![dst; 6];
        h.extend_from_slice(&[src; 6]);
        h.extend_from_slice(&ethertype);
        h
    }

    #[test]
    fn forged_headers_come_from_same_then_reverse_direction() {
        let mut book = LinkHeaders::new(LinkType::Ethernet);
        let a_to_b = ip4([10, 0, 0, 1], [10, 0, 0, 2]);
        let b_to_a = ip4([10, 0, 0, 2], [10, 0, 0, 1]);
        assert_eq!(book.header_for(&a_to_b), eth(0, 0, [8, 0]), "nothing seen: zeros");
        book.learn(&eth(0xbb, 0xaa, [8, 0]), &b_to_a);
        assert_eq!(book.header_for(&a_to_b), eth(0xaa, 0xbb, [8, 0]), "reverse direction, MACs swapped");
        book.learn(&eth(0xcc, 0xdd, [8, 0]), &a_to_b);
        assert_eq!(book.header_for(&a_to_b), eth(0xcc, 0xdd, [8, 0]), "own direction preferred");
    }

    #[test]
    fn forged_header_announces_the_packets_ip_version() {
        for link in [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Null,
            LinkType::Loop,
            LinkType::Ppp,
            LinkType::PppHdlc,
            LinkType::CiscoHdlc,
        ] {
            let book = LinkHeaders::new(link);
            let p = ip6();
            let frame = [book.header_for(&p), p.clone()].concat();
            let l3 = locate_ip(link, &frame).expect("IP located");
            assert_eq!(&frame[l3], &p[..], "{link}");
        }
    }

    #[test]
    fn written_records_keep_bytes_and_time() {
        let mut out = PcapOutput::new(Vec::new(), LinkType::Raw, true, 0).unwrap();
        let p = ip4([1, 1, 1, 1], [2, 2, 2, 2]);
        out.write_frame(1_700_000_000_123_456_789, &p, 100).unwrap();
        let bytes = out.finish().unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(u32::from(r.header().datalink), 101);
        let rec = r.next_raw_packet().unwrap().unwrap();
        assert_eq!((rec.ts_sec, rec.ts_frac, rec.orig_len), (1_700_000_000, 123_456_789, 100));
        assert_eq!(&rec.data[..], &p[..]);
        assert!(r.next_raw_packet().is_none());
    }
}
