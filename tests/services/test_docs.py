# -*- test-case-name: tests.services.test_docs -*-
"""The hook examples of docs/lua-api.md load and do what the comments say."""
from __future__ import annotations

import os
import time

from twisted.trial.unittest import SynchronousTestCase

from mss.services.api import CalleeState
from mss.services.engine import ServiceEngine

from tests.services.fakes import MemoryServiceStore, facts, write_services

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "lua-api.md")


def examples() -> str:
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    start = text.index("```lua\n", text.index("### Examples, one per hook")) + len("```lua\n")
    return text[start:text.index("```", start)]


class DocExampleTests(SynchronousTestCase):

    def setUp(self):
        self.store = MemoryServiceStore()
        directory = write_services(self.mktemp(), {"example": "return {\n" + examples() + "}"})
        self.engine = ServiceEngine(self.store, directory, seed=1)
        report = self.engine.reload()
        self.assertEqual(report.failed, ())

    def test_every_hook(self):
        night = time.mktime((2026, 1, 5, 23, 30, 0, 0, 0, -1))
        day = time.mktime((2026, 1, 5, 12, 0, 0, 0, 0, -1))
        self.assertEqual(self.engine.originating(facts(callee="0900123", time=night)).code, 403)
        self.assertEqual(self.engine.originating(facts(callee="0900123", time=day)).action,
                         "continue")
        decision = self.engine.terminating(facts(callee="100", caller_display="Bob"),
                                           CalleeState())
        self.assertEqual((decision.caller_display, decision.ring_timeout), ("ACME: Bob", 15.0))
        self.assertEqual(self.engine.busy(facts()).target, "100")
        self.store.set_extension_data("example", "1002", "voicemail", "8000")
        self.engine.poll_store()
        self.assertEqual(self.engine.no_answer(facts()).target, "8000")
        self.engine.answered(facts())
        self.engine.answered(facts())
        self.assertEqual(self.store.get_extension_data("example", "1002")["answered"], 2)
        self.engine.ended(facts(), "normal")
        self.assertEqual(self.engine.feature_code("*78", facts()).action, "feature")
        self.assertIs(self.store.get_extension_data("example", "1001")["on"], True)
        self.assertEqual(self.engine.service("example").faults, 0)
