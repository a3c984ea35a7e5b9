//! Injection drivers: where verdicts and forged packets go.
//!
//! * [`pcap_writer`] writes what would have passed to an output pcap (`sluice pcap`).

pub mod pcap_writer;
