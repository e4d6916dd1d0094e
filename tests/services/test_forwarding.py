# -*- test-case-name: tests.services.test_forwarding -*-
"""lua/services/forwarding.lua: call forwarding and its feature codes."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.services.api import CalleeState, Decision

from tests.services.fakes import MemoryServiceStore, facts, standard_engine


class ForwardingTests(SynchronousTestCase):

    def setUp(self):
        self.store = MemoryServiceStore()
        self.store.add_extension("1001", permissions={"forward"})
        self.store.add_extension("1002")
        self.engine = standard_engine(self.store, forward_limit=3)
        self.alice = facts(caller="1001", callee="*93*2000", caller_is_extension=True,
                           caller_permissions={"forward"})

    def dial(self, code, who=None):
        who = who or self.alice
        return self.engine.feature_code(code, who)

    def data(self, ext="1001"):
        return self.store.get_extension_data("forwarding", ext)

    def to_alice(self, state=CalleeState(), **kwargs):
        return self.engine.terminating(facts(caller="3000", callee="1001", **kwargs), state)

    def test_set_and_clear_each_kind(self):
        for code, kind in (("93", "unconditional"), ("90", "busy"), ("91", "unreachable"),
                           ("92", "no_answer")):
            decision = self.dial(f"*{code}*2000#")
            self.assertEqual((decision.action, decision.tone, decision.service),
                             ("feature", "confirm", "forwarding"), code)
            self.assertEqual(self.data()[kind], "2000")
            self.assertEqual(self.dial(f"*{code}#").action, "feature")
            self.assertNotIn(kind, self.data())
            self.dial(f"*{code}*2000")             # without the closing #
            self.assertEqual(self.data()[kind], "2000")
            self.dial(f"*{code}")
            self.assertNotIn(kind, self.data())

    def test_feature_needs_the_right(self):
        bob = facts(caller="1002", callee="*93*2000", caller_is_extension=True)
        self.assertEqual(self.dial("*93*2000", bob).code, 403)
        self.assertEqual(self.data("1002"), {})
        outsider = facts(caller="0301234", callee="*93*2000", direction="inbound")
        self.assertEqual(self.dial("*93*2000", outsider).code, 403)

    def test_bad_codes(self):
        self.assertEqual(self.dial("*93*abc").tone, "error")
        self.assertEqual(self.dial("*93*1001").tone, "error")       # to itself
        self.assertEqual(self.dial("*90*2000*30").tone, "error")    # ring time only for 92
        self.assertEqual(self.dial("*92*2000*9999").tone, "error")
        self.assertEqual(self.data(), {})

    def test_unconditional(self):
        self.dial("*93*2000")
        decision = self.to_alice()
        self.assertEqual((decision.action, decision.target, decision.reason),
                         ("redirect", "2000", "unconditional"))
        self.assertEqual((decision.diversion_reason, decision.history_info_cause),
                         ("unconditional", 302))

    def test_unreachable(self):
        self.dial("*91*2001")
        self.assertEqual(self.to_alice(), Decision())
        decision = self.to_alice(CalleeState(registered=False))
        self.assertEqual((decision.target, decision.reason, decision.diversion_reason),
                         ("2001", "unreachable", "unavailable"))

    def test_busy(self):
        self.dial("*90*2002")
        self.assertEqual(self.to_alice(), Decision())
        self.assertEqual(self.to_alice(CalleeState(busy=True)).target, "2002")
        decision = self.engine.busy(facts(caller="3000", callee="1001"))
        self.assertEqual((decision.target, decision.reason, decision.history_info_cause),
                         ("2002", "busy", 486))

    def test_no_answer_with_ring_time(self):
        self.dial("*92*2003")
        self.assertEqual(self.to_alice().ring_timeout, 20.0)
        self.store.set_service_setting("forwarding", "default_ring_time", 15)
        self.engine.poll_store()
        self.assertEqual(self.to_alice().ring_timeout, 15.0)
        self.dial("*92*2003*8#")
        self.assertEqual(self.to_alice().ring_timeout, 8.0)
        decision = self.engine.no_answer(facts(caller="3000", callee="1001"))
        self.assertEqual((decision.target, decision.reason, decision.diversion_reason),
                         ("2003", "no_answer", "no-answer"))
        self.dial("*92#")
        self.assertNotIn("ring_time", self.data())
        self.assertEqual(self.engine.no_answer(facts(caller="3000", callee="1001")), Decision())

    def test_right_revoked_stops_forwarding(self):
        self.dial("*93*2000")
        self.store.add_extension("1001")          # permission gone
        self.engine.poll_store()
        self.assertEqual(self.to_alice(), Decision())

    def test_loop_and_chain_limit(self):
        self.dial("*93*2000")
        self.assertEqual(self.to_alice(diversions=["2000"]), Decision())
        self.assertEqual(self.to_alice(diversions=["5", "6", "7"]), Decision())
        self.assertEqual(self.to_alice(diversions=["5", "6"]).target, "2000")

    def test_unknown_callee_untouched(self):
        decision = self.engine.terminating(facts(callee="1001"), CalleeState(exists=False))
        self.assertEqual(decision, Decision())

    def test_set_from_store_like_mssctl(self):
        self.store.set_extension_data("forwarding", "1001", "busy", "2100")
        self.engine.poll_store()
        self.assertEqual(self.engine.busy(facts(callee="1001")).target, "2100")
