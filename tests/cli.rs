//! The `sluice` binary: exit codes and messages for the offline commands.

use std::process::Command;

fn sluice(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn golden(case: &str, file: &str) -> String {
    format!("{}/tests/golden/{case}/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn missing_input_names_the_file_and_fails() {
    let (code, _, err) = sluice(&["pcap", &golden("passthrough", "rules.lua"), "/nonexistent/in.pcap"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/in.pcap"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn not_a_capture_fails_cleanly() {
    let rules = golden("passthrough", "rules.lua");
    let (code, _, err) = sluice(&["pcap", &rules, &rules]);
    assert_eq!(code, 1);
    assert!(err.contains("not a pcap or pcapng file"), "{err}");
}

#[test]
fn replay_writes_output_and_summary_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.pcap");
    let summary = tmp.path().join("summary.json");
    let (code, _, err) = sluice(&[
        "pcap",
        &golden("link-sll2", "rules.lua"),
        &golden("link-sll2", "input.pcap"),
        "-o",
        out.to_str().unwrap(),
        "--alerts",
        tmp.path().join("alerts.jsonl").to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
        "--max-flows",
        "100",
        "--on-rule-error",
        "accept",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("packets:"), "human summary on stderr: {err}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    assert_eq!(json["packets_in"], 14);
    assert_eq!(std::fs::read(out).unwrap(), std::fs::read(golden("link-sll2", "expected.pcap")).unwrap());
}

#[test]
fn bad_flag_is_a_usage_error() {
    let (code, _, _) = sluice(&["pcap", "--on-rule-error", "explode", "a", "b"]);
    assert_eq!(code, 2);
}
