//! Inline mode with Lua rules: refusing, resetting, half-resetting and
//! dropping connections as real applications see it, IPv4 and IPv6, rule
//! errors and SIGHUP reloads. Needs root (see tests/netns/mod.rs).

mod netns;

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use netns::apps::{self, ReadEnd};
use netns::{join_bounded, rules, Testbed, SERVER4, SERVER6};

const T: Duration = Duration::from_secs(30);

/// Connects with a short timeout (refused connections time out).
fn try_connect(server: IpAddr, port: u16) -> std::io::Result<std::net::TcpStream> {
    let s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::new(server, port),
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(s)
}

/// Client sends `first`, pauses, sends `second`, then reads; server reads
/// everything. Returns (client read end, server bytes, server read end).
fn split_send(
    tb: &Testbed,
    server: IpAddr,
    port: u16,
    first: &'static [u8],
    second: &'static [u8],
) -> (ReadEnd, Vec<u8>, ReadEnd) {
    split_send_around(tb, server, port, first, second, |_| std::thread::sleep(Duration::from_millis(300)))
}

/// [`split_send`], with `between` run by the test (e.g. a reload) after
/// `first` was sent and before `second` is.
fn split_send_around(
    tb: &Testbed,
    server: IpAddr,
    port: u16,
    first: &'static [u8],
    second: &'static [u8],
    between: impl FnOnce(&Testbed),
) -> (ReadEnd, Vec<u8>, ReadEnd) {
    let srv = apps::tcp_server(tb, server, port, 1, |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        apps::read_all(&mut s)
    });
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let cli = tb.on_client(move || {
        let mut s = try_connect(server, port).expect("connect");
        s.write_all(first).expect("first send");
        let _ = sent_tx.send(());
        // Bounded: the test answers within its own timeouts, or the sender is gone.
        let _ = go_rx.recv_timeout(Duration::from_secs(15));
        // A reset is reported once, to whichever call comes first: a later
        // write (ECONNRESET, then EPIPE) or the final read.
        let was_reset = |r: std::io::Result<()>| {
            matches!(r, Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe))
        };
        let mut reset = was_reset(s.write_all(second));
        std::thread::sleep(Duration::from_millis(300));
        reset |= was_reset(s.write_all(b" and more"));
        let end = apps::read_all(&mut s).1;
        if reset {
            ReadEnd::Reset
        } else {
            end
        }
    });
    sent_rx.recv_timeout(Duration::from_secs(10)).expect("the client sent its first part");
    between(tb);
    let _ = go_tx.send(());
    let client_end = join_bounded(cli, T);
    let mut r = join_bounded(srv, T);
    let (data, server_end) = r.remove(0).expect("accept");
    (client_end, data, server_end)
}

/// The baseline the rule tests compare against: without rules, the split
/// send arrives whole, the client's read times out (nobody answers) and the
/// server sees the client's close. Runs before the merge, too.
#[test]
fn split_send_passes_whole_without_rules() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("accept_all.lua"), &[]);
    for (server, port) in [(SERVER4, 7590), (SERVER6, 7591)] {
        let (client_end, data, server_end) = split_send(&tb, server, port, b"hello att", b"ack!");
        assert_eq!(data, b"hello attack! and more");
        assert_eq!((client_end, server_end), (ReadEnd::Timeout, ReadEnd::Eof));
    }
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
}

#[test]
fn new_connection_rule_refuses_a_port() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("refuse_port.lua"), &[]);
    let srv = apps::tcp_server(&tb, SERVER4, 7601, 1, |mut s| apps::read_all(&mut s).0);
    let refused_srv = apps::tcp_server_within(&tb, SERVER4, 7600, 1, Duration::from_millis(2500), |_| ());
    let cli = tb.on_client(|| {
        let refused = try_connect(SERVER4, 7600).map(|_| ()).map_err(|e| e.kind());
        let mut ok = try_connect(SERVER4, 7601).expect("port 7601 is allowed");
        apps::write_and_close(&mut ok, b"hello").unwrap();
        refused
    });
    let refused = join_bounded(cli, T);
    assert!(
        matches!(refused, Err(std::io::ErrorKind::TimedOut) | Err(std::io::ErrorKind::WouldBlock)),
        "{refused:?}"
    );
    assert_eq!(join_bounded(srv, T)[0].as_ref().unwrap(), b"hello");
    assert!(join_bounded(refused_srv, T)[0].is_err(), "no connection reached port 7600");
    assert!(tb.alerts().contains("refused port 7600"), "{}", tb.alerts());
    assert!(tb.counters()["drop_rule"] >= 1);
}

fn reset_on_split_pattern(server: IpAddr, port: u16) {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("reset_on_pattern.lua"), &[]);
    let (client_end, data, server_end) = split_send(&tb, server, port, b"hello att", b"ack!");
    assert_eq!(client_end, ReadEnd::Reset, "client");
    assert_eq!(server_end, ReadEnd::Reset, "server");
    assert_eq!(data, b"hello att", "the server never receives the packet completing the pattern");
    assert!(tb.alerts().contains("reset on attack"), "{}", tb.alerts());
    // Other connections are unaffected.
    let (c, d, s) = split_send(&tb, server, port + 1, b"benign ", b"bytes");
    assert_eq!((c, s), (ReadEnd::Timeout, ReadEnd::Eof));
    assert_eq!(d, b"benign bytes and more");
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
}

#[test]
fn receive_data_rule_resets_on_a_split_pattern_ipv4() {
    reset_on_split_pattern(SERVER4, 7610);
}

#[test]
fn receive_data_rule_resets_on_a_split_pattern_ipv6() {
    reset_on_split_pattern(SERVER6, 7620);
}

#[test]
fn halfreset_resets_the_server_only() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("halfreset_on_pattern.lua"), &[]);
    let (client_end, data, server_end) = split_send(&tb, SERVER4, 7630, b"hello att", b"ack!");
    assert_eq!(server_end, ReadEnd::Reset, "server sees the reset");
    assert_eq!(data, b"hello att");
    // The client gets no reset; its later writes just disappear.
    assert_eq!(client_end, ReadEnd::Timeout, "client");
}

#[test]
fn flow_drop_silences_the_connection() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("drop_on_pattern.lua"), &[]);
    let (client_end, data, server_end) = split_send(&tb, SERVER4, 7640, b"first ", b"dropme");
    assert_eq!(data, b"first ");
    assert_eq!((client_end, server_end), (ReadEnd::Timeout, ReadEnd::Timeout));
    assert!(tb.counters()["drop_flow_dropped"] >= 1);
}

#[test]
fn a_rule_error_in_one_flow_does_not_stop_other_flows() {
    let Some(mut tb) = Testbed::new() else { return };
    tb.start_sluice(&rules("rule_error.lua"), &[]);
    let (_, data, _) = split_send(&tb, SERVER4, 7650, b"go ", b"boom");
    assert_eq!(data, b"go ", "the packet raising the error is dropped");
    let (c, d, s) = split_send(&tb, SERVER4, 7651, b"still ", b"fine");
    assert_eq!(d, b"still fine and more");
    assert_eq!((c, s), (ReadEnd::Timeout, ReadEnd::Eof));
    assert!(tb.counters()["rule_errors"] >= 1);
    let (st, log) = tb.stop_sluice();
    assert!(st.success());
    assert!(log.contains("rule_error.lua:8"), "rule errors name file and line:\n{log}");
}

#[test]
fn sighup_reloads_rules_and_a_broken_file_keeps_the_old_ones() {
    let Some(mut tb) = Testbed::new() else { return };
    let file = tb.dir.path().join("rules.lua");
    std::fs::copy(rules("refuse_7800.lua"), &file).unwrap();
    tb.start_sluice(&file, &[]);
    // The server's accept window outlasts the client's connect timeout and
    // is joined, so the port is free again for the next probe.
    let reachable = |tb: &Testbed, port: u16| {
        let srv = apps::tcp_server_within(tb, SERVER4, port, 1, Duration::from_millis(2500), |_| ());
        let ok = join_bounded(tb.on_client(move || try_connect(SERVER4, port).is_ok()), T);
        join_bounded(srv, T);
        ok
    };
    assert!(!reachable(&tb, 7800));
    assert!(reachable(&tb, 7801));
    // Replace atomically (rename), as an operator's deploy would.
    let tmp = tb.dir.path().join("rules.lua.new");
    std::fs::copy(rules("refuse_7801.lua"), &tmp).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    tb.signal(libc::SIGHUP);
    wait_for(&tb, "reloads", 1);
    assert!(reachable(&tb, 7802));
    assert!(!reachable(&tb, 7801), "new rules apply");
    std::fs::copy(rules("broken.lua"), &tmp).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    tb.signal(libc::SIGHUP);
    wait_for(&tb, "reload_failures", 1);
    assert!(!reachable(&tb, 7801), "old rules kept");
    let (st, log) = tb.stop_sluice();
    assert!(st.success());
    assert!(log.contains("rules.lua:3"), "the load error names file and line:\n{log}");
}

fn wait_at_least(tb: &Testbed, name: &str, value: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tb.counters().get(name).is_none_or(|v| *v < value) {
        assert!(std::time::Instant::now() < deadline, "{name} never reached {value}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(tb: &Testbed, name: &str, value: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tb.counters().get(name) != Some(&value) {
        assert!(std::time::Instant::now() < deadline, "{name} never reached {value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The flows and what rules stored on them survive a reload: a pattern split
/// across it ("att" before, "ack" after) is still found, and both ends see
/// the reset.
#[test]
fn sighup_reload_keeps_flow_state_across_a_split_pattern() {
    let Some(mut tb) = Testbed::new() else { return };
    let file = tb.dir.path().join("rules.lua");
    std::fs::copy(rules("reset_on_pattern.lua"), &file).unwrap();
    std::fs::copy(rules("on_word.lua"), tb.dir.path().join("on_word.lua")).unwrap();
    tb.start_sluice(&file, &[]);
    let (client_end, data, server_end) = split_send_around(&tb, SERVER4, 7900, b"hello att", b"ack!", |tb| {
        // The client's write returns once its kernel has the bytes: wait
        // until the rules saw them (and stored the tail), or the reload
        // could come first and find no state to carry.
        wait_at_least(tb, "stream_bytes_delivered", b"hello att".len() as u64);
        tb.signal(libc::SIGHUP);
        wait_for(tb, "reloads", 1);
    });
    assert_eq!(tb.counters()["reloads"], 1);
    assert_eq!((client_end, server_end), (ReadEnd::Reset, ReadEnd::Reset));
    assert_eq!(data, b"hello att", "the packet completing the pattern never reaches the server");
    let (st, log) = tb.stop_sluice();
    assert!(st.success(), "{log}");
    assert!(log.contains("carried the state of 1 flows"), "{log}");
}
