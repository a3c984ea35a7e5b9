//! Event dispatch: each event reaches its rules with the right arguments,
//! `subscribed` tells exactly which events are hooked, and rule decisions
//! combine into the event's action.

use super::*;
use crate::wire::forge::udp_packet;

/// Every event hooked by one rule that records what it received.
const ALL_EVENTS: &str = r#"
require("protocol/ipv4"); require("protocol/ipv6"); require("protocol/tcp")
require("protocol/udp"); require("protocol/icmp")
require("protocol/tcp_connection"); require("protocol/udp_connection")
seen = {}
local function note(s) seen[#seen + 1] = s end
local function kind(pkt) return tostring(pkt):match("^%S+") end
for _, d in ipairs{"ipv4", "ipv6", "tcp", "udp", "icmp"} do
  haka.rule{ on = haka.dissectors[d].events.receive_packet,
    eval = function(pkt, extra) note(d .. " " .. kind(pkt) .. " " .. tostring(extra)) end }
end
for _, d in ipairs{"tcp_connection", "udp_connection"} do
  local ev = haka.dissectors[d].events
  haka.rule{ on = ev.new_connection, eval = function(flow, pkt, extra)
    note(d .. ".new " .. flow.dstport .. " " .. kind(pkt) .. " " .. tostring(extra)) end }
  haka.rule{ on = ev.receive_packet, eval = function(flow, pkt, dir)
    note(d .. ".packet " .. flow.srcport .. " " .. kind(pkt) .. " " .. dir) end }
  haka.rule{ on = ev.end_connection, eval = function(flow, extra)
    note(d .. ".end " .. flow.dstport .. " " .. tostring(extra)) end }
end
haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function(flow, data, dir)
  note("tcp_connection.data " .. flow.srcport .. " " .. data:asstring() .. " " .. dir) end }
haka.rule{ on = haka.dissectors.udp_connection.events.receive_data, eval = function(flow, pkt, dir)
  note("udp_connection.data " .. flow.dstport .. " " .. kind(pkt) .. " " .. pkt.payload:asstring() .. " " .. dir) end }
"#;

#[test]
fn each_event_gets_its_arguments() {
    let mut h = Harness::new(ALL_EVENTS);
    let tcp = tcp_packet(tcp_flags::ACK, b"hi");
    let v6 = {
        let mut s = TcpSegment::new("fd00::1".parse().unwrap(), 1, "fd00::2".parse().unwrap(), 2);
        s.flags = tcp_flags::SYN;
        s.build()
    };
    let udp = udp_packet(client(), 5353, server(), 53, b"q");
    let icmp = crate::wire::forge::ip_packet(client(), server(), 1, 64, 0, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    let (tf, uf) = (tcp_flow(1), udp_flow(2));

    h.packet(Event::Ipv4Packet, &tcp, None);
    h.packet(Event::Ipv6Packet, &v6, None);
    h.packet(Event::TcpPacket, &tcp, None);
    h.packet(Event::UdpPacket, &udp, None);
    h.packet(Event::IcmpPacket, &icmp, None);
    h.packet(Event::TcpNewConnection, &syn(), Some((&tf, Direction::Up)));
    h.packet(Event::TcpConnectionPacket, &tcp, Some((&tf, Direction::Up)));
    h.data(&tf, Direction::Down, b"payload");
    h.rules.end(Event::TcpEndConnection, &cx(), &tf);
    h.packet(Event::UdpNewConnection, &udp, Some((&uf, Direction::Up)));
    h.packet(Event::UdpConnectionPacket, &udp, Some((&uf, Direction::Down)));
    h.packet(Event::UdpData, &udp, Some((&uf, Direction::Up)));
    h.rules.end(Event::UdpEndConnection, &cx(), &uf);

    let seen: Vec<String> = h.global("seen");
    assert_eq!(
        seen,
        vec![
            "ipv4 ipv4 nil",
            "ipv6 ipv6 nil",
            "tcp tcp nil",
            "udp udp nil",
            "icmp icmp nil",
            "tcp_connection.new 80 tcp nil",
            "tcp_connection.packet 40000 tcp up",
            "tcp_connection.data 40000 payload down",
            "tcp_connection.end 80 nil",
            "udp_connection.new 53 udp nil",
            "udp_connection.packet 5353 udp down",
            "udp_connection.data 53 udp q up",
            "udp_connection.end 53 nil",
        ]
    );
    assert_eq!(h.errors(), 0);
}

#[test]
fn subscribed_is_true_only_for_hooked_events() {
    let h = Harness::new(
        r#"
        haka.rule{ on = haka.dissectors.tcp_connection.events.receive_data, eval = function() end }
        haka.rule{ on = haka.dissectors.ipv6.events.receive_packet, eval = function() end }
        haka.policy{ on = haka.dissectors.udp_connection.policies.new_connection,
                     dstport = 53, action = haka.policy.drop }
        "#,
    );
    for ev in Event::ALL {
        // end_connection too: the end of the stream is an event for receive_data rules.
        let want = matches!(
            ev,
            Event::TcpData | Event::TcpEndConnection | Event::Ipv6Packet | Event::UdpNewConnection
        );
        assert_eq!(h.rules.subscribed(ev), want, "{ev:?}");
    }
    assert_eq!(
        h.rules.hooked_events(),
        ["ipv6.receive_packet", "tcp_connection.receive_data", "udp_connection.new_connection"]
    );
    assert_eq!(h.rules.rule_count(), 2);
    assert_eq!(h.rules.policy_count(), 1);
}

#[test]
fn unhooked_events_accept_without_running_lua() {
    let mut h = Harness::new(
        r#"calls = 0
        haka.rule{ on = haka.dissectors.tcp.events.receive_packet, eval = function(p) calls = calls + 1; p:drop() end }"#,
    );
    assert_eq!(h.packet(Event::UdpPacket, &udp_packet(client(), 1, server(), 2, b""), None), Action::Accept);
    assert_eq!(h.packet(Event::TcpPacket, &syn(), None), Action::DropPacket);
    assert_eq!(h.global::<i64>("calls"), 1);
}

#[test]
fn rule_decisions_become_actions() {
    let mut h = Harness::new(
        r#"
        local ev = haka.dissectors.tcp_connection.events
        haka.rule{ on = ev.receive_packet, eval = function(flow, pkt, dir)
          local what = pkt.payload:asstring()
          if what == "pkt" then pkt:drop()
          elseif what == "drop" then flow:drop()
          elseif what == "reset" then flow:reset()
          elseif what == "half" then flow:halfreset() end
        end }
        "#,
    );
    let f = tcp_flow(1);
    let mut run = |p: &[u8]| {
        h.packet(Event::TcpConnectionPacket, &tcp_packet(tcp_flags::ACK, p), Some((&f, Direction::Up)))
    };
    assert_eq!(run(b"none"), Action::Accept);
    assert_eq!(run(b"pkt"), Action::DropPacket);
    assert_eq!(run(b"drop"), Action::DropFlow);
    assert_eq!(run(b"reset"), Action::Reset);
    assert_eq!(run(b"half"), Action::HalfReset);
    // Each event starts from Accept again.
    assert_eq!(run(b"none"), Action::Accept);
}

#[test]
fn decisions_of_several_rules_combine_and_all_rules_run() {
    let mut h = Harness::new(
        r#"
        local ev = haka.dissectors.tcp_connection.events
        ran = 0
        haka.rule{ on = ev.receive_data, eval = function(flow) ran = ran + 1; flow:reset() end }
        haka.rule{ on = ev.receive_data, eval = function(flow) ran = ran + 1; flow:drop() end }
        haka.rule{ on = ev.receive_data, eval = function(flow) ran = ran + 1 end }
        "#,
    );
    assert_eq!(h.data(&tcp_flow(1), Direction::Up, b"x"), Action::Reset);
    assert_eq!(h.global::<i64>("ran"), 3);
}
