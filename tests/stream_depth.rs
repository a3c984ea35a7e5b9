//! `sluice pcap --stream-depth`: rules hear `depth_reached` once per
//! direction that passes the depth, in rehearsal and passive analysis, and
//! never without a depth.

use std::process::Command;

fn run(extra: &[&str]) -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "pcap",
            &format!("{dir}/tests/stream_depth/depth_alert.lua"),
            &format!("{dir}/sample/demo.pcap"),
        ])
        .args(["--no-progress"])
        .args(extra)
        .output()
        .expect("run sluice pcap");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn depth_alerts(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split("\"description\":\"").nth(1))
        .filter_map(|d| d.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn depth_reached_fires_once_per_direction_past_the_depth() {
    let want = ["depth up 80", "depth down 80", "depth up 80", "depth up 443"];
    // One worker and several (each wraps the rules in its own taps), with
    // and without a stream dump (which wraps them too): a wrapper that does
    // not pass the event on hides it from the rules.
    let dumps = std::env::temp_dir().join(format!("sluice-depth-dump-{}", std::process::id()));
    let dump_dir = dumps.to_string_lossy().into_owned();
    for workers in ["1", "2"] {
        for extra in [&[][..], &["--passive"][..], &["--dump-streams", &dump_dir][..]] {
            let mut args = vec!["--stream-depth", "20", "--workers", workers];
            args.extend_from_slice(extra);
            assert_eq!(depth_alerts(&run(&args)), want, "with {args:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dumps);
    assert!(depth_alerts(&run(&[])).is_empty(), "no depth, no event");
    assert!(depth_alerts(&run(&["--stream-depth", "100000000"])).is_empty(), "a depth nothing reaches");
}
