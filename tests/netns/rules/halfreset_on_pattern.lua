-- flow:halfreset() on a TCP connection whose client->server stream contains
-- "attack", also when the word is split across packets: the last few bytes
-- of each flow's stream are kept, keyed by the flow's addresses and ports.
require("protocol/ipv4")
require("protocol/tcp_connection")

local WORD = "attack"
local tails = {}

local function key(flow)
  return tostring(flow.srcip) .. "|" .. flow.srcport .. "|" .. tostring(flow.dstip) .. "|" .. flow.dstport
end

haka.rule {
  on = haka.dissectors.tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if dir ~= "up" then return end
    local k = key(flow)
    local text = (tails[k] or "") .. data:asstring()
    tails[k] = text:sub(-(#WORD - 1))
    if text:find(WORD, 1, true) then
      haka.alert{ description = "halfreset on " .. WORD, severity = "high" }
      flow:halfreset()
    end
  end
}

haka.rule {
  on = haka.dissectors.tcp_connection.events.end_connection,
  eval = function (flow)
    tails[key(flow)] = nil
  end
}
