//! IPv4 and IPv6 fragment reassembly. (Placeholder with the final API; the
//! real implementation lands from the defrag branch.)

use std::time::Duration;

use crate::engine::PacketId;
use crate::stats::Counter;
use crate::time::Timestamp;
use crate::wire::Decoded;

/// Reassembly limits.
#[derive(Debug, Clone, Copy)]
pub struct DefragLimits {
    /// Datagrams in reassembly at once.
    pub max_datagrams: usize,
    /// Bytes held at once.
    pub max_bytes: usize,
    /// Time allowed from first fragment to completion.
    pub timeout: Duration,
}

/// Result of pushing a fragment.
#[derive(Debug)]
pub enum DefragOutcome {
    /// Held.
    Held,
    /// Complete.
    Complete {
        /// The datagram.
        datagram: Vec<u8>,
        /// Fragment ids.
        fragments: Vec<PacketId>,
    },
    /// Rejected.
    Rejected {
        /// Ids to drop.
        drop: Vec<PacketId>,
        /// Counter.
        reason: Counter,
    },
}

/// The reassembler.
#[derive(Debug)]
pub struct Defragmenter;

impl Defragmenter {
    /// New.
    pub fn new(_limits: DefragLimits) -> Self {
        Defragmenter
    }
    /// Push.
    pub fn push(&mut self, id: PacketId, _pkt: &Decoded<'_>, _now: Timestamp) -> DefragOutcome {
        DefragOutcome::Rejected { drop: vec![id], reason: Counter::DropFragment }
    }
    /// Expire.
    pub fn expire(&mut self, _now: Timestamp) -> Vec<PacketId> {
        Vec::new()
    }
    /// Drain.
    pub fn drain(&mut self) -> Vec<PacketId> {
        Vec::new()
    }
    /// Held datagrams.
    pub fn held_datagrams(&self) -> usize {
        0
    }
    /// Held bytes.
    pub fn held_bytes(&self) -> usize {
        0
    }
}
