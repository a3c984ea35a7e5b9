//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every
//! crash reproducer (`fuzz/regressions/<target>/`) through the same harness
//! functions the cargo-fuzz targets call (`sluice::fuzz_targets`), under
//! stable Rust and without libFuzzer, so `make test` keeps every fixed
//! crash fixed. The harnesses check invariants and panic when one breaks.
//!
//! `SLUICE_WRITE_SEEDS=1 cargo test --test fuzz_corpus write_seeds -- --ignored`
//! writes the harnesses' seed inputs to `fuzz/seeds/<target>/` (the starting
//! point of `make fuzz`); `describe_input` prints what a crash input means.

use std::path::{Path, PathBuf};

use sluice::fuzz_targets::{seeds, TARGETS};

/// `fuzz/`, or `$SLUICE_FUZZ_DIR` to replay another corpus (e.g. one a long
/// `make fuzz` run grew) under stable Rust.
fn fuzz_dir() -> PathBuf {
    match std::env::var_os("SLUICE_FUZZ_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz"),
    }
}

/// The files of `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

/// Runs `target` on each file, naming the file when the harness panics.
fn replay(target: &str, run: fn(&[u8]), paths: &[PathBuf]) {
    for path in paths {
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{target}: {} fails its harness", path.display());
        }
    }
}

#[test]
fn committed_corpus_replays_cleanly() {
    let mut total = 0;
    for (target, run) in TARGETS {
        let paths = files(&fuzz_dir().join("corpus").join(target));
        assert!(!paths.is_empty(), "no committed corpus for {target}");
        total += paths.len();
        replay(target, *run, &paths);
    }
    assert!(total >= TARGETS.len());
}

#[test]
fn crash_regressions_stay_fixed() {
    let dir = fuzz_dir().join("regressions");
    let loose: Vec<PathBuf> =
        files(&dir).into_iter().filter(|p| p.extension().is_none_or(|e| e != "md")).collect();
    assert!(loose.is_empty(), "{loose:?}: regressions go in a directory per target");
    for (target, run) in TARGETS {
        replay(target, *run, &files(&dir.join(target)));
    }
    // A directory whose name is no target would never be replayed.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(TARGETS.iter().any(|(t, _)| *t == name), "fuzz/regressions/{name} is not a target");
        }
    }
}

#[test]
fn seeds_pass_their_harness() {
    for (target, run) in TARGETS {
        for (i, s) in seeds(target).iter().enumerate() {
            if std::panic::catch_unwind(|| run(s)).is_err() {
                panic!("{target}: seed {i} fails its harness");
            }
        }
    }
}

/// A few hundred pseudo-random inputs per target (fixed generator): a quick
/// stand-in for the fuzzer in every test run.
#[test]
fn pseudo_random_inputs_pass_every_harness() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (target, run) in TARGETS {
        let rounds = if *target == "lua_api" || *target == "tcp_engine_lua" { 40 } else { 300 };
        for _ in 0..rounds {
            let len = (next() % 600) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{target}: input {data:02x?} fails its harness");
            }
        }
    }
}

#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn write_seeds() {
    if std::env::var_os("SLUICE_WRITE_SEEDS").is_none() {
        return;
    }
    for (target, _) in TARGETS {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
        }
    }
}

/// Reads a crash: `FUZZ_TARGET=tcp_engine FUZZ_INPUT=fuzz/artifacts/... cargo
/// test --test fuzz_corpus describe_input -- --ignored --nocapture` prints the
/// structured input the harness read, then runs it.
#[test]
#[ignore = "reads one input named by FUZZ_TARGET and FUZZ_INPUT; run by hand"]
fn describe_input() {
    let (Some(target), Some(input)) = (std::env::var_os("FUZZ_TARGET"), std::env::var_os("FUZZ_INPUT"))
    else {
        return;
    };
    let target = target.to_string_lossy().into_owned();
    let data = std::fs::read(input).unwrap();
    // SLUICE_LOG=debug shows what the engine and the rules logged.
    let filter = tracing_subscriber::EnvFilter::from_env("SLUICE_LOG");
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    if let Some(s) = sluice::fuzz_targets::describe(&target, &data) {
        println!("{s}");
    }
    let Some((_, run)) = TARGETS.iter().find(|(t, _)| *t == target) else { panic!("no target {target}") };
    run(&data);
}
