# -*- test-case-name: tests.services.test_sandbox -*-
"""The sandbox: what a service script can reach, and the CPU and memory limits."""
from __future__ import annotations

import time

from twisted.trial.unittest import SynchronousTestCase

from mss.services.sandbox import (
    BUDGET_MESSAGE, MAX_SUBJECT, LuaError, LuaMemoryError, Sandbox, ScriptError,
)


def sandbox(**kwargs) -> Sandbox:
    kwargs.setdefault("instruction_budget", 100000)
    kwargs.setdefault("memory_limit", 4 * 1024 * 1024)
    return Sandbox("test", **kwargs)


def run(box: Sandbox, source: str, *args):
    return box.call(box.compile(source), *args)


class ReachTests(SynchronousTestCase):
    """Nothing outside the whitelist is reachable."""

    def test_dangerous_globals_absent(self):
        box = sandbox()
        names = ["os", "io", "python", "debug", "package", "require", "load", "loadfile",
                 "dofile", "collectgarbage", "coroutine", "_G", "print", "loadstring"]
        source = "local out = {} for _, n in ipairs({...}) do out[#out + 1] = type(_ENV[n]) end " \
                 "return table.concat(out, ',')"
        self.assertEqual(run(box, source, *names), ",".join(["nil"] * len(names)))

    def test_os_execute_is_a_fault(self):
        box = sandbox()
        with self.assertRaises(LuaError) as caught:
            run(box, "return os.execute('touch /tmp/pwned')")
        self.assertIn("os", str(caught.exception))

    def test_runtime_globals_removed(self):
        """Even the runtime's own global table lost the dangerous names."""
        lua_globals = sandbox().runtime.globals()
        for name in ("python", "debug", "io", "os", "package", "require", "load", "loadfile",
                     "dofile", "collectgarbage"):
            self.assertIsNone(lua_globals[name], name)

    def test_string_dump_removed_everywhere(self):
        box = sandbox()
        self.assertEqual(run(box, "return type(string.dump)"), "nil")
        self.assertIsNone(run(box, "return getmetatable('')"))
        self.assertEqual(run(box, "return type(('').dump)"), "nil")

    def test_binary_chunk_refused(self):
        """Bytecode cannot be loaded: there is no load, and compile() is text-only."""
        box = sandbox()
        # a Lua 5.4 binary chunk starts with ESC "Lua" 0x54
        with self.assertRaises(LuaError) as caught:
            box.compile("\x1bLuaT\x00\x19\x93\r\n\x1a\n")
        self.assertIn("binary", str(caught.exception))

    def test_python_attributes_refused(self):
        box = sandbox(api={"f": lambda *a: 1})
        for expression in ("mss.f.__globals__", "mss.f['__globals__']", "mss.f.__class__",
                           "getmetatable(mss.f)"):
            source = f"local ok, v = pcall(function() return {expression} end) " \
                     f"return ok and v ~= nil"
            self.assertFalse(run(box, source), expression)

    def test_gc_metamethod_refused(self):
        """Finalizers run with hooks off: a looping __gc would hang the switch."""
        box = sandbox()
        with self.assertRaises(LuaError) as caught:
            run(box, "setmetatable({}, {__gc = function() while true do end end})")
        self.assertIn("__gc", str(caught.exception))

    def test_environment_metatable_locked(self):
        self.assertFalse(run(sandbox(), "return getmetatable(_ENV)"))

    def test_safe_libraries_present(self):
        box = sandbox()
        self.assertEqual(run(box, "return string.upper('a') .. table.concat({1, 2}, '-') .. "
                                  "math.max(1, 3) .. utf8.char(233)"), "A1-23é")

    def test_math_random_is_the_engines(self):
        box = sandbox(api={"random": lambda *a: 7})
        self.assertEqual(run(box, "return math.random(10)"), 7)
        self.assertEqual(run(box, "return type(math.randomseed)"), "nil")

    def test_script_error_from_api(self):
        def refuse(*args):
            raise ScriptError("bad argument")
        box = sandbox(api={"f": refuse})
        with self.assertRaises(LuaError) as caught:
            run(box, "return mss.f(1)")
        self.assertIn("mss.f: bad argument", str(caught.exception))

    def test_invalid_utf8_result_is_a_script_fault(self):
        with self.assertRaises(UnicodeDecodeError):
            run(sandbox(), "return '\\255'")


class LimitTests(SynchronousTestCase):

    def test_endless_loop_stopped(self):
        box = sandbox(instruction_budget=50000)
        started = time.perf_counter()
        with self.assertRaises(LuaError) as caught:
            run(box, "while true do end")
        self.assertIn(BUDGET_MESSAGE, str(caught.exception))
        self.assertLess(time.perf_counter() - started, 2.0)

    def test_pcall_cannot_swallow_the_budget(self):
        box = sandbox(instruction_budget=50000)
        with self.assertRaises(LuaError) as caught:
            run(box, "while true do pcall(function() while true do end end) end")
        self.assertIn(BUDGET_MESSAGE, str(caught.exception))

    def test_budget_cleared_after_call(self):
        """The hook is removed after each call: the runtime works normally afterwards."""
        box = sandbox(instruction_budget=50000)
        self.assertRaises(LuaError, run, box, "while true do end")
        self.assertEqual(run(box, "local n = 0 for i = 1, 1000 do n = n + i end return n"),
                         500500)
        self.assertEqual(box.runtime.eval("1 + 1"), 2)

    def test_budget_is_per_call(self):
        box = sandbox(instruction_budget=50000)
        step = box.compile("return function() local n = 0 for i = 1, 2000 do n = n + i end "
                           "return n end")
        function = box.call(step)
        for _ in range(100):          # far more than one budget in total
            self.assertEqual(box.call(function), 2001000)

    def test_memory_bomb_stopped(self):
        box = sandbox(memory_limit=2 * 1024 * 1024, instruction_budget=10 ** 9)
        with self.assertRaises(LuaMemoryError):
            run(box, "local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 64) .. i end")
        # the garbage is collected and the runtime goes on
        self.assertEqual(run(box, "return #string.rep('y', 1000)"), 1000)

    def test_string_rep_bomb_stopped(self):
        box = sandbox(memory_limit=2 * 1024 * 1024)
        with self.assertRaises(LuaMemoryError):
            run(box, "return #string.rep('x', 1e9)")

    def test_long_subject_refused_in_patterns(self):
        box = sandbox()
        for function in ("find", "match", "gmatch", "gsub"):
            source = f"local s = string.rep('a', {MAX_SUBJECT + 1}) " \
                     f"return s:{function}('(a*)*b', 'x')"
            with self.assertRaises(LuaError) as caught:
                run(box, source)
            self.assertIn("subject longer", str(caught.exception), function)
        self.assertEqual(run(box, "return select(2, ('abc'):find('b'))"), 2)

    def test_costly_pattern_refused(self):
        """Backtracking runs in C, out of the hook's reach: cubic patterns are refused."""
        box = sandbox()
        started = time.perf_counter()
        for source in ("return string.rep('a', 1024):find('a*a*b')",
                       "return string.rep('a', 200):match('(.-)(.-)(.-)x')",
                       "for _ in string.rep('a', 1024):gmatch('a*a*') do end"):
            with self.assertRaises(LuaError) as caught:
                run(box, source)
            self.assertIn("pattern too costly", str(caught.exception), source)
        self.assertLess(time.perf_counter() - started, 1.0)

    def test_usual_patterns_allowed(self):
        box = sandbox()
        self.assertEqual(run(box, "return ('*93*2000#'):match('^%*(9[0-3])%*(%+?%d+)#?$')"),
                         "93")
        self.assertEqual(run(box, "return (string.rep('x', 900) .. ';tag=abc'):match("
                                  "'tag=([^;]+)')"), "abc")
        self.assertEqual(run(box, "return (string.rep('a', 4000)):find('b', 1, true)"), None)
        self.assertEqual(run(box, "return select(2, ('a.b.c'):gsub('%.', '-'))"), 2)

    def test_pattern_work_is_budgeted_per_call(self):
        box = sandbox(instruction_budget=10 ** 7)
        source = "local s = string.rep('a', 1000) .. 'b' " \
                 "for i = 1, 100000 do s:find('a-b') end"
        started = time.perf_counter()
        with self.assertRaises(LuaError) as caught:
            run(box, source)
        self.assertIn("pattern too costly", str(caught.exception))
        self.assertLess(time.perf_counter() - started, 1.0)
        self.assertEqual(run(box, "return select(2, ('ab'):find('a-b'))"), 2)   # reset

    def test_cpu_time_limit_bounds_work_in_c(self):
        """Few instructions, much C work (copying a big string): the time limit stops it."""
        box = sandbox(instruction_budget=10 ** 9, memory_limit=64 * 1024 * 1024,
                      time_limit=0.05)
        started = time.perf_counter()
        with self.assertRaises(LuaError) as caught:
            run(box, "local s = string.rep('a', 2 ^ 20) for i = 1, 1e7 do local t = s .. i end")
        self.assertIn("CPU time limit exceeded", str(caught.exception))
        self.assertLess(time.perf_counter() - started, 2.0)

    def test_deep_recursion_is_a_fault(self):
        box = sandbox(instruction_budget=10 ** 7)
        with self.assertRaises(LuaError):
            run(box, "local function f(n) return 1 + f(n + 1) end return f(1)")

    def test_source_size_capped(self):
        with self.assertRaises(ScriptError):
            sandbox().compile("-- " + "x" * (256 * 1024 + 1))
