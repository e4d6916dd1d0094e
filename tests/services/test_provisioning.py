# -*- test-case-name: tests.services.test_provisioning -*-
"""mss.services.provisioning: checks of what the service commands write to the store."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.services import provisioning as p

from tests.services.fakes import MemoryServiceStore


class CheckTests(SynchronousTestCase):

    def test_prefixes(self):
        self.assertEqual(p.caller_prefix("Anonymous"), "anonymous")
        self.assertEqual(p.caller_prefix("+4930"), "+4930")
        self.assertEqual(p.called_prefix("*"), "*")
        for bad in ("", "12a", "anonymous*", "+", "1" * 33):
            self.assertRaises(ValueError, p.caller_prefix, bad)
        self.assertRaises(ValueError, p.called_prefix, "anonymous")

    def test_numbers(self):
        self.assertEqual((p.rate("0"), p.rate(100), p.level("99")), (0, 100, 99))
        for function, bad in ((p.rate, "101"), (p.rate, "x"), (p.level, -1), (p.level, None)):
            self.assertRaises(ValueError, function, bad)
        self.assertEqual(p.ring_time("30"), 30)
        self.assertRaises(ValueError, p.ring_time, "0")
        self.assertRaises(ValueError, p.ring_time, "nan")

    def test_forward_kinds(self):
        self.assertEqual(p.forward_kind("No-Answer"), "no_answer")
        self.assertRaises(ValueError, p.forward_kind, "sometimes")
        self.assertEqual(set(p.FORWARD_CODES), set(p.FORWARD_KINDS))

    def test_settings(self):
        self.assertEqual(p.setting("dnd", "reject_code", 480), 480)
        self.assertRaises(ValueError, p.setting, "dnd", "reject_code", "480")
        self.assertRaises(ValueError, p.setting, "blacklist", "reject_reason", "a\r\nb")
        self.assertRaises(ValueError, p.setting, "forwarding", "default_ring_time", 0)
        self.assertEqual(p.setting("custom", "anything", {"a": 1}), {"a": 1})


class ReloadRequestTests(SynchronousTestCase):

    def test_counter_and_result(self):
        store = MemoryServiceStore()
        self.assertEqual(p.request_reload(store), 1)
        self.assertEqual(p.request_reload(store), 2)
        self.assertIsNone(p.reload_result(store, 2))
        store.set_service_setting("_engine", "reload_result", {"request": 1})
        self.assertIsNone(p.reload_result(store, 2))
        store.set_service_setting("_engine", "reload_result", {"request": 2, "loaded": []})
        self.assertEqual(p.reload_result(store, 2)["loaded"], [])
