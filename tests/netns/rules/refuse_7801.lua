-- Refuses TCP port 7801 (SIGHUP reload test swaps this file).
require("protocol/ipv4")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    if pkt.dstport == 7801 then pkt:drop() end
  end
}
