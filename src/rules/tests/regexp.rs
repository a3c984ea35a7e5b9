//! `require("regexp/pcre")` as Haka rules use it: compile and match on
//! strings and data objects, sinks across chunks, flags, `%` escapes and
//! the errors of bad patterns.

use super::*;

/// Loads `src` and returns the load error text.
fn load_error(src: &str) -> String {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    match LuaRules::from_source("re.lua", src, &RulesConfig::default(), sinks) {
        Ok(_) => panic!("rules loaded: {src}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn string_match_returns_hakas_values() {
    let h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local re = rem.re:compile("bar")
        m, first, last = re:match("foo bar foo")
        nm, nfirst, nlast = re:match("foo")
        digits = rem.re:match("%d+", "abc 12345 x")
        pct = rem.re:match("100%%", "it is 100%!")
        same = rawequal(require("regexp/pcre"), rem)
        "#,
    );
    assert_eq!(h.global::<String>("m"), "bar");
    assert_eq!(h.global::<i64>("first"), 4);
    assert_eq!(h.global::<i64>("last"), 7);
    assert_eq!(h.global::<Option<String>>("nm"), None);
    assert_eq!((h.global::<i64>("nfirst"), h.global::<i64>("nlast")), (-1, -1));
    assert_eq!(h.global::<String>("digits"), "12345");
    assert_eq!(h.global::<String>("pct"), "100%");
    assert!(h.global::<bool>("same"), "the module is loaded once");
}

#[test]
fn flags_and_extended_mode() {
    let h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        plain = rem.re:match("camel case", "CaMeL CaSe")
        ci = rem.re:match("camel case", "CaMeL CaSe", rem.re.CASE_INSENSITIVE)
        x = rem.re:compile("a b  c # letters", rem.re.EXTENDED):match("xxabc")
        both = rem.re:compile("A B", rem.re.EXTENDED + rem.re.CASE_INSENSITIVE):match("zab")
        inline = rem.re:match("(?i)hello", "HeLLo")
        "#,
    );
    assert_eq!(h.global::<Option<String>>("plain"), None);
    assert_eq!(h.global::<String>("ci"), "CaMeL CaSe");
    assert_eq!(h.global::<String>("x"), "abc");
    assert_eq!(h.global::<String>("both"), "ab");
    assert_eq!(h.global::<String>("inline"), "HeLLo");
    let e = load_error("require('regexp/pcre').re:compile('a', 4)");
    assert!(e.contains("unknown option bits 4"), "{e}");
}

#[test]
fn bad_pattern_is_a_load_error_showing_pattern_and_place() {
    let e = load_error("local rem = require('regexp/pcre')\nlocal re = rem.re:compile('%d+(x')");
    assert_eq!(
        e,
        "re.lua:2: regexp/pcre: bad regular expression \"%d+(x\" at offset 3 (at \"(x\"): unclosed group"
    );
    let e = load_error("require('regexp/pcre').re:compile('?')");
    assert!(e.contains("\"?\" at offset 0"), "{e}");
}

#[test]
fn unsupported_pcre_features_are_named() {
    for (pattern, feature) in [
        ("(%w)%1", "backreference"),
        ("a(?=b)", "lookahead"),
        ("(?<=a)b", "lookbehind"),
        ("(?>a+)", "atomic group"),
        ("a++", "possessive quantifier"),
        ("(?R)", "recursion"),
        ("a%Kb", "\\K"),
    ] {
        let e = load_error(&format!("require('regexp/pcre').re:compile('{pattern}')"));
        assert!(e.starts_with("re.lua:1: regexp/pcre: bad regular expression"), "{e}");
        assert!(e.contains(feature) && e.contains("is not supported"), "{pattern}: {e}");
    }
}

#[test]
fn data_match_returns_a_view() {
    let mut h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local re = rem.re:compile("GET /[a-z]+")
        found = {}
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir)
          local m = re:match(data)
          if m then
            found[#found + 1] = m:asstring() .. "|" .. #m
            local inner = re:match(data:sub(3))
            found[#found + 1] = tostring(inner)
          else
            found[#found + 1] = "nil"
          end
        end }
        "#,
    );
    let f = tcp_flow(1);
    h.data(&f, Direction::Up, b"xx GET /index.html");
    h.data(&f, Direction::Up, b"POST /");
    let found: Vec<String> = h.global("found");
    assert_eq!(found, vec!["GET /index|10", "GET /index", "nil"]);
    assert_eq!(h.errors(), 0);
}

#[test]
fn sink_matches_across_chunks() {
    let mut h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local re = rem.re:compile("attack")
        local sink = re:create_sink()
        seen = {}
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir)
          local ok, first, last = sink:feed(data, false)
          seen[#seen + 1] = tostring(ok) .. " " .. tostring(first) .. " " .. tostring(last)
            .. " " .. tostring(sink:ispartial())
          if ok then flow:drop() end
        end }
        "#,
    );
    let f = tcp_flow(1);
    assert_eq!(h.data(&f, Direction::Up, b"an at"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Up, b"ta"), Action::Accept);
    assert_eq!(
        h.data(&f, Direction::Up, b"ck!"),
        Action::DropFlow,
        "dropped with the chunk that completes it"
    );
    let seen: Vec<String> = h.global("seen");
    assert_eq!(seen, vec!["false nil nil true", "false nil nil true", "true 3 9 false"]);
}

#[test]
fn sink_on_strings_as_haka() {
    let h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local re = rem.re:compile("foo")
        local sink = re:create_sink()
        a = sink:feed("some fo", false)
        partial = sink:ispartial()
        b = sink:feed("o over two string", true)
        after = sink:feed("anything", true)

        local s2 = rem.re:compile("bar"):create_sink()
        result = {}
        r2 = s2:feed("foo bar foo", true, result)
        none = {}
        r3 = rem.re:compile("bar"):create_sink():feed("foo", true, none)

        local s3 = rem.re:compile("abc"):create_sink()
        s3:feed("aaa", true)
        partial_at_eof = s3:ispartial()
        "#,
    );
    assert!(!h.global::<bool>("a"));
    assert!(h.global::<bool>("partial"));
    assert!(h.global::<bool>("b"));
    assert!(h.global::<bool>("after"), "a match sticks");
    assert!(h.global::<bool>("r2"));
    let r: mlua::Table = h.global("result");
    assert_eq!((r.get::<i64>("first").unwrap(), r.get::<i64>("last").unwrap()), (4, 7));
    assert!(!h.global::<bool>("r3"));
    let n: mlua::Table = h.global("none");
    assert_eq!((n.get::<i64>("first").unwrap(), n.get::<i64>("last").unwrap()), (-1, -1));
    assert!(h.global::<bool>("partial_at_eof"), "Haka: 'abc' fed 'aaa' is partial");
}

#[test]
fn wrong_inputs_are_errors_with_location() {
    let mut h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local re = rem.re:compile("a")
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir)
          re:match({})
        end }
        "#,
    );
    h.data(&tcp_flow(1), Direction::Up, b"a");
    assert_eq!(h.errors(), 1);
    let e: mlua::Result<()> = h.eval("require('regexp/pcre').re:compile('a'):create_sink():feed(5, true)");
    let msg = e.expect_err("a number is not a chunk").to_string();
    assert!(msg.contains("sink:feed expects a string or a data object, got a integer"), "{msg}");
}

#[test]
fn stale_data_objects_are_refused() {
    let mut h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        re = rem.re:compile("a")
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir)
          kept = data
        end }
        "#,
    );
    h.data(&tcp_flow(1), Direction::Up, b"a");
    let e: mlua::Result<()> = h.eval("re:match(kept)");
    let msg = e.expect_err("stale data").to_string();
    assert!(msg.contains("used after its event ended"), "{msg}");
}

/// The sink example of docs/rules-api.md: one sink per direction, kept on
/// the flow.
#[test]
fn documented_sink_per_direction() {
    let mut h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local re = rem.re:compile("attack")
        haka.rule {
          on = haka.dissectors.tcp_connection.events.receive_data,
          eval = function (flow, data, dir)
            local key = "attack_sink_" .. dir
            local sink = flow[key] or re:create_sink()
            flow[key] = sink
            if sink:feed(data, false) then flow:reset() end
          end
        }
        "#,
    );
    let f = tcp_flow(7);
    assert_eq!(h.data(&f, Direction::Up, b"att"), Action::Accept);
    assert_eq!(h.data(&f, Direction::Down, b"ack"), Action::Accept, "the other direction has its own sink");
    assert_eq!(h.data(&f, Direction::Up, b"ack"), Action::Reset);
    assert_eq!(h.errors(), 0);
}

/// A match longer than a sink's window: the end is exact, the start is the
/// first byte the sink kept, and the sink says it was clipped.
#[test]
fn sink_reports_a_clipped_start() {
    let h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local sink = rem.re:compile("xa*y"):create_sink()
        sink:feed("x", false)
        sink:feed(string.rep("a", 70000), false)
        result = {}
        ok, first, last, clipped = sink:feed("y", false, result)
        "#,
    );
    assert!(h.global::<bool>("ok"));
    let kept_from = 70_001 - crate::regexp::DEFAULT_WINDOW as i64;
    assert_eq!(h.global::<i64>("first"), kept_from);
    assert_eq!(h.global::<i64>("last"), 70_002);
    assert!(h.global::<bool>("clipped"));
    let r: mlua::Table = h.global("result");
    assert!(r.get::<bool>("clipped").unwrap());
}

#[test]
fn packet_payload_is_a_data_object_too() {
    let mut h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local re = rem.re:compile("q[a-z]+y")
        haka.rule{ on = haka.dissectors.udp.events.receive_packet, eval = function(pkt)
          local m = re:match(pkt.payload)
          got = m and m:asstring()
          local sink = re:create_sink()
          fed = sink:feed(pkt.payload, true)
        end }
        "#,
    );
    let p = crate::wire::forge::udp_packet(client(), 5353, server(), 53, b"a query!");
    h.packet(Event::UdpPacket, &p, None);
    assert_eq!(h.global::<String>("got"), "query");
    assert!(h.global::<bool>("fed"));
    assert_eq!(h.errors(), 0);
}

/// Patterns in Haka's style: `%` escapes inside and outside classes, POSIX
/// classes, lazy repetition, NUL bytes.
#[test]
fn haka_style_patterns() {
    let h = Harness::new(
        r#"
        local rem = require("regexp/pcre")
        local function m(p, s) return (rem.re:match(p, s)) end
        crlf = m("[%r]?%n", "a\r\nb")
        blank = m("[[:blank:]]+", "a \t b")
        version = m("[0-9]+%.[0-9]+", "HTTP/1.1 200")
        token = m('[^()<>@,;:%\\"/%[%]?={}[:blank:]]+', "  Content-Type: x")
        local probe = rem.re:compile("(?:<%?php|[^%-&]#.*?[%r%n%v]|%-%-[%s%v]|;?%x00)")
        php = probe:match("x <?php echo")
        comment = probe:match("1 OR 1=1#tail\n")
        dashes = probe:match("admin'-- x")
        nul = probe:match("abc;\0def")
        clean = probe:match("GET /index.html?a=b&c=d")
        "#,
    );
    assert_eq!(h.global::<String>("crlf"), "\r\n");
    assert_eq!(h.global::<String>("blank"), " \t ");
    assert_eq!(h.global::<String>("version"), "1.1");
    assert_eq!(h.global::<String>("token"), "Content-Type");
    assert_eq!(h.global::<String>("php"), "<?php");
    assert_eq!(h.global::<String>("comment"), "1#tail\n");
    assert_eq!(h.global::<String>("dashes"), "-- ");
    assert_eq!(h.global::<mlua::String>("nul").as_bytes().as_ref(), b";\0");
    assert_eq!(h.global::<Option<String>>("clean"), None);
}
