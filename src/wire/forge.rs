//! Building packets: the TCP RSTs sluice forges for `flow:reset()` and
//! `flow:halfreset()`, and (for tests, fixtures and benchmarks) arbitrary
//! TCP/UDP segments over IPv4 or IPv6.

use std::net::IpAddr;

use super::checksum;
use super::proto;
use super::seq::SeqNumber;
use super::tcp_flags;

/// The fields of a TCP segment to build.
#[derive(Debug, Clone)]
pub struct TcpSegment<'a> {
    /// Source address (IPv4 or IPv6; must match `dst`).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNumber,
    /// Acknowledgment number.
    pub ack: SeqNumber,
    /// Flag bits.
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Raw TCP options (padded to 4 bytes by the builder).
    pub options: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 identification.
    pub ip_id: u16,
}

impl<'a> TcpSegment<'a> {
    /// A segment with common defaults: no options, window 65535, TTL 64.
    pub fn new(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Self {
        TcpSegment {
            src,
            dst,
            src_port,
            dst_port,
            seq: SeqNumber(0),
            ack: SeqNumber(0),
            flags: 0,
            window: 65535,
            urgent: 0,
            options: &[],
            payload: &[],
            ttl: 64,
            ip_id: 0,
        }
    }

    /// Serialises the segment into a full IP packet with correct checksums.
    pub fn build(&self) -> Vec<u8> {
        let opt_len = self.options.len().div_ceil(4) * 4;
        let tcp_len = 20 + opt_len + self.payload.len();
        let mut tcp = Vec::with_capacity(tcp_len);
        tcp.extend_from_slice(&self.src_port.to_be_bytes());
        tcp.extend_from_slice(&self.dst_port.to_be_bytes());
        tcp.extend_from_slice(&self.seq.0.to_be_bytes());
        tcp.extend_from_slice(&self.ack.0.to_be_bytes());
        tcp.push((((20 + opt_len) / 4) as u8) << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&self.window.to_be_bytes());
        tcp.extend_from_slice(&[0, 0]);
        tcp.extend_from_slice(&self.urgent.to_be_bytes());
        tcp.extend_from_slice(self.options);
        tcp.resize(20 + opt_len, 0);
        tcp.extend_from_slice(self.payload);
        let c = checksum::transport(self.src, self.dst, proto::TCP, &tcp);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        ip_packet(self.src, self.dst, proto::TCP, self.ttl, self.ip_id, &tcp)
    }
}

/// Builds a UDP datagram over IPv4 or IPv6 with correct checksums.
pub fn udp_packet(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut udp = Vec::with_capacity(len);
    udp.extend_from_slice(&src_port.to_be_bytes());
    udp.extend_from_slice(&dst_port.to_be_bytes());
    udp.extend_from_slice(&(len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut c = checksum::transport(src, dst, proto::UDP, &udp);
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    ip_packet(src, dst, proto::UDP, 64, 0, &udp)
}

/// Wraps a transport segment in an IPv4 (DF set) or IPv6 header.
pub fn ip_packet(src: IpAddr, dst: IpAddr, protocol: u8, ttl: u8, ip_id: u16, l4: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + l4.len()) as u16;
            let mut p = Vec::with_capacity(20 + l4.len());
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&ip_id.to_be_bytes());
            p.extend_from_slice(&[0x40, 0, ttl, protocol, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let c = checksum::ipv4_header(&p);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p.extend_from_slice(l4);
            p
        }
        _ => {
            let s6 = match src {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            let d6 = match dst {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            let mut p = Vec::with_capacity(40 + l4.len());
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            p.push(protocol);
            p.push(ttl);
            p.extend_from_slice(&s6.octets());
            p.extend_from_slice(&d6.octets());
            p.extend_from_slice(l4);
            p
        }
    }
}

/// Builds the RST that sluice sends to `dst` on behalf of `src`, with the
/// sequence number `dst` expects next (RFC 5961: only an exact match resets).
pub fn rst(
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
    seq: SeqNumber,
    ack: Option<SeqNumber>,
) -> Vec<u8> {
    let mut seg = TcpSegment::new(src, src_port, dst, dst_port);
    seg.seq = seq;
    seg.window = 0;
    seg.flags = tcp_flags::RST;
    if let Some(a) = ack {
        seg.ack = a;
        seg.flags |= tcp_flags::ACK;
    }
    seg.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode::{decode, v4, Transport};

    #[test]
    fn built_segment_decodes_and_verifies() {
        let mut s = TcpSegment::new(v4(10, 0, 0, 1), 1234, v4(10, 0, 0, 2), 80);
        s.seq = SeqNumber(7);
        s.flags = tcp_flags::ACK | tcp_flags::PSH;
        s.payload = b"hello";
        s.options = &[1, 1, 1];
        let p = s.build();
        let d = decode(&p).expect("decodes");
        let Transport::Tcp(t) = &d.transport else { panic!("not tcp") };
        assert_eq!(t.seq, SeqNumber(7));
        assert_eq!(d.payload(), b"hello");
        assert!(checksum::transport_ok(d.ip.src, d.ip.dst, 6, d.l4_bytes()));
    }

    #[test]
    fn rst_v6_verifies() {
        let a: IpAddr = "fd00::1".parse().unwrap();
        let b: IpAddr = "fd00::2".parse().unwrap();
        let p = rst(a, 1, b, 2, SeqNumber(99), Some(SeqNumber(5)));
        let d = decode(&p).expect("decodes");
        let t = d.tcp().expect("tcp");
        assert!(t.has(tcp_flags::RST | tcp_flags::ACK));
        assert!(checksum::transport_ok(d.ip.src, d.ip.dst, 6, d.l4_bytes()));
    }

    #[test]
    fn udp_verifies() {
        let p = udp_packet(v4(1, 1, 1, 1), 53, v4(2, 2, 2, 2), 5353, b"q");
        let d = decode(&p).expect("decodes");
        assert_eq!(d.payload(), b"q");
        assert!(checksum::transport_ok(d.ip.src, d.ip.dst, 17, d.l4_bytes()));
    }
}
