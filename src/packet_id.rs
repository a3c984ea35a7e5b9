//! The driver's handle for a packet (NFQUEUE packet id, pcap record
//! index): what verdicts refer to. A leaf, so the defragmenter and the
//! engine can both name it without depending on each other.

/// The driver's handle for a packet.
pub type PacketId = u64;
