//! Hosts that left checksums to their NIC (`sluice pcap --checksums auto`):
//! only a wrong checksum asks for its host's verdict.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::config::{Offload, OffloadHosts};

/// An engine whose finder says the server leaves TCP/UDP checksums to its
/// NIC, and counts how often it ran.
fn finder_harness() -> (Harness, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let finder = Box::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        BTreeMap::from([(server(), Offload { transport: true, ip_header: false })])
    });
    let cfg = EngineConfig { checksum_offload: OffloadHosts::found_by(finder), ..EngineConfig::default() };
    (Harness::with_config(cfg, Script::default()), runs)
}

#[test]
fn the_offloading_hosts_are_found_at_the_first_wrong_checksum_and_once() {
    let (mut h, runs) = finder_harness();
    let mut c = Conv::new(1, 2);
    for p in c.handshake() {
        h.accept(&p);
    }
    h.accept(&c.data(true, b"right "));
    h.accept(&c.data(false, b"sums "));
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a right checksum never asks");
    assert!(!h.engine.config.checksum_offload.known_yet());
    // The server's wrong sum is its NIC's business; the client's is damage.
    h.accept(&with_bad_checksum(c.data(false, b"offloaded")));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    h.drop(&with_bad_checksum(c.seg(true, c.cseq, ACK | PSH, b"insertion")));
    h.accept(&with_bad_checksum(c.data(false, b"!")));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "found once");
    assert_eq!(h.count(Counter::ChecksumOffloadUnverified), 2, "only the wrong sums it waived");
    assert_eq!(h.count(Counter::DropBadChecksum), 1);
    assert_eq!(h.engine.inspector().up, b"right ");
    // (with_bad_checksum flips a bit of each packet's last byte: wrong bytes do arrive.)
    assert_eq!(h.engine.inspector().down, b"sums offloadee ");
}
