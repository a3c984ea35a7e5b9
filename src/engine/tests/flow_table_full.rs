use super::*;

fn news(h: &Harness) -> usize {
    h.events().iter().filter(|e| e.contains(":new:")).count()
}

#[test]
fn a_syn_is_dropped_when_every_flow_is_established() {
    let cfg = EngineConfig { max_flows: 3, ..EngineConfig::default() };
    let mut h = Harness::with_config(cfg, Script::default());
    let mut cs: Vec<Conv> =
        (0..3u16).map(|i| open(&mut h, 41_000 + i, 1000 + 10_000 * u32::from(i))).collect();
    assert_eq!(h.engine.flow_count(), 3);

    let late = Conv::on_port(43_000, 700_000, 1);
    h.drop(&late.syn());
    // Its retransmission is refused the same way; nothing was evicted.
    h.drop(&late.syn());
    assert_eq!(h.count(Counter::DropFlowLimit), 2);
    assert_eq!(h.count(Counter::FlowsEvicted), 0);
    assert_eq!(h.count(Counter::TcpConnections), 3);
    assert_eq!(h.engine.flow_count(), 3);
    assert_eq!(news(&h), 3, "rules never heard of the refused connection: {:?}", h.events());

    // The established connections are untouched.
    for (i, c) in cs.iter_mut().enumerate() {
        h.accept(&c.data(true, format!("up{i}").as_bytes()));
        h.accept(&c.data(false, format!("down{i}").as_bytes()));
    }
    assert_eq!(h.engine.inspector().up, b"up0up1up2");
    assert_eq!(h.engine.inspector().down, b"down0down1down2");

    // One of them closes: a closed connection may go, so the next SYN
    // takes its place and its connection works.
    let c = &mut cs[1];
    for p in [c.fin(true), c.fin(false)] {
        h.accept(&p);
    }
    h.accept(&ack_all(c, false));
    assert_eq!(h.engine.flow_count(), 3);
    let mut late = Conv::on_port(43_000, 700_000, 1);
    for p in late.handshake() {
        h.accept(&p);
    }
    assert_eq!(h.count(Counter::FlowsEvicted), 1);
    h.accept(&late.data(true, b"late"));
    assert!(h.engine.inspector().up.ends_with(b"late"));
    // The other two still work; the evicted one is gone for good.
    h.accept(&cs[0].data(true, b"!"));
    h.accept(&cs[2].data(true, b"?"));
    assert_eq!(h.engine.inspector().up, b"up0up1up2late!?");
    h.drop(&cs[1].data(true, b"x"));
    assert_eq!(h.count(Counter::DropFlowLimit), 2);
}

#[test]
fn the_oldest_half_open_flow_is_evicted_first() {
    let cfg = EngineConfig { max_flows: 3, ..EngineConfig::default() };
    let mut h = Harness::with_config(cfg, Script::default());
    let mut est = open(&mut h, 41_000, 1000); // oldest, but established
    let mut a = Conv::on_port(41_001, 2000, 20_000); // half-open: SYN only
    h.accept(&a.syn());
    a.cseq = a.cseq + 1;
    let mut b = Conv::on_port(41_002, 3000, 30_000); // half-open: SYN, SYN-ACK
    let hs_b = b.handshake();
    h.accept(&hs_b[0]);
    h.accept(&hs_b[1]);

    // A new SYN takes the place of A, the oldest flow not established.
    let mut n = Conv::on_port(41_003, 4000, 40_000);
    let hs_n = n.handshake();
    h.accept(&hs_n[0]);
    assert_eq!(h.count(Counter::FlowsEvicted), 1);
    assert_eq!(h.count(Counter::DropFlowLimit), 0);
    // Rules saw A end; its SYN-ACK now belongs to no flow.
    assert_eq!(h.events().iter().filter(|e| e.ends_with(":end")).count(), 1);
    h.drop(&a.seg(false, a.sseq, SYN | ACK, b""));
    assert_eq!(h.count(Counter::DropNoHandshake), 1);
    // B survived and completes its handshake.
    h.accept(&hs_b[2]);
    h.accept(&b.data(true, b"b"));

    // Next in line is N (half-open), not B (established now).
    let mut m = Conv::on_port(41_004, 5000, 50_000);
    for p in m.handshake() {
        h.accept(&p);
    }
    assert_eq!(h.count(Counter::FlowsEvicted), 2);
    h.drop(&hs_n[1]);
    assert_eq!(h.count(Counter::DropNoHandshake), 2);

    // Full of established connections: the next SYN is refused.
    let z = Conv::on_port(41_005, 6000, 60_000);
    h.drop(&z.syn());
    assert_eq!(h.count(Counter::DropFlowLimit), 1);
    assert_eq!(h.count(Counter::FlowsEvicted), 2);
    h.accept(&est.data(true, b"e"));
    h.accept(&m.data(true, b"m"));
    assert_eq!(h.engine.inspector().up, b"bem");
}
