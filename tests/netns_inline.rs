//! Inline mode end to end with rules that accept everything: traffic passes
//! intact, the daemon reports counters, shuts down cleanly and explains
//! start-up errors. Needs root (see tests/netns/mod.rs).

mod netns;

use std::time::Duration;

use netns::apps::{self, ReadEnd};
use netns::{join_bounded, rules, Testbed, TestbedOptions, CLIENT4, SERVER4, SERVER6};

const T: Duration = Duration::from_secs(30);

/// A request/echo exchange over TCP in both directions, and UDP echoes.
fn tcp_and_udp_round_trip(tb: &Testbed, server: std::net::IpAddr, port: u16) {
    let srv = apps::tcp_server(tb, server, port, 1, |mut s| {
        let (data, end) = apps::read_all(&mut s);
        apps::write_and_close(&mut s, &data).map(|_| (data.len(), end))
    });
    let sent = apps::pattern(port.into(), 100_000);
    let sent2 = sent.clone();
    let cli = tb.on_client(move || {
        let mut s = apps::tcp_connect(server, port).expect("connect");
        apps::write_and_close(&mut s, &sent2).expect("send");
        apps::read_all(&mut s)
    });
    let (echo, end) = join_bounded(cli, T);
    assert_eq!(end, ReadEnd::Eof);
    assert!(echo == sent, "echo differs ({} of {} bytes)", echo.len(), sent.len());
    let r = join_bounded(srv, T);
    let (n, end) = r[0].as_ref().expect("accept").as_ref().expect("echo");
    assert_eq!((*n, end), (sent.len(), &ReadEnd::Eof));

    let udp = apps::udp_echo_server(tb, server, port + 1, 20);
    let cli = tb.on_client(move || apps::udp_echo_client(server, port + 1, 20));
    assert_eq!(join_bounded(cli, T), 20, "UDP echoes");
    assert_eq!(join_bounded(udp, T), 20);
}

#[test]
fn benign_tcp_and_udp_pass_over_ipv4_and_ipv6() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("accept_all.lua"), &[]);
    tcp_and_udp_round_trip(&tb, SERVER4, 7001);
    tcp_and_udp_round_trip(&tb, SERVER6, 7003);
    let c = tb.counters();
    assert!(c["nfq_packets_received"] > 40, "{c:?}");
    assert_eq!(c["nfq_busy_poll_hits"], 0, "no busy polling without --busy-poll: {c:?}");
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
}

/// `--busy-poll`: after each packet the queue thread keeps asking for the
/// next one instead of sleeping, and the round trips' later packets are
/// taken that way (20 ms of polling: long enough on any machine for the
/// peer's answer to come meanwhile). Traffic passes as without it.
#[test]
fn busy_polling_takes_the_next_packet_without_sleeping() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("accept_all.lua"), &["--busy-poll", "20000"]);
    tcp_and_udp_round_trip(&tb, SERVER4, 7021);
    let c = tb.counters();
    assert!(c["nfq_packets_received"] > 20, "{c:?}");
    assert!(c["nfq_busy_poll_hits"] > 0, "{c:?}");
    assert!(c["nfq_busy_poll_hits"] <= c["nfq_packets_received"], "{c:?}");
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
}

/// 20 MB each way through the queue, byte-exact by checksum; `offloads`
/// decides whether the gateway sees GSO packets with partial checksums.
fn large_transfer(offloads: bool, server: std::net::IpAddr) {
    let Some(mut tb) = Testbed::with_options(TestbedOptions { offloads }) else { return };
    tb.start_sluice(&rules("accept_all.lua"), &[]);
    const LEN: usize = 20 << 20;
    let data = apps::pattern(99, LEN);
    let want = apps::Fnv::of(&data);
    let reply = apps::pattern(5, LEN);
    let reply_sum = apps::Fnv::of(&reply);
    let srv = apps::tcp_server(&tb, server, 7100, 1, move |mut s| {
        let got = apps::read_hashed(&mut s);
        apps::write_and_close(&mut s, &reply).map(|_| got)
    });
    let cli = tb.on_client(move || {
        let mut s = apps::tcp_connect(server, 7100).expect("connect");
        apps::write_and_close(&mut s, &data).expect("send");
        apps::read_hashed(&mut s)
    });
    let (n, sum, end) = join_bounded(cli, Duration::from_secs(60));
    assert_eq!((n, sum, end), (LEN as u64, reply_sum, ReadEnd::Eof), "server→client stream");
    let r = join_bounded(srv, T);
    let got = r[0].as_ref().expect("accept").as_ref().expect("reply");
    assert_eq!(*got, (LEN as u64, want, ReadEnd::Eof), "client→server stream");
    let c = tb.counters();
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
    assert_eq!(c["nfq_verdict_errors"], 0, "{c:?}");
}

#[test]
fn large_transfer_is_byte_exact_with_wire_size_segments() {
    large_transfer(false, SERVER4);
}

#[test]
fn large_transfer_is_byte_exact_with_gso_and_partial_checksums_ipv6() {
    large_transfer(true, SERVER6);
}

/// With GRO on the gateway's ingress veth (NAPI mode), the kernel validates
/// TCP and UDP checksums before the queue: sluice counts those packets as
/// verified by the kernel and does not sum them again. A datagram whose sum
/// is wrong fails that validation, reaches the queue flagged "not verified",
/// and is still summed and dropped by sluice.
#[test]
fn checksums_the_kernel_validated_are_trusted_and_no_others() {
    let Some(mut tb) = Testbed::new() else { return };
    netns::sh(&["ip", "netns", "exec", &tb.gw, "ethtool", "-K", "eth0", "gro", "on"]);
    tb.start_sluice(&rules("accept_all.lua"), &[]);
    tcp_and_udp_round_trip(&tb, SERVER4, 7201);
    let c = tb.counters();
    assert!(c["checksum_verified_by_kernel"] > 0, "{c:?}");
    assert_eq!(c["drop_bad_checksum"], 0, "{c:?}");

    const PORT: u16 = 7210;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let srv = tb.on_server(move || {
        let s = std::net::UdpSocket::bind((SERVER4, PORT)).expect("udp bind");
        s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
        ready_tx.send(()).expect("ready");
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        // Until the good datagram, which is sent last, or the timeout.
        while let Ok(n) = s.recv(&mut buf) {
            got.push(buf[..n].to_vec());
            if &buf[..n] == b"good" {
                break;
            }
        }
        got
    });
    ready_rx.recv_timeout(T).expect("server ready");
    let cli = tb.on_client(|| {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let tx = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))
            .expect("raw socket");
        let dst = SockAddr::from(std::net::SocketAddr::new(SERVER4, 0));
        let mut bad = sluice::wire::forge::udp_packet(CLIENT4, 40000, SERVER4, PORT, b"bad!");
        let mut udp = sluice::wire::header::Udp::of_packet(&mut bad).expect("UDP");
        let sum = udp.checksum();
        udp.set_checksum(sum ^ 0x5a00);
        let good = sluice::wire::forge::udp_packet(CLIENT4, 40000, SERVER4, PORT, b"good");
        for p in [&bad, &good] {
            tx.send_to(p, &dst).expect("raw send");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    join_bounded(cli, T);
    assert_eq!(join_bounded(srv, T), vec![b"good".to_vec()], "only the datagram with a right sum arrives");
    wait_for_counter(&tb, "drop_bad_checksum", 1);
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
}

#[test]
fn stats_socket_reports_every_counter() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("accept_all.lua"), &[]);
    tcp_and_udp_round_trip(&tb, SERVER4, 7200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["stats", "--socket"])
        .arg(tb.stats_socket())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for c in sluice::stats::Counter::ALL {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{} ", c.name()))),
            "missing {}:\n{text}",
            c.name()
        );
    }
    assert!(text.contains("queue_kernel_dropped{queue=\"0\"} "), "{text}");
    let prom = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["stats", "--format", "prometheus", "--socket"])
        .arg(tb.stats_socket())
        .output()
        .unwrap();
    let prom = String::from_utf8_lossy(&prom.stdout);
    assert!(
        prom.lines().any(|l| l.starts_with("sluice_nfq_packets_received ") && !l.ends_with(" 0")),
        "{prom}"
    );
    tb.stop_sluice();
    // The socket is gone once sluice stopped.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["stats", "--socket"])
        .arg(tb.stats_socket())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `sluice run` running"));
}

#[test]
fn clean_shutdown_removes_rules_and_verdicts_every_packet() {
    let Some(mut tb) = Testbed::new() else { return };
    let before = tb.gw_rules();
    assert!(!before.contains("NFQUEUE"));
    tb.start_sluice(&rules("accept_all.lua"), &["--queues", "3:4", "--bypass-when-down"]);
    let during = tb.gw_rules();
    assert_eq!(during.matches("-j NFQUEUE --queue-balance 3:4 --queue-bypass").count(), 2, "{during}");
    // Traffic in flight while the signal arrives.
    let srv = apps::tcp_server(&tb, SERVER4, 7300, 1, |mut s| apps::read_hashed(&mut s));
    let cli = tb.on_client(|| {
        let mut s = apps::tcp_connect(SERVER4, 7300).expect("connect");
        let chunk = apps::pattern(1, 64 * 1024);
        for _ in 0..200 {
            if std::io::Write::write_all(&mut s, &chunk).is_err() {
                break;
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
    });
    std::thread::sleep(Duration::from_millis(30));
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "exit status {st}:\n{log}");
    join_bounded(cli, T);
    let _ = join_bounded(srv, T);
    assert_eq!(tb.gw_rules(), before, "rules left behind");
    // Each worker logs its final tally; every received packet got a verdict.
    let finals: Vec<&str> = log.lines().filter(|l| l.contains("final: queue")).collect();
    assert_eq!(finals.len(), 2, "{log}");
    for l in finals {
        let nums: Vec<u64> = l.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let (received, verdicts, unverdicted) =
            (nums[nums.len() - 3], nums[nums.len() - 2], nums[nums.len() - 1]);
        assert_eq!(received, verdicts, "{l}");
        assert_eq!(unverdicted, 0, "{l}");
    }
}

#[test]
fn sighup_reload_failure_keeps_running_with_old_rules() {
    let Some(mut tb) = Testbed::new() else { return };
    let file = tb.dir.path().join("rules.lua");
    std::fs::copy(rules("accept_all.lua"), &file).unwrap();
    tb.start_sluice(&file, &[]);
    tb.signal(libc::SIGHUP);
    wait_for_counter(&tb, "reloads", 1);
    std::fs::remove_file(&file).unwrap();
    tb.signal(libc::SIGHUP);
    wait_for_counter(&tb, "reload_failures", 1);
    tcp_and_udp_round_trip(&tb, SERVER4, 7400);
    let (st, log) = tb.stop_sluice_with(libc::SIGINT);
    assert!(st.success(), "SIGINT stops cleanly too: {log}");
    assert!(!tb.gw_rules().contains("NFQUEUE"));
    assert!(log.contains("keeping the old rules"), "{log}");
}

fn wait_for_counter(tb: &Testbed, name: &str, value: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let c = tb.counters();
        if c.get(name) == Some(&value) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{name} never reached {value}: {c:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn queue_taken_by_another_process_is_a_clear_error() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("accept_all.lua"), &["--queue", "9"]);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.gw, env!("CARGO_BIN_EXE_sluice"), "run"])
        .arg(rules("accept_all.lua"))
        .args(["--queue", "9", "--stats-socket"])
        .arg(tb.dir.path().join("second.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queue 9 is already bound by another process"), "{err}");
    // The first instance is unaffected.
    tcp_and_udp_round_trip(&tb, SERVER4, 7500);
    let (st, _) = tb.stop_sluice();
    assert!(st.success());
}

#[test]
fn not_root_is_a_clear_error() {
    let Some(tb) = Testbed::new() else { return };
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.gw, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all", env!("CARGO_BIN_EXE_sluice"), "run"])
        .arg(rules("accept_all.lua"))
        .args(["--stats-socket", "/nonexistent/s.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sluice run needs root (CAP_NET_ADMIN)"), "{err}");
    assert!(!tb.gw_rules().contains("NFQUEUE"));
}

#[test]
fn missing_rule_file_is_reported_before_anything_is_installed() {
    let Some(tb) = Testbed::new() else { return };
    let out = tb.sluice_command(&tb.dir.path().join("nope.lua"), &[]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.lua"), "{err}");
    assert!(!tb.gw_rules().contains("NFQUEUE"));
}
