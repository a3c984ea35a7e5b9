//! The sans-IO core. [`Engine::process`] takes one IP packet, its id and its
//! timestamp, and appends to an [`Output`] the verdicts it can give now and the
//! packets it forged. [`Engine::tick`] runs timeouts on packet time. Nothing
//! here touches a socket or a clock: NFQUEUE and pcap are drivers around it.

mod batch;
mod depth;
mod flow;
mod normalize;
mod passive_path;
mod reclaim;
mod sharding;
mod tcp_path;
mod udp_path;

use std::sync::Arc;
use std::time::Duration;

use self::flow::{Fate, Flow, FlowKind};
use crate::config::EngineConfig;
use crate::flow::{FlowKey, FlowTable};
use crate::inspect::{Action, Context, Event, Inspector};
use crate::ip::defrag::{DefragLimits, Defragmenter};
use crate::stats::{Counter, Stats};
use crate::tcp::StreamLimits;
use crate::time::Timestamp;
use crate::wire::decode::decode_ignoring_ip_checksum;
use crate::wire::{decode, DecodeError, Decoded, Transport};

pub use self::flow::flow_layout;
pub use self::sharding::{Front, Reassembled};
pub use crate::packet_id::PacketId;

/// A packet handed to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The driver's handle; verdicts refer to it.
    pub id: PacketId,
    /// The IP packet (no link-layer header).
    pub data: &'a [u8],
    /// Packet time.
    pub time: Timestamp,
    /// What the capture knows of the transport checksum.
    pub checksum: ChecksumState,
}

/// What the capture knows of a packet's transport (TCP/UDP/ICMP) checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumState {
    /// Nothing: sluice verifies it (pcap files, packets no NIC checked).
    #[default]
    Unchecked,
    /// The kernel or the NIC verified it before queueing the packet, as the
    /// receiving stack would trust it: verifying again would only cost time.
    Verified,
    /// sluice computed it already and found it right (`sluice pcap
    /// --checksums auto`: the scan for offloading hosts, when it ran,
    /// computed every unfragmented TCP/UDP checksum of the capture,
    /// [`crate::capture::offload`]). The same bytes give the same sum, so
    /// it is not computed again; a right sum is right whatever its host.
    CheckedGood,
    /// Not computed yet (locally generated or GSO packets from NFQUEUE): the
    /// field holds only the pseudo-header sum, so it must not be verified,
    /// and a rewritten packet must keep it that way.
    Partial,
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

/// When a packet gets its verdict.
#[derive(Debug)]
enum Outcome {
    /// Now: this one.
    Now(Verdict),
    /// Later, with the rest of its batch chunk (see [`Engine::process_batch`]).
    Deferred,
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
    /// `--bypass`: packets whose connection is past depth; an accept
    /// verdict for one of them carries the bypass mark (inline), so the
    /// kernel accepts the rest of the connection without queueing it.
    /// Drivers without a kernel ignore it; the inline one empties it.
    pub bypass: Vec<PacketId>,
}

impl Output {
    /// An empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties it for reuse.
    pub fn clear(&mut self) {
        self.items.clear();
        self.bypass.clear();
    }

    pub(crate) fn verdict(&mut self, id: PacketId, v: Verdict) {
        self.items.push(Emitted::Verdict(id, v));
    }

    pub(crate) fn forged(&mut self, p: Vec<u8>) {
        self.items.push(Emitted::Forged(p));
    }
}

/// Called after each flow a timeout or the end of input retires, with the
/// flow's id ([`Engine::tick_with_cuts`]).
pub type RetireCut<'a> = dyn FnMut(u64, &mut Output) + 'a;

/// How often (in packet time) the flow table is scanned for expired flows.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// The engine: defragmenter, flow table, TCP tracking, reassembly and rules.
pub struct Engine<I: Inspector> {
    config: EngineConfig,
    inspector: I,
    stats: Arc<Stats>,
    flows: FlowTable<Flow>,
    /// TCP connections of `--passive` analysis (empty otherwise); their ids
    /// come from `flows`, so ids stay unique across both tables.
    passive: FlowTable<passive_path::PassiveFlow>,
    defrag: Defragmenter,
    /// Bytes held in all stream buffers.
    buffered: usize,
    /// Packet time of the last expiry scan.
    last_expiry: Option<Timestamp>,
    /// Packet time of the last search for a connection to reset when the
    /// total stream buffer was full.
    last_reclaim_search: Option<Timestamp>,
    /// Within [`Engine::process_batch`]: whether consecutive in-order data of
    /// one stream may be handed to rules as one chunk.
    coalesce: bool,
    /// Data delivered but not yet shown to rules, and its packets' verdicts.
    pending: Option<batch::PendingData>,
    /// The packet list of the last flushed chunk, kept for the next one.
    spare_packets: Vec<(PacketId, Verdict)>,
    /// Stream bytes that wrap around the end of their ring, joined for rules.
    joined: Vec<u8>,
    /// The packet being handled is to carry the bypass mark (`--bypass`).
    bypass_due: bool,
}

impl<I: Inspector> Engine<I> {
    /// An engine with fresh counters.
    pub fn new(config: EngineConfig, inspector: I) -> Self {
        Self::with_stats(config, inspector, Arc::new(Stats::new()))
    }

    /// An engine counting into `stats`.
    pub fn with_stats(config: EngineConfig, inspector: I, stats: Arc<Stats>) -> Self {
        let defrag = Defragmenter::new(DefragLimits::from(&config)).with_receivers(config.receiver.clone());
        Engine {
            flows: FlowTable::new(config.max_flows, flow::shortest_timeout(&config)),
            passive: FlowTable::new(config.max_flows, flow::shortest_timeout(&config)),
            config,
            inspector,
            stats,
            defrag,
            buffered: 0,
            last_expiry: None,
            last_reclaim_search: None,
            coalesce: false,
            pending: None,
            spare_packets: Vec::new(),
            joined: Vec::new(),
            bypass_due: false,
        }
    }

    /// Handles one packet. Every packet gets exactly one verdict, now or later
    /// (held IP fragments), and never none.
    pub fn process(&mut self, pkt: Packet<'_>, out: &mut Output) {
        self.process_one(pkt, out);
        self.flush_pending(out);
    }

    /// Handles packets that were waiting together (NFQUEUE hands several
    /// over at once under load). Same verdicts as calling
    /// [`Engine::process`] for each, with one difference in how rules are
    /// called: consecutive in-order segments of one stream direction in the
    /// batch are delivered to `receive_data` as one chunk, and their packets
    /// share its decision. The packets were all queued already, so nothing
    /// waits longer; rules run once per chunk instead of once per segment.
    /// This applies only when no per-packet TCP or IP event is hooked, so no
    /// rule can observe a packet before the data of an earlier one.
    pub fn process_batch(&mut self, pkts: &[Packet<'_>], out: &mut Output) {
        let i = &self.inspector;
        self.coalesce = i.subscribed(Event::TcpData)
            && ![Event::Ipv4Packet, Event::Ipv6Packet, Event::TcpPacket, Event::TcpConnectionPacket]
                .iter()
                .any(|e| i.subscribed(*e));
        for pkt in pkts {
            self.process_one(*pkt, out);
        }
        self.flush_pending(out);
        self.coalesce = false;
    }

    fn process_one(&mut self, pkt: Packet<'_>, out: &mut Output) {
        self.stats.inc(Counter::PacketsIn);
        let decoded = match decode(pkt.data) {
            Ok(d) => d,
            Err(DecodeError::BadIpChecksum) => match self.bad_ip_checksum(pkt, out) {
                Some(d) => d,
                None => return,
            },
            Err(e) => {
                tracing::debug!(id = pkt.id, error = %e, "undecodable packet dropped");
                self.drop_one(pkt.id, Counter::DropMalformed, out);
                return;
            }
        };
        if decoded.ip.fragment.is_some() {
            self.flush_pending(out);
            self.fragment(pkt, &decoded, out);
            return;
        }
        let checksum = self.offload_checksum(pkt.checksum, &decoded);
        // In a batch, the TCP path may hold the verdict for the rest of the chunk.
        let batch = self.coalesce.then_some(pkt.id);
        let outcome = self.inspect(&decoded, pkt.time, checksum, batch, out);
        if std::mem::take(&mut self.bypass_due) {
            self.stats.inc(Counter::BypassMarked);
            out.bypass.push(pkt.id);
        }
        match outcome {
            Outcome::Now(verdict) => self.emit(out, pkt.id, verdict),
            Outcome::Deferred => {}
        }
    }

    /// A packet whose IPv4 header checksum is wrong. With checksums not
    /// verified, or from a host found to leave it to NIC offload, it goes on
    /// as any packet (returned). Else
    /// the packet rules see it (so a rule can alert on it), then it is
    /// dropped as the receiving stack would drop it.
    fn bad_ip_checksum<'a>(&mut self, pkt: Packet<'a>, out: &mut Output) -> Option<Decoded<'a>> {
        let Ok(d) = decode_ignoring_ip_checksum(pkt.data) else {
            self.drop_one(pkt.id, Counter::DropBadIpChecksum, out);
            return None;
        };
        if !self.config.verify_checksums {
            return Some(d);
        }
        if self.config.checksum_offload.of(&d.ip.src).ip_header {
            self.stats.inc(Counter::ChecksumOffloadUnverified);
            return Some(d);
        }
        // A fragment's rules run on its whole datagram, which this one
        // never joins.
        if d.ip.fragment.is_some() || self.packet_events(&Context { time: pkt.time }, &d) == Action::Accept {
            self.stats.inc(Counter::DropBadIpChecksum);
        }
        self.emit(out, pkt.id, Verdict::Drop);
        None
    }

    /// The checksum state of an unfragmented packet. A wrong TCP/UDP
    /// checksum from a host that leaves those to NIC offload is treated as
    /// the kernel treats a locally sent packet whose sum is not filled in
    /// yet ([`ChecksumState::Partial`]). A right checksum is right whatever
    /// its host, so the host's verdict is asked for (offline: found, on the
    /// first wrong checksum) only when the checksum is wrong.
    fn offload_checksum(&self, state: ChecksumState, pkt: &Decoded<'_>) -> ChecksumState {
        let offload = &self.config.checksum_offload;
        if state != ChecksumState::Unchecked || !self.config.verify_checksums || !offload.may_have_hosts() {
            return state;
        }
        if !matches!(pkt.transport, Transport::Tcp(_) | Transport::Udp(_)) {
            return state;
        }
        if normalize::checksum_ok(pkt) {
            return ChecksumState::CheckedGood;
        }
        if offload.of(&pkt.ip.src).transport {
            self.stats.inc(Counter::ChecksumOffloadUnverified);
            return ChecksumState::Partial;
        }
        state
    }

    fn fragment(&mut self, pkt: Packet<'_>, decoded: &Decoded<'_>, out: &mut Output) {
        if let Some(whole) = self.defragment_one(pkt, decoded, out) {
            self.inspect_reassembled(&whole, out);
        }
    }

    /// Runs one whole (reassembled) IP packet through checks, rules and
    /// connection tracking.
    fn inspect(
        &mut self,
        pkt: &Decoded<'_>,
        time: Timestamp,
        checksum: ChecksumState,
        batch: Option<PacketId>,
        out: &mut Output,
    ) -> Outcome {
        let bad_checksum = match checksum {
            ChecksumState::Unchecked => self.config.verify_checksums && !normalize::checksum_ok(pkt),
            ChecksumState::Verified => {
                self.stats.inc(Counter::ChecksumVerifiedByKernel);
                false
            }
            ChecksumState::CheckedGood | ChecksumState::Partial => false,
        };
        let partial = checksum == ChecksumState::Partial;
        let ctx = Context { time };
        // Packet rules see every decodable packet, a bad checksum included
        // (so a rule can alert on it); such a packet is then dropped, as
        // the endpoint drops it, and its bytes never reach a stream.
        if self.packet_events(&ctx, pkt) != Action::Accept {
            return Outcome::Now(Verdict::Drop);
        }
        if bad_checksum {
            self.stats.inc(Counter::DropBadChecksum);
            return Outcome::Now(Verdict::Drop);
        }
        match &pkt.transport {
            Transport::Tcp(t) if self.config.passive => Outcome::Now(self.passive_tcp(pkt, t, &ctx, out)),
            Transport::Tcp(t) => {
                let outcome = self.tcp(pkt, t, &ctx, partial, batch, out);
                self.stats.set(Counter::StreamBytesBuffered, self.buffered as u64);
                outcome
            }
            Transport::Udp(u) => Outcome::Now(self.udp(pkt, u, &ctx)),
            Transport::Icmp(_) | Transport::Fragment | Transport::Other => Outcome::Now(Verdict::Accept),
        }
    }

    /// The flow-less packet events of one packet: IP `receive_packet`, then
    /// the transport's (TCP, UDP, ICMP); the first decision that is not
    /// accept.
    fn packet_events(&mut self, ctx: &Context, pkt: &Decoded<'_>) -> Action {
        let ip_event = if pkt.ip.version == 4 { Event::Ipv4Packet } else { Event::Ipv6Packet };
        let action = self.packet_event(ip_event, ctx, pkt);
        if action != Action::Accept {
            return action;
        }
        let transport_event = match &pkt.transport {
            Transport::Tcp(_) => Event::TcpPacket,
            Transport::Udp(_) => Event::UdpPacket,
            Transport::Icmp(_) => Event::IcmpPacket,
            Transport::Fragment | Transport::Other => return Action::Accept,
        };
        self.packet_event(transport_event, ctx, pkt)
    }

    /// A flow-less packet event; anything but accept drops the packet.
    fn packet_event(&mut self, event: Event, ctx: &Context, pkt: &Decoded<'_>) -> Action {
        if !self.inspector.subscribed(event) {
            return Action::Accept;
        }
        let action = self.inspector.packet(event, ctx, pkt, None);
        if action != Action::Accept {
            self.stats.inc(Counter::DropRule);
        }
        action
    }

    /// Runs timeouts up to `now` (packet time): flows, and fragments.
    pub fn tick(&mut self, now: Timestamp, out: &mut Output) {
        self.tick_with_cuts(now, out, &mut |_, _| {});
    }

    /// [`Engine::tick`], calling `cut(flow_id, out)` after each flow it
    /// retires (see [`Engine::finish_with_cuts`]).
    ///
    /// A sharded replay ticks every engine at every record, and almost
    /// every tick has nothing to do: that is decided here, inlined into the
    /// caller, without a call.
    #[inline]
    pub fn tick_with_cuts(&mut self, now: Timestamp, out: &mut Output, cut: &mut RetireCut<'_>) {
        let idle = self.pending.is_none()
            && !self.defrag.due(now)
            && self.last_expiry.is_some_and(|t| now < t.saturating_add(EXPIRY_INTERVAL));
        if !idle {
            self.run_timeouts(now, out, cut);
        }
    }

    /// What a tick does when something may be due.
    #[inline(never)]
    fn run_timeouts(&mut self, now: Timestamp, out: &mut Output, cut: &mut RetireCut<'_>) {
        self.flush_pending(out);
        for id in self.defrag.expire(now) {
            self.drop_one(id, Counter::DropFragment, out);
        }
        if self.last_expiry.is_some_and(|t| now < t.saturating_add(EXPIRY_INTERVAL)) {
            return;
        }
        self.last_expiry = Some(now);
        let ctx = Context { time: now };
        let (flows, passive) = (self.flows.expire(now), self.passive.expire(now));
        self.stats.add(Counter::FlowsTimedOut, (flows.len() + passive.len()) as u64);
        self.retire_in_order(flows, passive, &ctx, out, cut);
        self.stats.set(Counter::FlowsActive, self.flow_count() as u64);
    }

    /// End of input or shutdown: drops held fragments (every held packet gets
    /// its verdict) and ends every connection.
    pub fn finish(&mut self, now: Timestamp, out: &mut Output) {
        self.finish_with_cuts(now, out, &mut |_, _| {});
    }

    /// [`Engine::finish`], calling `cut(flow_id, out)` after each flow it
    /// retires: a driver running several engines on shards of the traffic
    /// merges what each retirement emitted (and what its rules wrote) in
    /// flow order, the order one engine would retire them in.
    pub fn finish_with_cuts(&mut self, now: Timestamp, out: &mut Output, cut: &mut RetireCut<'_>) {
        self.flush_pending(out);
        for id in self.defrag.drain() {
            self.drop_one(id, Counter::DropShutdown, out);
        }
        let ctx = Context { time: now };
        let (flows, passive) = (self.flows.drain(), self.passive.drain());
        self.retire_in_order(flows, passive, &ctx, out, cut);
        self.stats.set(Counter::FlowsActive, 0);
        self.stats.set(Counter::StreamBytesBuffered, self.buffered as u64);
    }

    /// Retires flows of both tables (each in creation order) in creation
    /// order, so a run's events come out the same every time.
    fn retire_in_order(
        &mut self,
        flows: Vec<(FlowKey, Flow)>,
        passive: Vec<(FlowKey, passive_path::PassiveFlow)>,
        ctx: &Context,
        out: &mut Output,
        cut: &mut RetireCut<'_>,
    ) {
        let mut passive = passive.into_iter().peekable();
        for (_, flow) in flows {
            while let Some((_, p)) = passive.next_if(|(_, p)| p.info.id < flow.id()) {
                let id = p.info.id;
                self.retire_passive(p, ctx, out);
                cut(id, out);
            }
            let id = flow.id();
            self.retire(flow, ctx);
            cut(id, out);
        }
        for (_, p) in passive {
            let id = p.info.id;
            self.retire_passive(p, ctx, out);
            cut(id, out);
        }
    }

    /// Removes a flow for good: `end_connection` if owed, then `forget`.
    fn retire(&mut self, mut flow: Flow, ctx: &Context) {
        end_connection(&mut self.inspector, &mut flow, ctx);
        self.buffered = self.buffered.saturating_sub(flow.buffered());
        self.inspector.forget(flow.id());
    }

    /// The connection at `key` is over for sluice (closed, reset, or dropped
    /// by a rule): fires `end_connection` once, if owed, and frees its stream
    /// buffers now. The flow itself stays until it expires (late segments,
    /// reuse of the tuple).
    fn end_connection_at(&mut self, key: &FlowKey, ctx: &Context) {
        if let Some(flow) = self.flows.get_mut(key) {
            end_connection(&mut self.inspector, flow, ctx);
            let freed = flow.release_buffers();
            if freed > 0 {
                self.buffered = self.buffered.saturating_sub(freed);
                self.stats.set(Counter::StreamBytesBuffered, self.buffered as u64);
            }
        }
    }

    /// Finds room in the table for a new flow, retiring an evicted one.
    /// `false` if the table is full of established connections.
    fn make_room(&mut self, ctx: &Context) -> bool {
        match self.flows.make_room() {
            Ok(None) => true,
            Ok(Some((_, evicted))) => {
                self.stats.inc(Counter::FlowsEvicted);
                self.retire(evicted, ctx);
                true
            }
            Err(()) => false,
        }
    }

    fn stream_limits(&self) -> StreamLimits {
        StreamLimits { max_buffer: self.config.max_stream_buffer, max_islands: self.config.max_ooo_segments }
    }

    fn drop_one(&mut self, id: PacketId, reason: Counter, out: &mut Output) {
        self.stats.inc(reason);
        self.emit(out, id, Verdict::Drop);
    }

    fn emit(&mut self, out: &mut Output, id: PacketId, verdict: Verdict) {
        match &verdict {
            Verdict::Accept => self.stats.inc(Counter::Accepted),
            Verdict::Drop => self.stats.inc(Counter::Dropped),
            Verdict::AcceptModified(_) => {
                self.stats.inc(Counter::Accepted);
                self.stats.inc(Counter::Modified);
            }
        }
        out.verdict(id, verdict);
    }

    fn forge(&mut self, out: &mut Output, packet: Vec<u8>) {
        self.stats.inc(Counter::Forged);
        out.forged(packet);
    }

    /// Makes the flow table's room for its flows now, so that the first
    /// packet does not wait for it (inline mode calls it before binding
    /// its queue).
    pub fn prepare_for_traffic(&mut self) {
        if self.config.passive {
            self.passive.presize();
        }
        self.flows.presize();
    }

    /// Number of flows in the table.
    pub fn flow_count(&self) -> usize {
        self.flows.len() + self.passive.len()
    }

    /// Bytes held in stream buffers.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
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

    /// Swaps in new rules (reload); flows keep their state, and the new
    /// rules take over the per-flow rule state they can carry.
    pub fn replace_inspector(&mut self, inspector: I) -> I {
        let mut old = std::mem::replace(&mut self.inspector, inspector);
        self.inspector.take_over(&mut old);
        old
    }
}

/// Fires `end_connection` once, if `new_connection` was accepted.
fn end_connection<I: Inspector>(inspector: &mut I, flow: &mut Flow, ctx: &Context) {
    if !flow.began {
        return;
    }
    flow.began = false;
    let event = match flow.kind {
        FlowKind::Tcp(_) => Event::TcpEndConnection,
        FlowKind::Udp => Event::UdpEndConnection,
    };
    if inspector.subscribed(event) {
        inspector.end(event, ctx, &flow.info());
    }
}

/// The flow key of a packet and whether it was sent by the key's `lo` side.
fn flow_key(pkt: &Decoded<'_>, proto: crate::flow::L4Proto, sport: u16, dport: u16) -> (FlowKey, bool) {
    use crate::flow::key::Endpoint;
    FlowKey::of(proto, Endpoint { addr: pkt.ip.src, port: sport }, Endpoint { addr: pkt.ip.dst, port: dport })
}

#[cfg(test)]
mod eviction_tests;
#[cfg(test)]
mod reclaim_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;

/// True if a packet's TCP/UDP/ICMP checksum is right (what the receiving
/// stack checks), for drivers that look at a capture before replaying it.
pub fn transport_checksum_ok(pkt: &Decoded<'_>) -> bool {
    normalize::checksum_ok(pkt)
}

/// The checksum state of a datagram reassembled from fragments, given the
/// completing fragment's: a NIC's verdict on one fragment is no verdict on
/// the whole, so a verified fragment leaves the datagram to be checked.
fn reassembled_checksum(last_fragment: ChecksumState) -> ChecksumState {
    match last_fragment {
        ChecksumState::Verified | ChecksumState::CheckedGood => ChecksumState::Unchecked,
        other => other,
    }
}
