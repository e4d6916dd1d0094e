# -*- test-case-name: tests.services.test_blacklist -*-
"""lua/services/blacklist.lua: the system black and white list."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.services.fakes import MemoryServiceStore, facts, standard_engine


class BlacklistTests(SynchronousTestCase):

    def setUp(self):
        self.store = MemoryServiceStore()
        self.engine = standard_engine(self.store)

    def black(self, caller, called, rate=100, description=""):
        row = self.store.add_row("blacklist", "blacklist", {
            "caller": caller, "called": called, "rate": rate, "description": description})
        self.engine.poll_store()
        return row

    def white(self, caller, called):
        self.store.add_row("blacklist", "whitelist", {"caller": caller, "called": called})
        self.engine.poll_store()

    def code(self, caller, callee, **kwargs):
        return self.engine.originating(facts(caller=caller, callee=callee, **kwargs)).code

    def test_no_rows_no_effect(self):
        self.assertEqual(self.code("0900123", "1002"), 0)

    def test_caller_prefix(self):
        self.black("0900", "*")
        decision = self.engine.originating(facts(caller="0900123", callee="1002"))
        self.assertEqual((decision.action, decision.code, decision.reason, decision.service),
                         ("reject", 403, "Forbidden", "blacklist"))
        self.assertEqual(self.code("0800123", "1002"), 0)

    def test_called_prefix(self):
        self.black("*", "00")
        self.assertEqual(self.code("1001", "0044123"), 403)
        self.assertEqual(self.code("1001", "044123"), 0)

    def test_longest_prefix_wins(self):
        self.black("*", "00", rate=100)
        self.black("*", "0044", rate=0)          # exception to the longer prefix
        self.assertEqual(self.code("1001", "0044123"), 0)
        self.assertEqual(self.code("1001", "0049123"), 403)

    def test_caller_prefix_has_priority(self):
        self.black("*", "0044", rate=100)       # longer called prefix
        self.black("1001", "*", rate=0)          # but a caller prefix
        self.assertEqual(self.code("1001", "0044123"), 0)
        self.assertEqual(self.code("1002", "0044123"), 403)

    def test_both_prefixes_must_match(self):
        self.black("1001", "0044", rate=0)
        self.black("*", "00", rate=100)
        self.assertEqual(self.code("1001", "0049"), 403)      # 1001 row's called does not match

    def test_anonymous(self):
        self.black("anonymous", "*")
        self.assertEqual(self.code("", "1002"), 403)
        self.assertEqual(self.code("anonymous", "1002"), 403)
        self.assertEqual(self.code("0301234", "1002", anonymous=True), 403)
        self.assertEqual(self.code("0301234", "1002"), 0)

    def test_anonymous_not_matched_by_number_prefix(self):
        self.black("0", "*")
        self.assertEqual(self.code("0301234", "1002", anonymous=True), 0)

    def test_whitelist_exempts(self):
        self.black("*", "0900")
        self.white("1001", "*")
        self.assertEqual(self.code("1001", "0900123"), 0)
        self.assertEqual(self.code("1002", "0900123"), 403)

    def test_rate_50_refuses_about_half(self):
        self.black("*", "0700", rate=50)
        refused = sum(self.code("1001", f"0700{i:04d}", call_id=f"c{i}") == 403
                      for i in range(200))
        self.assertTrue(80 <= refused <= 120, refused)
        # deterministic for a given seed
        again = standard_engine(self.store)
        refused_again = sum(again.originating(facts(caller="1001", callee=f"0700{i:04d}")).code
                            == 403 for i in range(200))
        self.assertEqual(refused, refused_again)

    def test_configured_code(self):
        self.store.set_service_setting("blacklist", "reject_code", 603)
        self.store.set_service_setting("blacklist", "reject_reason", "Decline")
        self.black("0900", "*")
        decision = self.engine.originating(facts(caller="0900123"))
        self.assertEqual((decision.code, decision.reason), (603, "Decline"))

    def test_row_removal_seen_after_poll(self):
        row = self.black("0900", "*")
        self.assertEqual(self.code("0900123", "1"), 403)
        self.store.remove_row("blacklist", "blacklist", row)
        self.engine.poll_store()
        self.assertEqual(self.code("0900123", "1"), 0)

    def test_large_list_within_budget(self):
        for i in range(3000):
            self.store.add_row("blacklist", "blacklist",
                               {"caller": f"49{i:05d}", "called": "*", "rate": 100})
        self.engine.poll_store()
        self.assertEqual(self.code("4900123999", "1"), 403)
        self.assertEqual(self.code("4800123999", "1"), 0)
        self.assertEqual(self.engine.service("blacklist").faults, 0)
