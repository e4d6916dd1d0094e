# -*- test-case-name: tests.admin.test_cmd_cdr -*-
"""``mssctl cdr`` (mss.admin.cmd_cdr): table, CSV, --since as Unix time or ISO date, --limit."""
from __future__ import annotations

import csv
import io

from mss.admin.cmd_cdr import iso, parse_since
from mss.store.records import CDR
from tests.admin.test_cli import CLITestCase

T0 = 1_767_225_600.0          # 2026-01-01T00:00:00Z


def record(call_id, start, answer=None, billsec=0.0, disposition="answered", cause="BYE from caller"):
    end = start + 10
    return CDR(call_id=call_id, caller="1001", callee="1002", direction="internal", start=start,
               answer=answer, end=end, duration=10.0, billsec=billsec, disposition=disposition,
               cause=cause)


class CDRCommandTests(CLITestCase):
    def setUp(self):
        super().setUp()
        self.ok("extension", "list")                 # creates the store
        store = self.open_store()
        store.add_cdr(record("c1@x", T0, T0 + 2, 8.0))
        store.add_cdr(record("c2@x", T0 + 86400, None, 0.0, "busy", "486 all devices failed (486)"))
        store.add_cdr(record("c3@x", T0 + 2 * 86400 + 0.25, None, 0.0, "cancelled", "487"))

    def test_table(self):
        lines = self.ok("cdr").splitlines()
        self.assertEqual(lines[0].split(), ["START", "(UTC)", "CALLER", "CALLEE", "DIRECTION",
                                            "DISPOSITION", "DURATION", "BILLSEC", "CAUSE", "TRUNK",
                                            "CALL-ID"])
        self.assertEqual(len(lines), 4)
        self.assertTrue(lines[1].startswith("2026-01-01 00:00:00  1001"), lines[1])
        self.assertIn("answered", lines[1])
        self.assertTrue(lines[1].endswith("c1@x"))
        self.assertIn("busy", lines[2])

    def test_csv(self):
        rows = list(csv.DictReader(io.StringIO(self.ok("cdr", "--csv"))))
        self.assertEqual([r["call_id"] for r in rows], ["c1@x", "c2@x", "c3@x"])
        self.assertEqual(rows[0]["start"], "2026-01-01T00:00:00.000Z")
        self.assertEqual(rows[0]["answer"], "2026-01-01T00:00:02.000Z")
        self.assertEqual(rows[0]["billsec"], "8.000")
        self.assertEqual(rows[1]["answer"], "")
        self.assertEqual(rows[1]["cause"], "486 all devices failed (486)")
        self.assertEqual(rows[2]["start"], "2026-01-03T00:00:00.250Z")

    def test_since(self):
        for since in (str(int(T0 + 1)), "2026-01-02", "2026-01-02T00:00:00Z",
                      "2026-01-02T01:00:00+01:00"):
            rows = list(csv.DictReader(io.StringIO(self.ok("cdr", "--csv", "--since", since))))
            self.assertEqual([r["call_id"] for r in rows], ["c2@x", "c3@x"], since)

    def test_limit(self):
        rows = list(csv.DictReader(io.StringIO(self.ok("cdr", "--csv", "--limit", "1"))))
        self.assertEqual([r["call_id"] for r in rows], ["c1@x"])
        self.fails(2, "cdr", "--limit", "0")

    def test_bad_since(self):
        err = self.fails(2, "cdr", "--since", "yesterday")
        self.assertIn("--since", err)

    def test_empty(self):
        self.assertEqual(self.ok("cdr", "--since", "2030-01-01"), "no call records\n")
        self.assertEqual(self.ok("cdr", "--csv", "--since", "2030-01-01").splitlines(),
                         ["call_id,caller,callee,direction,start,answer,end,duration,billsec,"
                          "disposition,cause,trunk"])


class HelperTests(CLITestCase):
    def test_parse_since(self):
        self.assertEqual(parse_since("1767225600.5"), T0 + 0.5)
        self.assertEqual(parse_since("2026-01-01"), T0)

    def test_iso(self):
        self.assertEqual(iso(T0 + 0.0015), "2026-01-01T00:00:00.001Z")
        self.assertEqual(iso(None), "")
