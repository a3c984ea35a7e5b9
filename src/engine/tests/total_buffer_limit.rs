use super::*;

/// Five connections each holding 10 out-of-order bytes 10 bytes past the
/// delivery point: 20 buffered bytes each (the island and its gap).
fn holders(h: &mut Harness) -> Vec<Conv> {
    let mut cs = Vec::new();
    for i in 0..5u16 {
        let c = open(h, 41_000 + i, 1000 * (u32::from(i) + 1));
        h.accept(&c.seg(true, c.cseq + 10, ACK, b"ISLAND----"));
        cs.push(c);
    }
    assert_eq!(h.engine.buffered_bytes(), 100);
    assert_eq!(h.count(Counter::OutOfOrder), 5);
    cs
}

#[test]
fn segments_that_would_grow_past_the_total_are_dropped_others_pass() {
    let cfg = EngineConfig { max_total_buffer: 110, ..EngineConfig::default() };
    let mut h = Harness::with_config(cfg, Script::default());
    let mut hold = holders(&mut h);

    // A sixth holder's handshake passes (it buffers nothing), its
    // out-of-order segment (20 more bytes) does not.
    let six = open(&mut h, 41_100, 77_000);
    h.drop(&six.seg(true, six.cseq + 10, ACK, b"ISLAND----"));
    assert_eq!(h.count(Counter::DropMemoryLimit), 1);
    assert_eq!(h.engine.buffered_bytes(), 100);

    // A legitimate in-order connection within the headroom works: its
    // 10 bytes reach rules (held until the server acknowledges them).
    let mut legit = open(&mut h, 42_000, 900_000);
    h.accept(&legit.data(true, b"0123456789"));
    assert_eq!(h.engine.buffered_bytes(), 110);
    assert_eq!(h.count(Counter::StreamBytesBuffered), 110);
    let ack10 = ack_all(&legit, true);
    // One more byte would pass the total: dropped before rules see it.
    let next = legit.data(true, b"!");
    h.drop(&next);
    assert_eq!(h.count(Counter::DropMemoryLimit), 2);
    assert_eq!(h.engine.inspector().up, b"0123456789");
    // The server's ACK frees the 10 bytes; the retransmission passes.
    h.accept(&ack10);
    assert_eq!(h.engine.buffered_bytes(), 100);
    h.accept(&next);
    assert_eq!(h.engine.inspector().up, b"0123456789!");
    assert_eq!(h.engine.buffered_bytes(), 101);

    // Closing a holder's gap adds no memory, so it passes at the limit
    // and releases the island to rules; the server's ACK frees both.
    let first = &mut hold[0];
    h.accept(&first.seg(true, first.cseq, ACK, b"gap-bytes-"));
    assert_eq!(h.engine.buffered_bytes(), 101);
    assert_eq!(h.events().last().map(String::as_str), Some("data:up:gap-bytes-ISLAND----"));
    first.cseq = first.cseq + 20;
    h.accept(&ack_all(first, true));
    assert_eq!(h.engine.buffered_bytes(), 81);
    // Now the sixth holder's island fits.
    h.accept(&six.seg(true, six.cseq + 10, ACK, b"ISLAND----"));
    assert_eq!(h.engine.buffered_bytes(), 101);
    assert_eq!(h.count(Counter::DropMemoryLimit), 2);
}

#[test]
fn a_full_total_blocks_new_data_until_a_holder_resets() {
    let cfg = EngineConfig { max_total_buffer: 100, ..EngineConfig::default() };
    let mut h = Harness::with_config(cfg, Script::default());
    let hold = holders(&mut h);

    // At the limit, even in-order data of a new connection is dropped
    // (the documented policy: drop the segment), server replies too.
    let legit = open(&mut h, 42_000, 900_000);
    // Neither acknowledges the other's bytes (they are refused).
    let hello = legit.seg(true, legit.cseq, ACK | PSH, b"hello");
    let reply = legit.seg(false, legit.sseq, ACK | PSH, b"hi");
    h.drop(&hello);
    h.drop(&reply);
    assert_eq!(h.count(Counter::DropMemoryLimit), 2);
    assert_eq!(h.engine.inspector().up, b"");
    // Pure ACKs and retransmitted islands grow nothing and still pass.
    h.accept(&ack_all(&legit, false));
    let again = &hold[1];
    h.accept(&again.seg(true, again.cseq + 10, ACK, b"ISLAND----"));
    assert_eq!(h.count(Counter::Retransmissions), 1);

    // A holder resets its connection: its bytes are freed at once (the
    // flow itself stays for the closing timeout).
    let gone = &hold[2];
    h.accept(&gone.seg(true, gone.cseq, RST, b""));
    assert_eq!(h.engine.buffered_bytes(), 80);
    assert_eq!(h.count(Counter::FlowsTimedOut), 0);
    let mut out = Output::new();
    h.engine.tick(h.time.saturating_add(Duration::from_secs(61)), &mut out);
    assert_eq!(h.count(Counter::FlowsTimedOut), 1);
    assert_eq!(h.engine.buffered_bytes(), 80, "retiring it frees nothing twice");
    h.time = h.time.saturating_add(Duration::from_secs(61));
    // The legitimate connection's retransmissions now pass, in order.
    h.accept(&hello);
    h.accept(&reply);
    assert_eq!(h.engine.inspector().up, b"hello");
    assert_eq!(h.engine.inspector().down, b"hi");
    assert_eq!(h.count(Counter::DropMemoryLimit), 2);
}
