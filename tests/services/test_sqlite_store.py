# -*- test-case-name: tests.services.test_sqlite_store -*-
"""The standard services running on the real SQLite store (mss.store.sqlite)."""
from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from mss.services.api import ENGINE_SERVICE, CalleeState
from mss.store.sqlite import SQLiteStore

from tests.services.fakes import facts, standard_engine, write_services


class SQLiteServicesTests(SynchronousTestCase):

    def setUp(self):
        path = os.path.join(self.mktemp(), "mss.sqlite")
        self.store = SQLiteStore(path)
        self.addCleanup(self.store.close)
        self.other = SQLiteStore(path)              # what mssctl would open
        self.addCleanup(self.other.close)
        self.store.add_extension("1001", "pw", "mss.local", permissions=["forward"],
                                 call_level=1)
        self.engine = standard_engine(self.store)

    def alice(self, dialled):
        ext = self.store.get_extension("1001")
        return facts(caller="1001", callee=dialled, caller_is_extension=True,
                     caller_permissions=ext.permissions, caller_level=ext.call_level)

    def test_forwarding_round_trip(self):
        self.assertEqual(self.engine.feature_code("*93*2000", self.alice("*93*2000")).action,
                         "feature")
        self.assertEqual(self.other.get_extension_data("forwarding", "1001"),
                         {"unconditional": "2000"})
        decision = self.engine.terminating(facts(caller="3", callee="1001"), CalleeState())
        self.assertEqual(decision.target, "2000")

    def test_other_connection_changes_seen_after_poll(self):
        self.other.add_row("blacklist", "blacklist",
                           {"caller": "*", "called": "0900", "rate": 100, "description": ""})
        self.other.add_row("call_levels", "prefixes", {"prefix": "00", "level": 3})
        self.engine.poll_store()
        self.assertEqual(self.engine.originating(self.alice("0900123")).service, "blacklist")
        self.assertEqual(self.engine.originating(self.alice("0044")).service, "call_levels")
        self.assertIsNone(self.engine.poll_store())          # nothing changed: nothing read

    def test_reload_request_from_other_connection(self):
        directory = self.mktemp()
        write_services(directory, {"a": "return {}"})
        self.engine.directory = directory
        self.other.set_service_setting(ENGINE_SERVICE, "reload_request", 1)
        report = self.engine.poll_store()
        self.assertEqual(report.loaded, ("a",))
        self.assertIn("blacklist", report.removed)
        result = self.other.get_service_settings(ENGINE_SERVICE)["reload_result"]
        self.assertEqual(result["request"], 1)

    def test_bad_extension_number_is_script_fault(self):
        directory = self.mktemp()
        write_services(directory, {"a": 'return {originating = function(c) '
                                        'mss.set_ext_data("abc", "k", 1) end}'})
        self.engine.directory = directory
        self.engine.reload()
        self.engine.originating(facts())
        self.assertIn("extension number", self.engine.service("a").last_error)
