-- sluice's Haka prelude: builds the `haka` global from the primitives sluice
-- hands in, and finishes the sandbox. Runs once per rule state, before any
-- rule file. Nothing here is reachable from rules except what it exports.
local raw = ...

local format, select, tostring, concat = string.format, select, tostring, table.concat
local error, setmetatable, next = error, setmetatable, next

local haka = {}
haka.dissectors = raw.dissectors
haka.rule = raw.rule
haka.alert = raw.alert
haka.policy = raw.policy
haka.time = raw.time
haka.network_time = raw.network_time

-- haka.log(fmt, ...) logs at info level; haka.log.<level>(fmt, ...) at that level.
local raw_log = raw.log
local function logger(level)
  return function(fmt, ...)
    if select('#', ...) > 0 then
      raw_log(level, format(fmt, ...))
    else
      raw_log(level, tostring(fmt))
    end
  end
end
haka.log = setmetatable({
  debug = logger("debug"),
  info = logger("info"),
  warning = logger("warning"),
  warn = logger("warning"),
  error = logger("error"),
}, { __call = function(_, ...) return logger("info")(...) end })

_G.haka = haka

-- sluice's own additions that are not Haka's: the --var settings.
-- sluice.var(name[, default]) fails loudly on a setting nobody gave, so a
-- typo in a name cannot silently turn a rule off.
local vars = raw.vars
local sluice = { vars = setmetatable({}, {
  __index = vars,
  __newindex = function() error("sluice.vars is read-only (set values with --var NAME=VALUE)", 2) end,
  __pairs = function() return next, vars, nil end,
}) }
function sluice.var(name, default)
  local v = vars[name]
  if v ~= nil then return v end
  if default ~= nil then return default end
  error(format("sluice.var: no --var %s=VALUE was given and no default", tostring(name)), 2)
end
_G.sluice = sluice

-- print goes through sluice (one line per call, tab-separated like Lua's).
local raw_print = raw.print
print = function(...)
  local n = select('#', ...)
  local parts = {}
  for i = 1, n do
    parts[i] = tostring((select(i, ...)))
  end
  raw_print(concat(parts, "\t", 1, n))
end

require = raw.require

-- load: text chunks only (binary chunks could break the VM).
local raw_load = load
load = function(chunk, chunkname, _mode, ...)
  if select('#', ...) > 0 then
    return raw_load(chunk, chunkname, "t", (...))
  end
  return raw_load(chunk, chunkname, "t")
end

-- Once an event has spent its instruction budget, errors caught by pcall,
-- xpcall or coroutine.resume are raised again, so a rule cannot catch its
-- way past the limit.
local exhausted = raw.exhausted
local function recheck(ok, ...)
  if not ok and exhausted() then
    error((...), 0)
  end
  return ok, ...
end
local raw_pcall, raw_xpcall = pcall, xpcall
pcall = function(f, ...) return recheck(raw_pcall(f, ...)) end
xpcall = function(f, handler, ...) return recheck(raw_xpcall(f, handler, ...)) end
local raw_resume = coroutine.resume
coroutine.resume = function(co, ...) return recheck(raw_resume(co, ...)) end

-- The rest of the sandbox: no files, no processes, no bytecode.
dofile = nil
loadfile = nil
string.dump = nil
local os_time, os_clock, os_date = os.time, os.clock, os.date
os = { time = os_time, clock = os_clock, date = os_date }
