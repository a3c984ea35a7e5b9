use super::*;
use crate::ip::fragment::fragment;

/// Sends fragments; returns the verdicts emitted for any packet ids, in order.
fn send_all(h: &mut Harness, frags: &[Vec<u8>]) -> Vec<(u64, Verdict)> {
    let mut verdicts = Vec::new();
    for f in frags {
        h.out.clear();
        let id = h.next_id;
        h.next_id += 1;
        h.engine.process(Packet { id, data: f, time: h.time, checksum: h.checksum }, &mut h.out);
        for item in h.out.items.drain(..) {
            if let Emitted::Verdict(i, v) = item {
                verdicts.push((i, v));
            }
        }
    }
    verdicts
}

#[test]
fn fragments_held_until_complete_then_share_the_verdict() {
    let (mut h, mut c) = established(Script::default());
    let p = c.data(true, &[b'a'; 100]);
    let frags = fragment(&p, &[24, 40, 40], 77);
    assert!(frags.len() >= 3);
    let first = h.next_id;
    let v = send_all(&mut h, &frags[..frags.len() - 1]);
    assert!(v.is_empty(), "no verdict before the datagram is complete: {v:?}");
    let v = send_all(&mut h, &frags[frags.len() - 1..]);
    let ids: Vec<u64> = v.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids.len(), frags.len());
    assert!(ids.iter().all(|i| *i >= first));
    assert!(v.iter().all(|(_, v)| *v == Verdict::Accept));
    assert_eq!(h.engine.inspector().up, vec![b'a'; 100]);
}

#[test]
fn verified_fragments_leave_the_datagram_checksum_to_sluice() {
    let (mut h, mut c) = established(Script::default());
    let mut p = c.data(true, &[b'a'; 100]);
    let n = p.len();
    p[n - 1] ^= 1;
    let frags = fragment(&p, &[40, 40], 78);
    // Even if the kernel vouched for every fragment's packet.
    h.checksum = ChecksumState::Verified;
    let v = send_all(&mut h, &frags);
    assert_eq!(v.len(), frags.len());
    assert!(v.iter().all(|(_, v)| *v == Verdict::Drop), "{v:?}");
    assert_eq!(h.count(Counter::DropBadChecksum), 1);
    assert_eq!(h.engine.inspector().up, b"");
}

#[test]
fn attack_in_fragments_drops_every_fragment() {
    let script = Script { reset_on: Some(b"attack".to_vec()), ..Script::default() };
    let (mut h, mut c) = established(script);
    let p = c.data(true, b"......attack......");
    let frags = fragment(&p, &[16, 8], 5);
    let v = send_all(&mut h, &frags);
    assert_eq!(v.len(), frags.len());
    assert!(v.iter().all(|(_, v)| *v == Verdict::Drop));
}

#[test]
fn conflicting_overlap_drops_the_datagram() {
    // Strict receivers; towards Linux the second copy is a duplicate
    // inside a run, dropped alone (ip/defrag.rs tests).
    let (mut h, mut c) = established_with(strict_config(), Script::default());
    let p = c.data(true, &[b'x'; 64]);
    let frags = fragment(&p, &[32, 32], 9);
    let last = frags[frags.len() - 1].clone();
    // A second copy of the last fragment with other payload bytes.
    let mut evil = last.clone();
    let n = evil.len();
    evil[n - 1] ^= 0xff;
    let v = send_all(&mut h, &[last, evil]);
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|(_, v)| *v == Verdict::Drop), "{v:?}");
    assert_eq!(h.count(Counter::DropFragmentOverlap), 2);
    // The rest never completes a datagram: held, then dropped on timeout.
    assert!(send_all(&mut h, &frags[..frags.len() - 1]).is_empty());
    let mut out = Output::new();
    h.engine.tick(h.time.saturating_add(Duration::from_secs(60)), &mut out);
    assert_eq!(out.items.len(), frags.len() - 1);
    assert_eq!(h.engine.inspector().up, b"");
}

#[test]
fn incomplete_datagram_times_out_dropped() {
    let (mut h, mut c) = established(Script::default());
    let p = c.data(true, &[b'y'; 64]);
    let frags = fragment(&p, &[32], 3);
    assert!(send_all(&mut h, &frags[..1]).is_empty());
    let mut out = Output::new();
    h.engine.tick(h.time.saturating_add(Duration::from_secs(60)), &mut out);
    assert!(matches!(out.items.as_slice(), [Emitted::Verdict(_, Verdict::Drop)]));
}

#[test]
fn ipv6_fragments() {
    let mut h = Harness::new(Script::default());
    let mut c = Conv::new(1, 2);
    c.v6 = true;
    for p in c.handshake() {
        h.accept(&p);
    }
    let p = c.data(true, &[b'6'; 200]);
    let frags = fragment(&p, &[64, 64], 1234);
    let v = send_all(&mut h, &frags);
    assert_eq!(v.len(), frags.len());
    assert!(v.iter().all(|(_, v)| *v == Verdict::Accept));
    assert_eq!(h.engine.inspector().up, vec![b'6'; 200]);
}

/// A held fragment's timeout is kept between the engine's once-a-second
/// flow expiry runs: a tick a fraction of a second after the last one still
/// drops a datagram that timed out meanwhile (ticks that have nothing to do
/// return early; this one must not).
#[test]
fn fragment_timeout_is_kept_between_flow_expiry_runs() {
    let cfg = EngineConfig { frag_timeout: Duration::from_millis(300), ..EngineConfig::default() };
    let (mut h, mut c) = established_with(cfg, Script::default());
    let mut out = Output::new();
    h.engine.tick(h.time, &mut out);
    out.clear();
    let p = c.data(true, &[b'z'; 64]);
    let frags = fragment(&p, &[32], 4);
    assert!(send_all(&mut h, &frags[..1]).is_empty(), "held");
    h.engine.tick(h.time.saturating_add(Duration::from_millis(200)), &mut out);
    assert!(out.items.is_empty(), "not yet: {:?}", out.items);
    h.engine.tick(h.time.saturating_add(Duration::from_millis(400)), &mut out);
    assert!(matches!(out.items.as_slice(), [Emitted::Verdict(_, Verdict::Drop)]), "{:?}", out.items);
    assert_eq!(h.count(Counter::DropFragment), 1);
}
