//! Capture drivers: where packets come from.
//!
//! * [`pcap`] reads pcap and pcapng files for `sluice pcap` (regular files
//!   are mapped, records handed out as slices of the map);
//!   [`link`] finds the IP packet in each link type's frames.
//! * [`offload`] finds the hosts of a capture that left checksums to
//!   their NIC (`sluice pcap --checksums auto`).
//! * [`nfqueue`] binds NFQUEUE queues for `sluice run`.

mod file_map;
mod frame;
pub mod link;
mod map_pager;
pub mod nfqueue;
pub mod offload;
pub mod pcap;
