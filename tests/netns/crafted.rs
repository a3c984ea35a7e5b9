//! A crafted TCP client for the testbed: it speaks TCP to a real server
//! application through raw sockets, sending exactly the packets a test builds
//! (with `sluice::pcapgen::Conversation`), however adversarial, and learning
//! the server's answers (ISN, ACKs, FIN, RST) from a raw TCP socket.
//!
//! The client namespace's kernel has no socket for these connections and
//! would answer every server packet with an RST; [`suppress_kernel_rsts`]
//! drops those in the client namespace (the crafted packets carry [`MARK`]
//! and are exempt, so crafted RSTs still go out).

use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sluice::flow::Direction::Up;
use sluice::pcapgen::{Conversation, TimedPacket};
use sluice::wire::{tcp_flags, SeqNumber};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{sh, Testbed};

/// Firewall mark of crafted packets, so the RST-suppression rule spares them.
pub const MARK: u32 = 0x7e57;

/// SYN options: MSS 1460, NOP, window scale 7, SACK permitted.
pub const SYN_OPTIONS: &[u8] = &[2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2];

/// How long a crafted client waits for one answer of the server.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Drops the client kernel's own RSTs (iptables and ip6tables, inside the
/// client namespace, so they go away with it).
pub fn suppress_kernel_rsts(tb: &Testbed) {
    for tool in ["iptables", "ip6tables"] {
        let mark = format!("{MARK:#x}");
        sh(&[
            "ip",
            "netns",
            "exec",
            &tb.client,
            tool,
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "--tcp-flags",
            "RST",
            "RST",
            "-m",
            "mark",
            "!",
            "--mark",
            &mark,
            "-j",
            "DROP",
        ]);
    }
}

/// A packet the server sent to the crafted client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: u8,
    /// The window field, unscaled.
    pub window: u16,
    pub payload_len: usize,
    /// The window scale option (SYN segments only).
    pub wscale: Option<u8>,
}

impl Answer {
    pub fn has(&self, f: u8) -> bool {
        self.flags & f == f
    }
}

/// Parses a TCP header at the start of `tcp` (etherparse).
fn parse_tcp(tcp: &[u8]) -> Option<(u16, u16, Answer)> {
    let h = etherparse::TcpHeaderSlice::from_slice(tcp).ok()?;
    let bits = [
        (h.fin(), tcp_flags::FIN),
        (h.syn(), tcp_flags::SYN),
        (h.rst(), tcp_flags::RST),
        (h.psh(), tcp_flags::PSH),
        (h.ack(), tcp_flags::ACK),
        (h.urg(), tcp_flags::URG),
        (h.ece(), tcp_flags::ECE),
        (h.cwr(), tcp_flags::CWR),
    ];
    let flags = bits.iter().filter(|(set, _)| *set).fold(0, |f, (_, bit)| f | bit);
    let wscale = if h.syn() {
        h.options_iterator().flatten().find_map(|o| match o {
            etherparse::TcpOptionElement::WindowScale(shift) => Some(shift),
            _ => None,
        })
    } else {
        None
    };
    let answer = Answer {
        seq: SeqNumber(h.sequence_number()),
        ack: SeqNumber(h.acknowledgment_number()),
        flags,
        window: h.window_size(),
        payload_len: tcp.len().saturating_sub(h.slice().len()),
        wscale,
    };
    Some((h.source_port(), h.destination_port(), answer))
}

/// One crafted connection endpoint (possibly several connections in turn on
/// the same 4-tuple).
pub struct CraftedClient {
    pub client: SocketAddr,
    pub server: SocketAddr,
    tx: Socket,
    rx: Socket,
    /// Everything the server sent to this client port, in arrival order.
    pub answers: Vec<Answer>,
    /// What happened, for failure messages.
    pub trace: Vec<String>,
    started: Instant,
    /// Index in `answers` where the current connection's answers start.
    conn_from: usize,
    /// The current connection's SYN-ACK.
    pub synack: Option<Answer>,
}

impl CraftedClient {
    /// Opens the raw sockets (call inside the client namespace). Pins the
    /// calling thread to one CPU so consecutive sends reach the gateway in
    /// order even without gaps between them.
    pub fn new(client: SocketAddr, server: SocketAddr) -> io::Result<Self> {
        let domain = if client.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
        // IPPROTO_RAW: IPv4 implies IP_HDRINCL; on IPv6 Linux takes the whole
        // IPv6 header (and any fragment header) from the buffer.
        let tx = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
        tx.set_mark(MARK)?;
        let rx = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
        rx.set_read_timeout(Some(Duration::from_millis(5)))?;
        pin_to_first_cpu();
        Ok(CraftedClient {
            client,
            server,
            tx,
            rx,
            answers: Vec::new(),
            trace: Vec::new(),
            started: Instant::now(),
            conn_from: 0,
            synack: None,
        })
    }

    /// Adds a timed line to the trace.
    pub fn note(&mut self, what: String) {
        let ms = self.started.elapsed().as_millis();
        self.trace.push(format!("{ms:>5} ms {what}"));
    }

    /// Sends one IP packet exactly as built.
    pub fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        let dst = SockAddr::from(SocketAddr::new(self.server.ip(), 0));
        let n = self.tx.send_to(packet, &dst)?;
        if n != packet.len() {
            return Err(io::Error::other(format!("short send: {n} of {}", packet.len())));
        }
        let what = describe(packet);
        self.note(format!("sent {what}"));
        Ok(())
    }

    /// Reads what the raw socket holds (bounded: it stops at the first
    /// empty read, and after 10,000 packets).
    fn poll(&mut self) {
        let mut buf = [0u8; 65536];
        for _ in 0..10_000 {
            let n = match (&self.rx).read(&mut buf) {
                Ok(n) => n,
                Err(_) => return,
            };
            let pkt = &buf[..n];
            // An IPv4 raw socket delivers the IP header, an IPv6 one does not.
            let tcp = if self.client.is_ipv4() {
                let Ok(ip) = etherparse::Ipv4HeaderSlice::from_slice(pkt) else { continue };
                if IpAddr::from(ip.source_addr()) != self.server.ip() {
                    continue;
                }
                &pkt[ip.slice().len()..]
            } else {
                pkt
            };
            let Some((sport, dport, a)) = parse_tcp(tcp) else { continue };
            if sport == self.server.port() && dport == self.client.port() {
                self.answers.push(a);
                self.note(format!(
                    "got flags {:#04x} seq {} ack {} win {} len {}",
                    a.flags, a.seq.0, a.ack.0, a.window, a.payload_len
                ));
            }
        }
    }

    /// Waits (at most `limit`) for an answer after index `from` matching `want`.
    pub fn wait_for(
        &mut self,
        from: usize,
        limit: Duration,
        want: impl Fn(&Answer) -> bool,
    ) -> Option<Answer> {
        let deadline = Instant::now() + limit;
        loop {
            self.poll();
            if let Some(a) = self.answers.iter().skip(from).find(|a| want(a)) {
                return Some(*a);
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Lets `d` pass while collecting answers.
    pub fn pause(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            self.poll();
        }
    }

    /// SYN (with [`SYN_OPTIONS`] and `syn_payload`), SYN-ACK, ACK. Returns a
    /// conversation positioned after the handshake (client next sequence
    /// number `isn + 1`, acknowledging the server's SYN), packets `step`
    /// apart for [`CraftedClient::play`].
    pub fn handshake(&mut self, isn: u32, syn_payload: &[u8], step: Duration) -> io::Result<Conversation> {
        self.handshake_with(isn, SYN_OPTIONS, syn_payload, step)
    }

    /// [`CraftedClient::handshake`] with other SYN options (timestamps, a
    /// signature).
    pub fn handshake_with(
        &mut self,
        isn: u32,
        options: &[u8],
        syn_payload: &[u8],
        step: Duration,
    ) -> io::Result<Conversation> {
        let isn = SeqNumber(isn);
        self.conn_from = self.answers.len();
        let mut c = Conversation::new(self.client, self.server).isn(isn.0, 0);
        let syn = c.build(Up, isn, tcp_flags::SYN, options, syn_payload);
        let mut synack = None;
        for _ in 0..3 {
            let from = self.answers.len();
            self.send(&syn)?;
            synack = self.wait_for(from, Duration::from_secs(1), |a| {
                a.has(tcp_flags::SYN | tcp_flags::ACK) && a.ack == isn + 1
            });
            if synack.is_some() {
                break;
            }
        }
        let synack = synack.ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no SYN-ACK"))?;
        self.synack = Some(synack);
        let mut c = Conversation::new(self.client, self.server)
            .isn((isn + 1).0, (synack.seq + 1).0)
            .step_micros(step.as_micros() as u64);
        let ack = c.build(Up, isn + 1, tcp_flags::ACK, &[], &[]);
        self.send(&ack)?;
        Ok(c)
    }

    /// The receive window an answer of the current connection advertises, in
    /// bytes: a SYN-ACK's window field is never scaled (RFC 7323 2.2), later
    /// ones are shifted by the SYN-ACK's window scale ([`SYN_OPTIONS`] offers
    /// one, so scaling is on whenever the server's SYN-ACK has the option).
    pub fn window_of(&self, a: &Answer) -> u32 {
        if a.has(tcp_flags::SYN) {
            return u32::from(a.window);
        }
        let shift = self.synack.and_then(|s| s.wscale).unwrap_or(0).min(14);
        u32::from(a.window) << shift
    }

    /// The right edge of the receive window the server advertised last on
    /// the current connection (acknowledgment number plus window), after
    /// collecting what has arrived; with its answer. This is the edge Linux
    /// checks against (`rcv_wup + rcv_wnd`: both are set whenever it sends
    /// an ACK).
    pub fn right_edge(&mut self) -> Option<(SeqNumber, Answer)> {
        self.poll();
        let a = *self.answers.iter().skip(self.conn_from).rev().find(|a| a.has(tcp_flags::ACK))?;
        Some((a.ack + self.window_of(&a), a))
    }

    /// Waits (at most `limit`) for an answer of the current connection
    /// acknowledging `seq` or more, or for an RST; returns it.
    pub fn wait_for_ack(&mut self, seq: SeqNumber, limit: Duration) -> Option<Answer> {
        let from = self.conn_from;
        self.wait_for(from, limit, |a| {
            a.has(tcp_flags::RST) || (a.has(tcp_flags::ACK) && a.ack.at_or_after(seq))
        })
    }

    /// Waits (at most `limit`) for an answer of the current connection
    /// acknowledging `seq` or more with an open window (room from `seq` on),
    /// or for an RST; returns it.
    pub fn wait_for_open(&mut self, seq: SeqNumber, limit: Duration) -> Option<Answer> {
        let from = self.conn_from;
        self.wait_for(from, limit, |a| {
            a.has(tcp_flags::RST) || (a.has(tcp_flags::ACK) && a.ack.at_or_after(seq) && a.window > 0)
        })
    }

    /// Plays a script: client packets are sent at their relative times;
    /// a server packet in the script (what `Conversation::send`, `close` and
    /// the like add) means "wait until the server sent this": an ACK at
    /// least as far, with FIN if it has FIN (bounded by [`ANSWER_TIMEOUT`]).
    pub fn play(&mut self, packets: &[TimedPacket]) -> io::Result<()> {
        let mut prev = packets.first().map(|p| p.0);
        for (t, p) in packets {
            let gap = prev.map_or(0, |pt| t.0.saturating_sub(pt.0));
            prev = Some(*t);
            self.pause(Duration::from_micros(gap));
            let Some(d) = sluice::wire::decode(p).ok() else {
                // A non-first fragment of an IPv6 datagram may not decode as
                // TCP; anything the script built is sent.
                self.send(p)?;
                continue;
            };
            if d.ip.src == self.client.ip() {
                self.send(p)?;
                continue;
            }
            let Some(t) = d.tcp() else { continue };
            let (ack, fin) = (t.ack, t.has(tcp_flags::FIN));
            let from = self.conn_from;
            let got = self.wait_for(from, ANSWER_TIMEOUT, |a| {
                a.has(tcp_flags::ACK) && a.ack.at_or_after(ack) && (!fin || a.has(tcp_flags::FIN))
            });
            if got.is_none() {
                self.note(format!("no server answer acknowledging {} (fin: {fin})", ack.0));
            }
        }
        Ok(())
    }
}

/// A one-line description of a crafted packet for traces.
pub fn describe(p: &[u8]) -> String {
    match sluice::wire::decode(p) {
        Ok(d) => {
            let frag = d.ip.fragment.map(|f| format!(" fragment off {} more {}", f.offset, f.more));
            match d.tcp() {
                Some(t) if d.ip.fragment.is_none() => format!(
                    "flags {:#04x} seq {} len {} {:?}{}",
                    t.flags,
                    t.seq.0,
                    d.payload().len(),
                    abbreviated(d.payload()),
                    frag.unwrap_or_default()
                ),
                _ => format!("{} bytes{}", p.len(), frag.unwrap_or_default()),
            }
        }
        Err(e) => format!("{} bytes (undecodable: {e:?})", p.len()),
    }
}

/// A payload as text, its middle left out if it is long.
fn abbreviated(payload: &[u8]) -> String {
    const SHOWN: usize = 24;
    if payload.len() <= 3 * SHOWN {
        return String::from_utf8_lossy(payload).into_owned();
    }
    let (head, tail) = (&payload[..SHOWN], &payload[payload.len() - SHOWN..]);
    format!(
        "{}[{} bytes]{}",
        String::from_utf8_lossy(head),
        payload.len() - 2 * SHOWN,
        String::from_utf8_lossy(tail)
    )
}

fn pin_to_first_cpu() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity(0) act on this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = MaybeUninit::zeroed().assume_init();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
