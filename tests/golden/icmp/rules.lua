-- Alerts on and drops ICMP echo requests carrying "ping-drop".
require("protocol/ipv4")
require("protocol/icmp")

haka.rule {
  on = haka.dissectors.icmp.events.receive_packet,
  eval = function (pkt)
    haka.alert{ description = "icmp type " .. pkt.type, severity = "low" }
    if pkt.payload:asstring():find("ping-drop", 1, true) then
      pkt:drop()
    end
  end
}
