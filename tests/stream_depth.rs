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
    assert_eq!(depth_alerts(&run(&["--stream-depth", "20"])), want);
    assert_eq!(depth_alerts(&run(&["--stream-depth", "20", "--passive"])), want);
    assert!(depth_alerts(&run(&[])).is_empty(), "no depth, no event");
    assert!(depth_alerts(&run(&["--stream-depth", "100000000"])).is_empty(), "a depth nothing reaches");
}
