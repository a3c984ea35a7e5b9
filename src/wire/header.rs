//! Named writes of IPv4, IPv6, TCP and UDP header fields in packet bytes:
//! the one place outside the decoder and the builder that knows where each
//! field sits (RFC 791 section 3.1, RFC 8200 section 3, RFC 9293 section 3.1,
//! RFC 768).
//!
//! Reading goes through [`decode`](super::decode) (etherparse underneath);
//! these views are for the code that rewrites a packet it already holds: the
//! defragmenter's reassembled header, urgent-pointer normalisation, the
//! fragment builder, and the tests and fixtures that craft odd packets. Each
//! view checks its length once, in `new_checked`, so its accessors cannot
//! index out of bounds. Views over `&[u8]` read, over `&mut [u8]` or
//! `Vec<u8>` they also write (as smoltcp's `wire` does).

use std::net::IpAddr;

use super::{checksum, proto};

/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// Length of a TCP header without options.
pub const TCP_MIN_HEADER_LEN: usize = 20;
/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;

/// The source and destination addresses of an IPv4 or IPv6 packet, read
/// from its fixed header alone (options, extension headers and lengths are
/// not looked at: this works on any packet with a whole fixed header).
pub fn addresses(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match packet.first()? >> 4 {
        4 => {
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        6 => {
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        _ => None,
    }
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// The IPv4 header at the start of a packet (`&[u8]` to read, `&mut [u8]`
/// or `Vec<u8>` to rewrite).
#[derive(Debug)]
pub struct Ipv4<T> {
    packet: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> Ipv4<T> {
    /// The header of `packet`, if it is IPv4 and holds its whole header.
    pub fn new_checked(packet: T) -> Option<Self> {
        let first = *packet.as_ref().first()?;
        let header_len = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN || header_len > packet.as_ref().len() {
            return None;
        }
        Some(Ipv4 { packet, header_len })
    }

    /// The header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.packet.as_ref()[..self.header_len]
    }

    /// The total length field (header and payload).
    pub fn total_len(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[2], h[3]])
    }

    /// The flags and fragment offset as one 16-bit field (RB, DF, MF, then
    /// the offset in 8-byte units).
    pub fn fragment_field(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[6], h[7]])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[10], h[11]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4<T> {
    fn header_mut(&mut self) -> &mut [u8] {
        &mut self.packet.as_mut()[..self.header_len]
    }

    /// Sets the total length (header and payload).
    pub fn set_total_len(&mut self, len: u16) {
        put_u16(self.header_mut(), 2, len);
    }

    /// Sets the identification.
    pub fn set_identification(&mut self, id: u16) {
        put_u16(self.header_mut(), 4, id);
    }

    /// Sets the flags and fragment offset field.
    pub fn set_fragment_field(&mut self, field: u16) {
        put_u16(self.header_mut(), 6, field);
    }

    /// Clears MF and the fragment offset, keeping RB and DF: the header of a
    /// whole datagram.
    pub fn clear_fragmentation(&mut self) {
        let kept = self.fragment_field() & 0xc000;
        self.set_fragment_field(kept);
    }

    /// Clears the don't-fragment flag.
    pub fn clear_dont_fragment(&mut self) {
        let field = self.fragment_field() & !0x4000;
        self.set_fragment_field(field);
    }

    /// Sets the protocol of the payload.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.header_mut()[9] = protocol;
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.header_mut()[8] = ttl;
    }

    /// Sets the header checksum field as given (0 leaves it to a NIC, or
    /// damages it, as a test wants).
    pub fn set_checksum(&mut self, sum: u16) {
        put_u16(self.header_mut(), 10, sum);
    }

    /// Recomputes the header checksum over the header as it now stands.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::ipv4_header(self.header());
        self.set_checksum(sum);
    }
}

/// Sets the version (4) and IHL of the IPv4 header at the start of `packet`
/// to `header_len` bytes (a multiple of 4, 20 to 60), after options were
/// added or removed.
pub fn set_ipv4_header_len(packet: &mut [u8], header_len: usize) -> Option<()> {
    if header_len % 4 != 0 || !(IPV4_MIN_HEADER_LEN..=60).contains(&header_len) || header_len > packet.len() {
        return None;
    }
    *packet.first_mut()? = 0x40 | (header_len / 4) as u8;
    Some(())
}

/// The fixed IPv6 header at the start of a packet.
#[derive(Debug)]
pub struct Ipv6<T> {
    packet: T,
}

impl<T: AsRef<[u8]>> Ipv6<T> {
    /// The header of `packet`, if it is IPv6 and holds its fixed header.
    pub fn new_checked(packet: T) -> Option<Self> {
        let b = packet.as_ref();
        if b.first()? >> 4 != 6 || b.len() < IPV6_HEADER_LEN {
            return None;
        }
        Some(Ipv6 { packet })
    }

    /// The payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        let h = self.packet.as_ref();
        u16::from_be_bytes([h[4], h[5]])
    }

    /// The next header (the first extension header or the transport).
    pub fn next_header(&self) -> u8 {
        self.packet.as_ref()[6]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6<T> {
    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        put_u16(self.packet.as_mut(), 4, len);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, next: u8) {
        self.packet.as_mut()[6] = next;
    }
}

/// A TCP segment (header and payload) inside an IP packet, with the
/// addresses its checksum covers.
#[derive(Debug)]
pub struct Tcp<T> {
    segment: T,
    src: IpAddr,
    dst: IpAddr,
}

impl<T: AsRef<[u8]>> Tcp<T> {
    /// The segment `segment` (from the TCP header to the end of the packet)
    /// sent from `src` to `dst`, if it holds its whole header.
    pub fn new_checked(segment: T, src: IpAddr, dst: IpAddr) -> Option<Self> {
        let b = segment.as_ref();
        let len = usize::from(b.get(12)? >> 4) * 4;
        if len < TCP_MIN_HEADER_LEN || len > b.len() {
            return None;
        }
        Some(Tcp { segment, src, dst })
    }

    /// The flag bits (see [`tcp_flags`](super::tcp_flags)).
    pub fn flags(&self) -> u8 {
        self.segment.as_ref()[13]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let s = self.segment.as_ref();
        u16::from_be_bytes([s[16], s[17]])
    }
}

impl<'a> Tcp<&'a mut [u8]> {
    /// The TCP segment of a whole (unfragmented) IP packet.
    pub fn of_packet(packet: &'a mut [u8]) -> Option<Self> {
        let (offset, src, dst) = {
            let d = super::decode::decode_ignoring_ip_checksum(packet).ok()?;
            (d.tcp()?.offset, d.ip.src, d.ip.dst)
        };
        Tcp::new_checked(packet.get_mut(offset..)?, src, dst)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tcp<T> {
    /// Sets the acknowledgment number.
    pub fn set_ack(&mut self, ack: u32) {
        put_u32(self.segment.as_mut(), 8, ack);
    }

    /// Sets the flag bits.
    pub fn set_flags(&mut self, flags: u8) {
        self.segment.as_mut()[13] = flags;
    }

    /// Sets the window field (unscaled).
    pub fn set_window(&mut self, window: u16) {
        put_u16(self.segment.as_mut(), 14, window);
    }

    /// Sets the checksum field as given (to damage it, or to leave it
    /// partial as a NIC-offloading host does).
    pub fn set_checksum(&mut self, sum: u16) {
        put_u16(self.segment.as_mut(), 16, sum);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, urgent: u16) {
        put_u16(self.segment.as_mut(), 18, urgent);
    }

    /// Recomputes the checksum over the segment as it now stands.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::transport(self.src, self.dst, proto::TCP, self.segment.as_ref());
        self.set_checksum(sum);
    }
}

/// A UDP datagram (header and payload) inside an IP packet.
#[derive(Debug)]
pub struct Udp<T> {
    datagram: T,
}

impl<T: AsRef<[u8]>> Udp<T> {
    /// The datagram `datagram` (from the UDP header on), if it holds its header.
    pub fn new_checked(datagram: T) -> Option<Self> {
        if datagram.as_ref().len() < UDP_HEADER_LEN {
            return None;
        }
        Some(Udp { datagram })
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let d = self.datagram.as_ref();
        u16::from_be_bytes([d[6], d[7]])
    }
}

impl<'a> Udp<&'a mut [u8]> {
    /// The UDP datagram of a whole (unfragmented) IP packet.
    pub fn of_packet(packet: &'a mut [u8]) -> Option<Self> {
        let offset = super::decode::decode_ignoring_ip_checksum(packet).ok()?.udp()?.offset;
        Udp::new_checked(packet.get_mut(offset..)?)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Udp<T> {
    /// Sets the checksum field as given.
    pub fn set_checksum(&mut self, sum: u16) {
        put_u16(self.datagram.as_mut(), 6, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode::{decode, v4};
    use crate::wire::forge::{udp_packet, TcpSegment};
    use crate::wire::tcp_flags::{ACK, PSH, URG};
    use crate::wire::SeqNumber;

    #[test]
    fn tcp_fields_land_where_the_decoder_reads_them() {
        let mut p = TcpSegment::new(v4(10, 0, 0, 1), 1, v4(10, 0, 0, 2), 2).build();
        let mut t = Tcp::of_packet(&mut p).unwrap();
        t.set_ack(9);
        t.set_flags(ACK | PSH | URG);
        t.set_window(513);
        t.set_urgent(3);
        t.fill_checksum();
        let d = decode(&p).unwrap();
        let t = d.tcp().unwrap();
        assert_eq!(
            (t.seq, t.ack, t.flags, t.window, t.urgent),
            (SeqNumber(0), SeqNumber(9), ACK | PSH | URG, 513, 3)
        );
        assert!(checksum::transport_ok(d.ip.src, d.ip.dst, proto::TCP, d.l4_bytes()));
    }

    #[test]
    fn ipv4_fields_land_where_the_decoder_reads_them() {
        let mut p = TcpSegment::new(v4(10, 0, 0, 1), 1, v4(10, 0, 0, 2), 2).build();
        let len = p.len() as u16;
        let mut h = Ipv4::new_checked(&mut p).unwrap();
        assert_eq!(h.header_len(), 20);
        h.set_identification(0x1234);
        h.set_ttl(3);
        h.set_total_len(len);
        h.clear_dont_fragment();
        h.fill_checksum();
        let d = decode(&p).expect("header checksum verifies");
        assert_eq!((d.ip.id, d.ip.ttl, d.ip.flag_df), (0x1234, 3, false));
        Ipv4::new_checked(&mut p).unwrap().set_checksum(0);
        assert!(decode(&p).is_err(), "a zeroed header checksum is wrong");
    }

    #[test]
    fn short_or_foreign_bytes_give_no_view() {
        assert!(Ipv4::new_checked(&[0x45; 19][..]).is_none());
        assert!(Ipv4::new_checked(&[0x46; 20][..]).is_none(), "IHL past the bytes");
        assert!(Ipv4::new_checked(&[0x60; 40][..]).is_none());
        assert!(Ipv6::new_checked(&[0x60; 39][..]).is_none());
        assert!(Tcp::new_checked(&[0; 20][..], v4(1, 1, 1, 1), v4(2, 2, 2, 2)).is_none());
        assert!(Udp::new_checked(&[0; 7][..]).is_none());
    }

    #[test]
    fn udp_checksum_field() {
        let mut p = udp_packet(v4(1, 1, 1, 1), 53, v4(2, 2, 2, 2), 53, b"q");
        let mut u = Udp::of_packet(&mut p).unwrap();
        let good = u.checksum();
        u.set_checksum(good ^ 0x5a5a);
        assert_eq!(decode(&p).unwrap().udp().unwrap().checksum, good ^ 0x5a5a);
    }
}
