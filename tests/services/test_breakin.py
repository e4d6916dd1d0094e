# -*- test-case-name: tests.services.test_breakin -*-
"""lua/services/breakin.lua: operator break-in and the overstep protection."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.services.fakes import MemoryServiceStore, facts, standard_engine


class BreakInTests(SynchronousTestCase):

    def setUp(self):
        self.store = MemoryServiceStore()
        self.store.add_extension("1000", permissions={"break_in"})
        self.store.add_extension("1001")
        self.store.add_extension("1009", permissions={"overstep"})
        self.busy = {"1001", "1009"}
        self.engine = standard_engine(self.store, in_call=lambda ext: ext in self.busy)
        self.operator = facts(caller="1000", callee="*75*1001", caller_is_extension=True,
                              caller_permissions={"break_in"})

    def dial(self, code, who=None):
        return self.engine.feature_code(code, who or self.operator)

    def test_break_in(self):
        decision = self.dial("*75*1001")
        self.assertEqual((decision.action, decision.target, decision.service),
                         ("break_in", "1001", "breakin"))
        self.assertEqual(self.dial("*75*1001#").target, "1001")

    def test_overstep_protected(self):
        decision = self.dial("*75*1009")
        self.assertEqual((decision.action, decision.code, decision.reason),
                         ("reject", 403, "Protected extension"))

    def test_idle_target(self):
        self.busy.clear()
        self.assertEqual(self.dial("*75*1001").code, 480)

    def test_unknown_target(self):
        self.assertEqual(self.dial("*75*1005").code, 404)

    def test_without_right(self):
        user = facts(caller="1001", callee="*75*1009", caller_is_extension=True)
        self.assertEqual(self.dial("*75*1000", user).code, 403)

    def test_malformed(self):
        self.assertEqual(self.dial("*75*").code, 404)
        self.assertEqual(self.dial("*75*10a").code, 404)

    def test_without_call_core_probe(self):
        engine = standard_engine(self.store)
        self.assertEqual(engine.feature_code("*75*1001", self.operator).code, 480)
