//! Capture drivers: where packets come from.
//!
//! * [`pcap`] reads pcap and pcapng files for `sluice pcap`;
//!   [`link`] finds the IP packet in each link type's frames.
//! * [`nfqueue`] binds NFQUEUE queues for `sluice run`.

pub mod link;
pub mod nfqueue;
pub mod pcap;
