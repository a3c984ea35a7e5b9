//! Which worker a packet goes to: a hash of its flow key, which is the
//! same for both directions of a connection ([`FlowKey`] puts the lower
//! endpoint first), so a connection stays on one worker. Packets with no
//! flow (ICMP, other protocols, undecodable ones) go to worker 0.

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
}
