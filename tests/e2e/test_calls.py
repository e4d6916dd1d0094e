# -*- test-case-name: tests.e2e.test_calls -*-
"""End-to-end calls through the real switch (``twistd -n mss``) with SIPp as caller and callee
devices registered as extensions: basic call, busy, no answer, caller cancel, forking to two
devices, hold/resume re-INVITE, BYE from the callee, RFC 3262 on either side; the CDR of each
call is read back with ``mssctl cdr --csv``.

Every SIPp run is bounded (``-timeout``) and has its own free port; the switch runs with a
2-second ring time so that the no-answer case is quick.
"""
from __future__ import annotations

import csv
import io

from twisted.internet import defer
from twisted.trial import unittest

from tests.e2e.harness import SIPP, Switch, free_port, sipp

SETTINGS = {"calls": {"no_answer_timeout": 2}}
PASSWORDS = {"1001": "pw-1001-x", "1002": "pw-1002-y"}


class CallTestCase(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        if SIPP is None:
            raise unittest.SkipTest("sipp is not installed")
        self.switch = Switch(self, SETTINGS)
        yield self.switch.start()
        self.target = f"127.0.0.1:{self.switch.port}"
        yield self.mssctl("extension", "add", "1001", "--password", PASSWORDS["1001"])
        yield self.mssctl("extension", "add", "1002", "--password", PASSWORDS["1002"],
                          "--multi-device")

    @defer.inlineCallbacks
    def mssctl(self, *args):
        out, err, code = yield self.switch.mssctl(*args)
        self.assertEqual(code, 0, f"mssctl {' '.join(args)}: {err.decode(errors='replace')}")
        return out.decode()

    @defer.inlineCallbacks
    def register(self, number: str, port: int, device: str = "A", transport: str = "u1"):
        out, err, code = yield sipp("register.xml", self.target, "-m", "1", "-s", number,
                                    "-au", number, "-ap", PASSWORDS[number],
                                    "-set", "expires", "300", "-set", "device", device,
                                    local_port=port, timeout=10, cwd=self.switch.dir,
                                    transport=transport)
        self.assertEqual(code, 0, (out + err).decode(errors="replace"))

    def device(self, scenario: str, port: int, *args, transport: str = "u1") -> defer.Deferred:
        """A callee device (SIPp UAS) for one call on ``port``: fires with (out, err, code)."""
        return sipp(scenario, self.target, "-m", "1", *args, local_port=port, timeout=20,
                    cwd=self.switch.dir, transport=transport)

    def caller(self, scenario: str, callee: str = "1002", *args,
               transport: str = "u1") -> defer.Deferred:
        return sipp(scenario, self.target, "-m", "1", "-s", callee, "-set", "caller", "1001",
                    "-au", "1001", "-ap", PASSWORDS["1001"], *args, timeout=20,
                    cwd=self.switch.dir, transport=transport)

    @defer.inlineCallbacks
    def call(self, caller_scenario: str, devices, *caller_args, caller_transport: str = "u1",
             device_transport: str = "u1"):
        """Register 1002's devices ((scenario, args) each, on their own port), start them,
        run the caller, and check that every SIPp finished its scenario."""
        running = []
        for i, (scenario, args) in enumerate(devices):
            port = free_port()
            yield self.register("1002", port, device="ABCD"[i], transport=device_transport)
            running.append((scenario, self.device(scenario, port, *args,
                                                  transport=device_transport)))
        results = [(caller_scenario, (yield self.caller(caller_scenario, "1002", *caller_args,
                                                         transport=caller_transport)))]
        for scenario, d in running:          # every SIPp has ended (bounded by -timeout)
            results.append((scenario, (yield d)))
        for scenario, (out, err, code) in results:
            self.assertEqual(code, 0, f"{scenario}:\n" + (out + err).decode(errors="replace")[-3000:]
                             + "\nswitch:\n" + self.switch.output[-3000:])

    @defer.inlineCallbacks
    def cdr(self) -> dict:
        """The one CDR of the test's call, from ``mssctl cdr --csv``."""
        out = yield self.mssctl("cdr", "--csv")
        rows = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(len(rows), 1, out)
        row = rows[0]
        self.assertEqual((row["caller"], row["callee"], row["direction"]),
                         ("1001", "1002", "internal"))
        return row


class CallTests(CallTestCase):
    @defer.inlineCallbacks
    def test_basic_call(self):
        yield self.call("uac_call.xml", [("uas_answer.xml", ())], "-set", "hold", "300")
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")
        self.assertGreaterEqual(float(cdr["billsec"]), 0.3)
        self.assertNotEqual(cdr["answer"], "")

    @defer.inlineCallbacks
    def test_busy(self):
        yield self.call("uac_busy.xml", [("uas_busy.xml", ())])
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "busy")
        self.assertTrue(cdr["cause"].startswith("486"), cdr["cause"])
        self.assertEqual((cdr["answer"], cdr["billsec"]), ("", "0.000"))

    @defer.inlineCallbacks
    def test_no_answer(self):
        """The ring time (2 s here) ends: CANCEL to the device, 480 to the caller."""
        yield self.call("uac_noanswer.xml", [("uas_ring.xml", ())])
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "no answer")
        self.assertTrue(cdr["cause"].startswith("480"), cdr["cause"])
        self.assertGreaterEqual(float(cdr["duration"]), 2.0)

    @defer.inlineCallbacks
    def test_caller_cancel(self):
        yield self.call("uac_cancel.xml", [("uas_ring.xml", ())])
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "cancelled")
        self.assertTrue(cdr["cause"].startswith("487"), cdr["cause"])

    @defer.inlineCallbacks
    def test_forking(self):
        """Two devices ring; the first to answer wins; the other gets CANCEL with
        Reason: SIP;cause=200;text="Call completed elsewhere" (checked by its scenario)."""
        yield self.call("uac_call.xml", [("uas_answer_later.xml", ("-set", "ring", "500")),
                                         ("uas_ring_elsewhere.xml", ())],
                        "-set", "hold", "200")
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")

    @defer.inlineCallbacks
    def test_hold_and_resume(self):
        """re-INVITE a=sendonly answered a=recvonly, then a=sendrecv, relayed both ways."""
        yield self.call("uac_hold.xml", [("uas_hold.xml", ())])
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")
        self.assertGreaterEqual(float(cdr["billsec"]), 0.6)

    @defer.inlineCallbacks
    def test_bye_from_callee(self):
        yield self.call("uac_wait_bye.xml", [("uas_bye.xml", ("-set", "hold", "300"))])
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")
        self.assertIn("callee", cdr["cause"])

    @defer.inlineCallbacks
    def test_100rel_required_by_caller(self):
        """The caller requires 100rel: the 180 comes with Require: 100rel and RSeq, the
        caller's PRACK is answered 200 (all checked by uac_100rel.xml)."""
        yield self.call("uac_100rel.xml", [("uas_answer_later.xml", ("-set", "ring", "800"))],
                        "-set", "hold", "200")
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")

    @defer.inlineCallbacks
    def test_caller_over_tcp(self):
        """The caller on TCP, the callee on UDP: responses and the BYE go back on the
        caller's connection."""
        yield self.call("uac_call.xml", [("uas_answer.xml", ())], "-set", "hold", "200",
                        caller_transport="t1")
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")

    @defer.inlineCallbacks
    def test_callee_over_tcp(self):
        """A device registered over TCP whose registration connection has closed: the switch
        connects to its contact to ring it."""
        yield self.call("uac_call.xml", [("uas_answer.xml", ())], "-set", "hold", "200",
                        device_transport="t1")
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")

    @defer.inlineCallbacks
    def test_100rel_required_by_callee(self):
        """The device requires 100rel: the switch PRACKs (RAck 1 1 INVITE, the 180's tag)
        and the call completes (checked by uas_100rel.xml)."""
        yield self.call("uac_call.xml", [("uas_100rel.xml", ())], "-set", "hold", "200")
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")
