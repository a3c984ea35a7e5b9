//! Writes `sample/demo.pcap`, the capture the offline demo and the README
//! use: a benign HTTP exchange, a telnet attempt, a connection that sends
//! "attack" split across two packets, a connection to 192.0.2.10, and a DNS
//! query. Run: `cargo run --example make_sample_pcap`.

use std::net::SocketAddr;
use std::path::Path;

use sluice::flow::Direction::{Down, Up};
use sluice::pcapgen::{write_pcap_file, Conversation, Framing, TimedPacket};
use sluice::time::Timestamp;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn main() -> std::io::Result<()> {
    let mut parts: Vec<Vec<TimedPacket>> = Vec::new();

    let mut http = Conversation::new(addr("10.200.1.1:41000"), addr("10.200.2.2:80"));
    http.handshake()
        .send(Up, b"GET /index.html HTTP/1.1\r\nHost: demo\r\n\r\n")
        .send(Down, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n")
        .close();
    parts.push(http.into_packets());

    let mut telnet = Conversation::new(addr("10.200.1.1:41001"), addr("10.200.2.2:23"))
        .at(Timestamp(sluice::pcapgen::DEFAULT_START.0 + 20_000));
    telnet.handshake().send(Up, b"root\r\n");
    parts.push(telnet.into_packets());

    let mut attack = Conversation::new(addr("10.200.1.1:41002"), addr("10.200.2.2:80"))
        .at(Timestamp(sluice::pcapgen::DEFAULT_START.0 + 40_000));
    attack
        .handshake()
        .send(Up, b"POST /login HTTP/1.1\r\n\r\nuser=att")
        .send(Up, b"ack&pass=x")
        .send(Down, b"late reply");
    parts.push(attack.into_packets());

    let mut doc = Conversation::new(addr("10.200.1.1:41003"), addr("192.0.2.10:443"))
        .at(Timestamp(sluice::pcapgen::DEFAULT_START.0 + 60_000));
    doc.handshake().send(Up, b"hello documentation network").close();
    parts.push(doc.into_packets());

    let mut dns = Conversation::new(addr("10.200.1.1:5353"), addr("10.200.2.2:53"))
        .at(Timestamp(sluice::pcapgen::DEFAULT_START.0 + 80_000));
    dns.udp(Up, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04demo\x00\x00\x01\x00\x01");
    parts.push(dns.into_packets());

    let mut all: Vec<TimedPacket> = parts.into_iter().flatten().collect();
    all.sort_by_key(|p| p.0);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/demo.pcap");
    write_pcap_file(&out, &Framing::Ethernet, &all)?;
    println!("wrote {} packets to {}", all.len(), out.display());
    Ok(())
}
