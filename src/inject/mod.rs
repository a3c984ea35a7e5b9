//! Injection drivers: raw socket and pcap writer. (Being written.)

pub mod raw;
