//! The offline fidelity harness shared by `tests/fidelity.rs` (the cases of
//! `docs/stream-fidelity.md`) and `tests/receiver.rs` (the receiver model's
//! Linux and strict twins): crafting helpers, the model endpoint, and
//! running a case through `sluice pcap` against its committed fixtures.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[path = "craft.rs"]
pub mod craft;
#[allow(unused_imports)] // each suite uses its own share
pub use craft::{bad_checksum, fix_tcp_checksum, urgent_segment, OVERLAP_EVIL, OVERLAP_GOOD};

use sluice::capture::pcap::PcapSource;
use sluice::config::EngineConfig;
use sluice::flow::Direction::{Down, Up};
use sluice::ip::fragment::fragment;
use sluice::offline::{self, OfflineOptions};
use sluice::pcapgen::{write_pcap_file, Conversation, Framing, TimedPacket};
use sluice::tcp::auth_option;
use sluice::tcp::receiver_policy::TargetPolicy;
use sluice::wire::header::{Ipv4, Ipv6, Tcp, IPV6_HEADER_LEN};
use sluice::wire::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};
use sluice::wire::{checksum, decode, proto, SeqNumber, Transport};

pub const ATTACK: &[u8] = b"attack";

pub fn conv() -> Conversation {
    Conversation::new("10.1.0.1:40000".parse().unwrap(), "10.1.0.2:80".parse().unwrap())
}

pub fn conv6() -> Conversation {
    Conversation::new("[fd00:1::1]:40000".parse().unwrap(), "[fd00:1::2]:80".parse().unwrap())
}

/// What a case is about.
pub enum Expect {
    /// Some endpoint policy reads `attack` from the input; through sluice
    /// every policy reads exactly these bytes (which must not contain it).
    Attack(&'static [u8]),
    /// Every policy reads exactly these bytes, without sluice and through it.
    Benign(&'static [u8]),
    /// Every policy reads `plain` without sluice and `filtered` through it:
    /// sluice rewrites packets so that every endpoint reads what rules saw.
    Normalised { plain: &'static [u8], filtered: &'static [u8] },
    /// Strict twin of a case endpoints read differently: through sluice
    /// every policy reads exactly these bytes (no attack in them); without
    /// sluice they may disagree.
    Agreed(&'static [u8]),
}

pub struct Case {
    pub name: &'static str,
    pub packets: Vec<TimedPacket>,
    pub expect: Expect,
    pub engine: EngineConfig,
    /// Client payloads lost between the gateway and the endpoint (the first
    /// packet carrying each), in both runs: what a TTL expiring just past the
    /// gateway, or any loss on the last link, does.
    pub lost: &'static [&'static [u8]],
    /// Counters that must be at least 1 after the run.
    pub counters: &'static [&'static str],
    /// Counters that must stay 0.
    pub zero: &'static [&'static str],
    /// Endpoint behaviours the model reads the case under.
    pub models: &'static [Policy],
    /// Fixtures live in `tests/fidelity/<dir>/<name>/`.
    pub dir: &'static str,
}

impl Case {
    /// What the case is about.
    pub fn expect(mut self, e: Expect) -> Self {
        self.expect = e;
        self
    }
    pub fn counters(mut self, c: &'static [&'static str]) -> Self {
        self.counters = c;
        self
    }
    pub fn zero(mut self, c: &'static [&'static str]) -> Self {
        self.zero = c;
        self
    }
    pub fn lost(mut self, l: &'static [&'static [u8]]) -> Self {
        self.lost = l;
        self
    }
    pub fn engine(mut self, e: EngineConfig) -> Self {
        self.engine = e;
        self
    }
    /// Every receiver modelled strictly (`--target-policy 0.0.0.0/0=strict`
    /// and `::/0=strict`); read by every endpoint behaviour.
    pub fn strict(mut self) -> Self {
        for net in ["0.0.0.0/0", "::/0"] {
            self.engine.receiver.set_policy(net.parse().unwrap(), TargetPolicy::Strict);
        }
        self.models = &POLICIES;
        self
    }
    /// The default `linux` receiver policy, read by the Linux model only:
    /// sluice predicts Linux, other stacks may read otherwise.
    pub fn linux(mut self) -> Self {
        self.models = &[LINUX];
        self
    }
    /// Fixtures under `tests/fidelity/<dir>/`.
    pub fn under(mut self, dir: &'static str) -> Self {
        self.dir = dir;
        self
    }
}

pub fn case(name: &'static str, c: Conversation, expect: Expect) -> Case {
    packets(name, c.into_packets(), expect)
}

pub fn packets(name: &'static str, packets: Vec<TimedPacket>, expect: Expect) -> Case {
    Case {
        name,
        packets,
        expect,
        engine: EngineConfig::default(),
        lost: &[],
        counters: &[],
        zero: &[],
        models: &POLICIES,
        dir: "",
    }
}

// ---------------------------------------------------------------- crafting

/// SYN options as `Conversation::handshake` sends them: MSS 1460, NOP,
/// window scale 7, SACK permitted.
pub const SYN_OPTIONS: &[u8] = &[2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2];

/// Sets a packet's TCP window field (unscaled) and acknowledgment number.
pub fn with_window(mut p: Vec<u8>, ack: Option<SeqNumber>, window: u16) -> Vec<u8> {
    let mut t = Tcp::of_packet(&mut p).unwrap();
    if let Some(ack) = ack {
        t.set_ack(ack.0);
    }
    t.set_window(window);
    t.fill_checksum();
    p
}

/// The server's pure ACK of `ack`, advertising `window` (scaled by the
/// server's shift of 7, so 1 grants 128 bytes).
pub fn server_ack(c: &mut Conversation, ack: SeqNumber, window: u16) {
    let seq = c.next_seq(Down);
    let p = c.build(Down, seq, ACK, &[], &[]);
    c.push(with_window(p, Some(ack), window));
}

/// A handshake like `Conversation::handshake` (ISNs 1000 and 5000, window
/// scale 7 both ways), except that the SYN carries `syn_payload` and the
/// SYN-ACK advertises `window` (never scaled in a SYN, RFC 7323 2.2). The
/// server acknowledges only the SYN, as Linux without a TFO cookie does.
pub fn opened(syn_payload: &[u8], window: u16) -> Conversation {
    let mut c = conv().isn(1001, 5001);
    let syn = c.build(Up, SeqNumber(1000), SYN, SYN_OPTIONS, syn_payload);
    let synack = c.build(Down, SeqNumber(5000), SYN | ACK, SYN_OPTIONS, &[]);
    c.push(syn).push(with_window(synack, None, window));
    c.ack(Up);
    c
}

/// One connection's data in fragments (`sizes` as `fragment` takes them).
pub fn fragmented(mut c: Conversation, payload: &[u8], sizes: &[usize]) -> Conversation {
    c.handshake();
    let seq = c.next_seq(Up);
    let whole = c.build(Up, seq, ACK | PSH, &[], payload);
    for f in fragment(&whole, sizes, 99) {
        c.push(f);
    }
    c
}

/// In-order bytes before the window test: more than the SYN-ACK's
/// (unscaled) window, so only windows advertised later cover what follows.
pub const WINDOW_LEAD: usize = 5600;
pub const WINDOW_GAP: usize = 2000;

// ---------------------------------------------------------------- endpoint model

/// Which copy of overlapping bytes (TCP out-of-order data, IP fragments)
/// the endpoint keeps.
#[derive(Clone, Copy, Debug)]
pub enum Overlap {
    FirstWins,
    LastWins,
    /// Linux: whole segments in the out-of-order queue, the one starting
    /// lowest read first (`tcp_data_queue_ofo`, `tcp_ofo_queue`); fragments
    /// in runs, duplicates inside a run ignored, other overlaps discarding
    /// the datagram (`inet_frag_queue_insert`).
    Linux,
}

/// What the endpoint does with a segment reaching past the right edge of
/// its receive window (the largest `ack + (window << scale)` it advertised:
/// Linux never shrinks the window it offered).
#[derive(Clone, Copy, Debug)]
pub enum Window {
    /// Linux: a segment whose first new byte is inside the window is taken
    /// whole, bytes past the edge included (`tcp_data_queue` queues the
    /// skb); one whose first new byte is at or past the edge is discarded
    /// (a zero window, `SKB_DROP_REASON_TCP_ZEROWINDOW`, or out of order
    /// beyond it, `SKB_DROP_REASON_TCP_OVERWINDOW`).
    Whole,
    /// RFC 793 3.9: the segment is trimmed to the window, bytes past the
    /// edge are discarded (the sender retransmits them).
    Trim,
}

/// One endpoint behaviour: the model reads every case under each.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub overlap: Overlap,
    pub window: Window,
}

/// Linux 6.x: its out-of-order queue (`tcp_data_queue_ofo`) and fragment
/// runs (`inet_frag_queue_insert`), segments taken whole.
pub const LINUX: Policy = Policy { overlap: Overlap::Linux, window: Window::Whole };

pub const POLICIES: [Policy; 4] = [
    Policy { overlap: Overlap::FirstWins, window: Window::Whole },
    Policy { overlap: Overlap::LastWins, window: Window::Whole },
    Policy { overlap: Overlap::FirstWins, window: Window::Trim },
    Policy { overlap: Overlap::LastWins, window: Window::Trim },
];

/// The client's bytes as a receiving endpoint holds and reads them.
#[derive(Default)]
pub struct Endpoint {
    /// Sequence number of stream byte 0.
    first: Option<SeqNumber>,
    /// In-order bytes received (urgent bytes included: they take sequence space).
    stream: Vec<u8>,
    ooo: BTreeMap<u64, u8>,
    /// Offsets of urgent bytes, which a normal read() skips.
    urgent: Vec<u64>,
    reset: bool,
    /// The client's SYN announced window scaling.
    client_scales: bool,
    /// Shift applied to the server's window fields (0 unless both SYNs
    /// carried the option, RFC 7323 2.2).
    server_shift: u8,
    /// Right edge of the receive window (stream offset); unlimited until the
    /// server advertised one.
    edge: Option<i64>,
    /// Linux's out-of-order queue: whole segments (start, bytes) by start.
    queue: Vec<(i64, Vec<u8>)>,
    /// PAWS: the client's timestamp the server holds (both SYNs carried
    /// the option).
    ts_recent: Option<u32>,
    /// The server's SYN-ACK carried timestamps.
    server_ts: bool,
}

impl Endpoint {
    /// Stream offset of `seq`.
    fn offset(&self, seq: SeqNumber) -> i64 {
        self.first.map_or(0, |f| seq.diff(f))
    }

    fn rcv_nxt(&self) -> i64 {
        self.stream.len() as i64
    }

    /// What the application reads.
    fn app(&self) -> Vec<u8> {
        self.stream
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.urgent.contains(&(*i as u64)))
            .map(|(_, b)| *b)
            .collect()
    }

    /// A window the server advertised (in a SYN-ACK: never scaled).
    fn advertise(&mut self, ack: SeqNumber, window: u16, syn: bool) {
        let shift = if syn { 0 } else { self.server_shift };
        let edge = self.offset(ack) + (i64::from(window) << shift);
        self.edge = Some(self.edge.map_or(edge, |e| e.max(edge)));
    }

    fn segment(&mut self, policy: Policy, seq: SeqNumber, data: &[u8], urgent: Option<usize>) {
        let start = self.offset(seq);
        let rcv = self.rcv_nxt();
        if start + data.len() as i64 <= rcv {
            // Old data (a retransmission): discarded.
            return;
        }
        let take = match (self.edge, policy.window) {
            (None, _) => data.len(),
            (Some(edge), Window::Whole) if start.max(rcv) >= edge => return,
            (Some(_), Window::Whole) => data.len(),
            (Some(edge), Window::Trim) => (edge - start).clamp(0, data.len() as i64) as usize,
        };
        if let Some(u) = urgent {
            // Linux default (no SO_OOBINLINE): the urgent byte is not read.
            self.urgent.push((start + u as i64).max(0) as u64);
        }
        if let Overlap::Linux = policy.overlap {
            self.linux_segment(start, &data[..take]);
            return;
        }
        for (i, &b) in data[..take].iter().enumerate() {
            let off = start + i as i64;
            let rcv = self.rcv_nxt();
            if off < rcv {
                continue;
            }
            if off == rcv {
                self.stream.push(b);
                self.ooo.remove(&(off as u64));
                continue;
            }
            match policy.overlap {
                Overlap::FirstWins => {
                    self.ooo.entry(off as u64).or_insert(b);
                }
                Overlap::LastWins | Overlap::Linux => {
                    self.ooo.insert(off as u64, b);
                }
            }
        }
        while let Some(b) = self.ooo.remove(&(self.stream.len() as u64)) {
            self.stream.push(b);
        }
    }

    /// Linux's tcp_data_queue / tcp_data_queue_ofo / tcp_ofo_queue.
    fn linux_segment(&mut self, start: i64, data: &[u8]) {
        let end = start + data.len() as i64;
        let rcv = self.rcv_nxt();
        if start <= rcv {
            self.stream.extend_from_slice(&data[(rcv - start) as usize..]);
            // Queued segments, lowest start first; bytes below rcv_nxt skipped.
            while let Some((s, _)) = self.queue.first() {
                if *s > self.rcv_nxt() {
                    break;
                }
                let (s, b) = self.queue.remove(0);
                let skip = self.rcv_nxt() - s;
                if (skip as usize) < b.len() {
                    self.stream.extend_from_slice(&b[skip as usize..]);
                }
            }
            return;
        }
        let floor = self.queue.iter().rposition(|(s, _)| *s <= start);
        let mut at = floor.map_or(0, |i| i + 1);
        if let Some(i) = floor {
            let (fs, fb) = &self.queue[i];
            let fend = fs + fb.len() as i64;
            if start < fend && end <= fend {
                return; // "All the bits are present. Drop."
            }
            if *fs == start {
                self.queue.remove(i);
                at = i;
            }
        }
        self.queue.insert(at, (start, data.to_vec()));
        while at + 1 < self.queue.len() && self.queue[at + 1].0 + self.queue[at + 1].1.len() as i64 <= end {
            self.queue.remove(at + 1);
        }
    }
}

/// Reads an IP-level capture as the server would: reassembles fragments
/// (discarding an IPv6 first fragment without the whole TCP header),
/// discards bad checksums, segments without ACK and segments outside the
/// receive window the server advertised, honours RSTs at rcv_nxt. The first
/// client packet carrying each of `lost` never arrives. Returns the bytes
/// each connection's application read, concatenated.
pub fn endpoint_reads(packets: &[Vec<u8>], policy: Policy, lost: &[&[u8]]) -> Vec<u8> {
    let mut frags: HashMap<(IpAddr, u32), Vec<Fragment>> = HashMap::new();
    let mut conns: Vec<((IpAddr, u16), Endpoint)> = Vec::new();
    let mut still_lost: Vec<&[u8]> = lost.to_vec();
    for raw in packets {
        let Ok(d) = decode(raw) else { continue };
        let whole;
        let d = if let Some(f) = d.ip.fragment {
            if d.ip.version == 6 && f.offset == 0 && d.ip_payload().len() < 20 {
                // RFC 8200 4.5, Linux ipv6_frag_thdr_truncated(): a first
                // fragment must hold the upper-layer header; it is discarded.
                continue;
            }
            let list = frags.entry((d.ip.src, f.id)).or_default();
            list.push((f.offset, d.ip_payload().to_vec(), f.more, raw[..d.ip.header_len].to_vec()));
            match reassemble(list, policy.overlap) {
                Some(p) => {
                    whole = p;
                    frags.remove(&(d.ip.src, f.id));
                    match decode(&whole) {
                        Ok(w) => w,
                        Err(_) => continue,
                    }
                }
                None => continue,
            }
        } else {
            d
        };
        let Transport::Tcp(t) = &d.transport else { continue };
        if !checksum::transport_ok(d.ip.src, d.ip.dst, proto::TCP, d.l4_bytes()) {
            continue;
        }
        if t.src_port == 80 {
            // The server's windows.
            let key = (d.ip.dst, t.dst_port);
            let Some((_, e)) = conns.iter_mut().rev().find(|(k, _)| *k == key) else { continue };
            if t.has(SYN | ACK) {
                e.server_ts = t.options.timestamp.is_some();
                let both = e.client_scales && t.options.window_scale.is_some();
                e.server_shift = if both { t.options.window_scale.unwrap_or(0).min(14) } else { 0 };
            }
            if t.has(ACK) && !t.has(RST) {
                e.advertise(t.ack, t.window, t.has(SYN));
            }
            continue;
        }
        if t.dst_port != 80 {
            continue;
        }
        if let Some(i) = still_lost.iter().position(|l| *l == d.payload() && d.ip.fragment.is_none()) {
            still_lost.remove(i);
            continue;
        }
        let key = (d.ip.src, t.src_port);
        if t.has(SYN) {
            // Linux without a TFO cookie ignores data on a SYN.
            let e = Endpoint {
                first: Some(t.seq + 1),
                client_scales: t.options.window_scale.is_some(),
                ts_recent: t.options.timestamp.map(|(v, _)| v),
                ..Endpoint::default()
            };
            conns.push((key, e));
            continue;
        }
        let Some((_, e)) = conns.iter_mut().rev().find(|(k, _)| *k == key) else { continue };
        if e.reset {
            continue;
        }
        if t.has(RST) {
            if e.offset(t.seq) == e.rcv_nxt() {
                e.reset = true;
            }
            continue;
        }
        if !t.has(ACK) {
            continue;
        }
        if d.l4_bytes().get(..t.header_len).is_some_and(auth_option::carries_auth) {
            // TCP-MD5 / TCP-AO with no key configured: discarded.
            continue;
        }
        let tsval = t.options.timestamp.map(|(v, _)| v);
        if let (Some(recent), Some(v), true) = (e.ts_recent, tsval, e.server_ts) {
            let carries = !d.payload().is_empty() || t.has(FIN);
            if carries && recent != 0 && recent.wrapping_sub(v) as i32 > 1 {
                continue; // PAWS
            }
        }
        let urgent = (t.has(URG) && t.urgent > 0).then(|| usize::from(t.urgent) - 1);
        let in_order = e.offset(t.seq) <= e.rcv_nxt();
        e.segment(policy, t.seq, d.payload(), urgent);
        if let (Some(recent), Some(v), true) = (e.ts_recent, tsval, in_order) {
            if v.wrapping_sub(recent) as i32 >= 0 {
                e.ts_recent = Some(v);
            }
        }
    }
    conns.into_iter().flat_map(|(_, e)| e.app()).collect()
}

/// A held fragment: offset, data, more-fragments flag, the IP header bytes.
pub type Fragment = (u32, Vec<u8>, bool, Vec<u8>);

/// Linux's view of a fragment list in arrival order: runs formed as
/// `inet_frag_queue_insert` forms them, duplicates inside a run ignored, any
/// other overlap killing the queue (later fragments start a new one).
fn linux_fragments(list: &[Fragment]) -> Vec<Fragment> {
    let mut kept: Vec<Fragment> = Vec::new();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    let mut tail: Option<(u32, usize)> = None;
    for f in list {
        let (o, e) = (f.0, f.0 + f.1.len() as u32);
        let fits = match tail {
            None => Some(false),
            Some((last, _)) if last < e => (o >= last).then_some(false),
            Some(_) => match runs.iter().find(|(a, b)| o < *b && *a < e) {
                None => Some(false),
                Some((a, b)) if *a <= o && e <= *b => Some(true),
                Some(_) => None,
            },
        };
        match fits {
            Some(true) => continue, // duplicate
            None => {
                kept.clear();
                runs.clear();
                tail = None;
                continue;
            }
            Some(false) => {}
        }
        match tail {
            Some((last, r)) if last == o => {
                runs[r].1 = e;
                tail = Some((e, r));
            }
            Some((last, _)) if last >= e => runs.push((o, e)),
            _ => {
                runs.push((o, e));
                tail = Some((e, runs.len() - 1));
            }
        }
        kept.push(f.clone());
    }
    kept
}

/// Reassembles a datagram once its fragments cover it; `None` until then.
pub fn reassemble(list: &[Fragment], policy: Overlap) -> Option<Vec<u8>> {
    if let Overlap::Linux = policy {
        let kept = linux_fragments(list);
        return reassemble(&kept, Overlap::FirstWins);
    }
    let end = list.iter().find(|f| !f.2).map(|f| f.0 as usize + f.1.len())?;
    let mut bytes: Vec<Option<u8>> = vec![None; end];
    let order: Vec<&Fragment> = match policy {
        Overlap::FirstWins | Overlap::Linux => list.iter().collect(),
        Overlap::LastWins => list.iter().rev().collect(),
    };
    for (off, data, _, _) in order {
        for (i, b) in data.iter().enumerate() {
            if let Some(slot) = bytes.get_mut(*off as usize + i) {
                slot.get_or_insert(*b);
            }
        }
    }
    let payload: Option<Vec<u8>> = bytes.into_iter().collect();
    let payload = payload?;
    let first = list.iter().find(|f| f.0 == 0)?;
    let mut header = first.3.clone();
    let total = (header.len() + payload.len()) as u16;
    if let Some(mut h) = Ipv4::new_checked(&mut header[..]) {
        h.set_total_len(total);
        h.set_fragment_field(0);
        h.fill_checksum();
    } else {
        // IPv6 from `fragment()`: base header + fragment header, whose
        // first byte is the next header.
        let next = header[IPV6_HEADER_LEN];
        header.truncate(IPV6_HEADER_LEN);
        let mut h = Ipv6::new_checked(&mut header[..]).unwrap();
        h.set_next_header(next);
        h.set_payload_len(payload.len() as u16);
    }
    header.extend_from_slice(&payload);
    Some(header)
}

// ---------------------------------------------------------------- running

pub fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity")
}

pub fn ip_packets(path: &Path) -> Vec<Vec<u8>> {
    let src = PcapSource::open(path).expect("capture opens");
    src.map(|r| r.expect("record reads")).filter_map(|r| r.ip().map(<[u8]>::to_vec)).collect()
}

pub fn bless() -> bool {
    std::env::var("SLUICE_BLESS").is_ok_and(|v| v == "1")
}

pub fn contains_attack(v: &[u8]) -> bool {
    v.windows(ATTACK.len()).any(|w| w == ATTACK)
}

pub fn show(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

pub fn run_case(case: &Case) {
    let dir = fixture_root().join(case.dir).join(case.name);
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("input.pcap");
    write_pcap_file(&input, &Framing::Raw, &case.packets).expect("input written");
    let output = tmp.path().join("output.pcap");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/rules.lua");
    let mut opts = OfflineOptions::new(rules, input.clone());
    opts.output = Some(output.clone());
    opts.alerts = Some(tmp.path().join("alerts.jsonl"));
    opts.engine = case.engine.clone();
    opts.progress = false;
    let summary = offline::run(&opts).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert!(!summary.has_errors(), "{}: {summary}", case.name);

    let before = ip_packets(&input);
    let after = ip_packets(&output);
    let reads = |pkts: &[Vec<u8>], p: Policy| endpoint_reads(pkts, p, case.lost);
    let (plain, filtered): (Option<&[u8]>, &[u8]) = match case.expect {
        Expect::Attack(filtered) => {
            assert!(
                case.models.iter().any(|p| contains_attack(&reads(&before, *p))),
                "{}: without sluice no endpoint policy reads the attack; the case proves nothing: {}",
                case.name,
                case.models.iter().map(|p| show(&reads(&before, *p))).collect::<Vec<_>>().join(", ")
            );
            assert!(!contains_attack(filtered), "{}: the case expects the attack through sluice", case.name);
            (None, filtered)
        }
        Expect::Benign(b) => (Some(b), b),
        Expect::Normalised { plain, filtered } => (Some(plain), filtered),
        Expect::Agreed(filtered) => {
            assert!(!contains_attack(filtered), "{}: the case expects the attack through sluice", case.name);
            (None, filtered)
        }
    };
    for &policy in case.models {
        let out = reads(&after, policy);
        assert!(
            !contains_attack(&out) || plain.is_some_and(contains_attack),
            "{} ({policy:?}): the endpoint read attack bytes through sluice: {}",
            case.name,
            show(&out)
        );
        assert!(
            out == filtered,
            "{} ({policy:?}): through sluice the endpoint read {}, expected {}",
            case.name,
            show(&out),
            show(filtered)
        );
        if let Some(plain) = plain {
            let got = reads(&before, policy);
            assert!(
                got == plain,
                "{} ({policy:?}): without sluice the endpoint read {}, expected {}",
                case.name,
                show(&got),
                show(plain)
            );
        }
    }
    let counter = |n: &str| summary.counters.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    for name in case.counters {
        let v = counter(name);
        assert!(v.is_some_and(|v| v >= 1), "{}: counter {name} is {v:?}, expected >= 1", case.name);
    }
    for name in case.zero {
        let v = counter(name);
        assert_eq!(v, Some(0), "{}: counter {name} must stay 0", case.name);
    }

    // Golden comparison of the exact output.
    let expected = dir.join("expected.pcap");
    let committed_input = dir.join("input.pcap");
    if bless() {
        fs::create_dir_all(&dir).expect("fixture dir");
        fs::copy(&input, &committed_input).expect("input saved");
        fs::copy(&output, &expected).expect("expected saved");
        return;
    }
    let want_in = fs::read(&committed_input).unwrap_or_else(|_| {
        panic!("{}: no fixture; run SLUICE_BLESS=1 cargo test --release --test fidelity", case.name)
    });
    assert!(
        fs::read(&input).unwrap() == want_in,
        "{}: generated input differs from the committed fixture",
        case.name
    );
    let want = ip_packets(&expected);
    assert_eq!(after.len(), want.len(), "{}: output packet count differs from expected.pcap", case.name);
    for (i, (a, w)) in after.iter().zip(&want).enumerate() {
        assert!(a == w, "{}: output packet {i} differs from expected.pcap", case.name);
    }
}
