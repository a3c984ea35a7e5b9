use std::time::Duration;

use super::*;
use crate::flow::key::{Endpoint, L4Proto};

struct F {
    key: FlowKey,
    id: FlowId,
    est: bool,
    dl: u64,
}

impl FlowEntry for F {
    fn key(&self) -> &FlowKey {
        &self.key
    }
    fn id(&self) -> FlowId {
        self.id
    }
    fn evictable(&self) -> bool {
        !self.est
    }
    fn deadline(&self) -> Timestamp {
        Timestamp(self.dl)
    }
}

fn key(port: u16) -> FlowKey {
    let a = Endpoint { addr: "10.0.0.1".parse().unwrap(), port };
    let b = Endpoint { addr: "10.0.0.2".parse().unwrap(), port: 80 };
    FlowKey::of(L4Proto::Tcp, a, b).0
}

fn f(port: u16, id: FlowId, est: bool, dl: u64) -> F {
    F { key: key(port), id, est, dl }
}

fn table(max: usize) -> FlowTable<F> {
    FlowTable::new(max, Duration::from_secs(30))
}

const SEC: u64 = 1_000_000;

#[test]
fn evicts_oldest_non_established() {
    let mut t = table(3);
    for (p, est) in [(1, true), (2, false), (3, false)] {
        t.make_room().unwrap();
        let id = t.next_id();
        t.insert(key(p), f(p, id, est, 10));
    }
    let (k, f2) = t.make_room().unwrap().expect("evicted one");
    assert_eq!(k, key(2));
    assert_eq!(f2.id, 2);
    let id = t.next_id();
    t.insert(key(4), f(4, id, true, 10));
    assert_eq!(t.make_room().unwrap().map(|(k, _)| k), Some(key(3)));
    t.insert(key(5), f(5, 9, true, 10));
    assert!(t.make_room().is_err(), "full of established flows");
}

#[test]
fn expires_by_deadline() {
    let mut t = table(10);
    t.insert(key(1), f(1, 1, true, 5));
    t.insert(key(2), f(2, 2, true, 50));
    let gone = t.expire(Timestamp(10));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].0, key(1));
    assert_eq!(t.len(), 1);
}

#[test]
fn flows_expiring_together_come_out_in_creation_order() {
    let mut t = table(100);
    for p in 1..=64u16 {
        let id = t.next_id();
        t.insert(key(p), f(p, id, true, 5));
    }
    let ids: Vec<FlowId> = t.expire(Timestamp(10)).into_iter().map(|(_, f)| f.id).collect();
    assert_eq!(ids, (1..=64).collect::<Vec<_>>());
}

/// Deadlines moved by packets after a flow was filed, later or earlier
/// (an established connection's hour cut to a closing timeout), are each
/// met exactly: a flow expires at the first run at or after its deadline,
/// never before, never later.
#[test]
fn moved_deadlines_expire_exactly_on_time() {
    let mut t = table(1000);
    let start = 1_000 * SEC;
    t.expire(Timestamp(start));
    // Odd p: an hour to live; even p: 30 s. At start + p s a packet (if the
    // flow is still there) sets its deadline 30 to 36 s ahead.
    for p in 1..=200u16 {
        let ttl = if p % 2 == 1 { 3600 } else { 30 };
        t.insert(key(p), f(p, u64::from(p), true, start + ttl * SEC));
    }
    let (mut now, mut refreshed, mut seen) = (start, 0, 0);
    while now <= start + 4000 * SEC {
        now += SEC / 2;
        for p in 1..=200u16 {
            let at = start + u64::from(p) * SEC;
            if now - SEC / 2 < at && at <= now {
                if let Some(fl) = t.get_mut(&key(p)) {
                    fl.dl = at + (30 + u64::from(p % 7)) * SEC;
                    refreshed += 1;
                }
            }
        }
        for (k, fl) in t.expire(Timestamp(now)) {
            assert!(fl.dl <= now, "{k:?} expired before its deadline");
            assert!(now - fl.dl < SEC / 2, "flow {} expired {} µs late", fl.id, now - fl.dl);
            seen += 1;
        }
    }
    // Even flows past 30 s expired before their packet; the others were moved.
    assert_eq!(refreshed, 100 + 15);
    assert_eq!(seen, 200, "every flow expired once");
    assert!(t.is_empty());
}

/// A flow is visited a few times per timeout, not once per run: expiry's
/// cost follows the flows due, not the table's size.
#[test]
fn idle_flows_are_not_visited_every_run() {
    let mut t = table(100_000);
    let start = 1_000 * SEC;
    t.expire(Timestamp(start));
    for p in 0..50_000u16 {
        t.insert(key(p), f(p, u64::from(p) + 1, true, start + 3600 * SEC));
    }
    // An hour of one run per second: the wheel visits each flow every 30 s.
    let mut visits_before = 0;
    for s in 1..3600u64 {
        assert!(t.expire(Timestamp(start + s * SEC)).is_empty());
        if s == 1 {
            visits_before = t.visits;
        }
    }
    let per_flow = (t.visits - visits_before) as f64 / 50_000.0;
    assert!((100.0..=130.0).contains(&per_flow), "{per_flow} visits per flow in an hour");
    assert_eq!(t.expire(Timestamp(start + 3600 * SEC)).len(), 50_000);
}

#[test]
fn packet_time_jumps_and_steps_back() {
    let mut t = table(10);
    t.expire(Timestamp(5 * SEC));
    t.insert(key(1), f(1, 1, true, 40 * SEC));
    t.insert(key(2), f(2, 2, true, 10_000 * SEC));
    // Back in time: nothing due.
    assert!(t.expire(Timestamp(SEC)).is_empty());
    // A jump of days past both deadlines: both due at once, in order.
    let ids: Vec<FlowId> = t.expire(Timestamp(1_000_000 * SEC)).into_iter().map(|(_, f)| f.id).collect();
    assert_eq!(ids, [1, 2]);
}

#[test]
fn removed_and_reused_slots_leave_the_wheel_intact() {
    let mut t = table(100);
    t.expire(Timestamp(0));
    for p in 1..=50u16 {
        t.insert(key(p), f(p, u64::from(p), true, 10 * SEC));
    }
    // Remove every other flow (heads, middles and tails of bucket lists).
    for p in (1..=50u16).step_by(2) {
        assert_eq!(t.remove(&key(p)).map(|f| f.id), Some(u64::from(p)));
    }
    for p in 51..=75u16 {
        t.insert(key(p), f(p, u64::from(p), true, 20 * SEC));
    }
    assert_eq!(t.len(), 50);
    assert!(t.get(&key(1)).is_none());
    assert_eq!(t.get(&key(2)).map(|f| f.id), Some(2));
    let first: Vec<FlowId> = t.expire(Timestamp(10 * SEC)).into_iter().map(|(_, f)| f.id).collect();
    assert_eq!(first, (2..=50).step_by(2).collect::<Vec<_>>());
    let rest: Vec<FlowId> = t.expire(Timestamp(20 * SEC)).into_iter().map(|(_, f)| f.id).collect();
    assert_eq!(rest, (51..=75).collect::<Vec<_>>());
    assert!(t.is_empty());
}

#[test]
fn many_flows_across_chunks_keep_their_keys() {
    let mut t = table(20_000);
    for p in 0..10_000u16 {
        t.insert(key(p), f(p, u64::from(p) + 1, p % 3 == 0, SEC));
    }
    for p in (0..10_000u16).step_by(7) {
        t.remove(&key(p));
    }
    for p in 0..10_000u16 {
        let got = t.get(&key(p)).map(|f| f.id);
        assert_eq!(got, (p % 7 != 0).then_some(u64::from(p) + 1), "port {p}");
    }
    assert_eq!(t.iter().count(), t.len());
    assert!(t.iter().all(|(k, f)| *k == key(f.id as u16 - 1)));
    let all = t.drain();
    assert_eq!(all.len(), 10_000 - 10_000usize.div_ceil(7));
    assert!(all.windows(2).all(|w| w[0].1.id < w[1].1.id));
    assert!(t.is_empty() && t.get(&key(1)).is_none());
}

/// Key number `i` (distinct for any u32).
fn key32(i: u32) -> FlowKey {
    let a = Endpoint { addr: std::net::Ipv4Addr::from(0x0a00_0000 | (i >> 16)).into(), port: i as u16 };
    let b = Endpoint { addr: "192.0.2.1".parse().unwrap(), port: 80 };
    FlowKey::of(L4Proto::Tcp, a, b).0
}

/// The SYN-flood policy at the default table size: once the table is
/// full, a flood of half-open flows churns through its own entries; every
/// established flow keeps its place, a connection that completes its
/// handshake during the flood keeps its place too, and each new flow costs
/// O(1) queue work.
#[test]
fn a_flood_at_the_default_size_churns_only_half_open_flows() {
    let max = crate::config::EngineConfig::default().max_flows;
    assert!(max >= 1_000_000, "the default holds a million flows");
    let mut t = table(max);
    let (established, flood) = (max as u32 / 2, max as u32);
    // Flow n (the n-th added) has key key32(n) and id n + 1.
    let add = |t: &mut FlowTable<F>, est: bool| -> Result<Option<FlowKey>, ()> {
        let evicted = t.make_room()?.map(|(k, f)| {
            assert!(!f.est, "an established flow was evicted");
            k
        });
        let id = t.next_id();
        let key = key32(id as u32 - 1);
        t.insert(key, F { key, id, est, dl: u64::MAX });
        Ok(evicted)
    };
    for i in 0..max as u32 {
        assert_eq!(add(&mut t, i < established), Ok(None), "room while filling");
    }
    let mut legit = None;
    for i in 0..flood {
        assert!(add(&mut t, false).unwrap().is_some(), "each SYN takes a half-open flow's place");
        if i == flood / 2 {
            // A client completes its handshake in the middle of the flood.
            let k = key32(max as u32 + i);
            t.get_mut(&k).unwrap().est = true;
            legit = Some(k);
        }
    }
    assert_eq!(t.len(), max);
    assert!((0..established).all(|i| t.get(&key32(i)).is_some_and(|f| f.est)));
    assert!(t.get(&legit.unwrap()).is_some(), "the connection made during the flood stayed");
    assert!(t.order.len() <= 4 * max + 1024);
}

#[test]
fn a_driver_numbers_flows_from_its_position_but_ids_never_repeat() {
    let mut t = table(4);
    t.set_next_id(10);
    assert_eq!(t.next_id(), 10);
    t.set_next_id(20);
    assert_eq!(t.next_id(), 20);
    assert_eq!(t.next_id(), 21, "a second flow from one packet");
    t.set_next_id(21);
    assert_eq!(t.next_id(), 22, "position 21 was taken by that second flow");
}

#[test]
fn a_presized_index_is_not_reallocated_by_the_first_inserts() {
    let mut t = table(1_000);
    assert_eq!(t.index.capacity(), 0, "no room before the first insert or presize");
    t.presize();
    let room = t.index.capacity();
    assert!(room >= 1_000, "{room}");
    let ctrl = t.index.iter().count();
    assert_eq!(ctrl, 0);
    for port in 0..1_000 {
        t.insert(key(port), f(port, u64::from(port), true, 100));
    }
    assert_eq!(t.index.capacity(), room, "the inserts made no room of their own");
    assert_eq!(t.len(), 1_000);
    assert!(t.find(&key(999)).is_some());
    // Presizing again changes nothing.
    t.presize();
    assert_eq!(t.index.capacity(), room);
}
