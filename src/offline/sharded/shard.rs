//! Which worker a packet goes to: a hash of its flow key, which is the
//! same for both directions of a connection ([`FlowKey`] puts the lower
//! endpoint first), so a connection stays on one worker. Packets with no
//! flow (ICMP, other protocols, undecodable ones) go to worker 0.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flow::key::Endpoint;
use crate::flow::{FlowKey, L4Proto};
use crate::wire::decode::decode_ignoring_ip_checksum;
use crate::wire::{Decoded, Transport};

/// What the dispatcher does with an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// A fragment: reassembled before it is sharded.
    Fragment,
    /// Anything else: to this worker.
    Worker(usize),
}

/// Shards IP packets over `workers` workers.
#[derive(Debug, Clone)]
pub(super) struct Sharder {
    workers: usize,
    /// Fixed seeds: the same packet goes to the same worker on every run.
    hasher: ahash::RandomState,
}

impl Sharder {
    /// A sharder over `workers` (at least 1).
    pub(super) fn new(workers: usize) -> Self {
        Sharder { workers: workers.max(1), hasher: ahash::RandomState::with_seeds(1, 2, 3, 4) }
    }

    /// Where the IP packet `ip` goes. The IPv4 header checksum is not
    /// checked here: the worker judges it (and may let it pass).
    pub(super) fn classify(&self, ip: &[u8]) -> Class {
        if let Some((proto, src, dst)) = plain_flow(ip) {
            return Class::Worker(self.worker_of_flow(proto, src, dst));
        }
        match decode_ignoring_ip_checksum(ip) {
            Ok(d) if d.ip.fragment.is_some() => Class::Fragment,
            Ok(d) => Class::Worker(self.worker_of(&d)),
            Err(_) => Class::Worker(0),
        }
    }

    /// The worker of a decoded, unfragmented packet.
    pub(super) fn worker_of(&self, d: &Decoded<'_>) -> usize {
        let (proto, sport, dport) = match &d.transport {
            Transport::Tcp(t) => (L4Proto::Tcp, t.src_port, t.dst_port),
            Transport::Udp(u) => (L4Proto::Udp, u.src_port, u.dst_port),
            _ => return 0,
        };
        let src = Endpoint { addr: d.ip.src, port: sport };
        let dst = Endpoint { addr: d.ip.dst, port: dport };
        self.worker_of_flow(proto, src, dst)
    }

    /// The worker of a flow, by its endpoints in either order.
    fn worker_of_flow(&self, proto: L4Proto, src: Endpoint, dst: Endpoint) -> usize {
        let (key, _) = FlowKey::of(proto, src, dst);
        (self.hasher.hash_one(key) % self.workers as u64) as usize
    }

    /// The worker of a reassembled datagram (worker 0 if it does not decode).
    pub(super) fn worker_of_bytes(&self, ip: &[u8]) -> usize {
        match decode_ignoring_ip_checksum(ip) {
            Ok(d) => self.worker_of(&d),
            Err(_) => 0,
        }
    }
}

/// The flow of a plain packet, read straight from its headers: IPv4
/// without options and not a fragment, or IPv6 without extension headers,
/// carrying TCP or UDP whole enough to hold its header. Most packets are
/// plain; the dispatcher shards them without decoding them (the worker
/// does). `None` for anything else, which is decoded: both ways give the
/// same flow, so a connection stays on one worker either way.
fn plain_flow(ip: &[u8]) -> Option<(L4Proto, Endpoint, Endpoint)> {
    let proto_of = |p: u8| match p {
        6 => Some((L4Proto::Tcp, 20)),
        17 => Some((L4Proto::Udp, 8)),
        _ => None,
    };
    let (proto, start, src, dst): (L4Proto, usize, IpAddr, IpAddr) = match ip.first()? >> 4 {
        4 => {
            let h = ip.get(..20)?;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            let (proto, min) = proto_of(h[9])?;
            if h[0] & 0x0f != 5 || fragment || total < 20 + min || total > ip.len() {
                return None;
            }
            let (s, d) = (<[u8; 4]>::try_from(&h[12..16]).ok()?, <[u8; 4]>::try_from(&h[16..20]).ok()?);
            (proto, 20, Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into())
        }
        6 => {
            let h = ip.get(..40)?;
            let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let (proto, min) = proto_of(h[6])?;
            if payload < min || 40 + payload > ip.len() {
                return None;
            }
            let (s, d) = (<[u8; 16]>::try_from(&h[8..24]).ok()?, <[u8; 16]>::try_from(&h[24..40]).ok()?);
            (proto, 40, Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into())
        }
        _ => return None,
    };
    let port = |at: usize| ip.get(at..at + 2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let src = Endpoint { addr: src, port: port(start)? };
    let dst = Endpoint { addr: dst, port: port(start + 2)? };
    Some((proto, src, dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode::v4;
    use crate::wire::forge::udp_packet;

    #[test]
    fn both_directions_go_to_one_worker_and_flows_spread() {
        let s = Sharder::new(4);
        let mut seen = [false; 4];
        for port in 1000..1064u16 {
            let up = udp_packet(v4(10, 0, 0, 1), port, v4(10, 0, 0, 2), 53, b"q");
            let down = udp_packet(v4(10, 0, 0, 2), 53, v4(10, 0, 0, 1), port, b"a");
            let (Class::Worker(a), Class::Worker(b)) = (s.classify(&up), s.classify(&down)) else {
                panic!("not fragments");
            };
            assert_eq!(a, b, "port {port}");
            seen[a] = true;
        }
        assert_eq!(seen, [true; 4], "64 flows use every worker");
        assert_eq!(s.classify(b"\x45garbage"), Class::Worker(0));
    }

    #[test]
    fn plain_packets_go_where_decoding_them_sends_them() {
        use crate::flow::Direction::{Down, Up};
        use crate::pcapgen::Conversation;
        let s = Sharder::new(3);
        let mut packets = Vec::new();
        for (c, v) in [("10.0.0.1:4000", "10.0.0.2:80"), ("[fd00::1]:4000", "[fd00::2]:443")] {
            for port in 0..16u16 {
                let client = c.replace("4000", &(4000 + port).to_string()).parse().unwrap();
                let mut conv = Conversation::new(client, v.parse().unwrap());
                conv.handshake().send(Up, b"hello").send(Down, b"world").udp(Up, b"dns").close();
                packets.extend(conv.into_packets().into_iter().map(|(_, p)| p));
            }
        }
        let mut plain = 0;
        for p in &packets {
            let decoded = Class::Worker(s.worker_of_bytes(p));
            assert_eq!(s.classify(p), decoded, "{p:?}");
            plain += usize::from(plain_flow(p).is_some());
        }
        assert_eq!(plain, packets.len(), "every one of these is plain");
        // An IPv4 header with options, a fragment, a cut packet: decoded.
        let mut with_options = packets[0].clone();
        with_options[0] = 0x46;
        assert!(plain_flow(&with_options).is_none());
        let mut fragment = packets[0].clone();
        fragment[6] |= 0x20;
        assert!(plain_flow(&fragment).is_none());
        assert!(plain_flow(&packets[0][..30]).is_none());
    }
}
