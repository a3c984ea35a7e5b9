use super::*;

/// Checks that nothing but verdicts happened: no events, no forged packets.
fn refused(h: &mut Harness, p: &[u8], counter: Counter) {
    let events = h.events().len();
    let before = h.count(counter);
    let (v, forged) = h.send(p);
    assert_eq!(v, Verdict::Drop);
    assert!(forged.is_empty());
    assert_eq!(h.count(counter), before + 1, "counted as {counter:?}");
    assert_eq!(h.events().len(), events, "rules saw nothing: {:?}", h.events());
}

#[test]
fn syn_fin_syn_rst_and_rst_fin_refused_on_an_established_connection() {
    let (mut h, mut c) = established(Script::default());
    h.accept(&c.data(true, b"one "));
    let n = c.cseq;
    for flags in [SYN | FIN, SYN | RST, RST | FIN, SYN | FIN | ACK, SYN | RST | ACK, RST | FIN | ACK] {
        // At exactly rcv_nxt, where a plain RST would end the connection.
        refused(&mut h, &c.seg(true, n, flags, b""), Counter::DropBadFlags);
        refused(&mut h, &c.seg(false, c.sseq, flags, b""), Counter::DropBadFlags);
        refused(&mut h, &c.seg(true, n, flags, b"data"), Counter::DropBadFlags);
    }
    assert_eq!(h.count(Counter::DropBadFlags), 18);
    assert_eq!(h.count(Counter::DropBadRst), 0);
    // Nothing ended or changed: the stream goes on in both directions.
    h.accept(&c.data(true, b"two"));
    h.accept(&c.data(false, b"back"));
    assert_eq!(h.engine.inspector().up, b"one two");
    assert_eq!(h.engine.inspector().down, b"back");
    assert_eq!(h.count(Counter::TcpConnections), 1);
    assert!(!h.events().iter().any(|e| e.ends_with(":end")));
}

#[test]
fn syns_refused_on_an_established_connection() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(1000, 5000);
    for p in c.handshake() {
        h.accept(&p);
    }
    // The server's SYN-ACK again (its ACK was lost): the client re-ACKs,
    // so it passes.
    h.accept(&c.seg(false, SeqNumber(5000), SYN | ACK, b""));
    // The client's SYN again, or a new one, on the live tuple.
    refused(&mut h, &Conv::new(1000, 5000).syn(), Counter::DropBadFlags);
    refused(&mut h, &Conv::new(77_777, 5000).syn(), Counter::DropBadFlags);
    // A SYN-ACK with another ISN.
    refused(&mut h, &c.seg(false, SeqNumber(9999), SYN | ACK, b""), Counter::DropBadFlags);
    // SYN-ACK from the client, bare SYN from the server.
    refused(&mut h, &c.seg(true, c.cseq, SYN | ACK, b""), Counter::DropBadFlags);
    refused(&mut h, &c.seg(false, c.sseq, SYN, b""), Counter::DropBadFlags);
    assert_eq!(h.count(Counter::DropBadFlags), 5);
    h.accept(&c.data(true, b"still"));
    h.accept(&c.data(false, b"open"));
    assert_eq!(h.engine.inspector().up, b"still");
    assert_eq!(h.engine.inspector().down, b"open");
    assert_eq!(h.events().iter().filter(|e| e.contains(":new:")).count(), 1);
    // The exact RST still ends it (the refused RST+FIN above did not).
    h.accept(&c.seg(true, c.cseq, RST, b""));
    assert_eq!(h.events().last().map(String::as_str), Some("tcp_connection:end"));
}

#[test]
fn wrong_flags_refused_during_the_handshake() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(1000, 5000);
    let hs = c.handshake(); // c now expects the data phase
    h.accept(&hs[0]);
    // SYN-SENT: combinations from either side, data before the SYN-ACK,
    // a bare SYN from the server, a SYN-ACK from the client.
    let isn = SeqNumber(1000);
    refused(&mut h, &c.seg(true, isn, SYN | FIN, b""), Counter::DropBadFlags);
    refused(&mut h, &c.seg(false, SeqNumber(5000), SYN | RST | ACK, b""), Counter::DropBadFlags);
    refused(&mut h, &c.seg(false, SeqNumber(5000), RST | FIN | ACK, b""), Counter::DropBadFlags);
    refused(&mut h, &c.seg(true, c.cseq, ACK, b"early"), Counter::DropBadFlags);
    refused(&mut h, &c.seg(false, SeqNumber(5000), SYN, b""), Counter::DropBadFlags);
    refused(&mut h, &c.seg(true, isn, SYN | ACK, b""), Counter::DropBadFlags);
    h.accept(&hs[1]);
    // SYN-RECEIVED: a client SYN with another ISN, a SYN-ACK with another
    // ISN, combinations; the same SYN and SYN-ACK again pass.
    refused(&mut h, &Conv::new(31_337, 0).syn(), Counter::DropBadFlags);
    refused(&mut h, &c.seg(false, SeqNumber(8888), SYN | ACK, b""), Counter::DropBadFlags);
    refused(&mut h, &c.seg(true, c.cseq, RST | FIN | ACK, b""), Counter::DropBadFlags);
    h.accept(&hs[0]);
    h.accept(&hs[1]);
    assert_eq!(h.count(Counter::DropBadFlags), 9);
    h.accept(&hs[2]);
    h.accept(&c.data(true, b"after"));
    h.accept(&c.data(false, b"fine"));
    assert_eq!(h.events(), ["tcp_connection:new:80", "data:up:after", "data:down:fine"].map(String::from));
}

#[test]
fn a_syn_fin_opening_a_tuple_is_refused_and_the_real_syn_proceeds() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(1000, 5000);
    for flags in [SYN | FIN, SYN | RST] {
        let mut t = TcpSegment::new(client(), C, server(), S);
        t.seq = c.cseq;
        t.flags = flags;
        t.payload = b"x";
        refused(&mut h, &t.build(), Counter::DropBadFlags);
    }
    for p in c.handshake() {
        h.accept(&p);
    }
    h.accept(&c.data(true, b"ok"));
    assert_eq!(h.events(), ["tcp_connection:new:80", "data:up:ok"].map(String::from));
}
