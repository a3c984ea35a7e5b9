-- A rule that raises a Lua error on streams containing "boom" (line 8).
require("protocol/ipv4")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if data:asstring():find("boom", 1, true) then error("boom in rule") end
  end
}
