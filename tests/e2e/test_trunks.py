# -*- test-case-name: tests.e2e.test_trunks -*-
"""End-to-end tests of SIP trunks: the real ``twistd -n mss``, SIPp as the carrier(s) on
127.0.0.2 / 127.0.0.3, SIPp or a small raw UA as the extensions, ``mssctl`` provisioning.

The carrier is IMS-like: a logical domain ``gd.ctcims.cn`` that resolves nowhere, reached
through an outbound proxy address; a digest username that must be the full URI; reliable
provisionals that must be PRACKed. Provisioning happens before the switch starts (mssctl
writes the store; the switch loads it at start), so no test waits for a poll.
"""
from __future__ import annotations

import os
import re
import secrets
import time

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mss.sip import digest
from mss.sip.message import parse
from tests.e2e.harness import SIPP, Switch, free_port, sipp, udp_client

TIMEOUT = 60
DOMAIN = "gd.ctcims.cn"
ACCOUNT = "+8675512345678"
AUTH_ID = ACCOUNT + "@" + DOMAIN
CARRIER_PW = "carrier-secret"
SETTINGS = {"security": {"allow": ["127.0.0.1/32"]},
            "calls": {"no_answer_timeout": 20}}
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def messages(path: str) -> list[str]:
    """The SIP messages in a SIPp ``-message_file`` (``-trace_msg``), received and sent."""
    if not os.path.exists(path):
        return []
    with open(path, errors="replace") as f:
        text = f.read()
    out = []
    for block in re.split(r"\n-{5,}[^\n]*\n", text):
        block = block.strip()
        m = re.search(r"^(?:[A-Z]+ \S+ SIP/2\.0|SIP/2\.0 \d{3}[^\n]*)$", block, re.M)
        if m:
            out.append(block[m.start():])
    return out


def requests(path: str, method: str) -> list[str]:
    return [m for m in messages(path) if m.startswith(method + " ")]


def header(message: str, name: str) -> str | None:
    m = re.search(rf"^{name}\s*:\s*(.*)$", message, re.M | re.I)
    return m.group(1).strip() if m else None


class TrunkTestCase(unittest.TestCase):
    timeout = TIMEOUT

    def setUp(self):
        if SIPP is None:
            raise unittest.SkipTest("sipp is not installed")
        self.switch = Switch(self, SETTINGS)

    @defer.inlineCallbacks
    def mssctl(self, *args):
        out, err, code = yield self.switch.mssctl(*args)
        self.assertEqual(code, 0, f"mssctl {' '.join(args)}: {err.decode(errors='replace')}")
        return out.decode()

    def carrier(self, scenario: str, host: str, port: int, *args, calls: int = 1,
                timeout: int = 30, name: str | None = None):
        """A SIPp carrier (UAS) on host:port; its messages go to ``<name>.log``."""
        log = os.path.join(self.switch.dir, (name or f"{host}-{port}") + ".log")
        d = sipp(scenario, f"127.0.0.1:{self.switch.port}", "-m", str(calls),
                 "-trace_msg", "-message_file", log, "-trace_err", "-error_file", log + ".err",
                 *args, local_ip=host, local_port=port, timeout=timeout, cwd=self.switch.dir)
        return d, log

    @defer.inlineCallbacks
    def sipp_ok(self, d, what: str):
        out, err, code = yield d
        self.assertEqual(code, 0, f"{what}: SIPp exit {code}\n{out.decode(errors='replace')}"
                                  f"\n{err.decode(errors='replace')}\n--- switch ---\n"
                                  f"{self.switch.output[-6000:]}")

    @defer.inlineCallbacks
    def until(self, check, seconds: float, what: str):
        """Poll ``check`` (a Deferred-returning callable) until true; no event exists for it."""
        deadline = time.monotonic() + seconds
        while True:
            result = yield check()
            if result:
                return result
            if time.monotonic() > deadline:
                self.fail(f"not within {seconds}s: {what}\n{self.switch.output[-4000:]}")
            yield task.deferLater(reactor, 0.1, lambda: None)

    @defer.inlineCallbacks
    def trunk_status(self) -> dict:
        out = yield self.mssctl("trunk", "status")
        rows = {}
        for line in out.splitlines()[1:]:
            cells = re.split(r"\s{2,}", line.strip())
            rows[cells[0]] = cells[1:]
        return rows


class RegistrationTests(TrunkTestCase):

    @defer.inlineCallbacks
    def test_ims_registrar_accepts_only_the_full_uri_auth_id(self):
        """Two trunks to the same kind of registrar: the one with the full-URI auth ID is
        registered; the one that sends the bare account as digest username gets 403 and is
        shown "rejected". Both registrars are reached through their outbound proxy address
        while every URI carries the unresolvable domain."""
        good_port, bad_port = free_port("127.0.0.2"), free_port("127.0.0.3")
        good, good_log = self.carrier("carrier_registrar.xml", "127.0.0.2", good_port,
                                      "-set", "authid", AUTH_ID, "-set", "password", CARRIER_PW)
        bad, bad_log = self.carrier("carrier_registrar.xml", "127.0.0.3", bad_port,
                                    "-set", "authid", AUTH_ID, "-set", "password", CARRIER_PW)
        yield self.mssctl("trunk", "add", "ims", "--domain", DOMAIN,
                          "--proxy", f"127.0.0.2:{good_port}", "--account", ACCOUNT,
                          "--auth-id", AUTH_ID, "--password", CARRIER_PW, "--register",
                          "--expires", "600")
        yield self.mssctl("trunk", "add", "bare", "--domain", DOMAIN,
                          "--proxy", f"127.0.0.3:{bad_port}", "--account", ACCOUNT,
                          "--password", CARRIER_PW, "--expires", "600")
        yield self.switch.start()
        yield self.sipp_ok(good, "registrar with the full URI")
        yield self.sipp_ok(bad, "registrar with the bare account")

        def settled():
            def check(rows):
                states = {name: row[0] for name, row in rows.items()}
                return rows if states == {"ims": "registered", "bare": "rejected"} else None
            return self.trunk_status().addCallback(check)
        rows = yield self.until(settled, 10, "ims registered and bare rejected")
        self.assertEqual(rows["ims"][1], "200 OK")
        self.assertTrue(rows["ims"][2].endswith("s"))
        self.assertLessEqual(int(rows["ims"][2][:-1]), 600)
        self.assertEqual(rows["bare"][1], "403 Forbidden")
        self.assertIn("registration rejected (403 Forbidden)", self.switch.output)
        self.assertIn("full URI", self.switch.output)
        # what the carriers saw: Request-URI of the logical domain, the digest usernames
        for log, username in ((good_log, AUTH_ID), (bad_log, ACCOUNT)):
            regs = requests(log, "REGISTER")
            self.assertEqual(len(regs), 2, regs)
            for reg in regs:
                self.assertTrue(reg.startswith("REGISTER sip:gd.ctcims.cn SIP/2.0"), reg)
                self.assertIn(f"<sip:{ACCOUNT}@{DOMAIN}>", header(reg, "To"))
                self.assertIn(f"<sip:{ACCOUNT}@{DOMAIN}>", header(reg, "From"))
            auth = digest.parse_credentials(header(regs[1], "Authorization"))
            self.assertEqual((auth.username, auth.realm, auth.uri),
                             (username, DOMAIN, "sip:gd.ctcims.cn"))
