//! The raw-socket injector on the gateway: forged IPv4 and IPv6 packets with
//! a spoofed source reach the server's application, and they carry the
//! firewall mark (so a queue rule can exempt them). Needs root.

mod netns;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use netns::{join_bounded, sh, Testbed, CLIENT4, CLIENT6, SERVER4, SERVER6};
use sluice::inject::raw::{InjectStats, RawInjector};
use sluice::wire::forge::udp_packet;

#[test]
fn forged_packets_reach_the_server_and_carry_the_mark() {
    let Some(tb) = Testbed::new() else { return };
    // Count marked packets leaving the gateway.
    for tool in ["iptables", "ip6tables"] {
        sh(&[
            "ip", "netns", "exec", &tb.gw, tool, "-A", "OUTPUT", "-m", "mark", "--mark", "0x5e1ce", "-j",
            "ACCEPT",
        ]);
    }
    for (client, server, port) in [(CLIENT4, SERVER4, 7700u16), (CLIENT6, SERVER6, 7701)] {
        let (tx, rx) = std::sync::mpsc::channel();
        let srv = tb.on_server(move || {
            let s = UdpSocket::bind(SocketAddr::new(server, port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 256];
            s.recv_from(&mut buf).map(|(n, from)| (buf[..n].to_vec(), from))
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let stats = Arc::new(InjectStats::default());
        let stats2 = Arc::clone(&stats);
        let gw = Testbed::in_ns(&tb.gw, move || {
            let inj = RawInjector::new(0x5e1ce, stats2).expect("raw sockets");
            inj.send(&udp_packet(client, 4444, server, port, b"forged"));
            inj.send(b"\x99not ip");
        });
        join_bounded(gw, Duration::from_secs(5));
        let (data, from) =
            join_bounded(srv, Duration::from_secs(5)).expect("server received the forged datagram");
        assert_eq!(data, b"forged");
        assert_eq!(from, SocketAddr::new(client, 4444), "spoofed source kept");
        assert_eq!(stats.sent.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(
            stats.errors.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "a non-IP packet is counted, not fatal"
        );
    }
    for tool in ["iptables", "ip6tables"] {
        let out = sh(&["ip", "netns", "exec", &tb.gw, tool, "-L", "OUTPUT", "-v", "-n", "-x"]);
        let marked: u64 = out
            .lines()
            .find(|l| l.contains("mark match 0x5e1ce"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert_eq!(marked, 1, "{tool}: one marked packet left the gateway:\n{out}");
    }
}
