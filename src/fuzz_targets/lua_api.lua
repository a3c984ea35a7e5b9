-- The lua_api fuzz target's rule file. The rules are loaded once per
-- thread and see one fuzz input after another: each input arrives as the
-- payload of a "control" UDP datagram (10.8.8.1 -> 10.8.8.2 port 9997),
-- the first packet of every run, at which begin_input resets what the
-- previous input could change. At every other event the rules read from the
-- input which API calls to make (object, method or field, argument kinds
-- and values) and make them. A call that fails is fine (most run under
-- pcall, some raise out of the rule on purpose); sluice must neither crash,
-- nor lose a verdict, nor leave the state unusable: the first rule answers
-- every connection to port 9999 with a "canary" alert, which the harness
-- checks once the fuzzed traffic is over.
local ipv4 = require("protocol/ipv4")
local ipv6 = require("protocol/ipv6")
require("protocol/tcp")
require("protocol/udp")
require("protocol/icmp")
local tcp_connection = require("protocol/tcp_connection")
local udp_connection = require("protocol/udp_connection")

local CANARY_PORT = 9999

haka.rule {
  on = tcp_connection.events.receive_data,
  eval = function (flow, data, dir)
    if flow.dstport == CANARY_PORT and data:asstring() == "CANARY" then
      haka.alert{ description = "canary", severity = "low" }
    end
  end
}

haka.policy {
  on = tcp_connection.policies.new_connection,
  name = "fuzz policy",
  dstport = haka.policy.range(7000, 7001),
  srcip = haka.policy.ipv4_in_network(ipv4.network("10.0.0.0/8")),
  action = haka.policy.alert{ description = "policy hit" },
}

local CONTROL_PORT = 9997
local input = ""           -- the current fuzz input
local pos = 1
local function byte()
  local b = input:byte(pos)
  if b == nil then return nil end
  pos = pos + 1
  return b
end
local function b0() return byte() or 0 end

local kept = {}            -- objects kept past their event
local vars = {}            -- sluice.vars as loaded, restored at each input
for k, v in pairs(sluice.vars) do vars[k] = v end
local STRINGS = { "", "up", "down", "10.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32", "300.1.1.1",
  "10.0.0.1/33", "%s %d %q", "%", "all", "available", "src", "dst", "flags", "payload", "ip",
  "secs", "__index", "srcip", "description", "severity", "high", "1e400", "-0", "0x10", "\0" }
local NAMES = { "src", "dst", "version", "hdr_len", "tos", "len", "id", "flags", "frag_offset", "ttl",
  "proto", "checksum", "payload", "traffic_class", "hop_limit", "flow_label", "payload_len",
  "next_header", "srcport", "dstport", "seq", "ack_seq", "window_size", "urgent_pointer", "length",
  "type", "code", "ip", "timestamp", "srcip", "dstip", "start_time", "last_activity", "nosuch",
  "packed", "net", "mask", "secs", "nsecs", "seconds", "iseof", "meter", "all", "rb", "df", "mf",
  "fin", "syn", "rst", "psh", "urg", "ecn", "ece", "cwr", "index", "last", "offset" }

local cx = {}              -- the current event's objects
local arg

-- A new input: forget everything the previous one could leave behind.
local function begin_input(bytes)
  input, pos, kept, cx = bytes, 1, {}, {}
  for k in pairs(sluice.vars) do sluice.vars[k] = nil end
  for k, v in pairs(vars) do sluice.vars[k] = v end
  collectgarbage("incremental")      -- an input may have switched modes
  collectgarbage("restart")          -- or stopped the collector
  haka.alert{ description = "input of " .. #bytes .. " bytes" }  -- the harness checks it came
end

local function control_addr(a)
  return tostring(a):sub(1, 7) == "10.8.8."
end

haka.rule {
  on = haka.dissectors.ipv4.events.receive_packet,
  eval = function (pkt)
    if control_addr(pkt.src) and pkt.proto == 17 then
      begin_input(pkt.payload:sub(9):asstring())  -- after the UDP header
    end
  end
}

local function number()
  local k = b0() % 8
  if k == 0 then return b0() - 128
  elseif k == 1 then return (b0() * 256 + b0()) - 32768
  elseif k == 2 then return b0() * 16777216 + b0() * 65536 + b0() * 256 + b0()
  elseif k == 3 then return 0.5
  elseif k == 4 then return math.huge
  elseif k == 5 then return -math.huge
  elseif k == 6 then return 0 / 0
  else return math.mininteger end
end

local function str()
  if b0() % 2 == 0 then return STRINGS[b0() % #STRINGS + 1] end
  local n = b0() % 24
  local t = {}
  for i = 1, n do t[i] = string.char(b0()) end
  return table.concat(t)
end

local function object()
  local k = b0() % 10
  if k == 0 then return cx.pkt
  elseif k == 1 then return cx.flow
  elseif k == 2 then return cx.data
  elseif k == 3 then return cx.iter
  elseif k == 4 then return ipv4.addr(b0(), b0(), b0(), b0())
  elseif k == 5 then return ipv6.addr("2001:db8::" .. string.format("%x", b0()))
  elseif k == 6 then return ipv4.network("10." .. b0() .. ".0.0/" .. b0() % 40)
  elseif k == 7 then return kept[b0() % 8 + 1]
  elseif k == 8 then return haka.network_time()
  else return cx.part end
end

function arg()
  local k = b0() % 8
  if k == 0 then return nil
  elseif k == 1 then return b0() % 2 == 0
  elseif k == 2 or k == 3 then return number()
  elseif k == 4 or k == 5 then return str()
  elseif k == 6 then return { arg(), x = arg() }
  else return object() end
end

local function name()
  if b0() % 4 == 0 then return arg() end
  return NAMES[b0() % #NAMES + 1]
end

-- Every call the rules can make on an object or through haka.*. Each takes
-- the object chosen (maybe nil or of another kind) and reads its arguments.
local CALLS = {
  function (o) return o[name()] end,
  function (o) return o.flags[name()] end,
  function (o) return o.ip[name()] end,
  function (o) o[name()] = arg() end,
  function (o) return o:drop() end,
  function (o) return o:verify_checksum() end,
  function (o) return tostring(o) end,
  function (o) return #o end,
  function (o) return o:asstring() end,
  function (o) return o:sub(arg(), arg()) end,
  function (o) return o:sub(number(), number()):asstring() end,
  function (o) return o.payload:sub(arg()) end,
  function (o) return o:reset() end,
  function (o) return o:halfreset() end,
  function (o) return o:contains(arg()) end,
  function (o) return o == object() end,
  function (o) return o < object() end,
  function (o) return o <= object() end,
  function (o) return o - object() end,
  function (o) return o:available() end,
  function (o) return o:check_available(number(), true) end,
  function (o) return o:advance(arg()) end,
  function (o) return o:sub(arg(), arg()) end,
  function (o) return o:copy() end,
  function (o) return o:move_to(object()) end,
  function (o) return o:mark(arg()) end,
  function (o) return o:unmark() end,
  function (o) o.meter = arg() end,
  function (o) kept[b0() % 8 + 1] = o end,
  function () return ipv4.addr(arg()) end,
  function () return ipv4.addr(arg(), arg(), arg(), arg()) end,
  function () return ipv4.network(arg()) end,
  function () return ipv4.network(object(), arg()) end,
  function () return ipv6.addr(arg()) end,
  function () return ipv6.network(arg(), arg()) end,
  function () return haka.alert{ description = arg(), severity = arg(), sources = { arg() }, targets = arg() } end,
  function () return haka.alert.address(arg(), arg()) end,
  function () return haka.alert.service(arg(), arg()) end,
  function () return haka.log(str(), arg(), arg()) end,
  function () return haka.log.debug(str(), arg()) end,
  function () return haka.log.warning(str()) end,
  function () return haka.log.error(arg()) end,
  function () return haka.time(arg()) end,
  function () return haka.time(number()).secs end,
  function () return tostring(haka.time(number())) end,
  function () return haka.network_time() - object() end,
  function () return sluice.var(arg(), arg()) end,
  function () sluice.vars[str()] = arg() end,
  function () return haka.rule{ on = arg(), eval = function () end } end,
  function () return haka.policy{ on = arg(), action = arg() } end,
  function () return setmetatable(object(), {}) end,
  function () return getmetatable(object()) end,
  function () return rawget(object(), arg()) end,
  function () return next(object()) end,
  function () return coroutine.wrap(function () return object() end)() end,
  function () return coroutine.yield(arg()) end,
  function () return collectgarbage(str()) end,
  function () return string.rep("x", b0() * 64) end,
  function () error(arg()) end,
}

local function run_ops(c)
  cx = c
  local n = b0() % 8
  for _ = 1, n do
    local sel = byte()
    if sel == nil then return end
    local call = CALLS[sel % #CALLS + 1]
    local o = object()
    if sel >= 240 then
      call(o)                                -- errors leave the rule
    else
      pcall(call, o)
    end
  end
end

-- No call is made at the canary connection's or the control datagram's
-- events: a failing call drops the packet (the error policy), and the canary
-- must get through.
local function canary_addr(a)
  return tostring(a):sub(1, 7) == "10.9.9."
end
local function skip(c)
  if c.flow ~= nil then return c.flow.dstport == CANARY_PORT or c.flow.dstport == CONTROL_PORT end
  return c.pkt ~= nil and (canary_addr(c.pkt.src) or canary_addr(c.pkt.dst) or control_addr(c.pkt.src))
end

local function hook(event, make)
  haka.rule { on = event, eval = function (...) local c = make(...); if not skip(c) then run_ops(c) end end }
end

hook(haka.dissectors.ipv4.events.receive_packet, function (pkt) return { pkt = pkt } end)
hook(haka.dissectors.ipv6.events.receive_packet, function (pkt) return { pkt = pkt } end)
hook(haka.dissectors.tcp.events.receive_packet, function (pkt) return { pkt = pkt } end)
hook(haka.dissectors.udp.events.receive_packet, function (pkt) return { pkt = pkt } end)
hook(haka.dissectors.icmp.events.receive_packet, function (pkt) return { pkt = pkt } end)
hook(tcp_connection.events.new_connection, function (flow, pkt) return { flow = flow, pkt = pkt } end)
hook(tcp_connection.events.receive_packet, function (flow, pkt, dir) return { flow = flow, pkt = pkt, dir = dir } end)
hook(tcp_connection.events.receive_data, function (flow, data, dir) return { flow = flow, data = data, dir = dir } end)
hook(tcp_connection.events.end_connection, function (flow) return { flow = flow } end)
hook(tcp_connection.events.monologue,
  function (flow, data, dir, part) return { flow = flow, data = data, dir = dir, part = part } end)
hook(udp_connection.events.new_connection, function (flow, pkt) return { flow = flow, pkt = pkt } end)
hook(udp_connection.events.receive_packet, function (flow, pkt, dir) return { flow = flow, pkt = pkt, dir = dir } end)
hook(udp_connection.events.receive_data, function (flow, pkt, dir) return { flow = flow, pkt = pkt, dir = dir } end)
hook(udp_connection.events.end_connection, function (flow) return { flow = flow } end)

haka.rule {
  on = tcp_connection.events.receive_data,
  options = { streamed = true },
  eval = function (flow, iter, dir)
    if skip{ flow = flow } then return end
    run_ops{ flow = flow, iter = iter, dir = dir }
    for sub in iter:foreach_available() do
      run_ops{ flow = flow, iter = iter, data = sub, dir = dir }
    end
  end
}
