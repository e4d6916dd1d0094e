# -*- test-case-name: tests.call.test_cdr -*-
"""CDR values (mss.call.cdr): durations, billable seconds, dispositions from SIP statuses."""
from __future__ import annotations

from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase

from mss.call.cdr import cdr_of, disposition_of, rejected_cdr


def call(start, answer, end, disposition="answered", trunk=None):
    return SimpleNamespace(id="c@x", caller="1001", callee="1002", direction="internal",
                           start_time=start, answer_time=answer, end_time=end,
                           disposition=disposition, cause="BYE from caller", trunk=trunk)


class CDRTests(SynchronousTestCase):
    def test_answered(self):
        cdr = cdr_of(call(100.0, 104.5, 160.25))
        self.assertEqual((cdr.duration, cdr.billsec, cdr.answer), (60.25, 55.75, 104.5))
        self.assertEqual(cdr.trunk, "")

    def test_unanswered(self):
        cdr = cdr_of(call(100.0, None, 130.0, "no answer"))
        self.assertEqual((cdr.duration, cdr.billsec, cdr.answer), (30.0, 0.0, None))

    def test_trunk_name(self):
        self.assertEqual(cdr_of(call(1.0, None, 2.0, trunk="carrier1")).trunk, "carrier1")

    def test_rejected(self):
        cdr = rejected_cdr("c@x", "1001", "4711", "internal", 50.0, 404, None)
        self.assertEqual((cdr.start, cdr.end, cdr.duration, cdr.billsec), (50.0, 50.0, 0.0, 0.0))
        self.assertEqual((cdr.disposition, cdr.cause), ("failed", "404"))
        self.assertEqual(rejected_cdr("c", "a", "b", "internal", 1.0, 486, "call waiting off").cause,
                         "486 call waiting off")

    def test_dispositions(self):
        self.assertEqual([disposition_of(s) for s in (200, 486, 600, 480, 408, 487, 404, 503, 603)],
                         ["answered", "busy", "busy", "no answer", "no answer", "cancelled",
                          "failed", "failed", "failed"])
