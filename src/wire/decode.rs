//! Decoding of one IP packet into a [`Decoded`] view: the packet's bytes plus
//! the offsets and fields the engine needs. Nothing is copied.
//!
//! Every length is checked against the bytes actually present; a packet that
//! claims more than it holds, or whose headers do not parse, is a
//! [`DecodeError`] (the engine drops and counts it: the endpoint would discard
//! it too).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice, TcpOptionElement};

use super::proto;
use super::seq::SeqNumber;

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Empty input or an IP version other than 4 or 6.
    NotIp,
    /// The IPv4 or IPv6 header is malformed or truncated.
    BadIpHeader(String),
    /// The IPv4 header checksum is wrong.
    BadIpChecksum,
    /// An IPv6 extension header is malformed or truncated.
    BadExtensionHeader,
    /// More IPv6 extension headers than sluice walks.
    TooManyExtensionHeaders,
    /// The TCP header is malformed or truncated.
    BadTcpHeader(String),
    /// The UDP header is malformed or its length field disagrees with the packet.
    BadUdpHeader,
    /// The ICMP header is truncated.
    BadIcmpHeader,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotIp => write!(f, "not an IPv4 or IPv6 packet"),
            DecodeError::BadIpHeader(e) => write!(f, "malformed IP header: {e}"),
            DecodeError::BadIpChecksum => write!(f, "bad IPv4 header checksum"),
            DecodeError::BadExtensionHeader => write!(f, "malformed IPv6 extension header"),
            DecodeError::TooManyExtensionHeaders => {
                write!(f, "more than {MAX_V6_EXTENSION_HEADERS} IPv6 extension headers")
            }
            DecodeError::BadTcpHeader(e) => write!(f, "malformed TCP header: {e}"),
            DecodeError::BadUdpHeader => write!(f, "malformed UDP header"),
            DecodeError::BadIcmpHeader => write!(f, "truncated ICMP header"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Where a fragment sits in its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// IPv4 identification or IPv6 fragment identification.
    pub id: u32,
    /// Offset of this fragment's data in the datagram, in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    /// IPv6 only: offset of the next-header byte that names the fragment
    /// header (6 for the base header, else the first byte of the extension
    /// header before it), and the offset of the fragment header itself.
    /// Reassembly removes the fragment header by rewriting that byte.
    /// Both are 0 for IPv4.
    pub v6_next_header_field: usize,
    /// IPv6 only: offset of the fragment header.
    pub v6_fragment_header: usize,
}

/// The network layer of a decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpInfo {
    /// 4 or 6.
    pub version: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Bytes before the IP payload: the IPv4 header with options, or the IPv6
    /// header with every extension header up to the transport (or up to and
    /// including the fragment header).
    pub header_len: usize,
    /// The IPv4 header length (IHL * 4) or 40 for IPv6.
    pub base_header_len: usize,
    /// The protocol of the payload (after IPv6 extension headers).
    pub proto: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// TOS or traffic class.
    pub tos: u8,
    /// IPv4 identification (0 for unfragmented IPv6).
    pub id: u32,
    /// IPv4 reserved ("evil") bit.
    pub flag_rb: bool,
    /// IPv4 don't-fragment bit.
    pub flag_df: bool,
    /// More fragments (IPv4 flag, or IPv6 fragment header).
    pub flag_mf: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u32,
    /// IPv4 header checksum (0 for IPv6).
    pub checksum: u16,
    /// Set when this packet is a fragment of a larger datagram.
    pub fragment: Option<FragmentInfo>,
}

/// TCP options sluice tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size.
    pub mss: Option<u16>,
    /// Window scale shift.
    pub window_scale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// Timestamps (value, echo reply).
    pub timestamp: Option<(u32, u32)>,
}

/// The TCP header of a decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpInfo {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNumber,
    /// Acknowledgment number.
    pub ack: SeqNumber,
    /// Header length in bytes (data offset * 4).
    pub header_len: usize,
    /// Flag bits (see [`super::tcp_flags`]).
    pub flags: u8,
    /// Raw (unscaled) window.
    pub window: u16,
    /// Checksum field.
    pub checksum: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Parsed options.
    pub options: TcpOptions,
    /// Offset of the TCP header in the packet.
    pub offset: usize,
    /// Offset of the payload in the packet.
    pub payload_offset: usize,
    /// Payload length.
    pub payload_len: usize,
}

impl TcpInfo {
    /// True if every bit of `mask` is set.
    pub fn has(&self, mask: u8) -> bool {
        self.flags & mask == mask
    }

    /// Sequence space the segment occupies: payload plus one for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        let mut n = u32::try_from(self.payload_len).unwrap_or(u32::MAX);
        if self.has(super::tcp_flags::SYN) {
            n = n.wrapping_add(1);
        }
        if self.has(super::tcp_flags::FIN) {
            n = n.wrapping_add(1);
        }
        n
    }
}

/// The UDP header of a decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpInfo {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length field.
    pub length: u16,
    /// Checksum field.
    pub checksum: u16,
    /// Offset of the UDP header in the packet.
    pub offset: usize,
    /// Offset of the payload.
    pub payload_offset: usize,
    /// Payload length.
    pub payload_len: usize,
}

/// The ICMP or ICMPv6 header of a decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpInfo {
    /// True for ICMPv6.
    pub v6: bool,
    /// Type.
    pub typ: u8,
    /// Code.
    pub code: u8,
    /// Checksum.
    pub checksum: u16,
    /// Offset of the ICMP header in the packet.
    pub offset: usize,
    /// Offset of the payload (after the 4-byte type/code/checksum).
    pub payload_offset: usize,
}

/// The transport layer of a decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp(TcpInfo),
    /// UDP.
    Udp(UdpInfo),
    /// ICMP or ICMPv6.
    Icmp(IcmpInfo),
    /// A fragment: the transport header is only known after reassembly.
    Fragment,
    /// Any other protocol.
    Other,
}

/// A decoded IP packet: its bytes (trimmed to the IP length) and parsed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The IP packet, trimmed to its declared length (link padding removed).
    pub bytes: &'a [u8],
    /// Network layer.
    pub ip: IpInfo,
    /// Transport layer.
    pub transport: Transport,
}

impl<'a> Decoded<'a> {
    /// The IP payload (everything after the IP headers).
    pub fn ip_payload(&self) -> &'a [u8] {
        self.bytes.get(self.ip.header_len..).unwrap_or(&[])
    }

    /// The TCP header, if this is TCP.
    pub fn tcp(&self) -> Option<&TcpInfo> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }

    /// The UDP header, if this is UDP.
    pub fn udp(&self) -> Option<&UdpInfo> {
        match &self.transport {
            Transport::Udp(u) => Some(u),
            _ => None,
        }
    }

    /// The transport payload (TCP/UDP data, ICMP body; the IP payload otherwise).
    pub fn payload(&self) -> &'a [u8] {
        let (start, len) = match &self.transport {
            Transport::Tcp(t) => (t.payload_offset, t.payload_len),
            Transport::Udp(u) => (u.payload_offset, u.payload_len),
            Transport::Icmp(i) => (i.payload_offset, self.bytes.len().saturating_sub(i.payload_offset)),
            _ => (self.ip.header_len, self.bytes.len().saturating_sub(self.ip.header_len)),
        };
        self.bytes.get(start..start + len).unwrap_or(&[])
    }

    /// The transport segment (header and payload), for checksum verification.
    pub fn l4_bytes(&self) -> &'a [u8] {
        self.ip_payload()
    }
}

/// Decodes one IP packet (starting at the IP header).
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    match bytes.first().map(|b| b >> 4) {
        Some(4) => decode_v4(bytes, true),
        Some(6) => decode_v6(bytes),
        _ => Err(DecodeError::NotIp),
    }
}

/// Like [`decode`], without verifying the IPv4 header checksum: for
/// captures whose sender left it to a NIC (it reads 0), and to show a packet
/// with a bad one to packet rules before it is dropped.
pub fn decode_ignoring_ip_checksum(bytes: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    match bytes.first().map(|b| b >> 4) {
        Some(4) => decode_v4(bytes, false),
        _ => decode(bytes),
    }
}

fn decode_v4(bytes: &[u8], verify_header: bool) -> Result<Decoded<'_>, DecodeError> {
    let h = Ipv4HeaderSlice::from_slice(bytes).map_err(|e| DecodeError::BadIpHeader(e.to_string()))?;
    let hlen = usize::from(h.ihl()) * 4;
    let total = usize::from(h.total_len());
    if total < hlen || total > bytes.len() {
        return Err(DecodeError::BadIpHeader(format!(
            "total length {total} with header {hlen} in {} bytes",
            bytes.len()
        )));
    }
    let bytes = &bytes[..total];
    if verify_header && !super::checksum::ipv4_header_ok(&bytes[..hlen]) {
        return Err(DecodeError::BadIpChecksum);
    }
    let frag_offset = u32::from(h.fragments_offset().value()) * 8;
    let more = h.more_fragments();
    let fragment = (more || frag_offset != 0).then_some(FragmentInfo {
        id: u32::from(h.identification()),
        offset: frag_offset,
        more,
        v6_next_header_field: 0,
        v6_fragment_header: 0,
    });
    let ip = IpInfo {
        version: 4,
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        header_len: hlen,
        base_header_len: hlen,
        proto: h.protocol().0,
        ttl: h.ttl(),
        tos: bytes[1],
        id: u32::from(h.identification()),
        flag_rb: bytes[6] & 0x80 != 0,
        flag_df: h.dont_fragment(),
        flag_mf: more,
        frag_offset,
        checksum: h.header_checksum(),
        fragment,
    };
    finish(bytes, ip)
}

const V6_HOP_BY_HOP: u8 = 0;
const V6_ROUTING: u8 = 43;
const V6_FRAGMENT: u8 = 44;
const V6_AUTH: u8 = 51;
const V6_DEST_OPTS: u8 = 60;
/// Extension headers walked before a packet is refused as malformed. RFC 8200
/// allows each at most once (destination options twice); real chains are short.
const MAX_V6_EXTENSION_HEADERS: usize = 16;

fn decode_v6(bytes: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let h = Ipv6HeaderSlice::from_slice(bytes).map_err(|e| DecodeError::BadIpHeader(e.to_string()))?;
    let total = 40 + usize::from(h.payload_length());
    if total > bytes.len() {
        return Err(DecodeError::BadIpHeader(format!(
            "payload length {} in {} bytes",
            h.payload_length(),
            bytes.len()
        )));
    }
    // Jumbograms (payload length 0 with a hop-by-hop jumbo option) are not
    // forwarded on the links sluice sits on; they decode as empty payloads.
    let bytes = &bytes[..total];
    let mut next = h.next_header().0;
    let mut off = 40usize;
    let mut fragment = None;
    let mut nh_field = 6usize;
    let mut walked = false;
    // Walk the extension headers. A fragment header ends the walk: what follows
    // is the fragmentable part, only meaningful after reassembly. The endpoint
    // walks any number of them, so a chain longer than we walk must not pass
    // as "some other protocol": it is refused below.
    for _ in 0..=MAX_V6_EXTENSION_HEADERS {
        match next {
            V6_HOP_BY_HOP | V6_ROUTING | V6_DEST_OPTS => {
                let hdr = bytes.get(off..off + 2).ok_or(DecodeError::BadExtensionHeader)?;
                let len = (usize::from(hdr[1]) + 1) * 8;
                if off + len > bytes.len() {
                    return Err(DecodeError::BadExtensionHeader);
                }
                next = hdr[0];
                nh_field = off;
                off += len;
            }
            V6_AUTH => {
                let hdr = bytes.get(off..off + 2).ok_or(DecodeError::BadExtensionHeader)?;
                let len = (usize::from(hdr[1]) + 2) * 4;
                if off + len > bytes.len() {
                    return Err(DecodeError::BadExtensionHeader);
                }
                next = hdr[0];
                nh_field = off;
                off += len;
            }
            V6_FRAGMENT => {
                let hdr = bytes.get(off..off + 8).ok_or(DecodeError::BadExtensionHeader)?;
                next = hdr[0];
                let off_field = u16::from_be_bytes([hdr[2], hdr[3]]);
                let frag = FragmentInfo {
                    id: u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]),
                    offset: u32::from(off_field & 0xfff8),
                    more: off_field & 1 != 0,
                    v6_next_header_field: nh_field,
                    v6_fragment_header: off,
                };
                nh_field = off;
                off += 8;
                // An "atomic fragment" (offset 0, no more) is a whole datagram:
                // Linux skips the header and goes on with the next one
                // (RFC 6946), and so does the walk.
                if frag.offset != 0 || frag.more {
                    fragment = Some(frag);
                    walked = true;
                    break;
                }
            }
            _ => {
                walked = true;
                break;
            }
        }
    }
    if !walked {
        return Err(DecodeError::TooManyExtensionHeaders);
    }
    let ip = IpInfo {
        version: 6,
        src: IpAddr::V6(Ipv6Addr::from(h.source())),
        dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
        header_len: off,
        base_header_len: 40,
        proto: next,
        ttl: h.hop_limit(),
        tos: h.traffic_class(),
        id: fragment.map(|f| f.id).unwrap_or(0),
        flag_rb: false,
        flag_df: false,
        flag_mf: fragment.map(|f| f.more).unwrap_or(false),
        frag_offset: fragment.map(|f| f.offset).unwrap_or(0),
        checksum: 0,
        fragment,
    };
    finish(bytes, ip)
}

fn finish(bytes: &[u8], ip: IpInfo) -> Result<Decoded<'_>, DecodeError> {
    let transport = if ip.fragment.is_some() { Transport::Fragment } else { decode_transport(bytes, &ip)? };
    Ok(Decoded { bytes, ip, transport })
}

fn decode_transport(bytes: &[u8], ip: &IpInfo) -> Result<Transport, DecodeError> {
    let off = ip.header_len;
    let l4 = bytes.get(off..).unwrap_or(&[]);
    match ip.proto {
        proto::TCP => {
            let t = TcpHeaderSlice::from_slice(l4).map_err(|e| DecodeError::BadTcpHeader(e.to_string()))?;
            let hlen = usize::from(t.data_offset()) * 4;
            Ok(Transport::Tcp(TcpInfo {
                src_port: t.source_port(),
                dst_port: t.destination_port(),
                seq: SeqNumber(t.sequence_number()),
                ack: SeqNumber(t.acknowledgment_number()),
                header_len: hlen,
                flags: l4[13],
                window: t.window_size(),
                checksum: t.checksum(),
                urgent: t.urgent_pointer(),
                options: tcp_options(&t),
                offset: off,
                payload_offset: off + hlen,
                payload_len: l4.len() - hlen,
            }))
        }
        proto::UDP => {
            let h = l4.get(..8).ok_or(DecodeError::BadUdpHeader)?;
            let length = u16::from_be_bytes([h[4], h[5]]);
            // A UDP length larger than the IP payload, or smaller than the
            // header, makes the endpoint discard the datagram.
            if usize::from(length) < 8 || usize::from(length) > l4.len() {
                return Err(DecodeError::BadUdpHeader);
            }
            Ok(Transport::Udp(UdpInfo {
                src_port: u16::from_be_bytes([h[0], h[1]]),
                dst_port: u16::from_be_bytes([h[2], h[3]]),
                length,
                checksum: u16::from_be_bytes([h[6], h[7]]),
                offset: off,
                payload_offset: off + 8,
                payload_len: usize::from(length) - 8,
            }))
        }
        proto::ICMP | proto::ICMPV6 => {
            let h = l4.get(..4).ok_or(DecodeError::BadIcmpHeader)?;
            Ok(Transport::Icmp(IcmpInfo {
                v6: ip.proto == proto::ICMPV6,
                typ: h[0],
                code: h[1],
                checksum: u16::from_be_bytes([h[2], h[3]]),
                offset: off,
                payload_offset: off + 4,
            }))
        }
        _ => Ok(Transport::Other),
    }
}

fn tcp_options(t: &TcpHeaderSlice<'_>) -> TcpOptions {
    // Nearly every segment of an established connection carries exactly
    // NOP, NOP, timestamps: read that layout directly, as Linux's
    // tcp_fast_parse_options does, instead of walking the options.
    if let [1, 1, 8, 10, a0, a1, a2, a3, e0, e1, e2, e3] = *t.options() {
        let (value, echo) = (u32::from_be_bytes([a0, a1, a2, a3]), u32::from_be_bytes([e0, e1, e2, e3]));
        return TcpOptions { timestamp: Some((value, echo)), ..TcpOptions::default() };
    }
    walk_tcp_options(t.options_iterator())
}

fn walk_tcp_options(options: etherparse::TcpOptionsIterator<'_>) -> TcpOptions {
    let mut o = TcpOptions::default();
    // A malformed option ends parsing; the options seen until then still count,
    // as they do for Linux's tcp_parse_options.
    for opt in options {
        match opt {
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => o.mss = Some(m),
            Ok(TcpOptionElement::WindowScale(s)) => o.window_scale = Some(s),
            Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => o.sack_permitted = true,
            Ok(TcpOptionElement::Timestamp(a, b)) => o.timestamp = Some((a, b)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    o
}

/// An IPv4 address from four octets (helper for tests and builders).
pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv6 packet fd00:1::1 -> fd00:1::2 whose payload is `ext`
    /// (extension headers, already chained) and a bare 20-byte TCP header;
    /// `first` is the IPv6 header's next-header value.
    fn v6_packet(first: u8, ext: &[u8]) -> Vec<u8> {
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x02; // SYN
        let payload_len = (ext.len() + tcp.len()) as u16;
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&payload_len.to_be_bytes());
        p.extend_from_slice(&[first, 64]);
        p.extend_from_slice(&Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1).octets());
        p.extend_from_slice(&Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2).octets());
        p.extend_from_slice(ext);
        p.extend_from_slice(&tcp);
        p
    }

    /// `n` chained 8-byte destination-options headers, the last pointing at TCP.
    fn dest_opts(n: usize) -> Vec<u8> {
        let mut ext = Vec::new();
        for i in 0..n {
            let next = if i + 1 == n { proto::TCP } else { V6_DEST_OPTS };
            // Next header, length 0 (8 bytes), a PadN option filling the rest.
            ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        ext
    }

    #[test]
    fn tcp_behind_a_few_extension_headers_is_found() {
        let p = v6_packet(V6_DEST_OPTS, &dest_opts(3));
        let d = decode(&p).expect("decodes");
        assert_eq!(d.ip.proto, proto::TCP);
        assert_eq!(d.ip.header_len, 40 + 24);
        assert_eq!(d.tcp().expect("tcp").dst_port, 80);
    }

    #[test]
    fn an_extension_header_chain_longer_than_the_walk_is_refused() {
        // The endpoint would walk all of them and find TCP: passing the packet
        // as "another protocol" would let it through uninspected.
        let p = v6_packet(V6_DEST_OPTS, &dest_opts(MAX_V6_EXTENSION_HEADERS + 1));
        assert_eq!(decode(&p).err(), Some(DecodeError::TooManyExtensionHeaders));
        let p = v6_packet(V6_DEST_OPTS, &dest_opts(MAX_V6_EXTENSION_HEADERS));
        assert_eq!(decode(&p).expect("decodes").ip.proto, proto::TCP);
    }

    #[test]
    fn an_atomic_fragment_is_walked_past_like_linux_does() {
        // Fragment header with offset 0 and no more fragments, then a
        // destination-options header, then TCP.
        let mut ext = vec![V6_DEST_OPTS, 0, 0, 0, 0, 0, 0, 7];
        ext.extend_from_slice(&dest_opts(1));
        let p = v6_packet(V6_FRAGMENT, &ext);
        let d = decode(&p).expect("decodes");
        assert!(d.ip.fragment.is_none());
        assert_eq!(d.ip.proto, proto::TCP);
        assert_eq!(d.tcp().expect("tcp").src_port, 40000);
    }

    #[test]
    fn a_real_fragment_ends_the_walk() {
        // Offset 0 with more fragments to come: the rest is only meaningful
        // after reassembly.
        let mut ext = vec![V6_DEST_OPTS, 0, 0, 1, 0, 0, 0, 7];
        ext.extend_from_slice(&dest_opts(1));
        let p = v6_packet(V6_FRAGMENT, &ext);
        let d = decode(&p).expect("decodes");
        let f = d.ip.fragment.expect("a fragment");
        assert!(f.more);
        assert_eq!(f.id, 7);
        assert!(matches!(d.transport, Transport::Fragment));
    }

    #[test]
    fn truncated_extension_header_is_an_error() {
        // The header claims 32 bytes; only 8 + 20 follow.
        let p = v6_packet(V6_DEST_OPTS, &[proto::TCP, 3, 1, 4, 0, 0, 0, 0]);
        assert_eq!(decode(&p).err(), Some(DecodeError::BadExtensionHeader));
    }
    /// A 20-byte TCP header followed by `options` (a multiple of 4 bytes).
    fn tcp_header(options: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[12] = (((20 + options.len()) / 4) << 4) as u8;
        h[13] = 0x10; // ACK
        h.extend_from_slice(options);
        h
    }

    #[test]
    fn timestamp_fast_path_matches_the_walk() {
        let ts = [1, 1, 8, 10, 0, 0, 1, 2, 0x80, 0, 0, 3];
        let layouts: [&[u8]; 5] = [
            &ts,
            // Same options, other order or lengths: the walk decides.
            &[8, 10, 0, 0, 1, 2, 0x80, 0, 0, 3, 1, 1],
            &[1, 1, 8, 9, 0, 0, 1, 2, 0x80, 0, 0, 3],
            &[1, 1, 8, 10, 0, 0, 1, 2, 0x80, 0, 0, 3, 1, 1, 1, 0],
            &[2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 0, 0],
        ];
        for raw in layouts {
            let h = tcp_header(raw);
            let t = TcpHeaderSlice::from_slice(&h).unwrap();
            let walked = walk_tcp_options(etherparse::TcpOptionsIterator::from_slice(raw));
            assert_eq!(tcp_options(&t), walked, "{raw:?}");
        }
        let t = tcp_header(&ts);
        let fast = tcp_options(&TcpHeaderSlice::from_slice(&t).unwrap());
        assert_eq!(fast, TcpOptions { timestamp: Some((0x102, 0x8000_0003)), ..TcpOptions::default() });
    }
}
