//! Cost of calling Lua rules per event (release build): a `receive_data`
//! rule searching 1460-byte chunks, a packet rule reading a few fields, and
//! an empty rule as the baseline of the call itself.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice::alert::AlertSink;
use sluice::config::RulesConfig;
use sluice::flow::{Direction, L4Proto};
use sluice::inspect::{Context, Event, FlowInfo, Inspector};
use sluice::rules::{LuaRules, RuleSinks};
use sluice::stats::Stats;
use sluice::time::Timestamp;
use sluice::wire::decode::v4;
use sluice::wire::forge::TcpSegment;
use sluice::wire::{decode, tcp_flags};

fn rules(src: &str) -> LuaRules {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    LuaRules::from_source("bench.lua", src, &RulesConfig::default(), sinks).expect("bench rules load")
}

fn bench(c: &mut Criterion) {
    let cx = Context { time: Timestamp(0) };
    let flow = FlowInfo {
        id: 1,
        proto: L4Proto::Tcp,
        src: v4(10, 0, 0, 1),
        src_port: 40000,
        dst: v4(10, 0, 0, 2),
        dst_port: 80,
    };
    // Text-like bytes: a search for "attack" meets its first letter now and then.
    let chunk: Vec<u8> = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n"
        .iter()
        .copied()
        .cycle()
        .take(1460)
        .collect();

    let mut empty = rules(
        "haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir) end }",
    );
    c.bench_function("receive_data empty rule", |b| {
        b.iter(|| black_box(empty.data(&cx, &flow, Direction::Up, black_box(&chunk))))
    });

    let mut find = rules(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir)
             if data:asstring():find("attack", 1, true) then flow:reset() end end }"#,
    );
    c.bench_function("receive_data find in 1460 bytes", |b| {
        b.iter(|| black_box(find.data(&cx, &flow, Direction::Up, black_box(&chunk))))
    });

    let mut seg = TcpSegment::new(v4(10, 0, 0, 1), 40000, v4(10, 0, 0, 2), 80);
    seg.flags = tcp_flags::ACK;
    seg.payload = &chunk;
    let pkt = seg.build();
    let d = decode(&pkt).expect("decodes");
    let mut fields = rules(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_packet, eval = function(flow, pkt, dir)
             if pkt.dstport == 23 or pkt.flags.rst or pkt.ttl < 2 then pkt:drop() end end }"#,
    );
    c.bench_function("tcp receive_packet three fields", |b| {
        b.iter(|| black_box(fields.packet(Event::TcpConnectionPacket, &cx, &d, Some((&flow, Direction::Up)))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
