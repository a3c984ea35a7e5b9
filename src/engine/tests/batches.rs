use super::*;

fn stream_only(reset_on: Option<&[u8]>) -> Script {
    Script { stream_only: true, reset_on: reset_on.map(<[u8]>::to_vec), ..Script::default() }
}

#[test]
fn consecutive_segments_reach_rules_as_one_chunk() {
    let (mut h, mut c) = established(stream_only(None));
    let ps = vec![c.data(true, b"abc"), c.data(true, b"def"), c.data(true, b"ghi")];
    let (v, _) = h.send_batch(&ps);
    assert!(v.iter().all(|v| *v == Verdict::Accept));
    assert_eq!(h.events().last().map(String::as_str), Some("data:up:abcdefghi"));
    assert_eq!(h.events().iter().filter(|e| e.starts_with("data:")).count(), 1);
}

#[test]
fn reset_on_a_chunk_drops_all_its_packets_and_resets_from_before_it() {
    let (mut h, mut c) = established(stream_only(Some(b"attack")));
    h.accept(&c.data(true, b"hello "));
    let server_next = c.cseq;
    let ps = vec![c.data(true, b"att"), c.data(true, b"ack"), c.data(true, b"!")];
    let (v, forged) = h.send_batch(&ps);
    assert_eq!(v, vec![Verdict::Drop; 3]);
    let to_server = decode(&forged[1]).unwrap();
    assert_eq!(to_server.ip.dst, server(), "after the client's");
    assert_eq!(to_server.tcp().unwrap().seq, server_next, "RST at the server's rcv_nxt before the chunk");
}

#[test]
fn pure_acks_of_the_peer_do_not_split_a_chunk_but_its_data_does() {
    let (mut h, mut c) = established(stream_only(None));
    // A window update acknowledging only what came before the chunk.
    let ack = c.seg(false, c.sseq, ACK, b"");
    let d1 = c.data(true, b"one");
    let d2 = c.data(true, b"two");
    let reply = c.data(false, b"back");
    let d3 = c.data(true, b"three");
    let (v, _) = h.send_batch(&[d1, ack, d2, reply, d3]);
    assert!(v.iter().all(|v| *v == Verdict::Accept));
    let data: Vec<&str> = h.events().iter().filter(|e| e.starts_with("data:")).map(String::as_str).collect();
    assert_eq!(data, ["data:up:onetwo", "data:down:back", "data:up:three"]);
}

#[test]
fn a_retransmission_waits_for_the_chunk_it_repeats() {
    let (mut h, mut c) = established(stream_only(Some(b"evil")));
    let start = c.cseq;
    let first = c.data(true, b"evil");
    let again = c.seg(true, start, ACK | PSH, b"evil");
    let (v, _) = h.send_batch(&[first, again]);
    // The chunk is refused, so its retransmission must not slip through.
    assert_eq!(v, vec![Verdict::Drop, Verdict::Drop]);
}

#[test]
fn an_ack_claiming_pending_bytes_splits_the_chunk() {
    let (mut h, mut c) = established(stream_only(None));
    let d1 = c.data(true, b"abc");
    let early_ack = c.seg(false, c.sseq, ACK, b"");
    let d2 = c.data(true, b"def");
    let (v, _) = h.send_batch(&[d1, early_ack, d2]);
    assert!(v.iter().all(|v| *v == Verdict::Accept));
    let data: Vec<&str> = h.events().iter().filter(|e| e.starts_with("data:")).map(String::as_str).collect();
    assert_eq!(data, ["data:up:abc", "data:up:def"]);
}

#[test]
fn per_packet_hooks_disable_coalescing() {
    let (mut h, mut c) = established(Script::default());
    let ps = vec![c.data(true, b"abc"), c.data(true, b"def")];
    h.send_batch(&ps);
    assert_eq!(h.events().iter().filter(|e| e.starts_with("data:")).count(), 2);
}
