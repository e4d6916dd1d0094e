-- Call forwarding: unconditional, on busy, on unreachable, on no answer.
--
-- Extension data: "unconditional", "busy", "unreachable", "no_answer" (target numbers) and
-- "ring_time" (seconds before no-answer forwarding; default setting default_ring_time, else 20).
-- An extension needs the "forward" permission to set forwarding, and forwarding only happens
-- while it still has it.
--
-- Feature codes (a trailing # is accepted):
--   *93*<number>  unconditional     *93#  clear
--   *90*<number>  on busy           *90#  clear
--   *91*<number>  on unreachable    *91#  clear
--   *92*<number>  on no answer      *92#  clear   (*92*<number>*<seconds> sets the ring time)
-- Redirects carry the reason; the engine refuses loops and chains longer than
-- [services] forward_limit, and the call core adds History-Info/Diversion.

local KINDS = {["93"] = "unconditional", ["90"] = "busy", ["91"] = "unreachable",
               ["92"] = "no_answer"}

local function allowed(number)
  local ext = mss.extension(number)
  return ext.exists and ext.enabled and ext.permissions.forward
end

local function feature(call, dialled)
  local code, rest = dialled:match("^%*(9[0-3])(.*)$")
  local kind = code and KINDS[code]
  if not kind then return nil end
  if not call.caller_is_extension then return mss.reject(403, "Not an extension") end
  if not call.caller_permissions.forward then
    return mss.reject(403, "Forwarding not allowed")
  end
  if rest == "" or rest == "#" then
    mss.set_ext_data(call.caller, kind, nil)
    if kind == "no_answer" then mss.set_ext_data(call.caller, "ring_time", nil) end
    return mss.feature_done("confirm")
  end
  local target, seconds = rest:match("^%*(%+?%d+)%*(%d+)#?$")
  if not target then target = rest:match("^%*(%+?%d+)#?$") end
  if not target or #target > 32 then return mss.answer("error") end
  if target == call.caller then return mss.answer("error") end
  if seconds then
    seconds = tonumber(seconds)
    if kind ~= "no_answer" or seconds < 1 or seconds > 600 then return mss.answer("error") end
    mss.set_ext_data(call.caller, "ring_time", seconds)
  end
  mss.set_ext_data(call.caller, kind, target)
  return mss.feature_done("confirm")
end

-- the forwarding data of an extension (one table) when it may forward, else nil
local function forwards(number)
  local data = mss.ext_data(number)
  if next(data) == nil or not allowed(number) then return nil end
  return data
end

local function terminating(call, callee)
  if not callee.exists then return nil end
  local data = forwards(call.callee)
  if not data then return nil end
  if data.unconditional then return mss.redirect(data.unconditional, "unconditional") end
  if not callee.registered then
    if data.unreachable then return mss.redirect(data.unreachable, "unreachable") end
    return nil
  end
  if callee.busy and data.busy then return mss.redirect(data.busy, "busy") end
  if data.no_answer then
    local ring = tonumber(data.ring_time) or tonumber(mss.setting("default_ring_time")) or 20
    return mss.continue({ring_timeout = ring})
  end
  return nil
end

local function busy(call)
  local data = forwards(call.callee)
  if data and data.busy then return mss.redirect(data.busy, "busy") end
  return nil
end

local function no_answer(call)
  local data = forwards(call.callee)
  if data and data.no_answer then return mss.redirect(data.no_answer, "no_answer") end
  return nil
end

return {
  priority = 30,
  features = {"*90", "*91", "*92", "*93"},
  feature = feature,
  terminating = terminating,
  busy = busy,
  no_answer = no_answer,
}
