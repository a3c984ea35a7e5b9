//! Throughput of `regexp/pcre` (release build, `cargo bench --bench regexp`).
//!
//! 16 MB of HTTP-like text, fed in 1460-byte chunks as a TCP stream would
//! be, for a few rule-like patterns that never match it:
//!
//! * `stream`: sluice's `StreamMatcher`, chunk by chunk (what a sink or a
//!   streamed rule costs);
//! * `find`: sluice's `Regex::find` on the whole buffer at once;
//! * baselines on the whole buffer, in the same run: the `regex` crate's
//!   `find`, and `memchr::memmem` for the literal pattern.
//!
//! Then the same through Lua rules, per MB of stream: a `receive_data` rule
//! feeding a sink, one calling `re:match(data)`, and the
//! `data:asstring():find(...)` rule most rule files use today.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::alert::AlertSink;
use sluice::config::RulesConfig;
use sluice::flow::{Direction, L4Proto};
use sluice::inspect::{Context, FlowInfo, Inspector};
use sluice::regexp::{Feed, Flags, Regex};
use sluice::rules::{LuaRules, RuleSinks};
use sluice::stats::Stats;
use sluice::time::Timestamp;
use sluice::wire::decode::v4;

const TOTAL: usize = 16 << 20;
const CHUNK: usize = 1460;
const ROUNDS: usize = 3;

/// Requests and responses with varied paths, headers and bodies.
fn http_text() -> Vec<u8> {
    let mut out = Vec::with_capacity(TOTAL + 4096);
    let mut i = 0u64;
    while out.len() < TOTAL {
        i += 1;
        let req = format!(
            "GET /catalog/item-{i}/view.html?ref=home&page={} HTTP/1.1\r\nHost: shop{}.example.com\r\n\
             User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/{}.0\r\n\
             Accept: text/html,application/xhtml+xml;q=0.9\r\nCookie: session={:016x}\r\n\r\n",
            i % 17,
            i % 5,
            100 + i % 30,
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        out.extend_from_slice(req.as_bytes());
        let body = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 512\r\n\r\n\
             <html><head><title>Item {i}</title></head><body><p>Price: {}.{:02} EUR</p>\
             <ul><li>size M</li><li>colour blue</li></ul><a href=\"/cart?add={i}\">add</a></body></html>\r\n",
            i % 300,
            i % 100
        );
        out.extend_from_slice(body.as_bytes());
    }
    out.truncate(TOTAL);
    out
}

/// Best MB/s of `f` over the rounds (each call processes `bytes`).
fn mbps(bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    bytes as f64 / 1e6 / best.as_secs_f64()
}

fn engine(text: &[u8]) {
    let patterns: [(&str, bool); 4] = [
        ("attack", false),
        (r"(?:union\s+select|<script|/etc/passwd)", true),
        (r"User-Agent: [^\r\n]*(?:sqlmap|nikto)", false),
        (r"\d{3}-\d{2}-\d{4}", false),
    ];
    println!("engine, {} MB of HTTP-like text, {CHUNK}-byte chunks (MB/s, best of {ROUNDS})", TOTAL >> 20);
    println!("{:<44} {:>10} {:>10} {:>10} {:>10}", "pattern", "stream", "find", "regex", "memmem");
    for (p, ci) in patterns {
        let re =
            Regex::compile(p, Flags { case_insensitive: ci, extended: false }).expect("pattern compiles");
        let stream = mbps(text.len(), || {
            let mut m = re.stream();
            let mut hit = false;
            for c in text.chunks(CHUNK) {
                hit |= matches!(m.feed(black_box(c), false), Feed::Matched(_));
            }
            hit |= matches!(m.feed(b"", true), Feed::Matched(_));
            assert!(!hit, "{p} must not match the bench text");
        });
        let find = mbps(text.len(), || assert!(re.find(black_box(text)).is_none()));
        let reference = regex::bytes::RegexBuilder::new(p)
            .unicode(false)
            .multi_line(true)
            .case_insensitive(ci)
            .build()
            .expect("regex compiles");
        let regex = mbps(text.len(), || assert!(reference.find(black_box(text)).is_none()));
        let memmem = if p.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let finder = memchr::memmem::Finder::new(p.as_bytes());
            format!("{:10.0}", mbps(text.len(), || assert!(finder.find(black_box(text)).is_none())))
        } else {
            format!("{:>10}", "-")
        };
        let label = if ci { format!("(?i){p}") } else { p.to_owned() };
        println!("{label:<44} {stream:10.0} {find:10.0} {regex:10.0} {memmem}");
    }
}

fn rules(src: &str) -> LuaRules {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    LuaRules::from_source("bench.lua", src, &RulesConfig::default(), sinks).expect("bench rules load")
}

fn lua_rules(text: &[u8]) {
    let cx = Context { time: Timestamp(0) };
    let flow = FlowInfo {
        id: 1,
        proto: L4Proto::Tcp,
        src: v4(10, 0, 0, 1),
        src_port: 40000,
        dst: v4(10, 0, 0, 2),
        dst_port: 80,
    };
    let head = r#"local rem = require("regexp/pcre")
        local re = rem.re:compile("attack")
        local sink = re:create_sink()
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir) "#;
    let cases = [
        ("sink:feed(data, false)", "if sink:feed(data, false) then flow:reset() end"),
        ("re:match(data)", "if re:match(data) then flow:reset() end"),
        (
            "data:asstring():find(\"attack\", 1, true)",
            "if data:asstring():find(\"attack\", 1, true) then flow:reset() end",
        ),
        ("empty rule (the call itself)", ""),
    ];
    println!();
    println!(
        "receive_data rules on the same stream, {CHUNK}-byte chunks (MB/s and µs per MB, best of {ROUNDS})"
    );
    for (label, body) in cases {
        let mut r = rules(&format!("{head}{body} end }}"));
        let speed = mbps(text.len(), || {
            for c in text.chunks(CHUNK) {
                black_box(r.data(&cx, &flow, Direction::Up, black_box(c)));
            }
        });
        println!("{label:<44} {speed:10.0} MB/s {:10.0} µs/MB", 1e6 / speed);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too,
    // where one small round is enough to see it works.
    let text = http_text();
    engine(&text);
    lua_rules(&text);
}
