# -*- test-case-name: tests.services.test_engine -*-
"""The service engine: isolation of faulty services, circuit breaker, hot reload, combining."""
from __future__ import annotations

import os

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from mss.services.api import ENGINE_SERVICE, CalleeState, Decision
from mss.services.engine import ACTIVE, DISABLED, ServiceEngine

from tests.services.fakes import MemoryServiceStore, facts, write_services

REJECTOR = """
return {originating = function(call) return mss.reject(403, "no " .. call.caller) end}
"""

BROKEN = {
    "error": 'return {originating = function(call) error("boom") end}',
    "loop": "return {originating = function(call) while true do end end}",
    "bomb": "return {originating = function(call) local t = {} "
            "for i = 1, 1e8 do t[i] = string.rep('x', 64) .. i end end}",
    "escape": "return {originating = function(call) return os.execute('id') end}",
    "python": "return {originating = function(call) return python.eval('1') end}",
    "io": "return {originating = function(call) return io.open('/etc/passwd'):read('a') end}",
    "require": "return {originating = function(call) return require('os') end}",
    "load": "return {originating = function(call) return load('return 1')() end}",
    "dump": "return {originating = function(call) "
            "return string.dump(function() end) end}",
    "garbage": "return {originating = function(call) return 42 end}",
    "badcode": "return {originating = function(call) return mss.reject(200, 'OK') end}",
    "badapi": "return {originating = function(call) return mss.ext_data({}, 'x') end}",
    "trap": "return {originating = function(call) return setmetatable({}, "
            "{__index = function() while true do end end}) end}",
}


class EngineCase(SynchronousTestCase):

    def setUp(self):
        self.store = MemoryServiceStore()
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def engine(self, files: dict, **kwargs) -> ServiceEngine:
        write_services(self.directory, files)
        kwargs.setdefault("instruction_budget", 50000)
        kwargs.setdefault("memory_limit", 2 * 1024 * 1024)
        kwargs.setdefault("seed", 1)
        engine = ServiceEngine(self.store, self.directory, **kwargs)
        report = engine.reload()
        self.report = report
        return engine

    def logged(self, text: str) -> list[dict]:
        from twisted.logger import formatEvent
        return [e for e in self.events if text in formatEvent(e)]


class IsolationTests(EngineCase):

    def test_each_broken_service_is_a_counted_fault(self):
        for name, source in BROKEN.items():
            engine = self.engine({"svc": source})
            decision = engine.originating(facts(call_id=f"id-{name}"))
            self.assertEqual(decision, Decision(), name)
            service = engine.service("svc")
            self.assertEqual((service.faults, service.consecutive_failures), (1, 1), name)
            self.assertTrue(self.logged(f"Service svc failed in originating for call id-{name}"),
                            name)

    def test_broken_service_does_not_harm_another(self):
        files = dict(BROKEN)
        files["zz_reject"] = REJECTOR
        engine = self.engine(files)
        self.assertEqual(len(engine.services), len(files))
        decision = engine.originating(facts(caller="555"))
        self.assertEqual((decision.action, decision.code, decision.reason, decision.service),
                         ("reject", 403, "no 555", "zz_reject"))
        for name in BROKEN:
            self.assertEqual(engine.service(name).faults, 1, name)
        self.assertEqual(engine.service("zz_reject").faults, 0)

    def test_service_still_works_after_fault(self):
        source = """
        return {originating = function(call)
          if call.caller == "bad" then while true do end end
          return mss.reject(480, "fine")
        end}"""
        engine = self.engine({"svc": source})
        self.assertEqual(engine.originating(facts(caller="bad")), Decision())
        self.assertEqual(engine.originating(facts(caller="ok")).code, 480)
        self.assertEqual(engine.service("svc").consecutive_failures, 0)

    def test_state_survives_between_calls(self):
        source = """
        local n = 0
        return {originating = function(call) n = n + 1
          if n == 3 then return mss.reject(486, "third") end end}"""
        engine = self.engine({"svc": source})
        codes = [engine.originating(facts()).code for _ in range(3)]
        self.assertEqual(codes, [0, 0, 486])

    def test_bug_in_mss_logged_not_counted(self):
        self.store.list_rows = lambda service, table: 1 / 0
        engine = self.engine({"svc": "return {originating = function(c) mss.rows('t') end}"})
        self.assertEqual(engine.originating(facts()), Decision())
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(engine.service("svc").faults, 0)

    def test_api_call_limit(self):
        source = "return {originating = function(c) for i = 1, 5000 do mss.setting('x') end end}"
        engine = self.engine({"svc": source}, instruction_budget=10 ** 6)
        engine.originating(facts())
        self.assertIn("mss API calls", engine.service("svc").last_error)

    def test_bad_load_reports(self):
        self.engine({"a": "return 1", "b": "syntax error here", "c": "while true do end",
                     "d": "return {priority = 'high'}", "e": "return {features = {'93'}}",
                     "f": "\x1bLuaT\x00\x19\x93\r\n\x1a\n"})
        failed = dict(self.report.failed)
        self.assertEqual(sorted(failed), ["a", "b", "c", "d", "e", "f"])
        self.assertIn("binary chunk", failed["f"])
        self.assertIn("must return a table", failed["a"])
        self.assertIn("syntax error", failed["b"])
        self.assertIn("instruction budget", failed["c"])
        self.assertIn("priority", failed["d"])
        self.assertIn("feature prefix", failed["e"])

    def test_metatables_never_run_outside_the_budget(self):
        """Python reads scripts' tables with rawget: a looping __index cannot hang it."""
        trap = "setmetatable({}, {__index = function() while true do end end, " \
               "__len = function() while true do end end})"
        self.engine({"a": f"local t = {trap} t.originating = function() end return t",
                     "b": f"local f = {trap} f[1] = '*7' "
                          f"return {{features = f, feature = function() end}}"})
        self.assertEqual(self.report.failed, ())

    def test_hook_only_allows_its_decisions(self):
        source = "return {answered = function(c) return mss.reject(403) end, " \
                 "busy = function(c) return mss.continue({ring_timeout = 5}) end}"
        engine = self.engine({"svc": source})
        engine.answered(facts())
        engine.busy(facts())
        self.assertEqual(engine.service("svc").faults, 2)

    def test_unsafe_reason_refused(self):
        source = 'return {originating = function(c) return mss.reject(403, "x\\r\\nVia: evil") end}'
        engine = self.engine({"svc": source})
        self.assertEqual(engine.originating(facts()), Decision())
        self.assertEqual(engine.service("svc").faults, 1)


class CircuitBreakerTests(EngineCase):

    def test_disabled_after_max_failures_until_reload(self):
        engine = self.engine({"svc": BROKEN["error"], "zz_other": REJECTOR}, max_failures=3)
        for _ in range(3):
            engine.originating(facts())
        service = engine.service("svc")
        self.assertEqual(service.state, DISABLED)
        self.assertTrue(self.logged("Service svc disabled after 3 failures"))
        engine.originating(facts())
        self.assertEqual(service.faults, 3)          # not called any more
        self.assertEqual(engine.originating(facts()).service, "zz_other")
        published = self.store.get_service_settings(ENGINE_SERVICE)["status"]["services"]
        self.assertIn({"svc": DISABLED}, [{s["name"]: s["state"]} for s in published])
        report = engine.reload()
        self.assertIn("svc", report.loaded)
        self.assertEqual(engine.service("svc").state, ACTIVE)
        self.assertEqual(engine.service("svc").faults, 0)

    def test_success_resets_the_count(self):
        source = """
        local n = 0
        return {originating = function(c) n = n + 1
          if n % 2 == 0 then error("every other") end end}"""
        engine = self.engine({"svc": source}, max_failures=2)
        for _ in range(10):
            engine.originating(facts())
        self.assertEqual(engine.service("svc").state, ACTIVE)
        self.assertEqual(engine.service("svc").faults, 5)

    def test_disabled_feature_service_answers_503(self):
        source = 'return {features = {"*5"}, feature = function(c, d) error("x") end}'
        engine = self.engine({"svc": source}, max_failures=1)
        self.assertEqual(engine.feature_code("*51", facts()).code, 503)
        self.assertEqual(engine.service("svc").state, DISABLED)
        self.assertEqual(engine.feature_code("*51", facts()).code, 503)


class ReloadTests(EngineCase):

    def test_bad_new_version_keeps_the_old(self):
        engine = self.engine({"svc": REJECTOR})
        write_services(self.directory, {"svc": "return {originating = "})
        report = engine.reload()
        self.assertEqual(report.loaded, ())
        self.assertEqual(dict(report.failed)["svc"][:5], "svc:1")
        self.assertTrue(self.logged("Service svc not loaded (previous version kept)"))
        self.assertEqual(engine.originating(facts(caller="7")).reason, "no 7")

    def test_changed_new_and_removed(self):
        engine = self.engine({"a": REJECTOR, "b": REJECTOR})
        old_a, old_b = engine.service("a"), engine.service("b")
        write_services(self.directory, {
            "a": 'return {originating = function(c) return mss.reject(404, "v2") end}',
            "b": None, "c": REJECTOR})
        report = engine.reload()
        self.assertEqual((report.loaded, report.removed), (("a", "c"), ("b",)))
        self.assertIsNot(engine.service("a"), old_a)
        self.assertIsNone(engine.service("b"))
        self.assertEqual(engine.originating(facts()).reason, "v2")
        self.assertIsNotNone(old_b)

    def test_unchanged_kept(self):
        engine = self.engine({"a": REJECTOR})
        service = engine.service("a")
        report = engine.reload()
        self.assertEqual(report.unchanged, ("a",))
        self.assertIs(engine.service("a"), service)

    def test_missing_directory_keeps_everything(self):
        engine = self.engine({"a": REJECTOR})
        engine.directory = os.path.join(self.directory, "nope")
        report = engine.reload()
        self.assertFalse(report.ok)
        self.assertEqual(engine.services, ("a",))

    def test_reload_requested_through_the_store(self):
        engine = self.engine({"a": REJECTOR})
        self.assertIsNone(engine.poll_store())
        write_services(self.directory, {"b": REJECTOR})
        self.store.set_service_setting(ENGINE_SERVICE, "reload_request", 1)
        report = engine.poll_store()
        self.assertEqual(report.loaded, ("b",))
        result = self.store.get_service_settings(ENGINE_SERVICE)["reload_result"]
        self.assertEqual((result["request"], result["loaded"]), (1, ["b"]))
        self.assertIsNone(engine.poll_store())

    def test_stale_request_ignored_at_start(self):
        self.store.set_service_setting(ENGINE_SERVICE, "reload_request", 4)
        engine = self.engine({"a": REJECTOR})
        self.assertIsNone(engine.poll_store())


class CombineTests(EngineCase):

    def test_priority_then_file_name(self):
        engine = self.engine({
            "a": 'return {priority = 50, originating = function(c) '
                 'return mss.reject(401, "a") end}',
            "b": 'return {priority = 10, originating = function(c) '
                 'return mss.reject(402, "b") end}',
            "c": 'return {priority = 10, originating = function(c) '
                 'return mss.reject(403, "c") end}'})
        self.assertEqual(engine.services, ("b", "c", "a"))
        self.assertEqual(engine.originating(facts()).service, "b")

    def test_caller_changes_accumulate(self):
        engine = self.engine({
            "a": 'return {originating = function(c) return mss.set_caller("100", "Front") end}',
            "b": 'return {originating = function(c) '
                 'return mss.continue({caller_display = "Sales"}) end}',
            "c": 'return {originating = function(c) return mss.reject(486, "x") end}'})
        decision = engine.originating(facts())
        self.assertEqual((decision.action, decision.caller, decision.caller_display),
                         ("reject", "100", "Sales"))

    def test_continue_only_result(self):
        engine = self.engine({
            "a": 'return {terminating = function(c, s) '
                 'return mss.continue({ring_timeout = 25}) end}',
            "b": 'return {terminating = function(c, s) '
                 'return mss.continue({ring_timeout = 12}) end}'})
        decision = engine.terminating(facts(), CalleeState())
        self.assertEqual((decision.action, decision.ring_timeout), ("continue", 12.0))

    def test_callee_state_and_facts_visible(self):
        source = """
        return {terminating = function(c, s)
          local d = table.concat({c.id, c.caller, c.callee, c.direction, c.trunk,
            c.headers["x-tag"], tostring(s.registered), tostring(s.busy),
            tostring(c.caller_permissions.forward), c.diversions[1]}, "|")
          return mss.reject(480, d)
        end}"""
        engine = self.engine({"a": source})
        decision = engine.terminating(
            facts(direction="inbound", trunk="carrier", headers={"X-Tag": "v"},
                  caller_permissions={"forward"}, diversions=["1000"]),
            CalleeState(registered=False, busy=True))
        self.assertEqual(decision.reason,
                         "call-1|1001|1002|inbound|carrier|v|false|true|true|1000")

    def test_redirect_loop_and_limit_refused(self):
        source = 'return {busy = function(c) return mss.redirect("2000", "busy") end}'
        engine = self.engine({"a": source}, forward_limit=2)
        self.assertEqual(engine.busy(facts()).target, "2000")
        self.assertEqual(engine.busy(facts(callee="2000")), Decision())
        self.assertEqual(engine.busy(facts(diversions=["2000"])), Decision())
        self.assertEqual(engine.busy(facts(diversions=["3000"])).target, "2000")
        self.assertEqual(engine.busy(facts(diversions=["3000", "4000"])), Decision())
        self.assertTrue(self.logged("refused: forwarding loop"))

    def test_feature_routing_longest_prefix(self):
        engine = self.engine({
            "a": 'return {features = {"*7"}, feature = function(c, d) '
                 'return mss.answer("info") end}',
            "b": 'return {features = {"*75*"}, feature = function(c, d) '
                 'return mss.break_in(d:sub(5)) end}',
            "c": 'return {features = {"*7"}, feature = function(c, d) '
                 'return mss.answer("error") end}'})
        self.assertEqual(engine.claims("*7"), "a")
        self.assertEqual(engine.feature_code("*71", facts()).tone, "info")
        decision = engine.feature_code("*75*1002", facts())
        self.assertEqual((decision.action, decision.target), ("break_in", "1002"))
        self.assertIsNone(engine.feature_code("1002", facts()))
        self.assertTrue(self.logged("already claimed by a"))

    def test_unrecognised_feature_is_404(self):
        engine = self.engine({"a": 'return {features = {"*7"}, feature = function() end}'})
        self.assertEqual(engine.feature_code("*7", facts()).code, 404)

    def test_random_is_seeded(self):
        source = 'return {originating = function(c) ' \
                 'return mss.reject(400 + mss.random(99), "r") end}'
        first = [self.engine({"a": source}, seed=7).originating(facts()).code
                 for _ in range(2)]
        self.assertEqual(first[0], first[1])

    def test_ended_and_answered_get_facts(self):
        source = """
        return {answered = function(c) mss.set_ext_data(c.callee, "answered", c.id) end,
                ended = function(c, cause) mss.set_ext_data(c.callee, "cause", cause) end}"""
        engine = self.engine({"log": source})
        engine.answered(facts(call_id="x1"))
        engine.ended(facts(call_id="x1"), "normal")
        self.assertEqual(self.store.get_extension_data("log", "1002"),
                         {"answered": "x1", "cause": "normal"})


class CacheTests(EngineCase):

    def test_reads_cached_until_poll(self):
        source = 'return {originating = function(c) ' \
                 'if mss.setting("block") then return mss.reject(403) end end}'
        engine = self.engine({"a": source})
        self.assertEqual(engine.originating(facts()), Decision())
        reads = self.store.reads
        self.store.set_service_setting("a", "block", True)
        self.assertEqual(engine.originating(facts()), Decision())
        self.assertEqual(self.store.reads, reads)
        engine.poll_store()
        self.assertEqual(engine.originating(facts()).code, 403)

    def test_own_writes_seen_at_once(self):
        source = """return {features = {"*1"},
          feature = function(c, d) mss.set_ext_data(c.caller, "v", d) return mss.feature_done() end,
          originating = function(c) return mss.reject(480, mss.ext_data(c.caller, "v") or "none") end}"""
        engine = self.engine({"a": source})
        self.assertEqual(engine.originating(facts()).reason, "none")
        engine.feature_code("*12", facts())
        self.assertEqual(engine.originating(facts()).reason, "*12")

    def test_from_config(self):
        from mss.config import from_dict
        write_services(self.directory, {"a": REJECTOR})
        config = from_dict({"services": {"path": self.directory, "max_failures": 2}})
        engine = ServiceEngine.from_config(config, self.store)
        self.assertEqual((engine.services, engine.max_failures), (("a",), 2))


class IndexTests(EngineCase):

    def test_index_one_and_two_fields(self):
        for row in ({"a": "x", "b": "1"}, {"a": "x", "b": "2"}, {"a": "y", "b": "1"},
                    {"a": "x", "b": "1", "n": "dup"}, {"b": "no a"}, {"a": True, "b": "3"}):
            self.store.add_row("svc", "t", row)
        source = """
        return {originating = function(c)
          local one, two = mss.index("t", "a"), mss.index("t", "a", "b")
          local out = {#one.x, #one.y, one.x[1].id, tostring(two.x["1"].n), two.y["1"].id,
                       tostring(two.z), tostring(mss.index("t", "a") == one),
                       tostring(#mss.rows("t"))}
          return mss.reject(480, table.concat(out, ","))
        end}"""
        engine = self.engine({"svc": source})
        self.assertEqual(engine.originating(facts()).reason, "3,1,1,nil,3,nil,true,6")

    def test_big_table_costs_no_instructions(self):
        for i in range(20000):
            self.store.add_row("svc", "t", {"k": str(i)})
        source = 'return {originating = function(c) ' \
                 'return mss.reject(480, mss.index("t", "k")["19999"][1].k) end}'
        engine = self.engine({"svc": source}, instruction_budget=1000)
        self.assertEqual(engine.originating(facts()).reason, "19999")


MEMORY_HOG = r'''
hog = {}
local function fill()
  pcall(function() while true do hog[#hog + 1] = string.rep("x", 512) .. #hog end end)
end
return {
  features = {"*1"},
  originating = function(call)
    fill()
    local results = {}
    for _, f in ipairs({function() return mss.setting("k") end,
                        function() return mss.rows("t") end,
                        function() return mss.index("t", "k") end,
                        function() return mss.extension("1001") end,
                        function() return mss.ext_data("1001", "k") end,
                        function() return mss.set_ext_data("1001", "k", "v") end,
                        function() return mss.log("info", "at the cap") end,
                        function() return mss.random(10) end,
                        function() error({}) end,
                        function() error(string.rep("e", 100)) end}) do
      results[#results + 1] = tostring((pcall(f)))
    end
    return mss.reject(480, "full")
  end,
  feature = function(call, dialled) fill() return mss.feature_done() end,
}
'''

_HOG_RUNNER = r'''
import sys
sys.path[:0] = [{root!r}]
from tests.services.fakes import MemoryServiceStore, facts, write_services
from mss.services.engine import ServiceEngine
store = MemoryServiceStore()
store.add_extension("1001")
for i in range(3000):
    store.add_row("hog", "t", {{"k": str(i), "pad": "p" * 100}})
write_services({directory!r}, {{"hog": {source!r}}})
engine = ServiceEngine(store, {directory!r}, memory_limit=512 * 1024,
                       instruction_budget=10 ** 7, max_failures=1000)
assert engine.reload().ok
for i in range(20):
    engine.originating(facts(call_id="c%d" % i, caller="%d" % (5000 + i)))
    engine.feature_code("*1%d" % i, facts(call_id="f%d" % i))
    if i % 5 == 0:
        engine.invalidate_caches()
print("survived", engine.service("hog").faults)
'''


class MemoryCapTests(EngineCase):
    """A service at its memory cap must never bring the process down.

    Lua raising "not enough memory" outside a protected call aborts the process (PANIC), so
    this runs in a child process: a regression shows as a failed test, not a dead test run.
    """

    def test_service_at_the_cap_cannot_crash_the_switch(self):
        import subprocess
        import sys
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = _HOG_RUNNER.format(root=root, directory=self.directory, source=MEMORY_HOG)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertIn("survived", done.stdout)

    def test_cap_holds_and_service_recovers(self):
        source = """
        local hog = {}
        return {originating = function(call)
          if call.caller == "fill" then
            while true do hog[#hog + 1] = string.rep("x", 512) .. #hog end
          elseif call.caller == "free" then hog = {} end
          return mss.reject(480, tostring(#hog))
        end}"""
        engine = self.engine({"svc": source}, memory_limit=256 * 1024,
                             instruction_budget=10 ** 7)
        self.assertEqual(engine.originating(facts(caller="fill")), Decision())
        self.assertIn("not enough memory", engine.service("svc").last_error)
        self.assertLess(engine.service("svc").sandbox.memory_used(), 300 * 1024)
        self.assertEqual(engine.originating(facts(caller="free")).reason, "0")


class CacheBoundTests(EngineCase):

    def test_cache_does_not_grow_without_bound(self):
        from mss.services.engine import MAX_CACHED
        source = """return {originating = function(c)
          for i = 1, 500 do mss.extension(tostring(c.time * 1000 + i)) end end}"""
        engine = self.engine({"svc": source})
        api = engine.service("svc").api
        for n in range(20):
            engine.originating(facts(time=float(n)))
            self.assertLessEqual(len(api.ext_cache), MAX_CACHED + 1)
        self.assertEqual(engine.service("svc").faults, 0)
