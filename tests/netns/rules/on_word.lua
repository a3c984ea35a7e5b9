-- A module shared by the netns rule files (found by `require` beside them):
-- `on_word(word, action)` installs a rule that calls `flow:<action>()` on a
-- TCP connection whose client->server stream contains `word`, also when the
-- word is split across packets or chunks (the flow keeps the last few bytes
-- of its stream in its own state).
require("protocol/ipv4")
require("protocol/tcp_connection")

return function (word, action)
  haka.rule {
    on = haka.dissectors.tcp_connection.events.receive_data,
    eval = function (flow, data, dir)
      if dir ~= "up" then return end
      local text = (flow.tail or "") .. data:asstring()
      flow.tail = text:sub(-(#word - 1))
      if text:find(word, 1, true) then
        haka.alert{ description = action .. " on " .. word, severity = "high" }
        flow[action](flow)
      end
    end
  }
end
