-- sample/rules.lua: a small demonstration rule set for sluice.
--
-- * telnet (TCP port 23) is refused at connection time, with an alert;
-- * a TCP connection whose client sends "attack" (case-sensitive, anywhere
--   in its stream, even split across packets) is reset, with an alert;
-- * every connection to the documentation network 192.0.2.0/24 raises an
--   alert (a policy with an alert action only).

local ipv4 = require("protocol/ipv4")
require("protocol/tcp")
local tcp_connection = require("protocol/tcp_connection")

-- Policies run first at new_connection. Every policy is checked and the
-- last one whose criteria all hold applies (as in Haka), so the general
-- policy comes first and the more specific one after it.
haka.policy {
  on = tcp_connection.policies.new_connection,
  name = "watch documentation network",
  dstip = haka.policy.ipv4_in_network(ipv4.network("192.0.2.0/24")),
  action = haka.policy.alert { description = "connection to 192.0.2.0/24", severity = "low" },
}

haka.policy {
  on = tcp_connection.policies.new_connection,
  name = "no telnet",
  dstport = 23,
  action = {
    haka.policy.drop,
    haka.policy.alert { description = "telnet connection refused", severity = "medium" },
  },
}

-- The same telnet refusal as a rule, the way Haka rule sets often write it
-- (kept as a safety net: it only fires if the policy above is removed).
haka.rule {
  name = "refuse telnet",
  on = tcp_connection.events.new_connection,
  eval = function (flow, pkt)
    if pkt.dstport == 23 then
      haka.alert { description = "telnet connection refused by rule", severity = "medium",
                   targets = { haka.alert.address(flow.dstip) } }
      pkt:drop()
    end
  end
}

-- Reset connections whose client-to-server stream carries "attack". Data
-- arrives in chunks as the stream is reassembled; keeping the last few bytes
-- of the previous chunk finds the word even when a packet boundary splits it.
local PATTERN = "attack"

haka.rule {
  name = "reset on attack",
  on = tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if dir ~= "up" then return end
    local text = (flow.tail or "") .. data:asstring()
    if text:find(PATTERN, 1, true) then
      haka.alert {
        description = "attack string in client stream",
        severity = "high",
        confidence = "medium",
        sources = { haka.alert.address(flow.srcip) },
        targets = { haka.alert.address(flow.dstip), haka.alert.service("tcp/" .. flow.dstport) },
      }
      flow:reset()
    end
    flow.tail = text:sub(-(#PATTERN - 1))
  end
}
