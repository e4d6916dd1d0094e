# -*- test-case-name: tests.services.test_dnd -*-
"""lua/services/dnd.lua: do not disturb."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.services.api import CalleeState, Decision

from tests.services.fakes import MemoryServiceStore, facts, standard_engine


class DndTests(SynchronousTestCase):

    def setUp(self):
        self.store = MemoryServiceStore()
        self.store.add_extension("1001", permissions={"forward"})
        self.engine = standard_engine(self.store)
        self.alice = facts(caller="1001", callee="*78", caller_is_extension=True,
                           caller_permissions={"forward"})

    def to_alice(self):
        return self.engine.terminating(facts(caller="3000", callee="1001"), CalleeState())

    def test_feature_codes(self):
        self.assertEqual(self.to_alice(), Decision())
        decision = self.engine.feature_code("*78", self.alice)
        self.assertEqual((decision.action, decision.tone, decision.service),
                         ("feature", "confirm", "dnd"))
        decision = self.to_alice()
        self.assertEqual((decision.action, decision.code, decision.reason, decision.service),
                         ("reject", 486, "Do Not Disturb", "dnd"))
        self.engine.feature_code("*79#", self.alice)
        self.assertEqual(self.to_alice(), Decision())

    def test_outsider_cannot_set(self):
        outsider = facts(caller="0301234", callee="*78", direction="inbound")
        self.assertEqual(self.engine.feature_code("*78", outsider).code, 403)

    def test_unconditional_forward_wins(self):
        self.engine.feature_code("*78", self.alice)
        self.engine.feature_code("*93*2000", self.alice)
        self.assertEqual(self.to_alice().target, "2000")

    def test_set_through_store_and_code(self):
        self.store.set_extension_data("dnd", "1001", "on", True)
        self.store.set_service_setting("dnd", "reject_code", 480)
        self.engine.poll_store()
        self.assertEqual(self.to_alice().code, 480)
