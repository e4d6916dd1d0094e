"""One sandboxed Lua 5.4 runtime per service: what a script can reach and how long it may run.

A ``Sandbox`` owns a ``lupa.lua54.LuaRuntime`` created without Python builtins, with a memory
cap and an attribute filter that refuses every attribute of every Python object. Before the
script runs, a prelude keeps private references to ``debug.sethook`` and ``load``, sanitises the
shared ``string`` library (no ``dump``; ``find``/``match``/``gmatch``/``gsub`` refuse subjects
longer than ``MAX_SUBJECT`` because Lua's count hook does not run inside C functions), and then
the dangerous globals (``python``, ``debug``, ``io``, ``os``, ``package``, ``require``, ``load``,
``loadfile``, ``dofile``, ``collectgarbage``, ``coroutine``) are removed from the runtime.

The script is compiled as text only (``load(src, "=name", "t", env)``) into a fresh environment
whose ``__index`` is a whitelist of safe globals plus the ``mss`` API table. ``setmetatable``
refuses ``__gc`` (finalizers run with hooks off, so they could loop forever), ``getmetatable``
only answers for tables, ``math.random`` is the engine's seeded generator, and there are no
coroutines (a coroutine created outside a budgeted call would not inherit the count hook).

Every call into the script (``Sandbox.call``) runs with a count hook set from Python and cleared
from Python in ``finally``: once the budget is spent the hook raises and re-arms itself to fire
on every instruction, so ``pcall`` cannot swallow it.

Faults: ``LuaError`` (with ``LuaMemoryError`` and ``LuaSyntaxError``), ``ScriptError`` (an API
function refused its arguments) and ``UnicodeDecodeError`` (the script produced a string that
is not UTF-8) are the script's faults (``SCRIPT_FAULTS``); anything else is a bug in mss.
"""
# -*- test-case-name: tests.services.test_sandbox -*-
from __future__ import annotations

from typing import Any, Callable

from lupa import lua54

LuaError = lua54.LuaError
LuaMemoryError = lua54.LuaMemoryError


class ScriptError(Exception):
    """A script called the ``mss`` API wrongly: the script's fault, not ours."""


SCRIPT_FAULTS = (LuaError, ScriptError, UnicodeDecodeError)

MAX_SUBJECT = 4096
"""Longest subject string accepted by string.find/match/gmatch/gsub inside a service."""

MAX_SOURCE = 256 * 1024
"""Largest service file accepted."""

BUDGET_MESSAGE = "instruction budget exceeded"

_REMOVED_GLOBALS = ("python", "debug", "io", "os", "package", "require", "load", "loadfile",
                    "dofile", "collectgarbage", "coroutine", "print", "warn", "xpcall")

# Runs once in the fresh runtime, with the full standard library still present. Returns the
# budget hook, the environment factory, the compiler and the `mss` table (to be completed by
# Python with its callbacks). Everything dangerous stays in upvalues the script cannot reach.
_PRELUDE = r"""
local MAX_SUBJECT, BUDGET_MESSAGE = ...
local sethook, load, error, type, select = debug.sethook, load, error, type, select
local rawget, setmetatable, getmetatable = rawget, setmetatable, getmetatable
local tostring, pairs = tostring, pairs

-- sanitise the real string library: it is also the __index of every string value
string.dump = nil
for _, name in pairs({"find", "match", "gmatch", "gsub"}) do
  local original = string[name]
  string[name] = function(s, ...)
    if type(s) == "string" and #s > MAX_SUBJECT then
      error("string." .. name .. ": subject longer than " .. MAX_SUBJECT .. " bytes", 2)
    end
    return original(s, ...)
  end
end

local budget_hook
budget_hook = function()
  sethook(budget_hook, "", 1)      -- fire on every instruction from now on: pcall cannot hide it
  error(BUDGET_MESSAGE, 0)
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

return budget_hook, compile, mss, safe_math
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
    """A Lua 5.4 runtime prepared for one service; ``call`` runs script code under budget."""

    def __init__(self, name: str, *, instruction_budget: int, memory_limit: int,
                 api: dict[str, Callable] | None = None,
                 random: Callable | None = None):
        self.name = name
        self.instruction_budget = instruction_budget
        self.runtime = lua54.LuaRuntime(
            register_eval=False, register_builtins=False, unpack_returned_tuples=True,
            max_memory=memory_limit, attribute_filter=_deny_attributes)
        lua_globals = self.runtime.globals()
        self._sethook = lua_globals.debug.sethook
        load = lua_globals.load
        prelude = load(_PRELUDE, "=prelude", "t")
        self._hook, self._compile, self.mss, math_table = prelude(MAX_SUBJECT, BUDGET_MESSAGE)
        load(_MSS_LUA, "=mss", "t")(self.mss)
        for name_ in _REMOVED_GLOBALS:
            lua_globals[name_] = None
        for key, function in (api or {}).items():
            self.mss[key] = function
        if random is not None:
            math_table["random"] = random
        self.table = self.runtime.table_from

    def compile(self, source: str) -> Any:
        """Compile text source (never bytecode) into a function running in a fresh env."""
        if len(source) > MAX_SOURCE:
            raise ScriptError(f"source is larger than {MAX_SOURCE} bytes")
        return self._compile(source, self.name)

    def call(self, function: Any, *args: Any) -> Any:
        """Call Lua ``function`` with the instruction budget armed; always disarm it."""
        self._sethook(self._hook, "", self.instruction_budget)
        try:
            return function(*args)
        finally:
            self._sethook()

    def to_lua(self, value: Any) -> Any:
        """A JSON-like Python value (from the store) as Lua values built in this runtime."""
        if isinstance(value, (dict, list, tuple)):
            return self.runtime.table_from(value, recursive=True)
        return value

    def memory_used(self) -> int:
        return self.runtime.get_memory_used()
