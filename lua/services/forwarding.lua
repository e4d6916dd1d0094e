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

local function target(number, kind)
  local to = mss.ext_data(number, kind)
  if to and allowed(number) then return to end
  return nil
end

local function terminating(call, callee)
  if not callee.exists then return nil end
  local number = call.callee
  local to = target(number, "unconditional")
  if to then return mss.redirect(to, "unconditional") end
  if not callee.registered then
    to = target(number, "unreachable")
    if to then return mss.redirect(to, "unreachable") end
    return nil
  end
  if callee.busy then
    to = target(number, "busy")
    if to then return mss.redirect(to, "busy") end
  end
  if target(number, "no_answer") then
    local ring = tonumber(mss.ext_data(number, "ring_time"))
              or tonumber(mss.setting("default_ring_time")) or 20
    return mss.continue({ring_timeout = ring})
  end
  return nil
end

local function busy(call)
  local to = target(call.callee, "busy")
  if to then return mss.redirect(to, "busy") end
  return nil
end

local function no_answer(call)
  local to = target(call.callee, "no_answer")
  if to then return mss.redirect(to, "no_answer") end
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
