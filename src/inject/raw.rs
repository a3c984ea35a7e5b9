//! Raw-socket injector: sends the IP packets sluice forges (TCP RSTs) exactly
//! as built, IPv4 through `IPPROTO_RAW` (which implies `IP_HDRINCL`) and IPv6
//! through `IPPROTO_RAW` on `AF_INET6` (Linux then takes the full IPv6 header
//! from the buffer). Every socket carries the firewall mark so the queue rule
//! (`-m mark ! --mark M`) never queues sluice's own packets again.
//!
//! A failed send is logged and counted, never fatal: the flow is already
//! dropped, the RST is a courtesy to the endpoints.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Default firewall mark of forged packets (`--mark`): "5e1ce", sluice in hex-speak.
pub const DEFAULT_MARK: u32 = 0x5e1ce;

/// Counters of the injector (read by the stats socket).
#[derive(Debug, Default)]
pub struct InjectStats {
    /// Packets sent.
    pub sent: AtomicU64,
    /// Sends that failed (or packets that were not IP).
    pub errors: AtomicU64,
}

/// Sends forged IPv4 and IPv6 packets.
pub struct RawInjector {
    v4: Socket,
    v6: Option<Socket>,
    stats: std::sync::Arc<InjectStats>,
}

impl RawInjector {
    /// Opens the raw sockets with firewall mark `mark`. IPv6 is optional (a
    /// host with IPv6 disabled still gets IPv4 resets).
    pub fn new(mark: u32, stats: std::sync::Arc<InjectStats>) -> io::Result<Self> {
        let v4 = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
        v4.set_mark(mark)?;
        let v6 = match Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW))) {
            Ok(s) => {
                s.set_mark(mark)?;
                Some(s)
            }
            Err(e) => {
                tracing::warn!("no IPv6 raw socket ({e}); IPv6 resets will not be sent");
                None
            }
        };
        Ok(RawInjector { v4, v6, stats })
    }

    /// Sends one IP packet to the destination in its header. Errors are
    /// logged and counted.
    pub fn send(&self, packet: &[u8]) {
        match self.try_send(packet) {
            Ok(()) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("sending a forged packet failed: {e}");
            }
        }
    }

    fn try_send(&self, packet: &[u8]) -> io::Result<()> {
        let dst = destination(packet)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "forged packet is not IPv4/IPv6"))?;
        let sock = match dst {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => self.v6.as_ref().ok_or_else(|| io::Error::other("no IPv6 raw socket"))?,
        };
        // Port 0: raw sockets ignore it (IPv6 raw would read it as the protocol).
        let n = sock.send_to(packet, &SockAddr::from(SocketAddr::new(dst, 0)))?;
        if n != packet.len() {
            return Err(io::Error::other(format!("short send: {n} of {} bytes", packet.len())));
        }
        Ok(())
    }
}

/// The destination address in an IP header.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    crate::wire::header::addresses(packet).map(|(_, dst)| dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::forge::udp_packet;

    #[test]
    fn destination_of_forged_packets() {
        let a: IpAddr = "10.200.1.1".parse().unwrap();
        let b: IpAddr = "10.200.2.2".parse().unwrap();
        assert_eq!(destination(&udp_packet(a, 1, b, 2, b"x")), Some(b));
        let a6: IpAddr = "fd00:200:1::1".parse().unwrap();
        let b6: IpAddr = "fd00:200:2::2".parse().unwrap();
        assert_eq!(destination(&udp_packet(a6, 1, b6, 2, b"x")), Some(b6));
        assert_eq!(destination(&[0x45, 0, 0]), None);
        assert_eq!(destination(&[]), None);
        assert_eq!(destination(&[0x20; 40]), None);
    }
}
