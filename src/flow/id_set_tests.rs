use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

/// One step of a model run: insert or remove an id given relative to the
/// newest id so far (so the runs stay near the window, as flows do), or
/// far below or above it.
#[derive(Debug, Clone)]
enum Op {
    Insert(i64),
    Remove(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let offset = prop_oneof![
        6 => -300i64..40,
        1 => -(MAX_WORDS as i64) * 64 * 2..(MAX_WORDS as i64) * 64 * 2,
        1 => Just(1i64 << 40),
    ];
    (any::<bool>(), offset).prop_map(|(ins, o)| if ins { Op::Insert(o) } else { Op::Remove(o) })
}

proptest! {
    #[test]
    fn behaves_as_a_hash_set(ops in proptest::collection::vec(op(), 1..400)) {
        let mut set = FlowIdSet::default();
        let mut model = HashSet::new();
        let mut newest: u64 = 1 << 41;
        for op in ops {
            let (insert, offset) = match op { Op::Insert(o) => (true, o), Op::Remove(o) => (false, o) };
            let id = newest.saturating_add_signed(offset);
            if insert {
                prop_assert_eq!(set.insert(id), model.insert(id), "insert {}", id);
                newest = newest.max(id);
            } else {
                prop_assert_eq!(set.remove(id), model.remove(&id), "remove {}", id);
            }
            for probe in [id, id.wrapping_sub(1), id + 1, id.wrapping_sub(64)] {
                prop_assert_eq!(set.contains(probe), model.contains(&probe), "contains {}", probe);
            }
            prop_assert!(set.window_words() <= MAX_WORDS);
        }
        prop_assert_eq!(set.count(), model.len());
        for id in &model {
            prop_assert!(set.contains(*id));
        }
    }
}

#[test]
fn a_sliding_run_keeps_the_window_short_and_the_hash_set_empty() {
    // Connections end in order and are forgotten 10,000 ids later.
    let mut set = FlowIdSet::default();
    for id in 0..1_000_000u64 {
        assert!(set.insert(id));
        if id >= 10_000 {
            assert!(set.remove(id - 10_000));
        }
        assert!(!set.contains(id + 1), "an id past the newest is absent");
    }
    assert_eq!(set.count(), 10_000);
    assert!(set.window_words() <= 10_000 / 64 + 2, "window of {} words", set.window_words());
    assert!(set.below.is_empty());
}

#[test]
fn far_apart_ids_are_kept_apart() {
    let mut set = FlowIdSet::default();
    assert!(set.insert(5));
    assert!(set.insert(1 << 40));
    assert!(set.window_words() <= MAX_WORDS);
    assert!(set.contains(5) && set.contains(1 << 40));
    assert!(!set.contains(6) && !set.contains((1 << 40) + 1));
    // An old id ending long after: below the window, into the hash set.
    assert!(set.insert(1 << 20));
    assert!(set.contains(1 << 20));
    assert!(set.remove(5) && set.remove(1 << 20) && set.remove(1 << 40));
    assert_eq!(set.count(), 0);
    assert!(!set.remove(5));
}

#[test]
fn an_id_below_the_window_is_found_once_the_window_moves_over_it() {
    let mut set = FlowIdSet::default();
    assert!(set.insert(1 << 30));
    // Far below the window: kept beside it.
    assert!(set.insert(1000));
    // The window empties, then starts again below the id kept beside it.
    assert!(set.remove(1 << 30));
    assert!(set.insert(900));
    assert!(set.contains(1000));
    assert!(!set.insert(1000), "already there");
    assert_eq!(set.count(), 2);
    assert!(set.remove(1000) && !set.contains(1000));
    assert!(!set.remove(1000));
    assert_eq!(set.count(), 1);
}
