-- Do not disturb, per extension.
--
-- Extension data "on" (true when set). Dialling *78 switches it on, *79 off (a trailing # is
-- accepted); mssctl dnd EXT on|off does the same. Calls to an extension with DND on are refused
-- with setting reject_code (default 486) and reject_reason (default "Do Not Disturb"); call
-- forwarding runs first (priority 30 < 60), so an unconditional forward still applies.

local function feature(call, dialled)
  local code = dialled:match("^%*(7[89])#?$")
  if not code then return nil end
  if not call.caller_is_extension then return mss.reject(403, "Not an extension") end
  if code == "78" then
    mss.set_ext_data(call.caller, "on", true)
  else
    mss.set_ext_data(call.caller, "on", nil)
  end
  return mss.feature_done("confirm")
end

local function terminating(call, callee)
  if callee.exists and mss.ext_data(call.callee).on then
    return mss.reject(mss.setting("reject_code") or 486,
                      mss.setting("reject_reason") or "Do Not Disturb")
  end
  return nil
end

return {priority = 60, features = {"*78", "*79"}, feature = feature, terminating = terminating}
