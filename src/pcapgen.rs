//! Building test traffic: a [`Conversation`] builder that produces a TCP
//! connection's packets with consistent sequence and acknowledgment numbers
//! (plus arbitrary custom segments for adversarial cases), and writers that
//! wrap IP packets in any supported link type and save them as pcap or pcapng.
//!
//! Used by the golden-test fixture generator, the malformed-input tests, the
//! network-namespace tests and the benchmarks.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use crate::capture::link::LinkType;
use crate::flow::Direction;
use crate::inject::pcap_writer::PcapOutput;
use crate::time::Timestamp;
use crate::wire::forge::{ip_packet, udp_packet, TcpSegment};
use crate::wire::{checksum, proto, tcp_flags, SeqNumber};

/// A packet and its capture time.
pub type TimedPacket = (Timestamp, Vec<u8>);

/// Default start time of generated traffic: 2023-11-14T22:13:20Z.
pub const DEFAULT_START: Timestamp = Timestamp(1_700_000_000_000_000);

/// One TCP connection being scripted. Directions are as the engine names
/// them: [`Direction::Up`] is client → server.
#[derive(Debug, Clone)]
pub struct Conversation {
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number each side sends (index: Direction::index of the sender).
    next_seq: [SeqNumber; 2],
    time: Timestamp,
    step_micros: u64,
    ip_id: u16,
    packets: Vec<TimedPacket>,
}

impl Conversation {
    /// A connection from `client` to `server` (both IPv4 or both IPv6) with
    /// initial sequence numbers 1000 (client) and 5000 (server), starting at
    /// [`DEFAULT_START`], packets 1 ms apart.
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        Conversation {
            client,
            server,
            next_seq: [SeqNumber(1000), SeqNumber(5000)],
            time: DEFAULT_START,
            step_micros: 1000,
            ip_id: 1,
            packets: Vec::new(),
        }
    }

    /// Sets the initial sequence numbers (before the handshake).
    pub fn isn(mut self, client: u32, server: u32) -> Self {
        self.next_seq = [SeqNumber(client), SeqNumber(server)];
        self
    }

    /// Sets the time of the next packet.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.time = t;
        self
    }

    /// Sets the spacing between packets.
    pub fn step_micros(mut self, micros: u64) -> Self {
        self.step_micros = micros;
        self
    }

    /// Lets `micros` of packet time pass.
    pub fn wait(&mut self, micros: u64) -> &mut Self {
        self.time = Timestamp(self.time.0.saturating_add(micros));
        self
    }

    /// Moves the next sequence number of the sender of `dir` past `bytes`
    /// it sent by other means: segments made with [`Conversation::build`]
    /// (cut into IP fragments, or sent out of order).
    pub fn skip(&mut self, dir: Direction, bytes: u32) -> &mut Self {
        let i = dir.index();
        self.next_seq[i] = self.next_seq[i] + bytes;
        self
    }

    /// The client's address.
    pub fn client(&self) -> SocketAddr {
        self.client
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The next sequence number the sender of `dir` will use.
    pub fn next_seq(&self, dir: Direction) -> SeqNumber {
        self.next_seq[dir.index()]
    }

    fn ends(&self, dir: Direction) -> (SocketAddr, SocketAddr) {
        match dir {
            Direction::Up => (self.client, self.server),
            Direction::Down => (self.server, self.client),
        }
    }

    /// Appends an arbitrary packet (UDP, ICMP, a fragment...) to the timeline.
    pub fn push(&mut self, packet: Vec<u8>) -> &mut Self {
        self.packets.push((self.time, packet));
        self.time = Timestamp(self.time.0.saturating_add(self.step_micros));
        self
    }

    /// Builds a segment from the sender of `dir` with explicit sequence
    /// number, flags, options and payload; the ACK field (with ACK in `flags`)
    /// is the peer's next sequence number. Does not change the tracked
    /// sequence numbers: this is for adversarial segments.
    pub fn build(
        &mut self,
        dir: Direction,
        seq: SeqNumber,
        flags: u8,
        options: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let (src, dst) = self.ends(dir);
        let mut seg = TcpSegment::new(src.ip(), src.port(), dst.ip(), dst.port());
        seg.seq = seq;
        if flags & tcp_flags::ACK != 0 {
            seg.ack = self.next_seq[dir.reverse().index()];
        }
        seg.flags = flags;
        seg.options = options;
        seg.payload = payload;
        seg.ip_id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        seg.build()
    }

    /// Appends a custom segment (see [`Conversation::build`]).
    pub fn segment(&mut self, dir: Direction, seq: SeqNumber, flags: u8, payload: &[u8]) -> &mut Self {
        let p = self.build(dir, seq, flags, &[], payload);
        self.push(p)
    }

    /// SYN (MSS 1460, window scale 7, SACK permitted), SYN-ACK, ACK.
    pub fn handshake(&mut self) -> &mut Self {
        // MSS 1460, NOP, wscale 7, SACK permitted.
        const OPTS: [u8; 11] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 0];
        let isn_c = self.next_seq[0];
        let syn = self.build(Direction::Up, isn_c, tcp_flags::SYN, &OPTS[..10], &[]);
        self.push(syn);
        self.next_seq[0] = isn_c + 1;
        let isn_s = self.next_seq[1];
        let synack = self.build(Direction::Down, isn_s, tcp_flags::SYN | tcp_flags::ACK, &OPTS[..10], &[]);
        self.push(synack);
        self.next_seq[1] = isn_s + 1;
        self.ack(Direction::Up)
    }

    /// A data segment (PSH|ACK) from the sender of `dir`, not yet acknowledged.
    pub fn data(&mut self, dir: Direction, payload: &[u8]) -> &mut Self {
        let seq = self.next_seq[dir.index()];
        let p = self.build(dir, seq, tcp_flags::PSH | tcp_flags::ACK, &[], payload);
        self.next_seq[dir.index()] = seq + payload.len() as u32;
        self.push(p)
    }

    /// A data segment from the sender of `dir` and the receiver's ACK.
    pub fn send(&mut self, dir: Direction, payload: &[u8]) -> &mut Self {
        self.data(dir, payload).ack(dir.reverse())
    }

    /// A pure ACK from the sender of `dir`.
    pub fn ack(&mut self, dir: Direction) -> &mut Self {
        let seq = self.next_seq[dir.index()];
        let p = self.build(dir, seq, tcp_flags::ACK, &[], &[]);
        self.push(p)
    }

    /// FIN|ACK from the sender of `dir`.
    pub fn fin(&mut self, dir: Direction) -> &mut Self {
        let seq = self.next_seq[dir.index()];
        let p = self.build(dir, seq, tcp_flags::FIN | tcp_flags::ACK, &[], &[]);
        self.next_seq[dir.index()] = seq + 1;
        self.push(p)
    }

    /// Orderly close: FIN from the client, ACK, FIN from the server, ACK.
    pub fn close(&mut self) -> &mut Self {
        self.fin(Direction::Up).ack(Direction::Down).fin(Direction::Down).ack(Direction::Up)
    }

    /// RST (with ACK) from the sender of `dir`, at its next sequence number.
    pub fn rst(&mut self, dir: Direction) -> &mut Self {
        let seq = self.next_seq[dir.index()];
        let p = self.build(dir, seq, tcp_flags::RST | tcp_flags::ACK, &[], &[]);
        self.push(p)
    }

    /// A UDP datagram between the same two addresses and ports.
    pub fn udp(&mut self, dir: Direction, payload: &[u8]) -> &mut Self {
        let (src, dst) = self.ends(dir);
        let p = udp_packet(src.ip(), src.port(), dst.ip(), dst.port(), payload);
        self.push(p)
    }

    /// The packets so far.
    pub fn packets(&self) -> &[TimedPacket] {
        &self.packets
    }

    /// The packets, consuming the builder.
    pub fn into_packets(self) -> Vec<TimedPacket> {
        self.packets
    }
}

/// An ICMP (IPv4) or ICMPv6 echo request with a correct checksum.
pub fn icmp_echo(src: IpAddr, dst: IpAddr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let mut icmp = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let c = if v6 {
        checksum::transport(src, dst, proto::ICMPV6, &icmp)
    } else {
        checksum::finish(checksum::sum(0, &icmp))
    };
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ip_packet(src, dst, if v6 { proto::ICMPV6 } else { proto::ICMP }, 64, 0, &icmp)
}

/// How generated IP packets are framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Ethernet; MAC addresses derived from the IP addresses.
    Ethernet,
    /// Ethernet with these VLAN tags, outermost first (0x88a8 for the outer
    /// tag of two or more, 0x8100 for the rest).
    Vlan(Vec<u16>),
    /// Raw IP (101).
    Raw,
    /// Raw IPv4 (228); IPv6 packets are written anyway.
    RawV4,
    /// Raw IPv6 (229).
    RawV6,
    /// Linux cooked v1.
    Sll,
    /// Linux cooked v2.
    Sll2,
    /// BSD loopback, little-endian family (as written on x86).
    Null,
    /// OpenBSD loopback, big-endian family.
    Loop,
    /// PPP in HDLC-like framing (`ff 03`), protocol field compressed
    /// (one byte) or not.
    Ppp {
        /// The protocol field in one byte (RFC 1661's field compression).
        compressed: bool,
    },
    /// Cisco HDLC.
    CiscoHdlc,
}

impl Framing {
    /// The pcap link type this framing produces.
    pub fn link_type(&self) -> LinkType {
        match self {
            Framing::Ethernet | Framing::Vlan(_) => LinkType::Ethernet,
            Framing::Raw => LinkType::Raw,
            Framing::RawV4 => LinkType::Ipv4,
            Framing::RawV6 => LinkType::Ipv6,
            Framing::Sll => LinkType::LinuxSll,
            Framing::Sll2 => LinkType::LinuxSll2,
            Framing::Null => LinkType::Null,
            Framing::Loop => LinkType::Loop,
            Framing::Ppp { .. } => LinkType::Ppp,
            Framing::CiscoHdlc => LinkType::CiscoHdlc,
        }
    }

    /// A short name for file names.
    pub fn name(&self) -> &'static str {
        match self {
            Framing::Ethernet => "ethernet",
            Framing::Vlan(t) if t.len() > 1 => "qinq",
            Framing::Vlan(_) => "vlan",
            Framing::Raw => "raw",
            Framing::RawV4 => "ipv4",
            Framing::RawV6 => "ipv6",
            Framing::Sll => "sll",
            Framing::Sll2 => "sll2",
            Framing::Null => "null",
            Framing::Loop => "loop",
            Framing::Ppp { compressed: false } => "ppp",
            Framing::Ppp { compressed: true } => "ppp-pfc",
            Framing::CiscoHdlc => "chdlc",
        }
    }

    /// Wraps an IP packet in this framing.
    pub fn frame(&self, ip: &[u8]) -> Vec<u8> {
        let v6 = ip.first().map(|b| b >> 4) == Some(6);
        let ethertype: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let (src_mac, dst_mac) = macs(ip);
        let mut f = Vec::with_capacity(ip.len() + 24);
        match self {
            Framing::Ethernet | Framing::Vlan(_) => {
                f.extend_from_slice(&dst_mac);
                f.extend_from_slice(&src_mac);
                if let Framing::Vlan(tags) = self {
                    for (i, tag) in tags.iter().enumerate() {
                        let tpid: u16 = if i == 0 && tags.len() > 1 { 0x88a8 } else { 0x8100 };
                        f.extend_from_slice(&tpid.to_be_bytes());
                        f.extend_from_slice(&(tag & 0x0fff).to_be_bytes());
                    }
                }
                f.extend_from_slice(&ethertype);
            }
            Framing::Raw | Framing::RawV4 | Framing::RawV6 => {}
            Framing::Sll => {
                f.extend_from_slice(&[0, 0, 0, 1, 0, 6]); // to us, ARPHRD_ETHER, 6-byte address
                f.extend_from_slice(&src_mac);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&ethertype);
            }
            Framing::Sll2 => {
                f.extend_from_slice(&ethertype);
                f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6]); // reserved, ifindex 2, ARPHRD_ETHER, to us, len 6
                f.extend_from_slice(&src_mac);
                f.extend_from_slice(&[0, 0]);
            }
            Framing::Null => f.extend_from_slice(&(if v6 { 30u32 } else { 2 }).to_le_bytes()),
            Framing::Loop => f.extend_from_slice(&(if v6 { 24u32 } else { 2 }).to_be_bytes()),
            Framing::Ppp { compressed } => {
                let protocol: u8 = if v6 { 0x57 } else { 0x21 };
                f.extend_from_slice(&[0xff, 0x03]);
                if !compressed {
                    f.push(0);
                }
                f.push(protocol);
            }
            Framing::CiscoHdlc => {
                f.extend_from_slice(&[0x0f, 0]);
                f.extend_from_slice(&ethertype);
            }
        }
        f.extend_from_slice(ip);
        f
    }
}

/// Locally administered MACs derived from the last bytes of the IP addresses,
/// so each host keeps its MAC across packets.
fn macs(ip: &[u8]) -> ([u8; 6], [u8; 6]) {
    let last_two = |a: IpAddr| match a {
        IpAddr::V4(a) => (a.octets()[2], a.octets()[3]),
        IpAddr::V6(a) => (a.octets()[14], a.octets()[15]),
    };
    let (s, d) =
        crate::wire::header::addresses(ip).map_or(((0, 0), (0, 0)), |(s, d)| (last_two(s), last_two(d)));
    ([0x02, 0, 0, 0, s.0, s.1], [0x02, 0, 0, 0, d.0, d.1])
}

/// Writes packets as a classic pcap (microsecond timestamps) with `framing`.
pub fn write_pcap<W: Write>(w: W, framing: &Framing, packets: &[TimedPacket]) -> io::Result<W> {
    let mut out = PcapOutput::new(w, framing.link_type(), false, 0)?;
    for (t, ip) in packets {
        let frame = framing.frame(ip);
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        out.write_frame(t.as_micros().saturating_mul(1000), &frame, len)?;
    }
    out.finish()
}

/// Writes packets to a pcap file.
pub fn write_pcap_file(path: &Path, framing: &Framing, packets: &[TimedPacket]) -> io::Result<()> {
    let f = io::BufWriter::new(std::fs::File::create(path)?);
    write_pcap(f, framing, packets).map(|_| ())
}

/// Writes packets as pcapng: one section, one interface (microsecond
/// timestamps), one enhanced packet block per packet.
pub fn write_pcapng<W: Write>(w: W, framing: &Framing, packets: &[TimedPacket]) -> io::Result<W> {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;

    let err = |e: pcap_file::PcapError| io::Error::other(e.to_string());
    let mut out = PcapNgWriter::new(w).map_err(err)?;
    let idb = InterfaceDescriptionBlock::new(DataLink::from(framing.link_type().number()), 0);
    out.write_pcapng_block(idb).map_err(err)?;
    for (t, ip) in packets {
        let frame = framing.frame(ip);
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            // pcap-file stores the raw timestamp units in this Duration's
            // nanoseconds; the interface's default unit is microseconds.
            timestamp: std::time::Duration::from_nanos(t.as_micros()),
            original_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            data: std::borrow::Cow::Owned(frame),
            options: vec![],
        };
        out.write_pcapng_block(epb).map_err(err)?;
    }
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::link::locate_ip;
    use crate::wire::decode;

    fn conv() -> Conversation {
        Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap())
    }

    #[test]
    fn conversation_numbers_are_consistent() {
        let mut c = conv();
        c.handshake().send(Direction::Up, b"hello").send(Direction::Down, b"world!").close();
        let p = c.packets();
        assert_eq!(p.len(), 3 + 2 + 2 + 4);
        let tcp = |i: usize| decode(&p[i].1).unwrap().tcp().cloned().unwrap();
        assert_eq!(tcp(0).seq, SeqNumber(1000));
        assert!(tcp(0).has(tcp_flags::SYN) && tcp(0).options.window_scale == Some(7));
        assert_eq!((tcp(1).seq, tcp(1).ack), (SeqNumber(5000), SeqNumber(1001)));
        assert_eq!((tcp(3).seq, tcp(3).payload_len), (SeqNumber(1001), 5));
        assert_eq!(tcp(4).ack, SeqNumber(1006), "server acks the data");
        assert_eq!(tcp(6).ack, SeqNumber(5007), "client acks the server's data");
        assert_eq!(tcp(7).seq, SeqNumber(1006), "client FIN after its data");
        assert_eq!(tcp(10).ack, SeqNumber(5008), "last ACK covers the server FIN");
        assert!(p.windows(2).all(|w| w[0].0 < w[1].0), "time advances");
    }

    #[test]
    fn every_framing_roundtrips_through_the_reader() {
        let mut c = Conversation::new("[fd00::1]:1234".parse().unwrap(), "[fd00::2]:443".parse().unwrap());
        c.handshake().send(Direction::Up, b"x");
        c.push(icmp_echo("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), 1, 1, b"ping"));
        for framing in [
            Framing::Ethernet,
            Framing::Vlan(vec![10]),
            Framing::Vlan(vec![10, 20]),
            Framing::Raw,
            Framing::RawV6,
            Framing::Sll,
            Framing::Sll2,
            Framing::Null,
            Framing::Loop,
            Framing::Ppp { compressed: false },
            Framing::Ppp { compressed: true },
            Framing::CiscoHdlc,
        ] {
            for frame_ip in c.packets() {
                let f = framing.frame(&frame_ip.1);
                let l3 = locate_ip(framing.link_type(), &f).expect("located");
                assert_eq!(&f[l3], &frame_ip.1[..], "{}", framing.name());
            }
        }
        let icmp = decode(&c.packets()[5].1).unwrap();
        assert!(checksum::transport_ok(icmp.ip.src, icmp.ip.dst, proto::ICMPV6, icmp.l4_bytes()));
    }
}
