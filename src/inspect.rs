//! The interface between the engine and the rules. The engine calls an
//! [`Inspector`] at each event; the Lua implementation lives in
//! [`crate::rules`], and [`NoRules`] accepts everything (benchmarks, tests).

use std::net::IpAddr;

use crate::flow::{Direction, L4Proto};
use crate::time::Timestamp;
use crate::wire::Decoded;

/// How an event calls its rules: the argument list, as design.md's table
/// gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventArgs {
    /// `(pkt)`.
    Packet,
    /// `(flow, pkt)`.
    FlowPacket,
    /// `(flow, subject, dir)`: a packet, or stream data.
    FlowSubjectDir,
    /// `(flow)`.
    Flow,
    /// `(flow, dir)`.
    FlowDir,
}

/// Which layer of the packet an event's packet object shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketLayer {
    /// IPv4 or IPv6.
    Ip,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// The event has no packet.
    None,
}

/// The event table: one line per event gives everything about it, so a new
/// event is one line here (plus where the engine or the rules layer fires it).
macro_rules! events {
    ($( $(#[$doc:meta])* $variant:ident => ($dissector:literal, $name:literal, $args:ident, $layer:ident), )*) => {
        /// The events rules can hook, Haka's `haka.dissectors.<name>.events.<event>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Event {
            $( $(#[$doc])* $variant, )*
        }

        impl Event {
            /// Number of events.
            pub const COUNT: usize = 0 $( + { let _ = stringify!($variant); 1 } )*;

            /// Every event, in a fixed order (the index of each is [`Event::index`]).
            pub const ALL: [Event; Event::COUNT] = [ $( Event::$variant, )* ];

            /// `(dissector, event)` as named in Lua.
            pub fn lua_name(self) -> (&'static str, &'static str) {
                match self { $( Event::$variant => ($dissector, $name), )* }
            }

            /// The arguments its rules get.
            pub fn args(self) -> EventArgs {
                match self { $( Event::$variant => EventArgs::$args, )* }
            }

            /// The layer its packet object shows.
            pub fn layer(self) -> PacketLayer {
                match self { $( Event::$variant => PacketLayer::$layer, )* }
            }
        }
    };
}

events! {
    /// `ipv4.events.receive_packet(pkt)`, after fragment reassembly.
    Ipv4Packet => ("ipv4", "receive_packet", Packet, Ip),
    /// `ipv6.events.receive_packet(pkt)`, after fragment reassembly.
    Ipv6Packet => ("ipv6", "receive_packet", Packet, Ip),
    /// `tcp.events.receive_packet(pkt)`.
    TcpPacket => ("tcp", "receive_packet", Packet, Tcp),
    /// `udp.events.receive_packet(pkt)`.
    UdpPacket => ("udp", "receive_packet", Packet, Udp),
    /// `icmp.events.receive_packet(pkt)` (ICMP and ICMPv6).
    IcmpPacket => ("icmp", "receive_packet", Packet, Icmp),
    /// `tcp_connection.events.new_connection(flow, pkt)`.
    TcpNewConnection => ("tcp_connection", "new_connection", FlowPacket, Tcp),
    /// `tcp_connection.events.receive_packet(flow, pkt, dir)`.
    TcpConnectionPacket => ("tcp_connection", "receive_packet", FlowSubjectDir, Tcp),
    /// `tcp_connection.events.receive_data(flow, data, dir)`.
    TcpData => ("tcp_connection", "receive_data", FlowSubjectDir, None),
    /// `tcp_connection.events.end_connection(flow)`.
    TcpEndConnection => ("tcp_connection", "end_connection", Flow, None),
    /// `tcp_connection.events.monologue(flow, data, dir, part)`: one side's
    /// turn of the conversation (made by the rules layer from `receive_data`).
    TcpMonologue => ("tcp_connection", "monologue", FlowSubjectDir, None),
    /// `tcp_connection.events.gap(flow, gap, dir)`: bytes missing from a
    /// capture (`sluice pcap --passive`), `gap.offset` and `gap.length`.
    TcpGap => ("tcp_connection", "gap", FlowSubjectDir, None),
    /// `tcp_connection.events.depth_reached(flow, dir)`: `dir`'s stream
    /// passed `--stream-depth`; rules get no more of its data.
    TcpDepthReached => ("tcp_connection", "depth_reached", FlowDir, None),
    /// `udp_connection.events.new_connection(flow, pkt)`.
    UdpNewConnection => ("udp_connection", "new_connection", FlowPacket, Udp),
    /// `udp_connection.events.receive_packet(flow, pkt, dir)`.
    UdpConnectionPacket => ("udp_connection", "receive_packet", FlowSubjectDir, Udp),
    /// `udp_connection.events.receive_data(flow, pkt, dir)`.
    UdpData => ("udp_connection", "receive_data", FlowSubjectDir, Udp),
    /// `udp_connection.events.end_connection(flow)`.
    UdpEndConnection => ("udp_connection", "end_connection", Flow, None),
}

impl Event {
    /// Position in [`Event::ALL`].
    pub fn index(self) -> usize {
        self as usize
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

    /// `dir`'s stream ended: its FIN was delivered in order. Rules waiting
    /// for more bytes of it get the end of the stream; their decision acts
    /// on the packet that carried the FIN.
    ///
    /// This and the other direction events have no default: a wrapping
    /// inspector that forgot to pass one on would hide it from the rules
    /// without a word.
    fn stream_end(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action;

    /// `sluice pcap --passive`: bytes of direction `dir` that the receiver
    /// acknowledged (or that came before captured bytes) are missing from
    /// the capture: `len` bytes from stream offset `offset` (offsets count
    /// every byte of the direction, gaps included). The stream goes on
    /// after the gap; nothing fills it.
    fn gap(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, offset: u64, len: u64) -> Action;

    /// `--stream-depth`: `dir`'s stream passed the depth, after its bytes
    /// up to the depth were delivered. Rules get no more data of it;
    /// streamed rules waiting on it get the end of their stream.
    fn depth_reached(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action;

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
    fn stream_end(&mut self, _: &Context, _: &FlowInfo, _: Direction) -> Action {
        Action::Accept
    }
    fn gap(&mut self, _: &Context, _: &FlowInfo, _: Direction, _: u64, _: u64) -> Action {
        Action::Accept
    }
    fn depth_reached(&mut self, _: &Context, _: &FlowInfo, _: Direction) -> Action {
        Action::Accept
    }
    fn end(&mut self, _: Event, _: &Context, _: &FlowInfo) {}
    fn forget(&mut self, _: u64) {}
}
