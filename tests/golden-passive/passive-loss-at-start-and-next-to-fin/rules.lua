-- One alert per chunk of stream data; a reset on "reset-me".
require("protocol/ipv4")
require("protocol/tcp")
require("protocol/tcp_connection")

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    local s = data:asstring()
    haka.alert{ description = dir .. " " .. #s .. ": " .. s, severity = "low" }
    if s:find("reset-me", 1, true) then
      flow:reset()
    end
  end
}
