//! A flow table entry: who is client and server, the protocol state, and what
//! rules decided about the flow.

use crate::flow::{Direction, FlowEntry, FlowId, FlowKey};
use crate::inspect::FlowInfo;
use crate::tcp::{TcpConn, TcpState};
use crate::time::Timestamp;

use crate::tcp::Progress;

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

/// One flow.
#[derive(Debug)]
pub(super) struct Flow {
    /// Who is who, as rules see it.
    pub info: FlowInfo,
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
    /// Progress of each direction's held stream bytes (TCP), by [`Direction::index`].
    pub progress: [Progress; 2],
}

impl Flow {
    /// A new flow whose first packet goes from `from_lo`'s side; that side is the client.
    pub(super) fn new(id: FlowId, key: &FlowKey, from_lo: bool, kind: FlowKind, now: Timestamp) -> Self {
        let (client, server) = if from_lo { (key.lo, key.hi) } else { (key.hi, key.lo) };
        Flow {
            info: FlowInfo {
                id,
                proto: key.proto,
                src: client.addr,
                src_port: client.port,
                dst: server.addr,
                dst_port: server.port,
            },
            client_is_lo: from_lo,
            kind,
            fate: Fate::Inspect,
            announced: false,
            began: false,
            deadline: now,
            progress: Default::default(),
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
    fn id(&self) -> FlowId {
        self.info.id
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

/// Sizes in bytes of what every flow holds, for the memory bench
/// (`benches/flow_memory.rs`): the table's own entry and the TCP state.
pub fn flow_layout() -> Vec<(&'static str, usize)> {
    use std::mem::size_of;
    vec![
        ("FlowKey", size_of::<FlowKey>()),
        ("engine Flow", size_of::<Flow>()),
        ("table entry (key, Flow)", size_of::<(FlowKey, Flow)>()),
        ("TcpConn (boxed)", size_of::<TcpConn>()),
        ("tcp Stream (per direction)", size_of::<crate::tcp::Stream>()),
        ("FlowInfo", size_of::<FlowInfo>()),
        ("Progress (per direction)", size_of::<Progress>()),
    ]
}
