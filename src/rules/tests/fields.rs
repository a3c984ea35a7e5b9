//! Packet fields Haka has that sluice added: `pkt.timestamp` on every
//! packet object, tcp `res`, ip `opt`, and each layer's `name`.

use super::*;
use crate::wire::checksum;
use crate::wire::forge::{ip_packet, udp_packet};

/// A rule on `event` (whose packet argument is `arg` of the callback) that
/// stores `expr` (evaluated with `pkt` bound) in the global `got`.
fn grab(event: &str, args: &str, expr: &str) -> String {
    format!(
        "haka.rule{{ on = haka.dissectors.{event}, eval = function({args})
           local ok, v = pcall(function() return {expr} end)
           got = ok and v or ('error: ' .. tostring(v)) end }}"
    )
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn got_string(h: &Harness) -> String {
    h.global::<String>("got")
}

#[test]
fn timestamp_is_the_event_packet_time_on_every_packet_object() {
    // The harness's events happen at t = 1000.5 s.
    let want = "1000 500000000 1000.5 Thu Jan  1 00:16:40 1970";
    let expr = "string.format('%d %d %s %s', pkt.timestamp.secs, pkt.timestamp.nsecs, pkt.timestamp.seconds, tostring(pkt.timestamp))";
    let cases: [(&str, &str, Event, Vec<u8>, bool); 6] = [
        ("ipv4.events.receive_packet", "pkt", Event::Ipv4Packet, syn(), false),
        ("tcp.events.receive_packet", "pkt", Event::TcpPacket, syn(), false),
        (
            "udp.events.receive_packet",
            "pkt",
            Event::UdpPacket,
            udp_packet(client(), 1, server(), 2, b"x"),
            false,
        ),
        ("icmp.events.receive_packet", "pkt", Event::IcmpPacket, icmp_echo(), false),
        ("tcp_connection.events.new_connection", "flow, pkt", Event::TcpNewConnection, syn(), true),
        ("tcp_connection.events.receive_packet", "flow, pkt", Event::TcpConnectionPacket, syn(), true),
    ];
    for (event, args, ev, bytes, with_flow) in cases {
        let mut h = Harness::new(&grab(event, args, expr));
        let f = tcp_flow(1);
        h.packet(ev, &bytes, with_flow.then_some((&f, Direction::Up)));
        assert_eq!(got_string(&h), want, "{event}");
    }
    // The IP layer of a TCP packet has it too, and times compare.
    let mut h = Harness::new(&grab(
        "tcp.events.receive_packet",
        "pkt",
        "tostring(pkt.ip.timestamp == pkt.timestamp) .. tostring(pkt.timestamp < pkt.timestamp) .. tostring(pkt.timestamp <= pkt.ip.timestamp)",
    ));
    h.packet(Event::TcpPacket, &syn(), None);
    assert_eq!(got_string(&h), "truefalsetrue");
}

#[test]
fn timestamp_follows_each_packet_time_offline() {
    use crate::offline::{run, OfflineOptions};
    use crate::pcapgen::{write_pcap_file, Conversation, Framing};

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.lua");
    std::fs::write(
        &rules,
        r#"haka.rule{ on = haka.dissectors.tcp.events.receive_packet, eval = function(pkt)
             haka.alert{ description = string.format("%d.%09d", pkt.timestamp.secs, pkt.timestamp.nsecs),
                         method = tostring(pkt.timestamp) } end }"#,
    )
    .unwrap();
    let start = crate::time::Timestamp::from_secs_micros(1_390_236_283, 1_961);
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap())
        .at(start)
        .step_micros(526);
    c.handshake();
    let input = dir.path().join("in.pcap");
    write_pcap_file(&input, &Framing::Ethernet, c.packets()).unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let mut opts = OfflineOptions::new(&rules, &input);
    opts.alerts = Some(alerts.clone());
    let summary = run(&opts).unwrap();
    assert_eq!(summary.rule_errors, 0);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&alerts).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<String> = lines.iter().map(|a| a["description"].as_str().unwrap().to_owned()).collect();
    let want: Vec<String> = c
        .packets()
        .iter()
        .map(|(t, _)| format!("{}.{:09}", t.as_micros() / 1_000_000, t.as_micros() % 1_000_000 * 1000))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got, want);
    assert_eq!(got[0], "1390236283.001961000");
    assert_eq!(lines[0]["method"], "Mon Jan 20 16:44:43 2014");
}

#[test]
fn tcp_res_is_the_reserved_bits() {
    let mut h = Harness::new(&grab("tcp.events.receive_packet", "pkt", "pkt.res"));
    h.packet(Event::TcpPacket, &syn(), None);
    assert_eq!(h.global::<i64>("got"), 0);
    let mut p = syn();
    // Byte 12 of the TCP header: data offset (high nibble), then the reserved bits.
    p[20 + 12] |= 0x0b;
    h.packet(Event::TcpPacket, &p, None);
    assert_eq!(h.global::<i64>("got"), 11);
}

/// An IPv4 packet with these header options (padded to 4 bytes).
fn with_ip_options(pkt: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut o = opts.to_vec();
    while o.len() % 4 != 0 {
        o.push(0);
    }
    let mut p = pkt[..20].to_vec();
    p.extend_from_slice(&o);
    p.extend_from_slice(&pkt[20..]);
    p[0] = 0x40 | ((20 + o.len()) / 4) as u8;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::ipv4_header(&p[..20 + o.len()]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

const OPT_DUMP: &str = "(function()
  local out = {}
  for i, o in ipairs(pkt.opt) do
    out[i] = string.format('%d:%d/%d/%d', o.type, o.copy, o.class, o.number)
      .. (o.len and string.format(' len=%d data=%s', o.len, o.data:asstring():gsub('.', function(c) return string.format('%02x', c:byte()) end)) or '')
  end
  return table.concat(out, ', ')
end)()";

#[test]
fn ip_opt_lists_the_ipv4_options() {
    let mut h = Harness::new(&grab("ipv4.events.receive_packet", "pkt", OPT_DUMP));
    h.packet(Event::Ipv4Packet, &syn(), None);
    assert_eq!(got_string(&h), "");
    // NOP, record route (type 7, len 7, pointer 4, one empty slot), end of list.
    let p = with_ip_options(&syn(), &[1, 7, 7, 4, 0, 0, 0, 0, 0]);
    h.packet(Event::Ipv4Packet, &p, None);
    assert_eq!(got_string(&h), "1:0/0/1, 7:0/0/7 len=7 data=0400000000, 0:0/0/0");
    // Router alert (148 = copy 1, class 0, number 20, len 4): then the header ends.
    let p = with_ip_options(&syn(), &[148, 4, 0, 0]);
    h.packet(Event::Ipv4Packet, &p, None);
    assert_eq!(got_string(&h), "148:1/0/20 len=4 data=0000");
    // Also through a TCP packet's IP layer, and none on IPv6.
    let mut h = Harness::new(&grab("tcp.events.receive_packet", "pkt", "#pkt.ip.opt .. ' ' .. #pkt.opt"));
    h.packet(Event::TcpPacket, &with_ip_options(&syn(), &[148, 4, 0, 0]), None);
    assert_eq!(got_string(&h), "1 1");
    let mut h = Harness::new(&grab("udp.events.receive_packet", "pkt", "#pkt.opt"));
    h.packet(Event::UdpPacket, &udp_packet(v6(1), 1, v6(2), 2, b""), None);
    assert_eq!(h.global::<i64>("got"), 0);
}

#[test]
fn every_layer_has_its_name() {
    let both = "pkt.name .. ' ' .. pkt.ip.name";
    let cases: [(&str, Event, Vec<u8>, &str, &str); 5] = [
        ("ipv4.events.receive_packet", Event::Ipv4Packet, syn(), "pkt.name", "ipv4"),
        ("tcp.events.receive_packet", Event::TcpPacket, syn(), both, "tcp ipv4"),
        (
            "udp.events.receive_packet",
            Event::UdpPacket,
            udp_packet(v6(1), 1, v6(2), 2, b""),
            both,
            "udp ipv6",
        ),
        ("icmp.events.receive_packet", Event::IcmpPacket, icmp_echo(), both, "icmp ipv4"),
        (
            "ipv6.events.receive_packet",
            Event::Ipv6Packet,
            udp_packet(v6(1), 1, v6(2), 2, b""),
            "pkt.name",
            "ipv6",
        ),
    ];
    for (event, ev, bytes, expr, want) in cases {
        let mut h = Harness::new(&grab(event, "pkt", expr));
        h.packet(ev, &bytes, None);
        assert_eq!(got_string(&h), want, "{event}");
    }
}

fn icmp_echo() -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 2];
    let c = checksum::finish(checksum::sum(0, &icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ip_packet(client(), server(), 1, 64, 0, &icmp)
}
