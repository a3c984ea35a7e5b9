-- sample/monologue.lua: each side's turns of a conversation (monologues).
--
-- A client that pipelines HTTP requests sends them in one turn; the
-- server's answers come back in the next. This rule set alerts on turns that
-- carry more than one request (pipelining, or request smuggling attempts
-- that hide a second request behind the first), logs every turn, and resets
-- a connection whose client turn goes on past 64 KiB of headers without a
-- blank line.

local tcp_connection = require("protocol/tcp_connection")

haka.rule {
  on = tcp_connection.events.monologue,
  eval = function (flow, data, dir, part)
    haka.log("%s:%d %s turn, part %d%s, %d bytes at offset %d", tostring(flow.srcip), flow.srcport,
      dir, part.index, part.last and " (last)" or "", #data, part.offset)
    if dir ~= "up" then return end
    local text = data:asstring()
    local requests = 0
    for _ in text:gmatch("[A-Z]+ [^ \r\n]+ HTTP/1%.[01]\r\n") do
      requests = requests + 1
    end
    if requests > 1 then
      haka.alert{
        description = string.format("%d HTTP requests in one client turn", requests),
        severity = "low",
        sources = { haka.alert.address(flow.srcip) },
      }
    end
    if part.index > 1 and not text:find("\r\n\r\n", 1, true) then
      haka.alert{ description = "client turn without end of headers past 64 KiB", severity = "medium" }
      flow:reset()
    end
  end
}
