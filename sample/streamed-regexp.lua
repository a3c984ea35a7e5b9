-- sample/streamed-regexp.lua: streamed rules with regexp/pcre, in Haka's
-- style. Each rule reads its connection's stream as one sequence of bytes,
-- however the sender cut it into segments; a match completing in a segment
-- drops that segment (the endpoint never has the whole pattern) and resets
-- the connection.
--
-- * a shellcode-like byte sequence followed by /bin/sh in either direction;
-- * SQL comment sequences in client requests (a ModSecurity pattern, in
--   Haka's syntax: % stands for \);
-- * every match raises an alert with the stream offset where it ended.

local rem = require("regexp/pcre")
local tcp_connection = require("protocol/tcp_connection")

-- The classic Aleph One shellcode, as Haka's sample writes it (EXTENDED:
-- the spaces are layout, not bytes).
local shellcode = rem.re:compile("%xeb %x1f %x5e %x89 %x76 %x08 %x31 %xc0" ..
  "%x88 %x46 %x07 %x89 %x46 %x0c %xb0 %x0b" ..
  "%x89 %xf3 %x8d %x4e %x08 %x8d %x56 %x0c" ..
  "%xcd %x80 %x31 %xdb %x89 %xd8 %x40 %xcd" ..
  "%x80 %xe8 %xdc %xff %xff %xff /bin/sh", rem.re.EXTENDED)
local sql_comment = rem.re:compile("(/%*!?|%*/|[';]--|--[%s%r%n%v%f]|;?%x00)", rem.re.CASE_INSENSITIVE)

local function watch(re, description, direction)
  haka.rule {
    on = tcp_connection.events.receive_data,
    options = { streamed = true },
    eval = function (flow, iter, dir)
      if direction and dir ~= direction then return end
      local m = re:match(iter, true)
      if m then
        haka.alert {
          description = string.format("%s (%s stream, %d bytes ending at offset %d)", description, dir, #m,
            iter.meter),
          severity = "high",
          sources = { haka.alert.address(flow.srcip) },
          targets = { haka.alert.address(flow.dstip), haka.alert.service("tcp/" .. flow.dstport) },
        }
        flow:reset()
      end
    end
  }
end

watch(shellcode, "/bin/sh shellcode", nil)
watch(sql_comment, "SQL comment sequence in a request", "up")
