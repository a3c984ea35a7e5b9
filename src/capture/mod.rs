//! Capture drivers: where packets come from.
//!
//! * [`pcap`] reads pcap and pcapng files for `sluice pcap`;
//!   [`link`] finds the IP packet in each link type's frames.
//! * [`offload`] finds the hosts of a capture that left checksums to
//!   their NIC (`sluice pcap --checksums auto`).
//! * [`nfqueue`] binds NFQUEUE queues for `sluice run`.

pub mod link;
pub mod nfqueue;
pub mod offload;
pub mod pcap;
