-- Benchmark rule: looks at every byte of every TCP stream (a substring
-- search that never matches benchmark traffic).
require("protocol/ipv4")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if data:asstring():find("attack", 1, true) then flow:reset() end
  end
}
