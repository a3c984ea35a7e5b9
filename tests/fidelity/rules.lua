-- Resets a TCP connection as soon as the client->server stream contains
-- "attack", however the bytes were segmented, reordered or disguised.
require("protocol/ipv4")
require("protocol/ipv6")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if dir ~= "up" then return end
    flow.seen = (flow.seen or "") .. data:asstring()
    if flow.seen:find("attack", 1, true) then
      haka.alert{ description = "attack bytes in stream", severity = "high" }
      flow:reset()
    end
  end
}
