-- sluice's blocking stream iterator: Haka's vbuffer_iterator_blocking, the
-- `iter` argument of streamed rules. Built on a Rust cursor whose calls
-- never block; when a call needs bytes that have not arrived, this code
-- yields the rule's coroutine, and sluice resumes it when the stream has
-- more bytes or ends. Loaded once by the prelude; returns the constructor.
local yield = coroutine.yield
local setmetatable, getmetatable, error, tostring, tonumber, type, rawget =
  setmetatable, getmetatable, error, tostring, tonumber, type, rawget
local huge, remove, pairs = math.huge, table.remove, pairs

local Iter = {}
local mt = {}

-- Methods are copied into each iterator (one per rule, connection and
-- direction), so calling one is a plain table hit; only the two properties,
-- `meter` and `iseof`, go through __index.
-- `take` is the cursor's take_available as a C function (sluice makes one
-- per cursor: the call `for sub in iter:foreach_available()` makes per chunk).
local function new(cursor, take)
  local it = { _c = cursor, _take = take, _marks = {} }
  for k, f in pairs(Iter) do it[k] = f end
  return setmetatable(it, mt)
end

mt.__index = function(self, k)
  local c = rawget(self, "_c")
  if k == "meter" then return c:meter() end
  if k == "iseof" then return c:iseof() end
  local m = Iter[k]
  if m then return m end
  error("stream iterator has no field '" .. tostring(k) .. "'", 2)
end

mt.__newindex = function(self, k, v)
  if k == "meter" then
    rawget(self, "_c"):set_meter(v)
  else
    error("stream iterator field '" .. tostring(k) .. "' is read-only", 2)
  end
end

mt.__tostring = function(self)
  return "stream iterator at " .. tostring(rawget(self, "_c"):pos())
end

-- Waits until at least `n` bytes are available or the stream ended.
local function wait_for(c, n)
  while c:available() < n and not c:finished() do
    yield()
  end
end

function Iter:available()
  return self._c:available()
end

function Iter:check_available(size, nonblocking)
  local c = self._c
  if not nonblocking then wait_for(c, size) end
  local avail = c:available()
  if avail >= size then return true, size end
  return false, avail
end

function Iter:wait()
  local c = self._c
  wait_for(c, 1)
  return c:available() > 0
end

function Iter:advance(size)
  local c = self._c
  if size == "available" then
    return c:advance(nil)
  elseif size == "all" then
    wait_for(c, huge)
    c:advance(nil)
    return 0
  end
  local n = tonumber(size)
  if not n or n < 0 then error("iter:advance expects a count, 'available' or 'all'", 2) end
  local moved = 0
  while true do
    moved = moved + c:advance(n - moved)
    if moved >= n or c:finished() and c:available() == 0 then break end
    yield()
  end
  return moved
end

function Iter:sub(size, split)
  local c = self._c
  local _ = split -- sluice never modifies streams: a split changes nothing it shows
  if size == "available" then
    local take = self._take
    while true do
      local sub, eof = take()
      if sub then return sub end
      if eof then return nil end
      yield()
    end
  elseif size == "all" then
    wait_for(c, huge)
  else
    local n = tonumber(size)
    if not n or n < 0 then error("iter:sub expects a size, 'available' or 'all'", 2) end
    if n == 0 then return c:take(0) end
    wait_for(c, n)
    if c:available() == 0 then return nil end
    return c:take(n)
  end
  if c:available() == 0 then return nil end
  return c:take(nil)
end

-- Each step is `self:sub('available')`, inlined: the loop makes two per chunk.
function Iter:foreach_available()
  local take = self._take
  return function()
    while true do
      local sub, eof = take()
      if sub then return sub end
      if eof then return nil end
      yield()
    end
  end
end

function Iter:copy()
  return new(self._c:copy())
end

function Iter:move_to(other)
  if type(other) ~= "table" or getmetatable(other) ~= mt then
    error("iter:move_to expects a stream iterator", 2)
  end
  self._c:seek(other._c:pos())
end

-- Read-only marks keep the bytes from the mark on readable; read-write
-- marks would hold packets back, which sluice does not do.
function Iter:mark(readonly)
  if readonly ~= true then
    error("read-write marks (holding packets until unmark) are not supported by sluice; use iter:mark(true)", 2)
  end
  local marks = self._marks
  marks[#marks + 1] = self._c:copy()
end

function Iter:unmark()
  local marks, pos = self._marks, self._c:pos()
  for i = #marks, 1, -1 do
    if marks[i]:pos() == pos then
      marks[i]:release()
      remove(marks, i)
      return
    end
  end
  error("iterator is not a mark", 2)
end

local function refuse(name)
  Iter[name] = function()
    error("iter:" .. name .. ": sluice does not modify streams", 2)
  end
end
refuse("insert")
refuse("restore")

-- A split only matters to code that modifies the buffer: nothing to do.
function Iter:split() end

-- The position's absolute stream offset (sluice's; regexp matching uses it).
function Iter:offset()
  return self._c:pos()
end

local function is_iter(v)
  return type(v) == "table" and getmetatable(v) == mt
end

-- re:match(iter[, createsub]) (Haka's regexp match on a blocking iterator):
-- feeds the stream to a matcher, waiting for bytes as needed, until a match
-- or the end of the stream. On a match the iterator is left just after it
-- and the result is true (with createsub, the matched sub-buffer); at the
-- end of the stream it is false (nil), with the iterator at the end. The
-- matcher's state is kept on the cursor (src/rules/stream_match.rs); while
-- it waits, this yields the token `match_step` gave, and sluice then feeds
-- the matcher each new chunk itself, resuming this coroutine only once the
-- match or the end is there.
local function match_iter(re, iter, createsub)
  local c = iter._c
  re:_begin_match(c)
  while true do
    local result, token = c:match_step(createsub)
    if token == nil then return result end
    yield(token)
  end
end

-- Gives regexp/pcre's module and compiled patterns their iterator case
-- (Lua code: matching on an iterator may wait, and only Lua code can).
local function re_match(re, input, createsub)
  if is_iter(input) then return match_iter(re, input, createsub) end
  return re:_match(input, createsub)
end

local function wrap_regexp(module)
  local re_mod = module.re
  local raw_match = re_mod.match
  re_mod.match = function(self, pattern, input, flags, createsub)
    if is_iter(input) then return match_iter(self:compile(pattern, flags), input, createsub) end
    return raw_match(self, pattern, input, flags, createsub)
  end
  return module
end

return { new = new, is = is_iter, re_match = re_match, wrap_regexp = wrap_regexp }
