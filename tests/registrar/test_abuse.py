# -*- test-case-name: tests.registrar.test_abuse -*-
"""Tests for mss.registrar.abuse: thresholds in a sliding window, bans, allow list, bounds."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.registrar.abuse import BanList, is_scanner, normalize_address
from mss.store.interface import Ban

A = "192.0.2.1"
B = "192.0.2.2"


class BanListTests(SynchronousTestCase):
    def test_threshold_within_window_bans(self):
        bans = BanList(threshold=3, window=60, ban_time=600)
        self.assertFalse(bans.failure(A, 1000))
        self.assertFalse(bans.failure(A, 1010))
        self.assertFalse(bans.is_banned(A, 1010))
        self.assertTrue(bans.failure(A, 1020))
        self.assertTrue(bans.is_banned(A, 1020))
        self.assertEqual(bans.bans(1020), [Ban(A, 1620, "authentication failures")])
        self.assertTrue(bans.is_banned(A, 1619.9))
        self.assertFalse(bans.is_banned(A, 1620))
        self.assertFalse(bans.is_banned(B, 1020))
        self.assertEqual(bans.bans(1620), [])

    def test_failures_outside_window_do_not_count(self):
        bans = BanList(threshold=3, window=60, ban_time=600)
        self.assertFalse(bans.failure(A, 1000))
        self.assertFalse(bans.failure(A, 1030))
        self.assertFalse(bans.failure(A, 1060))      # the one at 1000 has left the window
        self.assertFalse(bans.is_banned(A, 1060))
        self.assertTrue(bans.failure(A, 1061))

    def test_failure_while_banned_does_not_retrigger(self):
        bans = BanList(threshold=1, window=60, ban_time=100)
        self.assertTrue(bans.failure(A, 0, reason="scan"))
        self.assertFalse(bans.failure(A, 50))
        self.assertEqual(bans.get_ban(A, 50), Ban(A, 100, "scan"))
        self.assertTrue(bans.failure(A, 100))        # ban over: counting starts again
        self.assertEqual(bans.get_ban(A, 100).until, 200)

    def test_history_reset_after_ban(self):
        bans = BanList(threshold=2, window=60, ban_time=10)
        bans.failure(A, 0)
        self.assertTrue(bans.failure(A, 1))
        self.assertFalse(bans.failure(A, 12))       # the two old failures do not count again
        self.assertTrue(bans.failure(A, 13))

    def test_allow_list(self):
        bans = BanList(threshold=1, allow=["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"])
        for address in ("10.1.2.3", "2001:db8::5", "192.0.2.7", "::ffff:10.0.0.1"):
            self.assertFalse(bans.failure(address, 0), address)
            self.assertFalse(bans.is_banned(address, 0), address)
            self.assertIsNone(bans.ban(address, 0, "manual"))
        self.assertEqual(bans.tracked(), 0)
        self.assertTrue(bans.failure("10.0.0.1x", 0))   # not an IP: not in any network
        bans.load([Ban("10.9.9.9", 100, "stored")])
        self.assertFalse(bans.is_banned("10.9.9.9", 0))

    def test_normalized_addresses(self):
        self.assertEqual(normalize_address("::ffff:192.0.2.1"), A)
        self.assertEqual(normalize_address("2001:DB8:0:0::1"), "2001:db8::1")
        self.assertEqual(normalize_address("not-an-ip"), "not-an-ip")
        bans = BanList(threshold=2)
        bans.failure("::ffff:192.0.2.1", 0)
        self.assertTrue(bans.failure(A, 1))
        self.assertTrue(bans.is_banned("::ffff:192.0.2.1", 1))

    def test_manual_ban_and_unban(self):
        bans = BanList(threshold=5, ban_time=600)
        self.assertEqual(bans.ban(A, 0, "scanner"), Ban(A, 600, "scanner"))
        self.assertEqual(bans.ban(B, 0, "operator", ban_time=60), Ban(B, 60, "operator"))
        self.assertEqual([b.address for b in bans.bans(0)], [B, A])
        self.assertTrue(bans.unban(A))
        self.assertFalse(bans.unban(A))
        self.assertFalse(bans.is_banned(A, 1))
        self.assertEqual(bans.bans(61), [])

    def test_unban_forgets_history(self):
        bans = BanList(threshold=3)
        bans.failure(A, 0)
        bans.failure(A, 1)
        bans.unban(A)
        self.assertFalse(bans.failure(A, 2))
        self.assertFalse(bans.failure(A, 3))
        self.assertTrue(bans.failure(A, 4))

    def test_load(self):
        bans = BanList()
        bans.load([Ban(A, 500, "stored"), Ban(B, 50, "old"), Ban("::ffff:192.0.2.1", 400, "dup")],
                  now=100)
        self.assertEqual(bans.bans(100), [Ban(A, 500, "stored")])
        self.assertTrue(bans.is_banned(A, 499))
        self.assertFalse(bans.is_banned(B, 10))

    def test_replace_syncs_with_store(self):
        bans = BanList(threshold=3)
        bans.ban(A, 0, "x")
        bans.failure(B, 0)
        bans.failure(B, 1)
        bans.replace([Ban("198.51.100.1", 500, "operator"), Ban("198.51.100.2", 5, "old")], now=10)
        self.assertFalse(bans.is_banned(A, 10))
        self.assertEqual(bans.bans(10), [Ban("198.51.100.1", 500, "operator")])
        self.assertTrue(bans.failure(B, 2))      # the history survived

    def test_bounded_under_flood(self):
        bans = BanList(threshold=3, window=60, max_tracked=1000, max_bans=100)
        now = 0.0
        for i in range(20000):
            bans.failure(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", now)
            now += 0.001
        self.assertLessEqual(bans.tracked(), 1000)
        # the most recent offenders are still tracked
        bans.failure("10.0.78.31", now)
        self.assertTrue(bans.failure("10.0.78.31", now))
        # histories that left the window are pruned by the next failure
        bans.failure("192.0.2.200", now + 61)
        self.assertEqual(bans.tracked(), 1)
        for i in range(500):
            bans.ban(f"198.51.100.{i % 256}-{i}", now, "x", ban_time=1 + i)
        self.assertLessEqual(len(bans.bans(now)), 100)
        self.assertTrue(bans.is_banned("198.51.100.243-499", now))

    def test_bad_parameters(self):
        self.assertRaises(ValueError, BanList, threshold=0)
        self.assertRaises(ValueError, BanList, allow=["not a network"])


class ScannerTests(SynchronousTestCase):
    patterns = ["friendly-scanner", "sipvicious", "sipcli", "sip-scan"]

    def test_match_case_insensitive(self):
        self.assertTrue(is_scanner("Friendly-Scanner", self.patterns))
        self.assertTrue(is_scanner("SIPVicious 0.3.0", self.patterns))
        self.assertTrue(is_scanner("x sipcli/v1.8", self.patterns))

    def test_no_match(self):
        self.assertFalse(is_scanner("Yealink SIP-T46S", self.patterns))
        self.assertFalse(is_scanner("", self.patterns))
        self.assertFalse(is_scanner(None, self.patterns))
        self.assertFalse(is_scanner("anything", []))
        self.assertFalse(is_scanner("anything", [""]))
