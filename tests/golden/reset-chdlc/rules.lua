require("protocol/ipv4")
require("protocol/ipv6")
require("protocol/tcp")
require("protocol/tcp_connection")

local seen = {}
local function stream(flow, data, dir)
  local key = tostring(flow.srcip) .. ":" .. flow.srcport .. ">" .. tostring(flow.dstip) .. ":" .. flow.dstport .. ":" .. dir
  seen[key] = (seen[key] or "") .. data:asstring()
  return seen[key]
end

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if stream(flow, data, dir):find("attack", 1, true) then
      haka.alert{ description = "attack in stream", severity = "high" }
      flow:reset()
    end
  end
}
