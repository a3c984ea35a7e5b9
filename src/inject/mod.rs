//! Injection drivers: where verdicts and forged packets go.
//!
//! * [`pcap_writer`] writes what would have passed to an output pcap (`sluice pcap`).
//! * [`raw`] sends forged packets through marked raw sockets (`sluice run`).

pub mod pcap_writer;
pub mod raw;
