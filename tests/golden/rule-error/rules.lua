-- Raises a Lua error on "boom": the packet is dropped (default policy).
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if data:asstring():find("boom", 1, true) then
      error("rule exploded")
    end
  end
}
