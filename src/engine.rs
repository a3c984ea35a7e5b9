//! The sans-IO core. [`Engine::process`] takes one IP packet, its id and its
//! timestamp, and appends to an [`Output`] the verdicts it can give now and the
//! packets it forged. [`Engine::tick`] runs timeouts on packet time. Nothing
//! here touches a socket or a clock: NFQUEUE and pcap are drivers around it.

use std::sync::Arc;

use crate::config::EngineConfig;
use crate::inspect::Inspector;
use crate::stats::Stats;
use crate::time::Timestamp;

/// The driver's handle for a packet (NFQUEUE packet id, pcap record index).
pub type PacketId = u64;

/// A packet handed to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The driver's handle; verdicts refer to it.
    pub id: PacketId,
    /// The IP packet (no link-layer header).
    pub data: &'a [u8],
    /// Packet time.
    pub time: Timestamp,
    /// The kernel has not computed the transport checksum yet (locally
    /// generated or GSO packets from NFQUEUE): checksums must not be verified.
    pub checksum_unverified: bool,
}

/// The fate of one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through unchanged.
    Accept,
    /// Discard it.
    Drop,
    /// Let it through with these bytes instead (a normalised packet).
    AcceptModified(Vec<u8>),
}

/// Something the engine produced, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emitted {
    /// The verdict for a packet (now or, for held fragments, later).
    Verdict(PacketId, Verdict),
    /// A packet sluice forged (an IP packet, e.g. a TCP RST).
    Forged(Vec<u8>),
}

/// What the engine emitted during one call.
#[derive(Debug, Default)]
pub struct Output {
    /// Verdicts and forged packets in order.
    pub items: Vec<Emitted>,
}

impl Output {
    /// An empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties it for reuse.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub(crate) fn verdict(&mut self, id: PacketId, v: Verdict) {
        self.items.push(Emitted::Verdict(id, v));
    }

    pub(crate) fn forged(&mut self, p: Vec<u8>) {
        self.items.push(Emitted::Forged(p));
    }
}

/// The engine: defragmenter, flow table, TCP tracking, reassembly and rules.
pub struct Engine<I: Inspector> {
    config: EngineConfig,
    inspector: I,
    stats: Arc<Stats>,
}

impl<I: Inspector> Engine<I> {
    /// An engine with fresh counters.
    pub fn new(config: EngineConfig, inspector: I) -> Self {
        Self::with_stats(config, inspector, Arc::new(Stats::new()))
    }

    /// An engine counting into `stats`.
    pub fn with_stats(config: EngineConfig, inspector: I, stats: Arc<Stats>) -> Self {
        Engine { config, inspector, stats }
    }

    /// Handles one packet. Every packet gets exactly one verdict, now or later
    /// (held IP fragments), and never none.
    pub fn process(&mut self, pkt: Packet<'_>, out: &mut Output) {
        let _ = &self.config;
        out.verdict(pkt.id, Verdict::Accept);
    }

    /// Runs timeouts up to `now` (packet time).
    pub fn tick(&mut self, now: Timestamp, out: &mut Output) {
        let _ = (now, out);
    }

    /// End of input or shutdown: drops held fragments (every held packet gets
    /// its verdict) and ends every connection.
    pub fn finish(&mut self, now: Timestamp, out: &mut Output) {
        let _ = (now, out);
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The rules.
    pub fn inspector(&self) -> &I {
        &self.inspector
    }

    /// The rules, mutably.
    pub fn inspector_mut(&mut self) -> &mut I {
        &mut self.inspector
    }

    /// Swaps in new rules (reload); flows keep their state.
    pub fn replace_inspector(&mut self, inspector: I) -> I {
        std::mem::replace(&mut self.inspector, inspector)
    }
}
