//! `--stream-depth` with `--bypass` end to end: once a connection is past
//! the depth, sluice marks a packet of it, the connmark rules that
//! `--install-iptables` put above the queue rule accept the rest of it in
//! the kernel, and sluice sees no more of it. Needs root (see
//! tests/netns/mod.rs).

mod netns;

use std::io::Write;
use std::time::Duration;

use netns::apps::{self, ReadEnd};
use netns::{join_bounded, rules, Testbed, SERVER4};

const T: Duration = Duration::from_secs(60);
const DEPTH: &str = "65536";

/// Packets sluice received from its queue.
fn queued(tb: &Testbed) -> u64 {
    tb.counters()["nfq_packets_received"]
}

#[test]
fn a_bulk_transfer_past_depth_leaves_the_queue_and_completes() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("accept_all.lua"), &["--stream-depth", DEPTH, "--bypass=either"]);
    let installed = tb.gw_rules();
    assert!(installed.contains("CONNMARK --save-mark"), "bypass rules installed:\n{installed}");
    assert!(installed.contains("--ctmask 0x1000000"), "{installed}");

    const FIRST: usize = 4 << 20;
    const REST: usize = 24 << 20;
    let data = apps::pattern(17, FIRST + REST);
    let want = apps::Fnv::of(&data);
    let srv = apps::tcp_server(&tb, SERVER4, 7301, 1, |mut s| apps::read_hashed(&mut s));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let cli = tb.on_client(move || {
        let mut s = apps::tcp_connect(SERVER4, 7301).expect("connect");
        s.write_all(&data[..FIRST]).expect("first part");
        tx.send(()).unwrap();
        go_rx.recv_timeout(Duration::from_secs(20)).expect("go");
        apps::write_and_close(&mut s, &data[FIRST..]).expect("rest");
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("first part written");
    // Let the first part drain through the gateway.
    std::thread::sleep(Duration::from_millis(700));
    let before = queued(&tb);
    go_tx.send(()).unwrap();
    join_bounded(cli, T);
    let r = join_bounded(srv, T);
    let (n, hash, end) = r[0].as_ref().expect("accept");
    assert_eq!((*n, *hash, end), ((FIRST + REST) as u64, want, &ReadEnd::Eof), "transfer intact");
    let after = queued(&tb);
    let c = tb.counters();
    eprintln!("queued: {before} before the last 24 MB, {after} after");
    // 24 MB in wire-size segments is over 16,000 packets; a few already in
    // the queue when the mark was saved may still reach sluice, and the
    // FIN handshake does not (its connection is bypassed).
    assert!(after - before < 100, "queued {before} before the rest, {after} after: {c:?}");
    assert!(c["bypass_marked"] >= 1, "{c:?}");
    assert!(c["stream_depth_reached"] >= 1, "{c:?}");
    assert!(c["stream_bytes_past_depth"] > 0, "{c:?}");
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
    let left = tb.gw_rules();
    assert!(!left.contains("CONNMARK") && !left.contains("NFQUEUE"), "rules removed at exit:\n{left}");
}

#[test]
fn without_bypass_sluice_sees_every_packet_past_depth() {
    // The same transfer with a depth but no bypass: every packet still
    // reaches sluice (and gets its verdict), rules just see no more bytes.
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("accept_all.lua"), &["--stream-depth", DEPTH]);
    assert!(!tb.gw_rules().contains("CONNMARK"));
    const LEN: usize = 8 << 20;
    let data = apps::pattern(18, LEN);
    let want = apps::Fnv::of(&data);
    let srv = apps::tcp_server(&tb, SERVER4, 7302, 1, |mut s| apps::read_hashed(&mut s));
    let cli = tb.on_client(move || {
        let mut s = apps::tcp_connect(SERVER4, 7302).expect("connect");
        apps::write_and_close(&mut s, &data).expect("send");
    });
    join_bounded(cli, T);
    let r = join_bounded(srv, T);
    let (n, hash, _) = r[0].as_ref().expect("accept");
    assert_eq!((*n, *hash), (LEN as u64, want));
    let c = tb.counters();
    assert!(c["nfq_packets_received"] > (LEN / 1500) as u64, "{c:?}");
    assert_eq!(c["bypass_marked"], 0, "{c:?}");
    assert!(c["stream_packets_past_depth"] > 1000, "{c:?}");
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
}

#[test]
fn bypass_needs_a_depth_and_a_mark_of_its_own() {
    let Some(tb) = Testbed::new() else { return };
    for (args, says) in [
        (&["--bypass"][..], "--bypass needs --stream-depth"),
        (&["--stream-depth", "100", "--bypass", "--bypass-mark", "0x4"][..], "shares bits with --mark"),
    ] {
        let out = tb.sluice_command(&rules("accept_all.lua"), args).output().expect("run sluice");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
    }
    assert!(!tb.gw_rules().contains("NFQUEUE"), "nothing installed");
}
