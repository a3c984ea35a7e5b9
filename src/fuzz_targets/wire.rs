//! `wire_decode`: one IP packet through [`decode`] and every accessor.
//!
//! Input: a mode byte, then the packet. Random bytes rarely carry a correct
//! IPv4 header checksum or a length field that matches, so the mode byte can
//! repair them first (bit 0: IPv4 header checksum; bit 1: IPv4 total length /
//! IPv6 payload length set to the bytes present), letting the fuzzer reach
//! the transport and extension-header parsers.
//!
//! Invariants on a decoded packet: every slice it hands out lies inside the
//! input, offsets are consistent with each other and with the header
//! lengths, decoding its own bytes again gives the same result, and a TCP
//! segment rebuilt by the forge from the decoded fields decodes to the same
//! fields with valid checksums.

use std::net::{IpAddr, Ipv6Addr};

use super::assert_within;
use crate::ip::fragment::fragment;
use crate::pcapgen::icmp_echo;
use crate::wire::decode::v4;
use crate::wire::forge::{udp_packet, TcpSegment};
use crate::wire::header::{set_ipv4_header_len, Ipv4, Ipv6, IPV6_HEADER_LEN, TCP_MIN_HEADER_LEN};
use crate::wire::{checksum, decode, proto, tcp_flags, Decoded, SeqNumber, Transport};

pub(super) fn run(data: &[u8]) {
    let Some((&mode, packet)) = data.split_first() else { return };
    let mut packet = packet.to_vec();
    repair(&mut packet, mode);
    let Ok(d) = decode(&packet) else { return };
    check_layout(&packet, &d);
    check_transport(&d);
    let again = decode(d.bytes);
    assert_eq!(again.as_ref(), Ok(&d), "decoding the decoded bytes again differs");
    if let Some(t) = d.tcp() {
        check_forge_round_trip(&d, t);
    }
}

/// Repairs what random bytes rarely get right, as the mode byte asks.
pub(super) fn repair(p: &mut [u8], mode: u8) {
    let len = p.len();
    if let Some(mut h) = Ipv4::new_checked(&mut *p) {
        if mode & 2 != 0 {
            h.set_total_len(u16::try_from(len).unwrap_or(u16::MAX));
        }
        if mode & 1 != 0 {
            h.fill_checksum();
        }
    } else if let Some(mut h) = Ipv6::new_checked(&mut *p) {
        if mode & 2 != 0 {
            h.set_payload_len(u16::try_from(len - IPV6_HEADER_LEN).unwrap_or(u16::MAX));
        }
    }
}

/// The IP layer: lengths and slices agree with the bytes.
fn check_layout(input: &[u8], d: &Decoded<'_>) {
    assert_within(input, d.bytes, "bytes");
    assert_eq!(d.bytes.as_ptr(), input.as_ptr(), "decoded bytes start where the input does");
    assert_eq!(Some(d.ip.version), input.first().map(|b| b >> 4));
    assert!(d.ip.base_header_len <= d.ip.header_len, "base header past the headers");
    assert!(d.ip.header_len <= d.bytes.len(), "headers past the packet");
    assert_within(d.bytes, d.ip_payload(), "ip_payload");
    assert_within(d.bytes, d.payload(), "payload");
    assert_within(d.bytes, d.l4_bytes(), "l4_bytes");
    assert_eq!(d.ip_payload().len(), d.bytes.len() - d.ip.header_len);
    match d.ip.version {
        4 => {
            assert!(checksum::ipv4_header_ok(&d.bytes[..d.ip.header_len]), "accepted a bad header sum");
            assert_eq!(d.ip.header_len, d.ip.base_header_len);
        }
        _ => assert_eq!(d.ip.base_header_len, 40),
    }
    assert_eq!(d.ip.fragment.is_some(), d.transport == Transport::Fragment, "fragment flag vs transport");
    if let Some(f) = d.ip.fragment {
        assert!(f.more || f.offset != 0, "a fragment that is not one");
        assert_eq!((d.ip.frag_offset, d.ip.flag_mf), (f.offset, f.more));
        if d.ip.version == 6 {
            assert!(f.v6_fragment_header + 8 <= d.bytes.len(), "fragment header past the packet");
            assert!(f.v6_next_header_field < f.v6_fragment_header || f.v6_next_header_field == 6);
        }
    }
}

/// The transport layer: offsets in order and inside the packet.
fn check_transport(d: &Decoded<'_>) {
    let len = d.bytes.len();
    match &d.transport {
        Transport::Tcp(t) => {
            assert_eq!(t.offset, d.ip.header_len);
            assert!(
                (20..=60).contains(&t.header_len) && t.header_len % 4 == 0,
                "TCP header {}",
                t.header_len
            );
            assert_eq!(t.payload_offset, t.offset + t.header_len);
            assert_eq!(t.payload_offset + t.payload_len, len, "TCP payload ends at the packet end");
            assert_eq!(d.payload().len(), t.payload_len);
            let expected =
                t.payload_len as u64 + u64::from(t.has(tcp_flags::SYN)) + u64::from(t.has(tcp_flags::FIN));
            assert_eq!(u64::from(t.seq_len()), expected, "seq_len");
            assert_eq!(t.flags, d.bytes[t.offset + 13]);
            let _ = checksum::transport_ok(d.ip.src, d.ip.dst, proto::TCP, d.l4_bytes());
        }
        Transport::Udp(u) => {
            assert_eq!(u.offset, d.ip.header_len);
            assert_eq!(u.payload_offset, u.offset + 8);
            assert!(u.length >= 8 && u.payload_offset + u.payload_len <= len);
            assert_eq!(usize::from(u.length) - 8, u.payload_len);
            assert_eq!(d.payload().len(), u.payload_len);
            let _ = checksum::transport_ok(d.ip.src, d.ip.dst, proto::UDP, d.l4_bytes());
        }
        Transport::Icmp(i) => {
            assert_eq!(i.offset, d.ip.header_len);
            assert!(i.payload_offset == i.offset + 4 && i.payload_offset <= len);
            assert_eq!(i.v6, d.ip.proto == proto::ICMPV6);
            assert_eq!(d.payload().len(), len - i.payload_offset);
        }
        Transport::Fragment | Transport::Other => assert_eq!(d.payload(), d.ip_payload()),
    }
    assert_eq!(d.tcp().is_some(), matches!(d.transport, Transport::Tcp(_)));
    assert_eq!(d.udp().is_some(), matches!(d.transport, Transport::Udp(_)));
}

/// Rebuilding the segment with the forge gives back the decoded fields.
fn check_forge_round_trip(d: &Decoded<'_>, t: &crate::wire::TcpInfo) {
    let options = &d.bytes[t.offset + TCP_MIN_HEADER_LEN..t.payload_offset];
    let mut seg = TcpSegment::new(d.ip.src, t.src_port, d.ip.dst, t.dst_port);
    seg.seq = t.seq;
    seg.ack = t.ack;
    seg.flags = t.flags;
    seg.window = t.window;
    seg.urgent = t.urgent;
    seg.options = options;
    seg.payload = d.payload();
    seg.ttl = d.ip.ttl;
    let built = seg.build();
    let Ok(r) = decode(&built) else { panic!("a forged segment does not decode") };
    let Some(rt) = r.tcp() else { panic!("a forged segment is not TCP") };
    assert_eq!(
        (rt.src_port, rt.dst_port, rt.seq, rt.ack, rt.flags, rt.window, rt.urgent),
        (t.src_port, t.dst_port, t.seq, t.ack, t.flags, t.window, t.urgent)
    );
    assert_eq!((rt.header_len, &rt.options, r.payload()), (t.header_len, &t.options, d.payload()));
    assert!(checksum::transport_ok(r.ip.src, r.ip.dst, proto::TCP, r.l4_bytes()), "forged TCP checksum");
}

/// Valid packets of every kind the decoder walks, mode byte 0.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let (a, b) = (v4(10, 0, 0, 1), v4(10, 0, 0, 2));
    let (a6, b6) =
        (IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)));
    // MSS, NOP, window scale, SACK permitted, timestamps.
    let opts = [2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0];
    let mut out = Vec::new();
    for (s, d) in [(a, b), (a6, b6)] {
        let mut seg = TcpSegment::new(s, 40000, d, 80);
        seg.seq = SeqNumber(1000);
        seg.flags = tcp_flags::SYN;
        seg.options = &opts;
        out.push(seg.build());
        seg.flags = tcp_flags::PSH | tcp_flags::ACK;
        seg.options = &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        seg.payload = b"GET / HTTP/1.0\r\n\r\n";
        let whole = seg.build();
        out.extend(fragment(&whole, &[16], 7));
        out.push(whole);
        out.push(udp_packet(s, 5353, d, 53, b"query"));
        out.push(icmp_echo(s, d, 1, 1, b"ping"));
    }
    out.push(v4_with_options(a, b));
    out.push(v6_with_extension_headers(a6, b6));
    out.into_iter().map(|p| [&[0u8][..], &p].concat()).collect()
}

/// A UDP datagram whose IPv4 header carries a record-route option.
fn v4_with_options(a: IpAddr, b: IpAddr) -> Vec<u8> {
    let mut p = udp_packet(a, 1, b, 2, b"opt");
    let rr = [7u8, 7, 4, 0, 0, 0, 0, 1];
    p.splice(20..20, rr);
    set_ipv4_header_len(&mut p, 28).expect("28 bytes of header");
    let total = p.len() as u16;
    let mut h = Ipv4::new_checked(&mut p[..]).expect("IPv4");
    h.set_total_len(total);
    h.fill_checksum();
    p
}

/// A UDP datagram behind hop-by-hop and destination-options headers.
fn v6_with_extension_headers(a: IpAddr, b: IpAddr) -> Vec<u8> {
    let mut p = udp_packet(a, 1, b, 2, b"ext");
    let hop = [60u8, 0, 1, 4, 0, 0, 0, 0];
    let dst = [proto::UDP, 0, 1, 4, 0, 0, 0, 0];
    p.splice(IPV6_HEADER_LEN..IPV6_HEADER_LEN, hop.into_iter().chain(dst));
    let len = (p.len() - IPV6_HEADER_LEN) as u16;
    let mut h = Ipv6::new_checked(&mut p[..]).expect("IPv6");
    h.set_next_header(0);
    h.set_payload_len(len);
    p
}
