-- One alert per new connection, with fields.
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    haka.alert{
      description = "new connection to " .. pkt.dstport,
      severity = "medium",
      confidence = "high",
    }
  end
}
