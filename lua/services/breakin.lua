-- Operator break-in (barge-in).
--
-- An extension with the "break_in" permission dials *75*<ext> (a trailing # is accepted) to
-- join <ext>'s current call as a third party (the call core builds the three-party conference
-- in the media gateway). Outcomes for the operator: no break_in right -> 403; unknown target
-- -> 404; target with the "overstep" right (protected) -> 403; target not in a call -> 480;
-- otherwise a break_in decision (the call core checks again against its live calls).

local function feature(call, dialled)
  local target = dialled:match("^%*75%*(%+?%d+)#?$")
  if not target then return nil end
  if not call.caller_permissions.break_in then
    return mss.reject(403, "Break-in not allowed")
  end
  if target == call.caller then return mss.reject(403, "Cannot break into own call") end
  local ext = mss.extension(target)
  if not ext.exists then return mss.reject(404, "No such extension") end
  if ext.permissions.overstep then return mss.reject(403, "Protected extension") end
  if not mss.in_call(target) then return mss.reject(480, "Extension not in a call") end
  mss.log("info", "break-in by " .. call.caller .. " into the call of " .. target)
  return mss.break_in(target)
end

return {priority = 70, features = {"*75*"}, feature = feature}
