-- Call levels: each dialled-number prefix may require a level, each extension has one.
--
-- Rows of the store table "prefixes": {prefix = DIGITS or "*", level = 0..99}. For a call made
-- by a local extension, the row with the longest prefix of the dialled number gives the
-- required level; when it is above the caller's level (the extension's call_level) the call is
-- refused with setting reject_code (default 403) and reject_reason (default "Call level too
-- low"). Dialled numbers matching no row need level 0. Calls from outside are not checked,
-- except forwarded legs (call.diverted_by set), which need the forwarding extension's level.

local function required(callee)
  local levels = mss.index("prefixes", "prefix")     -- prefix -> rows with that prefix
  for len = #callee, 1, -1 do
    local rows = levels[callee:sub(1, len)]
    if rows then return tonumber(rows[1].level) or 0 end
  end
  local default = levels["*"]
  return default and tonumber(default[1].level) or 0
end

local function originating(call)
  local who, level = call.caller, call.caller_level
  if call.diverted_by ~= "" then          -- a forwarded leg: the forwarding extension pays
    local ext = mss.extension(call.diverted_by)
    who, level = call.diverted_by, ext.exists and ext.level or 0
  elseif not call.caller_is_extension then
    return nil
  end
  local need = required(call.callee)
  if need <= level then return nil end
  mss.log("info", "call level: " .. who .. " (level " .. level .. ") may not call "
          .. call.callee .. " (level " .. need .. ")")
  return mss.reject(mss.setting("reject_code") or 403,
                    mss.setting("reject_reason") or "Call level too low")
end

return {priority = 20, originating = originating}
