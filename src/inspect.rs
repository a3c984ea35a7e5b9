//! The interface between the engine and the rules. The engine calls an
//! [`Inspector`] at each event; the Lua implementation lives in
//! [`crate::rules`], and [`NoRules`] accepts everything (benchmarks, tests).

use std::net::IpAddr;

use crate::flow::{Direction, L4Proto};
use crate::time::Timestamp;
use crate::wire::Decoded;

/// The events rules can hook, Haka's `haka.dissectors.<name>.events.<event>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `ipv4.events.receive_packet(pkt)`, after fragment reassembly.
    Ipv4Packet,
    /// `ipv6.events.receive_packet(pkt)`, after fragment reassembly.
    Ipv6Packet,
    /// `tcp.events.receive_packet(pkt)`.
    TcpPacket,
    /// `udp.events.receive_packet(pkt)`.
    UdpPacket,
    /// `icmp.events.receive_packet(pkt)` (ICMP and ICMPv6).
    IcmpPacket,
    /// `tcp_connection.events.new_connection(flow, pkt)`.
    TcpNewConnection,
    /// `tcp_connection.events.receive_packet(flow, pkt, dir)`.
    TcpConnectionPacket,
    /// `tcp_connection.events.receive_data(flow, data, dir)`.
    TcpData,
    /// `tcp_connection.events.end_connection(flow)`.
    TcpEndConnection,
    /// `udp_connection.events.new_connection(flow, pkt)`.
    UdpNewConnection,
    /// `udp_connection.events.receive_packet(flow, pkt, dir)`.
    UdpConnectionPacket,
    /// `udp_connection.events.receive_data(flow, pkt, dir)`.
    UdpData,
    /// `udp_connection.events.end_connection(flow)`.
    UdpEndConnection,
}

impl Event {
    /// Every event, in a fixed order (the index of each is [`Event::index`]).
    pub const ALL: [Event; 13] = [
        Event::Ipv4Packet,
        Event::Ipv6Packet,
        Event::TcpPacket,
        Event::UdpPacket,
        Event::IcmpPacket,
        Event::TcpNewConnection,
        Event::TcpConnectionPacket,
        Event::TcpData,
        Event::TcpEndConnection,
        Event::UdpNewConnection,
        Event::UdpConnectionPacket,
        Event::UdpData,
        Event::UdpEndConnection,
    ];

    /// Position in [`Event::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// `(dissector, event)` as named in Lua.
    pub fn lua_name(self) -> (&'static str, &'static str) {
        match self {
            Event::Ipv4Packet => ("ipv4", "receive_packet"),
            Event::Ipv6Packet => ("ipv6", "receive_packet"),
            Event::TcpPacket => ("tcp", "receive_packet"),
            Event::UdpPacket => ("udp", "receive_packet"),
            Event::IcmpPacket => ("icmp", "receive_packet"),
            Event::TcpNewConnection => ("tcp_connection", "new_connection"),
            Event::TcpConnectionPacket => ("tcp_connection", "receive_packet"),
            Event::TcpData => ("tcp_connection", "receive_data"),
            Event::TcpEndConnection => ("tcp_connection", "end_connection"),
            Event::UdpNewConnection => ("udp_connection", "new_connection"),
            Event::UdpConnectionPacket => ("udp_connection", "receive_packet"),
            Event::UdpData => ("udp_connection", "receive_data"),
            Event::UdpEndConnection => ("udp_connection", "end_connection"),
        }
    }
}

/// What rules decided at one event. Decisions combine by taking the strongest
/// (`Accept < DropPacket < DropFlow < HalfReset < Reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub enum Action {
    /// Let the packet through.
    #[default]
    Accept,
    /// Drop this packet only (`pkt:drop()`).
    DropPacket,
    /// Drop this packet and every later packet of the flow (`flow:drop()`).
    DropFlow,
    /// RST to the server, drop the client's later packets (`flow:halfreset()`).
    HalfReset,
    /// RST to both ends, then drop the flow (`flow:reset()`).
    Reset,
}

impl Action {
    /// The stronger of two decisions.
    pub fn combine(self, other: Action) -> Action {
        self.max(other)
    }
}

/// A flow as rules see it: `src` is the client (the side that opened it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowInfo {
    /// Unique id of this connection within the engine's run.
    pub id: u64,
    /// Protocol.
    pub proto: L4Proto,
    /// Client address.
    pub src: IpAddr,
    /// Client port.
    pub src_port: u16,
    /// Server address.
    pub dst: IpAddr,
    /// Server port.
    pub dst_port: u16,
}

/// Context for every call: the packet time (alerts and logs use it, so
/// offline runs are reproducible).
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Packet time of the event.
    pub time: Timestamp,
}

/// The engine's view of the rules. Implementations must never panic on
/// anything a rule does; a rule error becomes an [`Action`] per their policy.
pub trait Inspector {
    /// True if some rule hooks `event`; the engine skips the rest.
    fn subscribed(&self, event: Event) -> bool;

    /// A packet event: the IP, TCP, UDP and ICMP `receive_packet` events
    /// (`flow` is `None`), and the connection events `new_connection` and
    /// `receive_packet`, and UDP `receive_data` (`flow` is set).
    fn packet(
        &mut self,
        event: Event,
        ctx: &Context,
        pkt: &Decoded<'_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action;

    /// TCP `receive_data`: the newly deliverable bytes of one direction.
    fn data(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, data: &[u8]) -> Action;

    /// `sluice pcap --passive`: bytes of direction `dir` that the receiver
    /// acknowledged (or that came before captured bytes) are missing from
    /// the capture: `len` bytes from stream offset `offset` (offsets count
    /// every byte of the direction, gaps included). The stream goes on
    /// after the gap; nothing fills it. Accepted by default.
    fn gap(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, offset: u64, len: u64) -> Action {
        let _ = (ctx, flow, dir, offset, len);
        Action::Accept
    }

    /// `end_connection`: the connection is over (closed, reset or timed out).
    /// Called at most once per flow, and only for flows rules saw begin.
    fn end(&mut self, event: Event, ctx: &Context, flow: &FlowInfo);

    /// The flow is gone from the table: release any per-flow rule state.
    /// Called for every flow that was created, after `end` if that was called.
    fn forget(&mut self, flow_id: u64);

    /// A reload put `self` in place of `previous` while the flows stay:
    /// take over whatever per-flow rule state can be carried. Nothing by default.
    fn take_over(&mut self, previous: &mut Self)
    where
        Self: Sized,
    {
        let _ = previous;
    }
}

/// An inspector with no rules: everything is accepted.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRules;

impl Inspector for NoRules {
    fn subscribed(&self, _event: Event) -> bool {
        false
    }
    fn packet(
        &mut self,
        _: Event,
        _: &Context,
        _: &Decoded<'_>,
        _: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        Action::Accept
    }
    fn data(&mut self, _: &Context, _: &FlowInfo, _: Direction, _: &[u8]) -> Action {
        Action::Accept
    }
    fn end(&mut self, _: Event, _: &Context, _: &FlowInfo) {}
    fn forget(&mut self, _: u64) {}
}
