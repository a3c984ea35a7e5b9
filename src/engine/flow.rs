//! A flow table entry: who is client and server, the protocol state, and what
//! rules decided about the flow.

use std::time::Duration;

use crate::config::EngineConfig;
use crate::flow::{Direction, FlowEntry, FlowId, FlowKey};
use crate::inspect::FlowInfo;
use crate::tcp::{TcpConn, TcpState};
use crate::time::Timestamp;

use crate::tcp::{Progress, Stream};

/// Protocol state.
#[derive(Debug)]
pub(super) enum FlowKind {
    /// A TCP connection.
    Tcp(Box<TcpConn>),
    /// A UDP flow (no state beyond the entry itself).
    Udp,
}

/// What rules decided about the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Inspected normally.
    Inspect,
    /// Every later packet is dropped. `reusable`: a new SYN may start a fresh
    /// connection on the tuple (both ends were reset, so they agree it is over).
    Dropped {
        /// A new handshake may reuse the tuple.
        reusable: bool,
    },
}

/// One flow. Kept small: a million of them must fit in well under a
/// gigabyte (see `benches/flow_memory.rs`), so what rules see of it
/// ([`FlowInfo`]) is made from the key when asked, not stored.
#[derive(Debug)]
pub(super) struct Flow {
    /// The flow's key (the table holds it only here).
    key: FlowKey,
    /// Unique id (what rules see as the connection's identity).
    id: FlowId,
    /// True if the key's `lo` endpoint is the client.
    pub client_is_lo: bool,
    /// Protocol state.
    pub kind: FlowKind,
    /// Rules' decision.
    pub fate: Fate,
    /// `new_connection` was offered to rules (it fires once per connection).
    pub announced: bool,
    /// `new_connection` was accepted and `end_connection` is still owed.
    pub began: bool,
    /// When the flow expires unless refreshed.
    pub deadline: Timestamp,
    /// Progress of each direction's held stream bytes (TCP).
    pub progress: HeldProgress,
}

impl Flow {
    /// A new flow whose first packet goes from `from_lo`'s side; that side is the client.
    pub(super) fn new(id: FlowId, key: &FlowKey, from_lo: bool, kind: FlowKind, now: Timestamp) -> Self {
        Flow {
            key: *key,
            id,
            client_is_lo: from_lo,
            kind,
            fate: Fate::Inspect,
            announced: false,
            began: false,
            deadline: now,
            progress: HeldProgress::default(),
        }
    }

    /// Who is who, as rules see it.
    pub(super) fn info(&self) -> FlowInfo {
        let key = &self.key;
        let (client, server) = if self.client_is_lo { (key.lo, key.hi) } else { (key.hi, key.lo) };
        FlowInfo {
            id: self.id,
            proto: key.proto,
            src: client.addr,
            src_port: client.port,
            dst: server.addr,
            dst_port: server.port,
        }
    }

    /// Direction of a packet sent by the key's `lo` side (`from_lo`) or `hi` side.
    pub(super) fn direction(&self, from_lo: bool) -> Direction {
        if from_lo == self.client_is_lo {
            Direction::Up
        } else {
            Direction::Down
        }
    }

    /// The TCP connection, if TCP.
    pub(super) fn tcp(&self) -> Option<&TcpConn> {
        match &self.kind {
            FlowKind::Tcp(c) => Some(c),
            FlowKind::Udp => None,
        }
    }

    /// The TCP connection, mutably, if this is one.
    pub(super) fn tcp_mut(&mut self) -> Option<&mut TcpConn> {
        match &mut self.kind {
            FlowKind::Tcp(c) => Some(c),
            FlowKind::Udp => None,
        }
    }

    /// The flow's id.
    pub(super) fn id(&self) -> FlowId {
        self.id
    }

    /// Bytes this flow holds in reassembly buffers.
    pub(super) fn buffered(&self) -> usize {
        self.tcp().map_or(0, TcpConn::buffered)
    }

    /// Frees the reassembly buffers; returns the number of bytes freed.
    pub(super) fn release_buffers(&mut self) -> usize {
        match &mut self.kind {
            FlowKind::Tcp(c) => c.release_buffers(),
            FlowKind::Udp => 0,
        }
    }
}

impl FlowEntry for Flow {
    fn key(&self) -> &FlowKey {
        &self.key
    }

    fn id(&self) -> FlowId {
        self.id
    }

    /// Established connections stay: forgetting one would drop (or, picked
    /// up midstream, stop inspecting) a live stream. That includes a live
    /// connection a rule dropped without resetting it (`flow:drop()`,
    /// `flow:halfreset()`): forgotten, its next packets would start a new
    /// flow under `--midstream` and pass. Half-open connections, reset ones
    /// and UDP flows go first when the table is full (a SYN or datagram
    /// flood cannot pin the table).
    fn evictable(&self) -> bool {
        match (&self.kind, self.fate) {
            (FlowKind::Tcp(c), Fate::Inspect | Fate::Dropped { reusable: false }) => {
                c.state() != TcpState::Established
            }
            _ => true,
        }
    }

    fn deadline(&self) -> Timestamp {
        self.deadline
    }
}

/// The shortest time any flow deadline is set ahead of the packet that sets
/// it (every deadline is a packet time plus one of these timeouts): the
/// flow table's expiry relies on it (see `flow/timers.rs`).
pub(super) fn shortest_timeout(c: &EngineConfig) -> Duration {
    [c.tcp_handshake_timeout, c.tcp_established_timeout, c.tcp_closing_timeout, c.udp_timeout]
        .into_iter()
        .min()
        .unwrap_or_default()
}

/// Progress of each direction's held stream bytes (see `reclaim.rs`),
/// kept only while some direction holds bytes or islands: an idle
/// connection (most of a full table) pays 8 bytes for it.
#[derive(Debug, Default)]
pub(super) struct HeldProgress(Option<Box<[Progress; 2]>>);

impl HeldProgress {
    /// Records `dir`'s stream state after a segment (see [`Progress::update`]).
    pub(super) fn update(&mut self, dir: Direction, s: &Stream, now: Timestamp) {
        if self.0.is_none() && s.buffered() == 0 && s.islands() == 0 {
            return;
        }
        let both = self.0.get_or_insert_with(Default::default);
        both[dir.index()].update(s, now);
        if both.iter().all(Progress::idle) {
            self.0 = None;
        }
    }

    /// True if `dir`'s held bytes have made no progress for a while.
    pub(super) fn stuck(&self, dir: Direction, now: Timestamp) -> bool {
        self.0.as_ref().is_some_and(|p| p[dir.index()].stuck(now))
    }
}

/// Sizes in bytes of what every flow holds, for the memory bench
/// (`benches/flow_memory.rs`): the table's own entry and the TCP state.
pub fn flow_layout() -> Vec<(&'static str, usize)> {
    use std::mem::size_of;
    vec![
        ("FlowKey", size_of::<FlowKey>()),
        ("engine Flow (key inside)", size_of::<Flow>()),
        ("table slot (Flow + timer links)", crate::flow::FlowTable::<Flow>::slot_size()),
        ("TcpConn (boxed)", size_of::<TcpConn>()),
        ("tcp Stream (per direction)", size_of::<crate::tcp::Stream>()),
        ("FlowInfo", size_of::<FlowInfo>()),
        ("Progress (per direction)", size_of::<Progress>()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget behind "512 bytes per idle established flow" (see
    /// `benches/flow_memory.rs`): a slot in the table, the boxed connection
    /// (in mimalloc's 256-byte size class), 4 bytes of index and 8 of
    /// eviction queue. Growing either past this costs a million-flow table
    /// tens of megabytes: make room elsewhere first.
    #[test]
    fn a_flow_fits_its_memory_budget() {
        let layout: std::collections::HashMap<_, _> = flow_layout().into_iter().collect();
        let slot = layout["table slot (Flow + timer links)"];
        let conn = layout["TcpConn (boxed)"];
        assert!(slot <= 96, "table slot is {slot} bytes");
        assert!(conn <= 256, "TcpConn is {conn} bytes");
        assert!(slot + conn + 4 + 8 <= 384, "{slot} + {conn}");
    }
}
