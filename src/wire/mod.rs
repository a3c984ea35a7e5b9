//! Wire formats: zero-copy decoding of the IP packets sluice is handed, and
//! building of the packets it forges.
//!
//! Decoding goes through `etherparse` (strict length checks); the result is a
//! [`Decoded`] packet: the bytes plus the offsets and fields the rest of the
//! engine needs, so nothing is copied on the hot path.

pub mod checksum;
pub mod decode;
pub mod forge;
pub mod header;
pub mod seq;

pub use decode::{decode, DecodeError, Decoded, FragmentInfo, IcmpInfo, IpInfo, TcpInfo, Transport, UdpInfo};
pub use seq::SeqNumber;

/// IP protocol numbers sluice cares about.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

/// TCP flag bits as they sit in byte 13 of the header.
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}
