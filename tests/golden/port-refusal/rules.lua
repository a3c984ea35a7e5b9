-- Only port 80 may be connected to.
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    if pkt.dstport ~= 80 then
      haka.alert{ description = "refused port " .. pkt.dstport, severity = "low" }
      pkt:drop()
    end
  end
}
