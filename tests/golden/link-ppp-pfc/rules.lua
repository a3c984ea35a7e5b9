-- Hooks data and does nothing: every packet must pass unchanged.
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir) end
}
