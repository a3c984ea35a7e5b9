//! The objects rules see: packet fields per layer (and the fallback to the
//! IP layer), flows and their per-flow state, data views, addresses.

use super::*;
use crate::wire::checksum;
use crate::wire::forge::{ip_packet, udp_packet};

/// A rule on `event` that copies the listed fields of `pkt` (run through
/// `conv`) into the global table `f`.
fn field_dump(dissector: &str, fields: &[&str]) -> String {
    let list: Vec<String> = fields.iter().map(|f| format!("\"{f}\"")).collect();
    format!(
        r#"f = {{}}
        local function conv(v)
          local t = type(v)
          if t == "userdata" then return tostring(v) end
          return v
        end
        haka.rule{{ on = haka.dissectors.{dissector}.events.receive_packet, eval = function(pkt)
          for _, name in ipairs{{ {} }} do f[name] = conv(pkt[name]) end
          f.verify = pkt:verify_checksum()
          f.payload_str = pkt.payload:asstring()
        end }}"#,
        list.join(", ")
    )
}

fn get<T: mlua::FromLua>(h: &Harness, key: &str) -> T {
    let f: mlua::Table = h.global("f");
    f.get(key).unwrap_or_else(|e| panic!("field {key}: {e}"))
}

#[test]
fn ipv4_fields() {
    let mut h = Harness::new(&field_dump(
        "ipv4",
        &["src", "dst", "version", "hdr_len", "tos", "len", "id", "frag_offset", "ttl", "proto", "checksum"],
    ));
    let mut seg = TcpSegment::new(client(), 40000, server(), 80);
    seg.ttl = 33;
    seg.ip_id = 4321;
    seg.payload = b"abc";
    let p = seg.build();
    h.packet(Event::Ipv4Packet, &p, None);
    assert_eq!(get::<String>(&h, "src"), "10.0.0.1");
    assert_eq!(get::<String>(&h, "dst"), "10.0.0.2");
    assert_eq!(get::<i64>(&h, "version"), 4);
    assert_eq!(get::<i64>(&h, "hdr_len"), 20);
    assert_eq!(get::<i64>(&h, "tos"), 0);
    assert_eq!(get::<i64>(&h, "len"), p.len() as i64);
    assert_eq!(get::<i64>(&h, "id"), 4321);
    assert_eq!(get::<i64>(&h, "frag_offset"), 0);
    assert_eq!(get::<i64>(&h, "ttl"), 33);
    assert_eq!(get::<i64>(&h, "proto"), 6);
    assert_eq!(get::<i64>(&h, "checksum"), i64::from(u16::from_be_bytes([p[10], p[11]])));
    assert!(get::<bool>(&h, "verify"));
    // The IP payload is the whole TCP segment.
    assert_eq!(get::<mlua::String>(&h, "payload_str").as_bytes().len(), p.len() - 20);
    assert_eq!(h.errors(), 0);
}

#[test]
fn ipv4_flags() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.ipv4.events.receive_packet, eval = function(pkt)
             flags = { pkt.flags.df, pkt.flags.mf, pkt.flags.rb }
             ok = pkt:verify_checksum() end }"#,
    );
    let p = syn();
    h.packet(Event::Ipv4Packet, &p, None);
    let flags: Vec<bool> = h.global("flags");
    assert_eq!(flags, vec![true, false, false]);
    assert!(h.global::<bool>("ok"));
}

#[test]
fn ipv6_fields() {
    let mut h = Harness::new(&field_dump(
        "ipv6",
        &[
            "src",
            "dst",
            "version",
            "hdr_len",
            "ttl",
            "hop_limit",
            "proto",
            "next_header",
            "payload_len",
            "flow_label",
            "len",
        ],
    ));
    let mut seg = TcpSegment::new("2001:db8::1".parse().unwrap(), 1, "2001:db8::2".parse().unwrap(), 2);
    seg.ttl = 7;
    seg.payload = b"xyz";
    let p = seg.build();
    h.packet(Event::Ipv6Packet, &p, None);
    assert_eq!(get::<String>(&h, "src"), "2001:db8::1");
    assert_eq!(get::<String>(&h, "dst"), "2001:db8::2");
    assert_eq!(get::<i64>(&h, "version"), 6);
    assert_eq!(get::<i64>(&h, "hdr_len"), 40);
    assert_eq!(get::<i64>(&h, "ttl"), 7);
    assert_eq!(get::<i64>(&h, "hop_limit"), 7);
    assert_eq!(get::<i64>(&h, "proto"), 6);
    assert_eq!(get::<i64>(&h, "next_header"), 6);
    assert_eq!(get::<i64>(&h, "payload_len"), (p.len() - 40) as i64);
    assert_eq!(get::<i64>(&h, "flow_label"), 0);
    assert_eq!(get::<i64>(&h, "len"), p.len() as i64);
    assert!(get::<bool>(&h, "verify"), "IPv6 has no header checksum");
}

#[test]
fn tcp_fields_and_ip_fallback() {
    let mut h = Harness::new(&field_dump(
        "tcp",
        &[
            "srcport",
            "dstport",
            "seq",
            "ack_seq",
            "hdr_len",
            "window_size",
            "checksum",
            "urgent_pointer",
            "src",
            "ttl",
            "proto",
        ],
    ));
    h.rules.lua.globals().set("g", 0).unwrap();
    let mut seg = TcpSegment::new(client(), 40000, server(), 80);
    seg.seq = SeqNumber(0xfffffff0);
    seg.ack = SeqNumber(77);
    seg.flags = tcp_flags::ACK | tcp_flags::PSH | tcp_flags::URG;
    seg.window = 1234;
    seg.urgent = 3;
    seg.options = &[1, 1, 1, 1];
    seg.payload = b"GET /";
    let p = seg.build();
    h.packet(Event::TcpPacket, &p, None);
    assert_eq!(get::<i64>(&h, "srcport"), 40000);
    assert_eq!(get::<i64>(&h, "dstport"), 80);
    assert_eq!(get::<i64>(&h, "seq"), 0xfffffff0);
    assert_eq!(get::<i64>(&h, "ack_seq"), 77);
    assert_eq!(get::<i64>(&h, "hdr_len"), 24);
    assert_eq!(get::<i64>(&h, "window_size"), 1234);
    assert_eq!(get::<i64>(&h, "urgent_pointer"), 3);
    assert_eq!(get::<i64>(&h, "checksum"), i64::from(u16::from_be_bytes([p[36], p[37]])));
    // Fields TCP lacks come from the IP layer.
    assert_eq!(get::<String>(&h, "src"), "10.0.0.1");
    assert_eq!(get::<i64>(&h, "ttl"), 64);
    assert_eq!(get::<i64>(&h, "proto"), 6);
    assert_eq!(get::<String>(&h, "payload_str"), "GET /");
    assert!(get::<bool>(&h, "verify"));
}

#[test]
fn tcp_flags_ip_view_and_bad_checksum() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp.events.receive_packet, eval = function(pkt)
             local fl = pkt.flags
             flags = { fl.fin, fl.syn, fl.rst, fl.psh, fl.ack, fl.urg, fl.ecn, fl.cwr }
             ipver, iplen = pkt.ip.version, pkt.ip.len
             ok = pkt:verify_checksum()
             ip_ok = pkt.ip:verify_checksum() end }"#,
    );
    let mut p = tcp_packet(tcp_flags::SYN | tcp_flags::ACK | tcp_flags::CWR, b"data");
    h.packet(Event::TcpPacket, &p, None);
    let flags: Vec<bool> = h.global("flags");
    assert_eq!(flags, vec![false, true, false, false, true, false, false, true]);
    assert_eq!(h.global::<i64>("ipver"), 4);
    assert_eq!(h.global::<i64>("iplen"), p.len() as i64);
    assert!(h.global::<bool>("ok"));
    // Corrupt one payload byte: the TCP checksum no longer verifies, the IP one still does.
    let last = p.len() - 1;
    p[last] ^= 0xff;
    h.packet(Event::TcpPacket, &p, None);
    assert!(!h.global::<bool>("ok"));
    assert!(h.global::<bool>("ip_ok"));
}

#[test]
fn udp_fields() {
    let mut h = Harness::new(&field_dump("udp", &["srcport", "dstport", "length", "checksum", "dst"]));
    let p = udp_packet(client(), 5353, server(), 53, b"query");
    h.packet(Event::UdpPacket, &p, None);
    assert_eq!(get::<i64>(&h, "srcport"), 5353);
    assert_eq!(get::<i64>(&h, "dstport"), 53);
    assert_eq!(get::<i64>(&h, "length"), 13);
    assert_eq!(get::<i64>(&h, "checksum"), i64::from(u16::from_be_bytes([p[26], p[27]])));
    assert_eq!(get::<String>(&h, "dst"), "10.0.0.2");
    assert_eq!(get::<String>(&h, "payload_str"), "query");
    assert!(get::<bool>(&h, "verify"));
    let mut bad = p.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    h.packet(Event::UdpPacket, &bad, None);
    assert!(!get::<bool>(&h, "verify"));
}

fn icmp_echo(payload: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 2];
    icmp.extend_from_slice(payload);
    let c = checksum::finish(checksum::sum(0, &icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ip_packet(client(), server(), 1, 64, 0, &icmp)
}

#[test]
fn icmp_fields() {
    let mut h = Harness::new(&field_dump("icmp", &["type", "code", "checksum", "ttl"]));
    let p = icmp_echo(b"ping");
    h.packet(Event::IcmpPacket, &p, None);
    assert_eq!(get::<i64>(&h, "type"), 8);
    assert_eq!(get::<i64>(&h, "code"), 0);
    assert_eq!(get::<i64>(&h, "checksum"), i64::from(u16::from_be_bytes([p[22], p[23]])));
    assert_eq!(get::<i64>(&h, "ttl"), 64);
    // The ICMP payload is everything after type, code and checksum.
    assert_eq!(get::<mlua::String>(&h, "payload_str").as_bytes(), b"\0\x01\0\x02ping");
    assert!(get::<bool>(&h, "verify"));
    let mut bad = p.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    h.packet(Event::IcmpPacket, &bad, None);
    assert!(!get::<bool>(&h, "verify"));
}

#[test]
fn unknown_and_assigned_packet_fields_are_errors() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp.events.receive_packet, eval = function(pkt)
             ok1, e1 = pcall(function() return pkt.dport end)
             ok2, e2 = pcall(function() pkt.ttl = 3 end)
             ok3 = pcall(function() return pkt.flags.bogus end) end }"#,
    );
    h.packet(Event::TcpPacket, &syn(), None);
    assert!(!h.global::<bool>("ok1"));
    assert!(!h.global::<bool>("ok2"));
    assert!(!h.global::<bool>("ok3"));
    let e1: String = h.eval("return tostring(e1)").unwrap();
    let e2: String = h.eval("return tostring(e2)").unwrap();
    assert!(e1.contains("test.lua:2: unknown field 'dport' of a tcp packet"), "{e1}");
    assert!(e2.contains("packet fields are read-only"), "{e2}");
}

#[test]
fn flow_fields_and_per_flow_state() {
    let mut h = Harness::new(
        r#"
        local ev = haka.dissectors.tcp_connection.events
        haka.rule{ on = ev.new_connection, eval = function(flow, pkt)
          seen_new = { tostring(flow.srcip), tostring(flow.dstip), flow.srcport, flow.dstport }
          flow.count = 0
          flow.data.first = "yes"
        end }
        haka.rule{ on = ev.receive_data, eval = function(flow, data, dir)
          flow.count = (flow.count or 100) + 1
          count, first = flow.count, flow.data.first
        end }
        "#,
    );
    let f = tcp_flow(7);
    h.packet(Event::TcpNewConnection, &syn(), Some((&f, Direction::Up)));
    let seen: (String, String, i64, i64) = h.eval("return table.unpack(seen_new)").unwrap();
    assert_eq!(seen, ("10.0.0.1".to_owned(), "10.0.0.2".to_owned(), 40000, 80));
    h.data(&f, Direction::Up, b"a");
    h.data(&f, Direction::Down, b"b");
    assert_eq!(h.global::<i64>("count"), 2);
    assert_eq!(h.global::<String>("first"), "yes");
    // Another flow has its own state.
    h.data(&tcp_flow(8), Direction::Up, b"c");
    assert_eq!(h.global::<i64>("count"), 101);
    assert_eq!(h.global::<Option<String>>("first"), None);
    // forget frees the state: the flow's table is gone.
    let states = |h: &Harness| h.rules.flows.len();
    assert_eq!(states(&h), 2);
    h.rules.forget(7);
    h.rules.forget(8);
    assert_eq!(states(&h), 0);
    h.data(&f, Direction::Up, b"d");
    assert_eq!(h.global::<i64>("count"), 101);
    assert_eq!(h.errors(), 0);
}

#[test]
fn flow_address_fields_are_read_only() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow)
             flow.srcport = 1 end }"#,
    );
    h.data(&tcp_flow(1), Direction::Up, b"x");
    assert_eq!(h.errors(), 1);
}

#[test]
fn flow_fields_keep_their_rules_once_the_flow_has_state() {
    // With a state table, reads and writes take the C path (flow_fields.rs):
    // built-in fields stay read-only, methods are not shadowed by a state
    // field of the same name, nil deletes.
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow)
             flow.x = 1
             local refused = 0
             for _, k in ipairs{ "srcip", "dstip", "srcport", "dstport", "start_time", "last_activity" } do
               local ok, msg = pcall(function() flow[k] = 1 end)
               if not ok and tostring(msg):find("read%-only") then refused = refused + 1 end
             end
             flow.reset, flow.drop = "shadow", "shadow"
             local x = flow.x
             flow.x = nil
             r = { refused, type(flow.reset), type(flow.drop), flow.srcport, x, flow.x == nil, type(flow.data) }
           end }"#,
    );
    h.data(&tcp_flow(3), Direction::Up, b"x");
    assert_eq!(h.errors(), 0);
    let r: (i64, String, String, i64, i64, bool, String) = h.eval("return table.unpack(r, 1, 7)").unwrap();
    assert_eq!(r, (6, "function".into(), "function".into(), 40000, 1, true, "table".into()));
}

#[test]
fn data_methods() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
             r = { #data, data:asstring(), tostring(data), data:sub(7):asstring(), data:sub(1, 5):asstring(),
                   data:sub(7, 100):asstring(), #data:sub(50), data:sub(2, 3):sub(2):asstring(),
                   tostring(data:sub(11, 1)) }
             bad_off = pcall(function() return data:sub(0) end)
             bad_len = pcall(function() return data:sub(1, -1) end)
           end }"#,
    );
    h.data(&tcp_flow(1), Direction::Up, b"hello world");
    let r: (i64, String, String, String, String, String, i64, String, String) =
        h.eval("return table.unpack(r, 1, 9)").unwrap();
    assert_eq!(
        r,
        (
            11,
            "hello world".into(),
            "hello world".into(),
            "world".into(),
            "hello".into(),
            "world".into(),
            0,
            "ll".into(),
            "d".into()
        )
    );
    assert!(!h.global::<bool>("bad_off"));
    assert!(!h.global::<bool>("bad_len"));
}

#[test]
fn data_keeps_binary_bytes() {
    let mut h = Harness::new(
        r#"haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data)
             s = data:asstring() end }"#,
    );
    let bytes: Vec<u8> = (0..=255).collect();
    h.data(&tcp_flow(1), Direction::Up, &bytes);
    let s: mlua::String = h.global("s");
    assert_eq!(s.as_bytes().to_vec(), bytes);
}

#[test]
fn addresses_and_networks() {
    let h = Harness::new(
        r#"
        local ipv4 = require("protocol/ipv4")
        local ipv6 = require("protocol/ipv6")
        local a = ipv4.addr("10.0.0.1")
        r = {
          a == ipv4.addr(167772161),
          a == ipv4.addr(10, 0, 0, 1),
          a ~= ipv4.addr("10.0.0.2"),
          a < ipv4.addr("10.0.0.2"),
          a <= ipv4.addr("10.0.0.1"),
          not (ipv4.addr("10.0.0.3") <= a),
          tostring(a) == "10.0.0.1",
          a.packed == 167772161,
          ipv4.network("10.0.0.0/8"):contains(a),
          not ipv4.network("192.168.0.0/16"):contains(a),
          ipv4.network(a, 24):contains(ipv4.addr("10.0.0.200")),
          tostring(ipv4.network("10.1.2.3/8")) == "10.0.0.0/8",
          ipv4.network("10.1.2.3/8").mask == 8,
          tostring(ipv4.network("10.1.2.3/8").net) == "10.0.0.0",
          ipv4.network("10.0.0.0/8"):contains("10.9.9.9"),
          ipv6.addr("2001:db8::1") == ipv6.addr("2001:0db8:0:0::1"),
          tostring(ipv6.addr("2001:db8::1")) == "2001:db8::1",
          ipv6.network("2001:db8::/32"):contains(ipv6.addr("2001:db8:1::5")),
          not ipv6.network("2001:db8::/32"):contains(a),
          ipv6.addr("::1") ~= a,
        }
        n = #r
        bad = { pcall(ipv4.addr, "300.1.1.1"), pcall(ipv4.addr, "::1"), pcall(ipv6.addr, "1.2.3.4"),
                pcall(ipv4.network, "10.0.0.0/40"), pcall(function() return a < ipv6.addr("::1") end) }
        "#,
    );
    let r: Vec<bool> = h.global("r");
    assert_eq!(h.global::<i64>("n"), 20);
    for (i, ok) in r.iter().enumerate() {
        assert!(ok, "check {} failed", i + 1);
    }
    let bad: Vec<bool> = h.eval("return { bad[1], bad[2], bad[3], bad[4], bad[5] }").unwrap();
    assert_eq!(bad, vec![false; 5]);
}

#[test]
fn packet_addresses_compare_with_constructed_ones() {
    let mut h = Harness::new(
        r#"local ipv4 = require("protocol/ipv4")
        local net = ipv4.network("10.0.0.0/24")
        haka.rule{ on = haka.dissectors.tcp_connection.events.new_connection, eval = function(flow, pkt)
          r = { pkt.src == ipv4.addr("10.0.0.1"), pkt.dst == flow.dstip, net:contains(pkt.src),
                tostring(flow.srcip) == "10.0.0.1" }
        end }"#,
    );
    h.packet(Event::TcpNewConnection, &syn(), Some((&tcp_flow(1), Direction::Up)));
    let r: Vec<bool> = h.global("r");
    assert_eq!(r, vec![true; 4]);
}
