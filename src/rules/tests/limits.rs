//! What goes wrong: runtime and load errors, the error policy, the
//! instruction budget, the memory limit, the sandbox, stale objects.

use super::*;
use crate::config::ErrorPolicy;

fn cfg(on_error: ErrorPolicy) -> RulesConfig {
    RulesConfig { on_error, ..RulesConfig::default() }
}

const FAILING: &str = r#"
haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
  if data:asstring() == "reset then fail" then flow:reset() end
  if data:asstring() ~= "fine" then error("boom") end
end }
later = 0
haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function() later = later + 1 end }
"#;

#[test]
fn runtime_error_with_drop_policy_drops_and_counts() {
    let mut h = Harness::with_config(FAILING, &cfg(ErrorPolicy::Drop));
    let f = tcp_flow(1);
    assert_eq!(h.data(&f, Direction::Up, b"fine"), Action::Accept);
    assert_eq!(h.errors(), 0);
    assert_eq!(h.data(&f, Direction::Up, b"x"), Action::DropPacket);
    assert_eq!(h.errors(), 1);
    assert_eq!(h.stats.get(Counter::DropRuleError), 1);
    assert_eq!(h.data(&f, Direction::Up, b"reset then fail"), Action::Reset);
    assert_eq!(h.errors(), 2);
    // The reset was the rule's own decision, not the error's.
    assert_eq!(h.stats.get(Counter::DropRuleError), 1);
    // The rule after the failing one ran every time.
    assert_eq!(h.global::<i64>("later"), 3);
}

#[test]
fn runtime_error_with_accept_policy_keeps_the_rule_decision() {
    let mut h = Harness::with_config(FAILING, &cfg(ErrorPolicy::Accept));
    let f = tcp_flow(1);
    assert_eq!(h.data(&f, Direction::Up, b"x"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"reset then fail"), Action::Reset);
    assert_eq!(h.errors(), 2);
    assert_eq!(h.stats.get(Counter::DropRuleError), 0);
}

#[test]
fn syntax_error_names_file_and_line() {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let err =
        LuaRules::from_source("dir/bad.lua", "local a = 1\nlocal b = = 2\n", &RulesConfig::default(), sinks)
            .unwrap_err()
            .to_string();
    assert!(err.starts_with("dir/bad.lua:2:"), "{err}");
}

#[test]
fn load_errors_name_file_and_line() {
    let cases = [
        ("x = 1\nerror('top level')\n", "t.lua:2: top level"),
        ("\n\nhaka.rule{ on = haka.dissectors.tcp.events.nope, eval = function() end }", "t.lua:3: "),
        ("haka.rule{ on = haka.dissectors.tcp.events.receive_packet }", "t.lua:1: haka.rule: 'eval'"),
        ("haka.rule{ on = {}, eval = function() end }", "t.lua:1: haka.rule: 'on' is not a known event"),
        ("haka.rule(5)", "t.lua:1: haka.rule expects a table"),
    ];
    for (src, want) in cases {
        let (alerts, _) = AlertSink::memory();
        let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
        let err =
            LuaRules::from_source("t.lua", src, &RulesConfig::default(), sinks).unwrap_err().to_string();
        assert!(err.starts_with(want), "got {err:?}, want {want:?}");
        assert!(!err.contains("stack traceback"), "{err}");
    }
}

fn limited(src: &str) -> Harness {
    Harness::with_config(src, &RulesConfig { instruction_limit: 100_000, ..RulesConfig::default() })
}

#[test]
fn instruction_budget_stops_endless_loops_and_next_event_works() {
    let mut h = limited(
        r#"runs = 0
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
          runs = runs + 1
          local s = data:asstring()
          if s == "loop" then while true do end end
          if s == "pcall" then while true do pcall(function() while true do end end) end end
          if s == "coroutine" then
            local co = coroutine.create(function() while true do end end)
            while true do coroutine.resume(co) end
          end
          if s == "work" then local n = 0; for i = 1, 20000 do n = n + i end; total = n end
        end }"#,
    );
    let f = tcp_flow(1);
    for (i, what) in ["loop", "pcall", "coroutine"].iter().enumerate() {
        assert_eq!(h.data(&f, Direction::Up, what.as_bytes()), Action::DropPacket, "{what}");
        assert_eq!(h.errors(), i as u64 + 1, "{what}");
    }
    // The budget is per event: a bounded amount of work runs fine afterwards, twice.
    assert_eq!(h.data(&f, Direction::Up, b"work"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"work"), Action::Accept);
    assert_eq!(h.global::<i64>("total"), 200010000);
    assert_eq!(h.global::<i64>("runs"), 5);
    assert_eq!(h.errors(), 3);
}

#[test]
fn instruction_budget_applies_at_load_time() {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let cfg = RulesConfig { instruction_limit: 100_000, ..RulesConfig::default() };
    let err = LuaRules::from_source("spin.lua", "\nwhile true do end", &cfg, sinks).unwrap_err().to_string();
    assert!(err.contains("spin.lua:2:") && err.contains("instruction limit"), "{err}");
}

#[test]
fn memory_limit_stops_a_growing_table_without_crashing() {
    let cfg = RulesConfig { memory_limit: 8 << 20, ..RulesConfig::default() };
    let mut h = Harness::with_config(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
             if data:asstring() == "grow" then
               local t = {}
               for i = 1, 1e9 do t[i] = { i } end
             end
             if data:asstring() == "string" then
               local s = "x"
               while true do s = s .. s end
             end
             ok = true
           end }"#,
        &cfg,
    );
    let f = tcp_flow(1);
    assert_eq!(h.data(&f, Direction::Up, b"grow"), Action::DropPacket);
    assert_eq!(h.errors(), 1);
    assert_eq!(h.data(&f, Direction::Up, b"string"), Action::DropPacket);
    assert_eq!(h.errors(), 2);
    assert_eq!(h.data(&f, Direction::Up, b"fine"), Action::Accept);
    assert!(h.global::<bool>("ok"));
    assert!(h.rules.lua.used_memory() < 8 << 20);
}

#[test]
fn sandbox_removes_dangerous_functions() {
    let h = Harness::new(
        r#"
        local bin_ok, bin_err = load("\27Lua\84\0\25\147\13\10\26\10\4\8\8", "bin")
        local bin_b = load("\27Lua\84\0", "bin", "b")
        r = {
          io == nil, debug == nil, package == nil, dofile == nil, loadfile == nil,
          os.execute == nil, os.exit == nil, os.remove == nil, os.getenv == nil,
          type(os.time) == "function", type(os.clock) == "function", type(os.date) == "function",
          string.dump == nil, ("x").dump == nil,
          bin_ok == nil and tostring(bin_err):find("binary") ~= nil,
          bin_b == nil,
          load("return 1 + 1")() == 2,
          load("return x", "env", "t", { x = 5 })() == 5,
        }
        "#,
    );
    let r: Vec<bool> = h.global("r");
    assert_eq!(r.len(), 18);
    for (i, ok) in r.iter().enumerate() {
        assert!(ok, "sandbox check {} failed", i + 1);
    }
    let err = h.eval::<mlua::Value>("return require('io')").unwrap_err();
    assert!(crate::rules::error::error_message(&err).contains("'io'"));
}

#[test]
fn stale_objects_error_cleanly() {
    let mut h = Harness::new(
        r#"
        local ev = haka.dissectors.tcp_connection.events
        haka.rule{ on = ev.receive_packet, eval = function(flow, pkt)
          if not saved_pkt then saved_pkt, saved_payload = pkt, pkt.payload; return end
          r = { pcall(function() return saved_pkt.ttl end) }
          r3 = { pcall(function() return saved_payload:asstring() end) }
          r4 = { pcall(function() saved_pkt:drop() end) }
        end }
        haka.rule{ on = ev.receive_data, eval = function(flow, data) saved_data = data end }
        "#,
    );
    let f = tcp_flow(1);
    let p = tcp_packet(tcp_flags::ACK, b"x");
    assert_eq!(h.packet(Event::TcpConnectionPacket, &p, Some((&f, Direction::Up))), Action::Accept);
    // The stale objects' methods fail inside the rule, and decide nothing.
    assert_eq!(h.packet(Event::TcpConnectionPacket, &p, Some((&f, Direction::Up))), Action::Accept);
    for name in ["r", "r3", "r4"] {
        let (ok, msg): (bool, String) = h.eval(&format!("return {name}[1], tostring({name}[2])")).unwrap();
        assert!(!ok, "{name}");
        assert!(msg.contains("used after its event ended"), "{name}: {msg}");
    }
    // Between events, from outside any rule, too.
    h.data(&f, Direction::Up, b"data");
    for expr in ["return saved_pkt.src", "return #saved_data", "return saved_data:asstring()"] {
        let err = h.eval::<mlua::Value>(expr).expect_err(expr);
        assert!(crate::rules::error::error_message(&err).contains("used after its event ended"), "{expr}");
    }
    assert_eq!(h.errors(), 0);
}

#[test]
fn lua_rules_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<LuaRules>();
    // And really usable from another thread.
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow) flow:drop() end }"#,
    );
    let rules = std::thread::spawn(move || {
        let a = h.rules.data(&cx(), &tcp_flow(1), Direction::Up, b"x");
        assert_eq!(a, Action::DropFlow);
        h.rules
    })
    .join()
    .unwrap();
    assert_eq!(rules.rule_count(), 1);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn rule_errors_are_logged_with_rule_file_and_line() {
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // While a single dispatcher exists, tracing-core decides a callsite's
    // interest with the subscriber of whichever thread first reaches it: a
    // test thread without one would cache "never" for the rule-error
    // callsite. A second live dispatcher makes that decision ask them all.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    tracing::subscriber::with_default(subscriber, || {
        let mut h = Harness::new(
            "\nhaka.rule{ name = \"picky\", on = haka.dissectors.tcp_connection.events.receive_data,\n  eval = function(flow, data)\n    error(\"boom \" .. #data) end }\nhaka.rule{ on = haka.dissectors.udp.events.receive_packet, eval = function(pkt) haka.log.warning(\"hello %d\", 42) end }",
        );
        for _ in 0..15 {
            h.data(&tcp_flow(1), Direction::Up, b"abc");
        }
        h.packet(Event::UdpPacket, &crate::wire::forge::udp_packet(client(), 1, server(), 2, b""), None);
        assert_eq!(h.errors(), 15);
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("rule error")).collect();
    // The first ten errors of a rule are logged, the rest only counted,
    // and the log says so once.
    assert_eq!(errors.len(), 10, "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("only every 1000th")).count(), 1, "{text}");
    assert!(errors[0].contains("test.lua:4: boom 3"), "{}", errors[0]);
    assert!(errors[0].contains("picky (test.lua:3)"), "{}", errors[0]);
    assert!(errors[0].contains("sluice::rules"), "{}", errors[0]);
    let log = text.lines().find(|l| l.contains("hello 42")).expect("haka.log line");
    assert!(log.contains("WARN") && log.contains("test.lua:5"), "{log}");
}

#[test]
fn load_errors_of_deeply_nested_files_keep_the_whole_path() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("a-rather-long-directory-name/another-long-directory-name/rules");
    std::fs::create_dir_all(&deep).unwrap();
    let path = deep.join("main.lua");
    std::fs::write(&path, "\n\nlocal x = = 1\n").unwrap();
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let err = LuaRules::load(&path, &RulesConfig::default(), sinks).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:3:", path.display())), "{err}");
}

#[test]
fn per_rule_error_counts_in_declaration_order() {
    let mut h = Harness::new(
        "haka.rule{ on = haka.dissectors.udp.events.receive_packet, eval = function() error('u') end }\n\
         haka.rule{ name = 'fine', on = haka.dissectors.tcp_connection.events.receive_data, eval = function() end }\n\
         haka.rule{ name = 'bad', on = haka.dissectors.tcp_connection.events.receive_data, eval = function() error('t') end }",
    );
    for _ in 0..3 {
        h.data(&tcp_flow(1), Direction::Up, b"abc");
    }
    h.packet(Event::UdpPacket, &crate::wire::forge::udp_packet(client(), 1, server(), 2, b""), None);
    assert_eq!(h.rules.rule_errors(), [("test.lua:1".to_owned(), 1), ("bad (test.lua:3)".to_owned(), 3)]);
}
