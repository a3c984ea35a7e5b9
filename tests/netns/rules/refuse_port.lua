-- Refuses TCP connections to port 7600 (the SYN is dropped, so is the flow).
require("protocol/ipv4")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    if pkt.dstport == 7600 then
      haka.alert{ description = "refused port 7600", severity = "low" }
      pkt:drop()
    end
  end
}
