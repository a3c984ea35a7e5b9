-- Drops UDP datagrams whose payload contains "bad".
require("protocol/ipv4")
require("protocol/udp")

haka.rule {
  on = haka.dissectors.udp.events.receive_packet,
  eval = function (pkt)
    if pkt.payload:asstring():find("bad", 1, true) then
      pkt:drop()
    end
  end
}
