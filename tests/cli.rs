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
fn an_output_pcap_on_standard_output_is_refused() {
    let rules = golden("passthrough", "rules.lua");
    let input = golden("passthrough", "input.pcap");
    let (code, out, err) = sluice(&["pcap", &rules, &input, "-o", "-"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot go to standard output"), "{err}");
    assert!(out.is_empty() && !std::path::Path::new("-").exists());
}

#[test]
fn alerts_dash_is_standard_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(tmp.path())
        .args(["pcap", &golden("alerts", "rules.lua"), &golden("alerts", "input.pcap"), "--alerts", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let expected = std::fs::read_to_string(golden("alerts", "expected-alerts.jsonl")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert!(!tmp.path().join("-").exists(), "no file named -");
}

#[test]
fn summary_json_dash_is_standard_output_when_alerts_go_to_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let alerts = tmp.path().join("alerts.jsonl");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(tmp.path())
            .args([
                "pcap",
                &golden("alerts", "rules.lua"),
                &golden("alerts", "input.pcap"),
                "--summary-json",
                "-",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--alerts", alerts.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["packets_in"], 16);
    assert!(json["alerts"].as_u64().is_some_and(|n| n > 0));
    // Alerts would share standard output with it: refused before anything runs.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --alerts FILE"));
    assert!(out.stdout.is_empty());
    assert!(!tmp.path().join("-").exists(), "no file named -");
}

#[test]
fn bad_flag_is_a_usage_error() {
    let (code, _, _) = sluice(&["pcap", "--on-rule-error", "explode", "a", "b"]);
    assert_eq!(code, 2);
}

/// Writes `text` as `name` in a fresh directory; returns the directory (kept
/// alive by the caller) and the file's path.
fn rule_file(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn check_lists_rules_and_events_of_a_valid_file() {
    let (_dir, path) = rule_file(
        "three.lua",
        r#"require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")
haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt) end
}
haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  -- Only a load is checked: an error the rule would raise on traffic is fine.
  eval = function (flow, data, dir) error("only when run") end
}
haka.rule {
  on = haka.dissectors.ipv4.events.receive_packet,
  eval = function (pkt) end
}
"#,
    );
    let (code, out, err) = sluice(&["check", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&path), "names the file: {out}");
    assert!(out.contains("3 rules"), "{out}");
    for event in ["tcp_connection.new_connection", "tcp_connection.receive_data", "ipv4.receive_packet"] {
        assert!(out.contains(event), "lists {event}: {out}");
    }
    assert!(!err.contains("sluice:"), "no error: {err}");
}

#[test]
fn check_of_a_shipped_golden_rule_file_succeeds() {
    let rules = golden("passthrough", "rules.lua");
    let (code, out, err) = sluice(&["check", &rules]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 rules, 0 policies, on events tcp_connection.receive_data"), "{out}");
}

#[test]
fn check_reports_a_syntax_error_with_file_and_line() {
    let (_dir, path) = rule_file(
        "syntax.lua",
        "require(\"protocol/ipv4\")\nlocal x = 1\nhaka.rule {\n  on = haka.dissectors.ipv4.events.receive_packet,\n  eval = function (pkt) if then end\n}\n",
    );
    let (code, out, err) = sluice(&["check", &path]);
    assert_eq!(code, 1, "stdout {out}, stderr {err}");
    assert!(err.contains("syntax.lua:5:"), "file and line of the bad token: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.contains("rules,"), "no report for a broken file: {out}");
}

#[test]
fn check_reports_a_runtime_error_at_load_with_file_and_line() {
    // Line 4 indexes a nil value while the file loads.
    let (_dir, path) =
        rule_file("runtime.lua", "require(\"protocol/ipv4\")\nlocal t = nil\n\nlocal y = t.field\n");
    let (code, out, err) = sluice(&["check", &path]);
    assert_eq!(code, 1, "stdout {out}, stderr {err}");
    assert!(err.contains("runtime.lua:4:"), "file and line of the failing statement: {err}");
    assert!(err.contains("nil"), "the Lua message: {err}");
    assert!(!out.contains("rules,"), "{out}");
}

#[test]
fn check_reports_an_explicit_error_and_an_unknown_dissector() {
    let (_dir, path) = rule_file("refuse.lua", "-- a comment\nerror(\"refusing to load\")\n");
    let (code, _, err) = sluice(&["check", &path]);
    assert_eq!(code, 1);
    assert!(err.contains("refuse.lua:2: refusing to load"), "{err}");

    let (_dir, path) = rule_file(
        "unknown.lua",
        "haka.rule {\n  on = haka.dissectors.nosuch.events.receive_packet,\n  eval = function (pkt) end\n}\n",
    );
    let (code, _, err) = sluice(&["check", &path]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown.lua:2:"), "{err}");
}

#[test]
fn check_of_a_missing_file_names_it_and_fails() {
    let (code, _, err) = sluice(&["check", "/nonexistent/rules.lua"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/rules.lua"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn check_names_the_required_module_that_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("helper.lua"), "local M = {}\n\nM.x = nil .. \"oops\"\nreturn M\n")
        .unwrap();
    let main = dir.path().join("main.lua");
    std::fs::write(&main, "local h = require(\"helper\")\n").unwrap();
    let (code, _, err) = sluice(&["check", main.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("helper.lua:3:"), "the module's file and line: {err}");
}

#[test]
fn check_counts_policies_and_says_when_nothing_is_hooked() {
    let sample = format!("{}/sample/rules.lua", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = sluice(&["check", &sample]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 rules, 2 policies, on events tcp_connection.new_connection"), "{out}");
    let (_dir, path) = rule_file("empty.lua", "require(\"protocol/ipv4\")\n");
    let (code, out, err) = sluice(&["check", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 rules, 0 policies, hooking no events"), "{out}");
}

#[test]
fn rule_errors_give_status_4_after_every_output_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.pcap");
    let summary = tmp.path().join("summary.json");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "pcap".to_string(),
            golden("rule-error", "rules.lua"),
            golden("rule-error", "input.pcap"),
            "-o".into(),
            out.to_str().unwrap().into(),
            "--alerts".into(),
            tmp.path().join("alerts.jsonl").to_str().unwrap().into(),
            "--summary-json".into(),
            summary.to_str().unwrap().into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |a: Vec<String>| sluice(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, _, err) = run(args(&[]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("rule errors (exit status 4; --allow-rule-errors for 0)"), "{err}");
    assert!(err.contains("packets:"), "summary first: {err}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let total = json["rule_errors"].as_u64().unwrap();
    assert!(total > 0);
    // Per rule, in the summary and its JSON: here one rule made them all.
    let by_rule = json["rule_errors_by_rule"].as_array().unwrap();
    assert_eq!(by_rule.len(), 1, "{json}");
    assert!(by_rule[0]["rule"].as_str().unwrap().contains("rules.lua:"), "{json}");
    assert_eq!(by_rule[0]["errors"].as_u64(), Some(total));
    assert!(err.contains(&format!("rule errors: {total} in ")), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(golden("rule-error", "expected.pcap")).unwrap());

    let (code, _, err) = run(args(&["--allow-rule-errors"]));
    assert_eq!(code, 0, "{err}");
    // A run without rule errors is 0 without the flag.
    let (code, _, err) = sluice(&[
        "pcap",
        &golden("passthrough", "rules.lua"),
        &golden("passthrough", "input.pcap"),
        "--alerts",
        tmp.path().join("a2.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn haka_log_info_shows_by_default_and_sluice_info_does_not() {
    let (_dir, path) = rule_file(
        "log.lua",
        r#"require("protocol/ipv4")
haka.log.info("loaded %d", 42)
haka.log.debug("not shown")
"#,
    );
    let input = golden("passthrough", "input.pcap");
    let (code, _, err) = sluice(&["pcap", &path, &input]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("loaded 42"), "{err}");
    assert!(!err.contains("not shown"), "{err}");
    // The flag replaces the default filter.
    let (code, _, err) = sluice(&["-v", "warn", "pcap", &path, &input]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("loaded 42"), "{err}");
}

#[test]
fn var_flags_are_parsed_and_bad_names_refused() {
    let rules = golden("passthrough", "rules.lua");
    let input = golden("passthrough", "input.pcap");
    let (code, _, err) = sluice(&["check", &rules, "--var", "home_net=10.0.0.0/8", "--var", "x="]);
    assert_eq!(code, 0, "{err}");
    for bad in ["1net=x", "a-b=1", "novalue", "end=1"] {
        for cmd in ["check", "pcap"] {
            let mut a = vec![cmd, rules.as_str()];
            if cmd == "pcap" {
                a.push(&input);
            }
            a.extend(["--var", bad]);
            let (code, _, err) = sluice(&a);
            assert_eq!(code, 2, "{cmd} --var {bad}: {err}");
            assert!(err.contains("--var") && err.contains(bad.split('=').next().unwrap()), "{err}");
        }
    }
}

#[test]
fn damaged_capture_prints_the_summary_then_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(golden("passthrough", "input.pcap")).unwrap();
    // The third record's incl_len: records start at 24, each 16 + incl_len.
    let mut offset = 24;
    for _ in 0..2 {
        let incl = u32::from_le_bytes(bytes[offset + 8..offset + 12].try_into().unwrap()) as usize;
        offset += 16 + incl;
    }
    bytes[offset + 8..offset + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let input = tmp.path().join("damaged.pcap");
    std::fs::write(&input, bytes).unwrap();
    let (code, _, err) = sluice(&["pcap", &golden("passthrough", "rules.lua"), input.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("2 packets: 2 accepted"), "records before the damage processed: {err}");
    assert!(err.contains(&format!("malformed record 3 at byte offset {offset}")), "{err}");
}

#[test]
fn passive_flag_and_the_hint_towards_it() {
    use sluice::flow::Direction::{Down, Up};
    use sluice::pcapgen::{write_pcap_file, Conversation, Framing};
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake().send(Up, b"lost in capture").send(Up, b"kept").send(Down, b"reply").close();
    let lost = sluice::wire::decode(&c.packets()[3].1).unwrap().payload().to_vec();
    assert_eq!(lost, b"lost in capture");
    let mut packets = c.into_packets();
    packets.remove(3);
    let input = tmp.path().join("loss.pcap");
    write_pcap_file(&input, &Framing::Ethernet, &packets).unwrap();
    let rules = golden("passthrough", "rules.lua");
    let alerts = tmp.path().join("a.jsonl");
    let args = |passive: bool| {
        let mut a =
            vec!["pcap", rules.as_str(), input.to_str().unwrap(), "--alerts", alerts.to_str().unwrap()];
        if passive {
            a.push("--passive");
        }
        a
    };
    let (code, _, err) = sluice(&args(false));
    assert_eq!(code, 0, "{err}");
    let hints: Vec<&str> = err.lines().filter(|l| l.starts_with("hint:")).collect();
    assert_eq!(hints.len(), 1, "{err}");
    assert!(hints[0].contains("--passive"), "{err}");
    let (code, _, err) = sluice(&args(true));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("passive: 1 gaps (15 bytes missing from the capture)"), "{err}");
    assert!(err.contains(" 0 dropped"), "{err}");
    assert!(!err.contains("hint:"), "{err}");
}
