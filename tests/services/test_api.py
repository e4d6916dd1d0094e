# -*- test-case-name: tests.services.test_api -*-
"""mss.services.api: the call facts and decisions exchanged with the call core."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.services.api import (
    MAX_FACT, MAX_HEADER, CallFacts, CalleeState, Decision, finite_seconds, is_anonymous,
)


class AnonymousTests(SynchronousTestCase):

    def test_rule(self):
        self.assertTrue(is_anonymous(""))
        self.assertTrue(is_anonymous(None))
        self.assertTrue(is_anonymous("Anonymous"))
        self.assertTrue(is_anonymous("1001", "id"))
        self.assertTrue(is_anonymous("1001", "header; id"))
        self.assertTrue(is_anonymous("1001", "user"))
        self.assertFalse(is_anonymous("1001", "none"))
        self.assertFalse(is_anonymous("1001"))


class FactsTests(SynchronousTestCase):

    def test_clipped_and_converted(self):
        f = CallFacts(call_id="x" * 1000, caller="1", callee="2",
                      headers={"X-Long": "v" * 5000, "P-Asserted-Identity": "<sip:1@x>"},
                      caller_permissions=["forward"], diversions=["9"])
        self.assertEqual(len(f.call_id), MAX_FACT)
        self.assertEqual(len(f.header("x-long")), MAX_HEADER)
        self.assertEqual(f.header("P-ASSERTED-IDENTITY"), "<sip:1@x>")
        self.assertIsNone(f.header("nope"))
        table = f.as_table()
        self.assertEqual(table["caller_permissions"], {"forward": True})
        self.assertEqual(table["diversions"], ["9"])
        self.assertEqual(table["headers"]["x-long"], "v" * MAX_HEADER)

    def test_direction_checked(self):
        self.assertRaises(ValueError, CallFacts, call_id="a", caller="1", callee="2",
                          direction="sideways")

    def test_callee_state(self):
        self.assertEqual(CalleeState(busy=True).as_table()["busy"], True)


class DecisionTests(SynchronousTestCase):

    def test_constructors_check(self):
        self.assertRaises(ValueError, Decision.reject, 200)
        self.assertRaises(ValueError, Decision.reject, True)
        self.assertRaises(ValueError, Decision.redirect, "sip:evil@x;lr")
        self.assertRaises(ValueError, Decision.redirect, "2000", "because")
        self.assertRaises(ValueError, Decision.answer, "symphony")
        self.assertRaises(ValueError, Decision.break_in, "")
        self.assertRaises(ValueError, finite_seconds, float("nan"))
        self.assertRaises(ValueError, finite_seconds, 0)
        self.assertEqual(finite_seconds(30), 30.0)

    def test_diversion_vocabulary(self):
        d = Decision.redirect("2000", "no_answer")
        self.assertEqual((d.diversion_reason, d.history_info_cause), ("no-answer", 408))
        self.assertIsNone(Decision.reject(403).diversion_reason)
