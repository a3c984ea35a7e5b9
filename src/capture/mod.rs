//! Capture drivers: pcap files and NFQUEUE. (Being written.)

pub mod nfqueue;
