//! The verdict book of the engine harnesses: which packets were handed to
//! the engine, what it emitted for them, and the checks on both.

use std::collections::HashMap;

use crate::engine::{Emitted, Output, PacketId, Verdict};
use crate::stats::{Counter, Stats};
use crate::wire::{checksum, decode, proto, tcp_flags};

#[derive(Default)]
pub(super) struct Book {
    next_id: PacketId,
    verdicts: HashMap<PacketId, u32>,
    forged: u64,
    modified: u64,
}

impl Book {
    /// A fresh id for the next packet handed to the engine.
    pub(super) fn id(&mut self) -> PacketId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Takes what the engine emitted and checks each item: verdicts only for
    /// packets handed over, modified packets that decode, forged packets
    /// that are TCP RSTs with valid checksums.
    pub(super) fn collect(&mut self, out: &mut Output) {
        for item in out.items.drain(..) {
            match item {
                Emitted::Verdict(id, v) => {
                    assert!(id < self.next_id, "verdict for packet {id} never handed over");
                    *self.verdicts.entry(id).or_default() += 1;
                    if let Verdict::AcceptModified(bytes) = v {
                        self.modified += 1;
                        assert!(decode(&bytes).is_ok(), "a modified packet does not decode");
                    }
                }
                Emitted::Forged(p) => {
                    self.forged += 1;
                    check_forged(&p);
                }
            }
        }
    }

    /// After `finish`: one verdict per packet, and counters that add up.
    pub(super) fn check(&self, stats: &Stats) {
        for id in 0..self.next_id {
            let n = self.verdicts.get(&id).copied().unwrap_or(0);
            assert_eq!(n, 1, "packet {id} got {n} verdicts");
        }
        assert_eq!(stats.get(Counter::PacketsIn), self.next_id, "packets_in");
        assert_eq!(
            stats.get(Counter::Accepted) + stats.get(Counter::Dropped),
            self.next_id,
            "accepted + dropped = packets in"
        );
        assert_eq!(stats.get(Counter::Forged), self.forged, "forged counter");
        assert_eq!(stats.get(Counter::Modified), self.modified, "modified counter");
    }
}

/// A forged packet is a TCP RST with correct checksums.
fn check_forged(p: &[u8]) {
    let Ok(d) = decode(p) else { panic!("a forged packet does not decode") };
    let Some(t) = d.tcp() else { panic!("a forged packet is not TCP") };
    assert!(t.has(tcp_flags::RST), "a forged packet is not a RST");
    assert!(checksum::transport_ok(d.ip.src, d.ip.dst, proto::TCP, d.l4_bytes()), "forged RST checksum");
}
