//! Injection drivers: raw socket and pcap writer. (Being written.)
