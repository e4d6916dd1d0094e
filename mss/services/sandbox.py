# -*- test-case-name: tests.services.test_sandbox -*-
"""One sandboxed Lua 5.4 runtime per service: what a script can reach and how long it may run.

A ``Sandbox`` owns a ``lupa.lua54.LuaRuntime`` created without Python builtins, with a memory
cap and an attribute filter that refuses every attribute of every Python object. Before the
script runs, a prelude keeps private references to ``debug.sethook``, ``load`` and
``os.clock``, sanitises the shared ``string`` library (no ``dump``; pattern functions charged,
see below), and then the dangerous globals (``python``, ``debug``, ``io``, ``os``, ``package``,
``require``, ``load``, ``loadfile``, ``dofile``, ``collectgarbage``, ``coroutine``) are removed.

The script is compiled as text only (``load(src, "=name", "t", env)``) into a fresh environment
whose ``__index`` is a whitelist of safe globals plus the ``mss`` API table. ``setmetatable``
refuses ``__gc`` (finalizers run with hooks off, so they could loop forever), ``getmetatable``
only answers for tables, ``math.random`` is the engine's seeded generator, and there are no
coroutines (a coroutine created outside a budgeted call would not inherit the count hook).
Python never indexes a table a script made (metamethods would run unbudgeted): decisions are
copied with ``rawget`` inside the budgeted call, other results are read with ``rawget``.

CPU. Every call into the script is armed from Python with a count hook (every 1000
instructions) that stops the call when the instruction budget or the CPU time limit is spent,
then fires on every instruction so ``pcall`` cannot swallow it; Python clears it in
``finally``. The hook does not run inside C functions: the time limit bounds repeated heavy
C work (copying big strings), and pattern functions, whose backtracking can be polynomial in
the subject, refuse subjects over ``MAX_SUBJECT`` and patterns whose estimated matcher work is
above ``PATTERN_LIMIT`` (``PATTERN_TOTAL`` per hook call).

Memory. lupa's allocator cap makes Lua raise "not enough memory", which is safe only inside a
protected call: an allocation refused while Python itself builds a table in the runtime (for
example ``table_from``) aborts the whole process with a Lua PANIC. So the cap is armed only
while script code runs, and every way Python touches the runtime while it is armed allocates
nothing: hooks are entered through a Lua trampoline that takes one prepared table and leaves
its results in it; the Python API functions are reachable only through Lua wrappers that let
strings (valid UTF-8, at most ``MAX_ARGUMENT`` bytes), numbers, booleans and nil through, and
the Python side lifts the cap while it works, never raises into Lua and answers with a table
``{ok, value}`` built before the cap is re-armed. The cap is ``memory_limit`` plus what the
engine itself cached in the runtime (rows, indexes, extension records).

Faults: ``LuaError`` (with ``LuaMemoryError`` and ``LuaSyntaxError``), ``ScriptError`` (an API
function refused its arguments) and ``UnicodeDecodeError`` (the script produced a string that
is not UTF-8) are the script's faults (``SCRIPT_FAULTS``); anything else is a bug in mss.
"""
from __future__ import annotations

from typing import Any, Callable

from lupa import lua54
from twisted.logger import Logger

LuaError = lua54.LuaError
LuaMemoryError = lua54.LuaMemoryError


class ScriptError(Exception):
    """A script called the ``mss`` API wrongly: the script's fault, not ours."""


SCRIPT_FAULTS = (LuaError, ScriptError, UnicodeDecodeError)

DECISION_FIELDS = ("action", "code", "reason", "target", "tone", "caller", "caller_display",
                   "ring_timeout")

MAX_SUBJECT = 4096
"""Longest subject string accepted by string.find/match/gmatch/gsub inside a service."""

MAX_ARGUMENT = 4096
"""Longest string a script may pass to an mss API function."""

MAX_SOURCE = 256 * 1024
"""Largest service file accepted."""

BUDGET_MESSAGE = "instruction budget exceeded"
TIME_MESSAGE = "CPU time limit exceeded"
PATTERN_MESSAGE = "pattern too costly for this subject (see docs/lua-api.md)"

TIME_LIMIT = 0.1
"""CPU seconds one hook call may use (checked every 1000 instructions)."""

PATTERN_LIMIT = 2_000_000
"""Largest estimated matcher work of one string.find/match/gmatch/gsub call (~5 ms)."""

PATTERN_TOTAL = 20_000_000
"""Estimated matcher work allowed in one hook call over all pattern calls."""

_REMOVED_GLOBALS = ("python", "debug", "io", "os", "package", "require", "load", "loadfile",
                    "dofile", "collectgarbage", "coroutine", "print", "warn", "xpcall")

# Runs once in the fresh runtime, with the full standard library still present. Returns the
# budget hook, the environment factory, the compiler and the `mss` table (to be completed by
# Python with its callbacks). Everything dangerous stays in upvalues the script cannot reach.
_PRELUDE = r"""
local MAX_SUBJECT, BUDGET_MESSAGE, MAX_ARGUMENT, TIME_MESSAGE, PATTERN_LIMIT, PATTERN_TOTAL,
      PATTERN_MESSAGE = ...
local sethook, load, error, type, select = debug.sethook, load, error, type, select
local rawget, setmetatable, getmetatable = rawget, setmetatable, getmetatable
local tostring, pairs, clock, byte = tostring, pairs, os.clock, string.byte

-- CPU budget. The count hook fires every STEP instructions; it stops the call when the
-- instruction budget or the CPU time limit (which also bounds work done inside C functions
-- between two checks) is spent, then fires on every instruction so pcall cannot hide it.
local STEP = 1000
local left, deadline, step, failure, pattern_work = 0, 0, STEP, BUDGET_MESSAGE, 0
local function fail_hook() error(failure, 0) end
local function budget_hook()
  left = left - step
  if left <= 0 then failure = BUDGET_MESSAGE
  elseif clock() > deadline then failure = TIME_MESSAGE
  else return end
  sethook(fail_hook, "", 1)
  error(failure, 0)
end
local function arm(budget, seconds)
  left, deadline, pattern_work = budget, clock() + seconds, 0
  step = budget < STEP and budget or STEP
  sethook(budget_hook, "", step)
end

-- Pattern matching runs in C where the hook cannot stop it, and backtracking can be
-- polynomial in the subject's length: estimate an upper bound of the matcher's steps
-- (each variable-length item multiplies by n + 1, each optional one by 2, an unanchored
-- search by n + 1) and refuse patterns above PATTERN_LIMIT or calls beyond PATTERN_TOTAL.
local function set_end(p, i)              -- i at "[": the index after the closing "]"
  local j = i + 1
  if byte(p, j) == 94 then j = j + 1 end
  repeat
    if j > #p then return #p + 1 end      -- malformed: the matcher reports it
    local c = byte(p, j)
    j = j + 1
    if c == 37 then j = j + 1 end
  until byte(p, j) == 93
  return j + 1
end

local function pattern_cost(p, n, anchorable)
  local cost, i, len = 1, 1, #p
  if anchorable and byte(p, 1) == 94 then i = 2 else cost = n + 1 end
  while i <= len do
    local c, last = byte(p, i), nil
    if c == 37 then                                   -- %x, %bxy, %f[set]
      local d = byte(p, i + 1)
      if d == 98 then i = i + 4; goto continue end
      if d == 102 then i = set_end(p, i + 2); goto continue end
      last = i + 1
    elseif c == 91 then last = set_end(p, i) - 1     -- [set]
    elseif c == 40 or c == 41 then i = i + 1; goto continue
    else last = i end
    do
      local q = byte(p, last + 1)
      if q == 42 or q == 43 or q == 45 then cost = cost * (n + 1); i = last + 2
      elseif q == 63 then cost = cost * 2; i = last + 2
      else i = last + 1 end
    end
    if cost > PATTERN_LIMIT then return cost end
    ::continue::
  end
  return cost
end

local function charge(name, s, p, anchorable)
  if type(s) ~= "string" or type(p) ~= "string" then return end
  if #s > MAX_SUBJECT then
    error("string." .. name .. ": subject longer than " .. MAX_SUBJECT .. " bytes", 3)
  end
  local cost = pattern_cost(p, #s, anchorable)
  pattern_work = pattern_work + cost
  if cost > PATTERN_LIMIT or pattern_work > PATTERN_TOTAL then
    error("string." .. name .. ": " .. PATTERN_MESSAGE, 3)
  end
end

-- sanitise the real string library: it is also the __index of every string value
string.dump = nil
do
  local find, match, gmatch, gsub = string.find, string.match, string.gmatch, string.gsub
  string.find = function(s, p, init, plain)
    if not plain then charge("find", s, p, true) end
    return find(s, p, init, plain)
  end
  string.match = function(s, p, init)
    charge("match", s, p, true)
    return match(s, p, init)
  end
  string.gmatch = function(s, p, init)
    charge("gmatch", s, p, false)
    return gmatch(s, p, init)
  end
  string.gsub = function(s, p, repl, n)
    charge("gsub", s, p, true)
    return gsub(s, p, repl, n)
  end
end

local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc is not allowed in services", 2)
  end
  return setmetatable(t, mt)
end

local function safe_getmetatable(v)
  if type(v) == "table" then return getmetatable(v) end
  return nil
end

local function copy(t, except)
  local out = {}
  for k, v in pairs(t) do if not (except and except[k]) then out[k] = v end end
  return out
end

local mss = {}
local safe_math = copy(math, {random = true, randomseed = true})

local base = {
  string = string, table = copy(table), math = safe_math, utf8 = copy(utf8),
  pairs = pairs, ipairs = ipairs, select = select, type = type, tostring = tostring,
  tonumber = tonumber, error = error, pcall = pcall, assert = assert, next = next,
  rawequal = rawequal, rawget = rawget, rawset = rawset, rawlen = rawlen,
  setmetatable = safe_setmetatable, getmetatable = safe_getmetatable,
  _VERSION = _VERSION, mss = mss,
}
local base_mt = {__index = base, __metatable = false}

local function compile(source, name)
  local env = setmetatable({}, base_mt)
  local chunk, err = load(source, "=" .. name, "t", env)
  if not chunk then error(err, 0) end
  return chunk
end

-- Python functions are reached only through these wrappers: nothing but plain values crosses
local utf8_len = utf8.len
local function plain(value, name)
  local t = type(value)
  if t == "string" then
    if #value > MAX_ARGUMENT or not utf8_len(value) then
      error(name .. ": string arguments must be valid UTF-8 of at most " .. MAX_ARGUMENT
            .. " bytes", 3)
    end
  elseif t ~= "nil" and t ~= "number" and t ~= "boolean" then
    error(name .. ": arguments must be strings, numbers, booleans or nil, not " .. t, 3)
  end
end

local function wrap(name, py)
  return function(...)
    local n = select("#", ...)
    if n > 3 then error(name .. ": at most 3 arguments", 2) end
    local a, b, c = ...
    plain(a, name); plain(b, name); plain(c, name)
    local box = py(n, a, b, c)
    if box[1] then return box[2] end
    error(name .. ": " .. box[2], 2)
  end
end

-- Builds the `call` table of a hook call from plain values (cheaper than table_from)
local function make_call(id, caller, caller_display, callee, callee_display, direction, trunk,
                         time, anonymous, caller_is_extension, caller_level, diverted_by,
                         headers, caller_permissions, diversions)
  return {id = id, caller = caller, caller_display = caller_display, callee = callee,
          callee_display = callee_display, direction = direction, trunk = trunk, time = time,
          anonymous = anonymous, caller_is_extension = caller_is_extension,
          caller_level = caller_level, diverted_by = diverted_by, headers = headers or {},
          caller_permissions = caller_permissions or {}, diversions = diversions or {}}
end

local function install(name, py)
  if name == "math.random" then safe_math.random = wrap(name, py)
  else mss[name] = wrap("mss." .. name, py) end
end

-- Enters script code: one prepared table in, results left in it (nothing to allocate outside)
-- With box.decide set, a table result is copied field by field with rawget, so that Python
-- never indexes a script's table (a metamethod would run outside the budget).
local unpack = table.unpack
local FIELDS = {"action", "code", "reason", "target", "tone", "caller", "caller_display",
                "ring_timeout"}
local function trampoline(box)
  local ok, result = pcall(box.f, unpack(box, 1, box.n))
  if not ok and type(result) ~= "string" then
    result = "error object is a " .. type(result) .. " value"
  end
  box.ok = ok
  if ok and box.decide then
    local kind = type(result)
    box.kind = kind
    if kind == "table" then
      for i = 1, #FIELDS do box[FIELDS[i]] = rawget(result, FIELDS[i]) end
      result = nil
    elseif kind ~= "nil" then
      result = nil
    end
  end
  box.result = result
end

return arm, compile, install, trampoline, mss, make_call
"""

# Decision constructors seen by scripts: plain tables the engine validates on return.
_MSS_LUA = r"""
local mss = ...
function mss.continue(opts)
  local d = {action = "continue"}
  if opts then
    d.caller, d.caller_display, d.ring_timeout = opts.caller, opts.caller_display, opts.ring_timeout
  end
  return d
end
function mss.set_caller(number, display)
  return {action = "continue", caller = number, caller_display = display}
end
function mss.reject(code, reason) return {action = "reject", code = code, reason = reason} end
function mss.redirect(number, reason) return {action = "redirect", target = number, reason = reason} end
function mss.answer(tone) return {action = "answer", tone = tone} end
function mss.feature_done(tone) return {action = "feature", tone = tone or "confirm"} end
function mss.break_in(extension) return {action = "break_in", target = extension} end
"""


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("Python attributes are not accessible from services")


class Sandbox:
    """A Lua 5.4 runtime prepared for one service; ``call`` runs script code under budget.

    ``api`` maps names to Python functions that become ``mss.<name>`` (and ``random`` also
    ``math.random``). They receive plain Python values, may raise ``ScriptError`` to refuse
    (the script gets a Lua error), and return plain values or tables built with ``to_lua``.
    """
    log = Logger()

    def __init__(self, name: str, *, instruction_budget: int, memory_limit: int,
                 api: dict[str, Callable] | None = None, time_limit: float = TIME_LIMIT):
        self.name = name
        self.instruction_budget = instruction_budget
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.engine_bytes = 0          # memory the engine's caches hold in this runtime
        self.internal_error = False    # an API function hit a bug in mss during this call
        self.runtime = lua54.LuaRuntime(
            register_eval=False, register_builtins=False, unpack_returned_tuples=True,
            max_memory=memory_limit, attribute_filter=_deny_attributes)
        self.runtime.set_max_memory(0)      # armed only while script code runs
        self._answer = self.runtime.table_from([False, False])
        self._box = self.runtime.table_from(dict.fromkeys(
            ("f", "n", "ok", "result", "decide", "kind") + DECISION_FIELDS, False))
        lua_globals = self.runtime.globals()
        self._sethook = lua_globals.debug.sethook
        self._rawget = lua_globals.rawget
        load = lua_globals.load
        prelude = load(_PRELUDE, "=prelude", "t")
        self._arm_budget, self._compile, install, self._trampoline, mss, self._make_call = prelude(
            MAX_SUBJECT, BUDGET_MESSAGE, MAX_ARGUMENT, TIME_MESSAGE, PATTERN_LIMIT,
            PATTERN_TOTAL, PATTERN_MESSAGE)
        load(_MSS_LUA, "=mss", "t")(mss)
        for name_ in _REMOVED_GLOBALS:
            lua_globals[name_] = None
        for key, function in (api or {}).items():
            install(key, self._callback(key, function))
            if key == "random":
                install("math.random", self._callback(key, function))

    # -- the memory cap ----------------------------------------------------------------------

    def _arm(self) -> None:
        self.runtime.set_max_memory(self.memory_limit + self.engine_bytes)

    def _disarm(self) -> None:
        self.runtime.set_max_memory(0)

    def _callback(self, name: str, function: Callable) -> Callable:
        answer = self._answer       # one reply table: the Lua wrapper reads it at once

        def callback(n, *args):
            self._disarm()
            try:
                try:
                    value = function(*args[:n])
                except ScriptError as e:
                    answer[1], answer[2] = False, str(e)[:300]
                except UnicodeDecodeError:
                    answer[1], answer[2] = False, "invalid UTF-8"
                except Exception:
                    self.internal_error = True
                    self.log.failure("mss.{function} of service {service} failed (bug in mss)",
                                     function=name, service=self.name)
                    answer[1], answer[2] = False, "internal error in mss"
                else:
                    if value is None or isinstance(value, (bool, int, float, str)) \
                            or lua54.lua_type(value) == "table":
                        answer[1], answer[2] = True, value
                    else:                   # never hand a Python object to a script
                        self.internal_error = True
                        self.log.error("mss.{function} of service {service} returned a "
                                       "{kind} (bug in mss)", function=name,
                                       service=self.name, kind=type(value).__name__)
                        answer[1], answer[2] = False, "internal error in mss"
                return answer
            finally:
                self._arm()
        return callback

    # -- running script code -----------------------------------------------------------------

    def compile(self, source: str) -> Any:
        """Compile text source (never bytecode) into a function running in a fresh env."""
        if len(source) > MAX_SOURCE:
            raise ScriptError(f"source is larger than {MAX_SOURCE} bytes")
        return self._compile(source, self.name)

    def call(self, function: Any, *args: Any) -> Any:
        """Call Lua ``function`` with the budget and the memory cap armed; disarm both after.

        Returns the function's first result; raises ``LuaError``/``LuaMemoryError`` for a
        script fault. Index a returned table only with ``rawget`` (``Sandbox.rawget``).
        """
        self._box["decide"] = False
        return self._call(function, args)

    def call_decision(self, function: Any, *args: Any) -> dict | None:
        """Call a hook and return its decision as a plain dict of ``DECISION_FIELDS``.

        None when it returned nil; ``ScriptError`` when it returned something else than a
        table or nil.
        """
        box = self._box
        box["decide"] = True
        self._call(function, args)
        kind = box["kind"]
        if kind == "nil":
            return None
        if kind != "table":
            raise ScriptError(f"returned a {kind}, not a decision (use mss.reject, "
                              f"mss.redirect, ...)")
        return {name: box[name] for name in DECISION_FIELDS}

    def rawget(self, table: Any, key: Any) -> Any:
        """``table[key]`` without metamethods (a script's table may have any)."""
        return self._rawget(table, key)

    def _call(self, function: Any, args: tuple) -> Any:
        box = self._box
        box["f"] = function
        box["n"] = len(args)
        for i, arg in enumerate(args, 1):
            box[i] = arg
        self.internal_error = False
        self._arm_budget(self.instruction_budget, self.time_limit)
        self._arm()
        try:
            self._trampoline(box)
        finally:
            self._disarm()
            self._sethook()
        result = box["result"]
        if box["ok"]:
            return result
        if result == "not enough memory":
            raise LuaMemoryError(result)
        raise LuaError(result)

    def call_table(self, values: tuple) -> Any:
        """The ``call`` table from ``CallFacts.lua_values()`` (only while disarmed)."""
        table_from = self.runtime.table_from
        headers, permissions, diversions = values[12:]
        return self._make_call(*values[:12], table_from(headers) if headers else None,
                               table_from(permissions) if permissions else None,
                               table_from(diversions) if diversions else None)

    def to_lua(self, value: Any) -> Any:
        """A JSON-like Python value (from the store) as Lua values built in this runtime.

        Only while the cap is disarmed (between calls, or inside an API function).
        """
        if isinstance(value, (dict, list, tuple)):
            return self.runtime.table_from(value, recursive=True)
        return value

    def memory_used(self) -> int:
        return self.runtime.get_memory_used()
