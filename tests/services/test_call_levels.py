# -*- test-case-name: tests.services.test_call_levels -*-
"""lua/services/call_levels.lua: dialled prefixes that require a call level."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.services.fakes import MemoryServiceStore, facts, standard_engine


class CallLevelTests(SynchronousTestCase):

    def setUp(self):
        self.store = MemoryServiceStore()
        for prefix, level in (("00", 3), ("0900", 5), ("0", 1), ("00800", 0)):
            self.store.add_row("call_levels", "prefixes", {"prefix": prefix, "level": level})
        self.engine = standard_engine(self.store)

    def code(self, level, callee, **kwargs):
        kwargs.setdefault("caller_is_extension", True)
        return self.engine.originating(facts(caller="1001", callee=callee, caller_level=level,
                                             **kwargs)).code

    def test_levels(self):
        self.assertEqual(self.code(0, "1002"), 0)              # no row: level 0
        self.assertEqual(self.code(0, "0301234"), 403)         # "0" needs 1
        self.assertEqual(self.code(1, "0301234"), 0)
        self.assertEqual(self.code(1, "0044123"), 403)         # international needs 3
        self.assertEqual(self.code(3, "0044123"), 0)
        self.assertEqual(self.code(3, "0900123"), 403)         # premium needs 5
        self.assertEqual(self.code(0, "00800123"), 0)          # longest prefix: toll free

    def test_reason_and_service(self):
        decision = self.engine.originating(facts(caller="1001", callee="0044",
                                                 caller_is_extension=True))
        self.assertEqual((decision.reason, decision.service), ("Call level too low", "call_levels"))

    def test_outside_callers_not_checked(self):
        self.assertEqual(self.code(0, "0044123", caller_is_extension=False,
                                   direction="inbound"), 0)

    def test_default_row(self):
        self.store.add_row("call_levels", "prefixes", {"prefix": "*", "level": 2})
        self.engine.poll_store()
        self.assertEqual(self.code(1, "1002"), 403)
        self.assertEqual(self.code(2, "1002"), 0)

    def test_forwarded_leg_uses_the_forwarding_extensions_level(self):
        self.store.add_extension("1001", call_level=0)
        self.store.add_extension("1003", call_level=3)
        outside = facts(caller="0301234", callee="1001", direction="inbound")
        self.assertEqual(self.engine.originating(outside.diverted("0044123")).code, 403)
        outside = facts(caller="0301234", callee="1003", direction="inbound")
        onward = outside.diverted("0044123")
        self.assertEqual((onward.diversions, onward.diverted_by), (("1003",), "1003"))
        self.assertEqual(self.engine.originating(onward).code, 0)
