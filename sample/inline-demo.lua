-- Demo rules for `make demo` (the same policy as sample/rules.lua):
-- refuse telnet (port 23) and reset TCP connections whose client->server
-- stream contains "attack" (also split across packets), with alerts.
require("protocol/ipv4")
require("protocol/tcp_connection")

local tails = {}
local function key(flow)
  return tostring(flow.srcip) .. "|" .. flow.srcport .. "|" .. tostring(flow.dstip) .. "|" .. flow.dstport
end

haka.rule {
  on = haka.dissectors.tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    if pkt.dstport == 23 then
      haka.alert{ description = "telnet refused", severity = "medium" }
      pkt:drop()
    end
  end
}

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if dir ~= "up" then return end
    local k = key(flow)
    local text = (tails[k] or "") .. data:asstring()
    tails[k] = text:sub(-5)
    if text:find("attack", 1, true) then
      haka.alert{ description = "attack string", severity = "high" }
      flow:reset()
    end
  end
}

haka.rule {
  on = haka.dissectors.tcp_connection.events.end_connection,
  eval = function (flow) tails[key(flow)] = nil end
}
