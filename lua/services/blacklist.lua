-- System black and white list.
--
-- Rows of the store table "blacklist": {caller = PREFIX, called = PREFIX, rate = 0..100,
-- description = TEXT}; rows of "whitelist": {caller = PREFIX, called = PREFIX, description}.
-- A prefix is digits (optionally with a leading +), "*" (anything) or, for the caller,
-- "anonymous" (a caller without identity, user "anonymous" or asking for privacy).
--
-- A call matching any whitelist row is exempt. Otherwise the matching blacklist row with the
-- longest caller prefix wins, and among those the one with the longest called prefix
-- ("*" is the shortest; "anonymous" is the most specific caller). The winner refuses `rate`
-- percent of its calls (100: all, 0: none, which makes a longer prefix an exception to a
-- shorter one) with setting reject_code (default 403) and reject_reason (default "Forbidden").

-- index[caller_prefix][called_prefix] = row (the first row, by id, for a prefix pair); built by
-- the engine from the store (no Lua instructions spent on big lists) and kept until it changes
local function index_of(name)
  return mss.index(name, "caller", "called")
end

-- the row of `group` with the longest called prefix matching `callee`
local function by_called(group, callee)
  for len = #callee, 1, -1 do
    local row = group[callee:sub(1, len)]
    if row then return row end
  end
  return group["*"]
end

local function lookup(index, call)
  if call.anonymous or call.caller == "" or call.caller == "anonymous" then
    local row = index["anonymous"] and by_called(index["anonymous"], call.callee)
    if row then return row end
  else
    local caller = call.caller
    for len = #caller, 1, -1 do
      local group = index[caller:sub(1, len)]
      local row = group and by_called(group, call.callee)
      if row then return row end
    end
  end
  local group = index["*"]
  return group and by_called(group, call.callee)
end

local function originating(call)
  local white = lookup(index_of("whitelist"), call)
  if white then return nil end
  local row = lookup(index_of("blacklist"), call)
  if not row then return nil end
  local rate = tonumber(row.rate) or 100
  if rate <= 0 then return nil end
  if rate < 100 and mss.random(100) > rate then return nil end
  mss.log("info", "blacklisted: " .. call.caller .. " -> " .. call.callee .. " by row "
          .. tostring(row.id) .. " (" .. row.caller .. " " .. row.called .. " "
          .. tostring(rate) .. "%) " .. tostring(row.description or ""))
  return mss.reject(mss.setting("reject_code") or 403, mss.setting("reject_reason") or "Forbidden")
end

return {priority = 10, originating = originating}
