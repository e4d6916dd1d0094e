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

from twisted.internet import defer
from twisted.trial import unittest

from mss.sip.digest.client import authorization
from mss.sip.digest.hashing import ha1
from mss.sip.digest.headers import parse_challenge, parse_credentials
from mss.sip.digest.server import verify
from mss.sip.parser import parse
from tests.e2e.harness import SIPP, SIPP_DIR, Switch, free_port, sipp, udp_client, until

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
                timeout: int = 20, name: str | None = None, transport: str = "u1"):
        """A SIPp carrier (UAS) on host:port; its messages go to ``<name>.log``."""
        log = os.path.join(self.switch.dir, (name or f"{host}-{port}") + ".log")
        d = sipp(scenario, f"127.0.0.1:{self.switch.port}", "-m", str(calls),
                 "-trace_msg", "-message_file", log, "-trace_err", "-error_file", log + ".err",
                 *args, local_ip=host, local_port=port, timeout=timeout, cwd=self.switch.dir,
                 transport=transport)
        self.addCleanup(self.finished, d)
        return d, log

    def finished(self, d):
        """Cleanup: wait for a SIPp process a failed test left waiting (-timeout bounds it)."""
        done = defer.Deferred()
        d.addBoth(lambda result: (done.called or done.callback(None), result)[1])
        return done

    @defer.inlineCallbacks
    def sipp_ok(self, d, what: str):
        out, err, code = yield d
        self.assertEqual(code, 0, f"{what}: SIPp exit {code}\n{out.decode(errors='replace')}"
                                  f"\n{err.decode(errors='replace')}\n--- switch ---\n"
                                  f"{self.switch.output[-6000:]}")

    def until(self, check, seconds: float, what: str):
        return until(self, check, seconds, what, lambda: self.switch.output[-4000:])

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
            auth = parse_credentials(header(regs[1], "Authorization"))
            self.assertEqual((auth.username, auth.realm, auth.uri),
                             (username, DOMAIN, "sip:gd.ctcims.cn"))


class MinExpiresTests(TrunkTestCase):

    @defer.inlineCallbacks
    def test_423_min_expires_is_adopted(self):
        port = free_port("127.0.0.2")
        registrar, log = self.carrier("carrier_registrar_423.xml", "127.0.0.2", port)
        yield self.mssctl("trunk", "add", "ims", "--domain", DOMAIN,
                          "--proxy", f"127.0.0.2:{port}", "--account", ACCOUNT,
                          "--password", CARRIER_PW, "--expires", "300")
        yield self.switch.start()
        yield self.sipp_ok(registrar, "registrar asking for 1800 s")

        def registered():
            return self.trunk_status().addCallback(lambda rows: rows["ims"][0] == "registered")
        yield self.until(registered, 10, "ims registered")
        rows = yield self.trunk_status()
        self.assertGreater(int(rows["ims"][2][:-1]), 1000)     # refreshed well after 300 s
        self.assertEqual([header(r, "Expires") for r in requests(log, "REGISTER")],
                         ["300", "1800"])


class TCPRegistrationTests(TrunkTestCase):

    @defer.inlineCallbacks
    def test_register_through_a_tcp_proxy(self):
        port = free_port("127.0.0.2")
        registrar, log = self.carrier("carrier_registrar.xml", "127.0.0.2", port, "-set",
                                      "authid", AUTH_ID, "-set", "password", CARRIER_PW,
                                      transport="t1")
        yield self.mssctl("trunk", "add", "ims", "--domain", DOMAIN,
                          "--proxy", f"127.0.0.2:{port};transport=tcp", "--account", ACCOUNT,
                          "--auth-id", AUTH_ID, "--password", CARRIER_PW)
        yield self.switch.start()
        yield self.sipp_ok(registrar, "registrar over TCP")

        def registered():
            return self.trunk_status().addCallback(lambda rows: rows["ims"][0] == "registered")
        yield self.until(registered, 10, "ims registered over TCP")
        regs = requests(log, "REGISTER")
        self.assertEqual(len(regs), 2)
        self.assertIn("SIP/2.0/TCP", header(regs[0], "Via"))
        self.assertIn(";transport=tcp", header(regs[0], "Contact"))


class RawUA:
    """A hand-made UA on its own UDP socket (an extension on 127.0.0.1, or a carrier on
    another loopback address): places calls (answering a 407 when it has credentials),
    ACKs, hangs up. Calls may overlap; messages are matched to calls by Call-ID."""

    def __init__(self, testcase, switch, host: str = "127.0.0.1", user: str = "carrier",
                 password: str | None = None):
        self.client = udp_client(testcase, host)
        self.switch = switch
        self.host = host
        self.port = self.client.transport.getHost().port
        self.user = user
        self.password = password
        self.stash: list = []

    @property
    def dest(self):
        return ("127.0.0.1", self.switch.port)

    def send(self, lines: list[str], body: str = "") -> None:
        lines = lines + [f"Content-Length: {len(body.encode())}"]
        self.client.transport.write(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.dest)

    @defer.inlineCallbacks
    def next_for(self, call_id: str, timeout: float = 10):
        for i, msg in enumerate(self.stash):
            if msg.call_id == call_id:
                return self.stash.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = parse((yield self.client.next(max(0.1, deadline - time.monotonic()))))[0]
            if msg.call_id == call_id:
                return msg
            self.stash.append(msg)

    def _via(self) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(8)};rport"

    @defer.inlineCallbacks
    def call(self, ruri: str, to: str | None = None):
        """INVITE ``ruri``; returns the ``RawCall`` with its final status (2xx ACKed)."""
        c = RawCall(self, ruri, to or ruri)
        auth = None
        while True:
            c.cseq += 1
            c.branch = self._via()
            lines = [f"INVITE {ruri} SIP/2.0", f"Via: {c.branch}", "Max-Forwards: 70",
                     f"From: <sip:{self.user}@{self.host}>;tag={c.tag}", f"To: <{c.to}>",
                     f"Call-ID: {c.call_id}", f"CSeq: {c.cseq} INVITE",
                     f"Contact: <sip:{self.user}@{self.host}:{self.port}>",
                     "Content-Type: application/sdp"]
            if auth:
                lines.append(f"Proxy-Authorization: {auth}")
            self.send(lines, SDP)
            while True:
                resp = yield c.next()
                if resp.is_request:
                    continue
                if resp.status >= 200 and resp.cseq.number == c.cseq:
                    break
                c.provisionals.append(resp.status)
            c.final = resp
            c.remote_tag = resp.to.tag
            if resp.status >= 300:
                self.send([f"ACK {ruri} SIP/2.0", f"Via: {c.branch}", "Max-Forwards: 70",
                           f"From: <sip:{self.user}@{self.host}>;tag={c.tag}",
                           f"To: <{c.to}>;tag={c.remote_tag}", f"Call-ID: {c.call_id}",
                           f"CSeq: {c.cseq} ACK"])
                if resp.status == 407 and self.password and auth is None:
                    challenge = parse_challenge(
                        resp.headers.get_lines("proxy-authenticate")[0])
                    auth = authorization(challenge, self.user, self.password, "INVITE",
                                         ruri, secrets.token_hex(4))
                    continue
                return c
            c.remote_target = str(resp.contacts[0].uri)
            c.in_dialog("ACK", c.cseq)
            return c


class RawCall:
    def __init__(self, ua: RawUA, ruri: str, to: str):
        self.ua = ua
        self.ruri = ruri
        self.to = to
        self.call_id = secrets.token_hex(8) + "@" + ua.host
        self.tag = secrets.token_hex(4)
        self.cseq = 0
        self.branch = ""
        self.final = None
        self.remote_tag = None
        self.remote_target = None
        self.provisionals: list[int] = []

    @property
    def status(self) -> int:
        return self.final.status

    def next(self, timeout: float = 10):
        return self.ua.next_for(self.call_id, timeout)

    def in_dialog(self, method: str, cseq: int) -> None:
        ua = self.ua
        ua.send([f"{method} {self.remote_target} SIP/2.0", f"Via: {ua._via()}",
                 "Max-Forwards: 70", f"From: <sip:{ua.user}@{ua.host}>;tag={self.tag}",
                 f"To: <{self.to}>;tag={self.remote_tag}", f"Call-ID: {self.call_id}",
                 f"CSeq: {cseq} {method}"])

    @defer.inlineCallbacks
    def bye(self):
        """Hang up; returns the status of the answer to the BYE."""
        self.cseq += 1
        self.in_dialog("BYE", self.cseq)
        while True:
            msg = yield self.next()
            if not msg.is_request and msg.cseq.method == "BYE":
                return msg.status


class CallTestCase(TrunkTestCase):
    @defer.inlineCallbacks
    def extension(self, number="1001", password="pw-1001-trk"):
        yield self.mssctl("extension", "add", number, "--password", password)

    @defer.inlineCallbacks
    def add_trunk(self, name, host, port, *extra):
        yield self.mssctl("trunk", "add", name, "--domain", DOMAIN, "--proxy", f"{host}:{port}",
                          "--account", ACCOUNT, "--auth-id", AUTH_ID, "--password", CARRIER_PW,
                          "--no-register", "--allow", host, *extra)

    @defer.inlineCallbacks
    def registered_callee(self, calls: int, number="1001", password="pw-1001-trk"):
        """Register the SIPp extension, then let it answer ``calls`` calls on that port."""
        port = free_port()
        target = f"127.0.0.1:{self.switch.port}"
        yield self.sipp_ok(sipp("register.xml", target, "-m", "1", "-s", number, "-au", number,
                                "-ap", password, "-set", "expires", "300", "-set", "device",
                                "ext", local_port=port, timeout=10, cwd=self.switch.dir),
                           "extension REGISTER")
        log = os.path.join(self.switch.dir, f"callee-{port}.log")
        d = sipp("uas_answer.xml", target, "-m", str(calls), "-trace_msg", "-message_file", log,
                 local_port=port, timeout=30, cwd=self.switch.dir)
        return d, log

    def sipp_call(self, dialled, caller="1001", password="pw-1001-trk", hold_ms=300):
        """The SIPp extension: register.xml, then uac_call.xml dialling ``dialled``."""
        port = free_port()
        target = f"127.0.0.1:{self.switch.port}"

        @defer.inlineCallbacks
        def run():
            yield self.sipp_ok(sipp("register.xml", target, "-m", "1", "-s", caller,
                                    "-au", caller, "-ap", password, "-set", "expires", "300",
                                    "-set", "device", "ext", local_port=port, timeout=10,
                                    cwd=self.switch.dir), "extension REGISTER")
            log = os.path.join(self.switch.dir, f"ext-{port}.log")
            out = yield sipp("uac_call.xml", target, "-m", "1", "-s", dialled,
                             "-set", "caller", caller, "-au", caller, "-ap", password,
                             "-set", "hold", str(hold_ms), "-trace_msg", "-message_file", log,
                             local_port=port, timeout=20, cwd=self.switch.dir)
            return out
        return run()


class OutboundCallTests(CallTestCase):

    @defer.inlineCallbacks
    def test_extension_to_ims_carrier_digest_and_prack(self):
        """Extension -> route (strip/prepend) -> carrier: Request-URI of the logical domain,
        caller ID of the trunk, 407 answered with the full-URI auth ID, reliable 180 PRACKed
        in its early dialog, 200, ACK, BYE."""
        port = free_port("127.0.0.2")
        yield self.extension()
        yield self.add_trunk("ims", "127.0.0.2", port, "--from-user", ACCOUNT,
                             "--identity", "pai")
        yield self.mssctl("route", "add", "0", "--trunk", "ims", "--strip", "1",
                          "--prepend", "+86")
        yield self.switch.start()
        carrier, log = self.carrier("carrier_uas.xml", "127.0.0.2", port, "-set", "authid",
                                    AUTH_ID)
        yield self.sipp_ok(self.sipp_call("075512340000"), "the extension's call")
        yield self.sipp_ok(carrier, "the carrier")
        invites = requests(log, "INVITE")
        self.assertEqual(len(invites), 2, invites)
        for inv in invites:
            self.assertTrue(inv.startswith(f"INVITE sip:+8675512340000@{DOMAIN} SIP/2.0"), inv)
            self.assertIn(f"<sip:+8675512340000@{DOMAIN}>", header(inv, "To"))
            self.assertIn(f"<sip:{ACCOUNT}@{DOMAIN}>", header(inv, "From"))
            self.assertIn(f"<sip:{ACCOUNT}@{DOMAIN}>", header(inv, "P-Asserted-Identity"))
            self.assertIn("100rel", header(inv, "Supported"))
            self.assertIsNone(header(inv, "Require"))
            self.assertIn("m=audio", inv)
        self.assertIsNone(header(invites[0], "Proxy-Authorization"))
        creds = parse_credentials(header(invites[1], "Proxy-Authorization"))
        self.assertEqual((creds.username, creds.realm, creds.uri),
                         (AUTH_ID, DOMAIN, f"sip:+8675512340000@{DOMAIN}"))
        self.assertTrue(verify(creds, ha1("MD5", AUTH_ID, DOMAIN, CARRIER_PW),
                               "INVITE"))
        self.assertEqual(header(invites[0], "Call-ID"), header(invites[1], "Call-ID"))
        cseq2 = header(invites[1], "CSeq")
        self.assertEqual(cseq2, "2 INVITE")
        pracks = requests(log, "PRACK")
        self.assertEqual(len(pracks), 1, pracks)
        prack = pracks[0]
        self.assertTrue(prack.startswith(f"PRACK sip:carrier@127.0.0.2:{port} SIP/2.0"), prack)
        self.assertEqual(header(prack, "RAck"), "1 2 INVITE")
        self.assertRegex(header(prack, "To"), r";tag=\d+Ca1")          # the early dialog
        self.assertEqual(len(requests(log, "ACK")), 2)                    # for the 407 and the 200
        self.assertEqual(len(requests(log, "BYE")), 1)

    @defer.inlineCallbacks
    def test_carrier_that_challenges_the_bye(self):
        port = free_port("127.0.0.2")
        yield self.extension()
        yield self.add_trunk("ims", "127.0.0.2", port)
        yield self.mssctl("route", "add", "0", "--trunk", "ims")
        yield self.switch.start()
        carrier, log = self.carrier("carrier_bye_auth.xml", "127.0.0.2", port, "-set", "authid",
                                    AUTH_ID)
        yield self.sipp_ok(self.sipp_call("0755123"), "the extension's call")
        yield self.sipp_ok(carrier, "the carrier")
        byes = requests(log, "BYE")
        self.assertEqual(len(byes), 2)
        creds = parse_credentials(header(byes[1], "Proxy-Authorization"))
        self.assertTrue(verify(creds, ha1("MD5", AUTH_ID, DOMAIN, CARRIER_PW),
                               "BYE"))
        self.assertNotIn(" 403 ", "".join(m.splitlines()[0] for m in messages(log)))

    @defer.inlineCallbacks
    def test_carrier_that_requires_100rel(self):
        port = free_port("127.0.0.2")
        yield self.extension()
        yield self.add_trunk("ims", "127.0.0.2", port, "--prack", "required")
        yield self.mssctl("route", "add", "0", "--trunk", "ims")
        yield self.switch.start()
        carrier, log = self.carrier("carrier_uas.xml", "127.0.0.2", port, "-set", "authid",
                                    AUTH_ID)
        yield self.sipp_ok(self.sipp_call("075512340000"), "the extension's call")
        yield self.sipp_ok(carrier, "the carrier")
        invites = requests(log, "INVITE")
        self.assertEqual(len(invites), 2)
        for inv in invites:
            self.assertTrue(inv.startswith(f"INVITE sip:075512340000@{DOMAIN} SIP/2.0"), inv)
            self.assertEqual(header(inv, "Require"), "100rel")
        self.assertEqual(len(requests(log, "PRACK")), 1)

    @defer.inlineCallbacks
    def test_failover_to_the_second_trunk_on_503(self):
        first_port, second_port = free_port("127.0.0.2"), free_port("127.0.0.3")
        yield self.extension()
        yield self.add_trunk("first", "127.0.0.2", first_port)
        yield self.add_trunk("second", "127.0.0.3", second_port)
        yield self.mssctl("route", "add", "0", "--trunk", "first", "--trunk", "second")
        yield self.switch.start()
        busy, busy_log = self.carrier("carrier_503.xml", "127.0.0.2", first_port)
        ok, ok_log = self.carrier("carrier_answer.xml", "127.0.0.3", second_port)
        yield self.sipp_ok(self.sipp_call("0123456"), "the extension's call")
        yield self.sipp_ok(busy, "the first carrier (503)")
        yield self.sipp_ok(ok, "the second carrier")
        self.assertEqual(len(requests(busy_log, "INVITE")), 1)
        self.assertEqual(len(requests(busy_log, "ACK")), 1)
        self.assertEqual(len(requests(ok_log, "INVITE")), 1)
        self.assertEqual(len(requests(ok_log, "BYE")), 1)


class InboundCallTests(CallTestCase):

    @defer.inlineCallbacks
    def test_carrier_calls_a_did_sip_and_tel_uris(self):
        yield self.extension()
        yield self.add_trunk("ims", "127.0.0.2", 5999)
        yield self.mssctl("did", "add", "+8675512345678", "--extension", "1001")
        yield self.switch.start()
        callee, callee_log = yield self.registered_callee(2)
        for n, ruri in enumerate((f"sip:+8675512345678@127.0.0.1:{self.switch.port}",
                                  "tel:+8675512345678")):
            port = free_port("127.0.0.2")
            carrier, _ = self.carrier("carrier_uac.xml", "127.0.0.2", port, "-set", "ruri", ruri,
                                      name=f"in{n}")
            yield self.sipp_ok(carrier, f"carrier call to {ruri}")
        yield self.sipp_ok(callee, "the callee extension")
        invites = requests(callee_log, "INVITE")
        self.assertEqual(len(invites), 2)
        for inv in invites:
            self.assertIn("+8613800138000", header(inv, "From"))
            self.assertIn("Carrier Caller", header(inv, "From"))

    @defer.inlineCallbacks
    def test_carrier_requiring_100rel_on_an_inbound_call(self):
        yield self.extension()
        yield self.add_trunk("ims", "127.0.0.2", 5999)
        yield self.mssctl("did", "add", "+8675512345678", "--extension", "1001")
        yield self.switch.start()
        callee, _ = yield self.registered_callee(1)
        port = free_port("127.0.0.2")
        carrier, log = self.carrier("carrier_uac_100rel.xml", "127.0.0.2", port,
                                    "-set", "ruri", "tel:+8675512345678")
        yield self.sipp_ok(carrier, "carrier call requiring 100rel")
        yield self.sipp_ok(callee, "the callee extension")
        ringing = [m for m in messages(log) if m.startswith("SIP/2.0 180")]
        self.assertEqual(header(ringing[0], "RSeq"), "1")

    @defer.inlineCallbacks
    def test_same_invite_from_elsewhere_is_unauthenticated_unknown_did_404(self):
        yield self.extension()
        yield self.add_trunk("ims", "127.0.0.2", 5999)
        yield self.mssctl("did", "add", "+8675512345678", "--extension", "1001")
        yield self.switch.start()
        ruri = f"sip:+8675512345678@127.0.0.1:{self.switch.port}"
        outsider = RawUA(self, self.switch, host="127.0.0.5", user="+8613800138000")
        call = yield outsider.call(ruri)
        self.assertEqual(call.status, 407)
        self.assertTrue(call.final.headers.get("proxy-authenticate"))
        carrier = RawUA(self, self.switch, host="127.0.0.2", user="+8613800138000")
        call = yield carrier.call(f"sip:+8675599999999@127.0.0.1:{self.switch.port}")
        self.assertEqual(call.status, 404)
        call = yield carrier.call("tel:+8675512345678")          # known DID, callee offline
        self.assertEqual(call.status, 480)


class SharedAddressTests(CallTestCase):
    """Several accounts at one carrier address (127.0.0.2)."""

    @defer.inlineCallbacks
    def test_explicit_allow_wins_then_the_called_account(self):
        """acct-a only sends to 127.0.0.2 (its proxy) and takes no inbound calls; acct-b and
        acct-c list 127.0.0.2 with --allow, acct-c takes no inbound calls. A call to the DID
        is acct-b's (listed beats inferred, though acct-a sorts first); a call to acct-c's
        account is acct-c's (refused by its limit: 403)."""
        yield self.extension()
        yield self.mssctl("trunk", "add", "acct-a", "--domain", DOMAIN, "--proxy",
                          "127.0.0.2:5999", "--account", "+8675500000001", "--password",
                          CARRIER_PW, "--no-register", "--max-in", "0")
        yield self.mssctl("trunk", "add", "acct-b", "--domain", DOMAIN, "--proxy",
                          "127.0.0.2:5999", "--account", ACCOUNT, "--password", CARRIER_PW,
                          "--no-register", "--allow", "127.0.0.2")
        out, err, code = yield self.switch.mssctl(
            "trunk", "add", "acct-c", "--domain", DOMAIN, "--proxy", "127.0.0.2:5999",
            "--account", "+8675500000003", "--password", CARRIER_PW, "--no-register",
            "--allow", "127.0.0.2", "--max-in", "0")
        self.assertEqual(code, 0)
        self.assertIn(b"warning: trunks acct-c and acct-a share 127.0.0.2", err)
        self.assertIn(b"warning: trunks acct-c and acct-b share 127.0.0.2", err)
        yield self.mssctl("did", "add", "2000", "--extension", "1001")
        yield self.mssctl("did", "add", "+8675500000003", "--extension", "1001")
        yield self.switch.start()
        callee, _ = yield self.registered_callee(1)
        carrier = RawUA(self, self.switch, host="127.0.0.2", user="+8613800138000")
        call = yield carrier.call(f"sip:2000@127.0.0.1:{self.switch.port}")
        self.assertEqual(call.status, 200, self.switch.output[-3000:])
        rows = yield self.trunk_status()
        self.assertEqual({name: rows[name][-1] for name in ("acct-a", "acct-b", "acct-c")},
                         {"acct-a": "0/0", "acct-b": "1/0", "acct-c": "0/0"})
        self.assertEqual((yield call.bye()), 200)
        yield self.sipp_ok(callee, "the callee extension")
        to_c = yield carrier.call(f"sip:127.0.0.1:{self.switch.port}",
                                  to="sip:+8675500000003@gd.ctcims.cn")
        self.assertEqual(to_c.status, 403)          # the To user names acct-c: its max-in 0


class LimitTests(CallTestCase):
    """Per-trunk, per-direction limits with concurrent calls. The running switch's counts are
    read with ``mssctl trunk status`` (its control socket), and a later call getting through
    after the earlier ones ended shows they were released."""

    @defer.inlineCallbacks
    def live_calls(self, expected: dict):
        """``mssctl trunk status``: the CALLS IN/OUT column of these trunks (after the BYE's
        200 the call is already over in the switch: it answers the BYE after ending it)."""
        rows = yield self.trunk_status()
        self.assertEqual({name: rows[name][-1] for name in expected}, expected)

    @defer.inlineCallbacks
    def test_inbound_limits_zero_and_one(self):
        yield self.extension()
        yield self.add_trunk("closed", "127.0.0.3", 5999, "--max-in", "0")
        yield self.add_trunk("one", "127.0.0.2", 5999, "--max-in", "1", "--max-out", "0")
        yield self.mssctl("did", "add", "2000", "--extension", "1001")
        yield self.switch.start()
        callee, _ = yield self.registered_callee(2)
        ruri = f"sip:2000@127.0.0.1:{self.switch.port}"
        closed = RawUA(self, self.switch, host="127.0.0.3")
        self.assertEqual((yield closed.call(ruri)).status, 403)
        carrier = RawUA(self, self.switch, host="127.0.0.2")
        first = yield carrier.call(ruri)
        self.assertEqual(first.status, 200)
        second = yield carrier.call(ruri)                  # while the first is up
        self.assertEqual(second.status, 503)
        yield self.live_calls({"one": "1/0", "closed": "0/0"})
        self.assertEqual((yield first.bye()), 200)
        yield self.live_calls({"one": "0/0", "closed": "0/0"})
        third = yield carrier.call(ruri)
        self.assertEqual(third.status, 200)
        self.assertEqual((yield third.bye()), 200)
        yield self.sipp_ok(callee, "the callee extension")

    @defer.inlineCallbacks
    def test_outbound_limits_zero_one_n_and_failover(self):
        port_a, port_b = free_port("127.0.0.2"), free_port("127.0.0.3")
        yield self.extension()
        yield self.add_trunk("zero", "127.0.0.2", port_a, "--max-out", "0", "--max-in", "5")
        yield self.add_trunk("one", "127.0.0.2", port_a, "--max-out", "1")
        yield self.add_trunk("two", "127.0.0.2", port_a, "--max-out", "2", "--max-in", "0")
        yield self.add_trunk("spill", "127.0.0.3", port_b)
        yield self.mssctl("route", "add", "7", "--trunk", "zero")
        yield self.mssctl("route", "add", "8", "--trunk", "one")
        yield self.mssctl("route", "add", "9", "--trunk", "two")
        yield self.mssctl("route", "add", "6", "--trunk", "one", "--trunk", "spill")
        yield self.switch.start()
        carrier_a, log_a = self.carrier("carrier_answer.xml", "127.0.0.2", port_a, calls=6)
        carrier_b, log_b = self.carrier("carrier_answer.xml", "127.0.0.3", port_b, calls=1)
        ext = RawUA(self, self.switch, user="1001", password="pw-1001-trk")

        def dial(number):
            return ext.call(f"sip:{number}@127.0.0.1:{self.switch.port}")

        self.assertEqual((yield dial("7001")).status, 403)              # limit 0
        # limit 1
        first = yield dial("8001")
        self.assertEqual(first.status, 200)
        self.assertEqual((yield dial("8002")).status, 503)
        yield self.live_calls({"one": "0/1", "zero": "0/0"})
        self.assertEqual((yield first.bye()), 200)
        yield self.live_calls({"one": "0/0"})
        again = yield dial("8003")
        self.assertEqual(again.status, 200)
        # failover: "one" is busy with `again`, so the route's second trunk takes the call
        spilled = yield dial("6004")
        self.assertEqual(spilled.status, 200)
        self.assertEqual((yield again.bye()), 200)
        self.assertEqual((yield spilled.bye()), 200)
        # limit N = 2
        calls = []
        for n in range(2):
            calls.append((yield dial(f"900{n}")))
        self.assertEqual([c.status for c in calls], [200, 200])
        self.assertEqual((yield dial("9009")).status, 503)
        for c in calls:
            self.assertEqual((yield c.bye()), 200)
        for n in range(2):
            calls[n] = yield dial(f"901{n}")
        self.assertEqual([c.status for c in calls], [200, 200])
        yield self.live_calls({"two": "0/2"})
        for c in calls:
            self.assertEqual((yield c.bye()), 200)
        yield self.live_calls({"zero": "0/0", "one": "0/0", "two": "0/0", "spill": "0/0"})
        yield self.sipp_ok(carrier_a, "carrier A")
        yield self.sipp_ok(carrier_b, "carrier B")
        self.assertEqual([r.split()[1] for r in requests(log_a, "INVITE")],
                         [f"sip:{n}@{DOMAIN}" for n in
                          ("8001", "8003", "9000", "9001", "9010", "9011")])
        self.assertEqual(len(requests(log_b, "INVITE")), 1)
        self.assertEqual(requests(log_b, "INVITE")[0].split()[1], f"sip:6004@{DOMAIN}")


class FailoverRuleTests(CallTestCase):
    """Failover on 5xx, 408 and transport failure; never on 486, 404, 603."""

    @defer.inlineCallbacks
    def route_with_two_trunks(self, first_proxy: str):
        self.second_port = free_port("127.0.0.3")
        yield self.extension()
        yield self.mssctl("trunk", "add", "first", "--domain", DOMAIN, "--proxy", first_proxy,
                          "--account", ACCOUNT, "--password", CARRIER_PW, "--no-register")
        yield self.add_trunk("second", "127.0.0.3", self.second_port)
        yield self.mssctl("route", "add", "0", "--trunk", "first", "--trunk", "second")
        yield self.switch.start()
        self.ext = RawUA(self, self.switch, user="1001", password="pw-1001-trk")

    def dial(self, number):
        return self.ext.call(f"sip:{number}@127.0.0.1:{self.switch.port}")

    def rejecting(self, code: str, reason: str) -> str:
        """carrier_503.xml answering ``code reason`` instead (SIPp checks the status code
        when it loads a scenario, so it cannot come from a -set variable)."""
        with open(os.path.join(SIPP_DIR, "carrier_503.xml")) as f:
            text = f.read().replace("503 Service Unavailable", f"{code} {reason}")
        path = os.path.join(self.switch.dir, f"carrier_{code}.xml")
        with open(path, "w") as f:
            f.write(text)
        return path

    @defer.inlineCallbacks
    def test_final_refusals_are_not_failed_over(self):
        port = free_port("127.0.0.2")
        yield self.route_with_two_trunks(f"127.0.0.2:{port}")
        refusals = (("486", "Busy Here"), ("404", "Not Found"), ("603", "Decline"))
        for n, (code, reason) in enumerate(refusals):
            carrier, log = self.carrier(self.rejecting(code, reason), "127.0.0.2", port,
                                        name=f"reject{code}")
            call = yield self.dial(f"0{n}")
            self.assertEqual(call.status, int(code))
            yield self.sipp_ok(carrier, f"carrier answering {code}")
        self.assertFalse(os.path.exists(os.path.join(self.switch.dir, f"127.0.0.3-"
                                                     f"{self.second_port}.log")))
        self.assertNotIn("second", self.switch.output.split("via trunks")[-1].split("\n")[1:])

    @defer.inlineCallbacks
    def test_408_and_500_fail_over(self):
        port = free_port("127.0.0.2")
        yield self.route_with_two_trunks(f"127.0.0.2:{port}")
        second, log = self.carrier("carrier_answer.xml", "127.0.0.3", self.second_port, calls=2)
        for n, (code, reason) in enumerate((("408", "Request Timeout"),
                                            ("500", "Server Internal Error"))):
            carrier, _ = self.carrier(self.rejecting(code, reason), "127.0.0.2", port,
                                      name=f"reject{code}")
            call = yield self.dial(f"0{n}")
            self.assertEqual(call.status, 200, code)
            self.assertEqual((yield call.bye()), 200)
            yield self.sipp_ok(carrier, f"carrier answering {code}")
        yield self.sipp_ok(second, "the second carrier")
        self.assertEqual(len(requests(log, "INVITE")), 2)

    @defer.inlineCallbacks
    def test_transport_failure_fails_over(self):
        """The first trunk's proxy is a TCP port where nobody listens."""
        closed = free_port("127.0.0.2")
        yield self.route_with_two_trunks(f"127.0.0.2:{closed};transport=tcp")
        second, log = self.carrier("carrier_answer.xml", "127.0.0.3", self.second_port)
        call = yield self.dial("0123")
        self.assertEqual(call.status, 200)
        self.assertEqual((yield call.bye()), 200)
        yield self.sipp_ok(second, "the second carrier")
        self.assertEqual(len(requests(log, "INVITE")), 1)

    @defer.inlineCallbacks
    def test_silent_carrier_fails_over(self):
        """The first trunk's proxy is a UDP port where nobody answers (loopback drops it
        silently): after TRUNK_NO_RESPONSE seconds without even a 100 the second trunk rings."""
        silent = free_port("127.0.0.2")
        yield self.route_with_two_trunks(f"127.0.0.2:{silent}")
        second, log = self.carrier("carrier_answer.xml", "127.0.0.3", self.second_port)
        started = time.monotonic()
        call = yield self.dial("0123")
        self.assertEqual(call.status, 200)
        self.assertLess(time.monotonic() - started, 15)
        self.assertEqual((yield call.bye()), 200)
        yield self.sipp_ok(second, "the second carrier")
        self.assertIn("trunk first does not answer", self.switch.output)


class StatusTests(TrunkTestCase):
    """``mssctl trunk status`` while the switch runs shows the registration as it is now, and
    the next attempt when the switch will really make it (T1 of 100 ms: Timer F is 6.4 s)."""

    def setUp(self):
        if SIPP is None:
            raise unittest.SkipTest("sipp is not installed")
        self.switch = Switch(self, {**SETTINGS, "sip": {"t1_ms": 100}})

    @defer.inlineCallbacks
    def status_of(self, name: str) -> list:
        rows = yield self.trunk_status()
        return rows[name]

    @defer.inlineCallbacks
    def test_refusing_carrier(self):
        """503 twice: "failed 503" with the next attempt in 5 s, as the log says, then 10 s."""
        port = free_port("127.0.0.2")
        carrier, log = self.carrier("carrier_registrar_503.xml", "127.0.0.2", port)
        yield self.mssctl("trunk", "add", "ims", "--domain", DOMAIN, "--proxy",
                          f"127.0.0.2:{port}", "--account", ACCOUNT, "--auth-id", AUTH_ID,
                          "--password", CARRIER_PW, "--expires", "600")
        yield self.switch.start()

        def refused(times):
            def check(row):
                return row if row[:2] == ["failed", "503 Service Unavailable"] and \
                    self.switch.output.count("retrying in") == times else None
            return lambda: self.status_of("ims").addCallback(check)
        row = yield self.until(refused(1), 4, "the first 503 shown")
        self.assertIn("retrying in 5s", self.switch.output)
        self.assertIn(row[2], ("4s", "5s"))
        yield self.sipp_ok(carrier, "the refusing carrier")        # the retry came, 503 again
        row = yield self.until(refused(2), 4, "the second 503 shown")
        self.assertIn("retrying in 10s", self.switch.output)
        self.assertIn(row[2], ("9s", "10s"))
        self.assertEqual(len(requests(log, "REGISTER")), 2)

    @defer.inlineCallbacks
    def test_silent_carrier(self):
        """Nobody answers: "registering", attempt "in progress" from the start (never
        "unknown"), then "unreachable" with the next attempt in 5 s, then in progress again."""
        port = free_port("127.0.0.2")
        yield self.mssctl("trunk", "add", "ims", "--domain", DOMAIN, "--proxy",
                          f"127.0.0.2:{port}", "--account", ACCOUNT, "--password", CARRIER_PW)
        yield self.switch.start()
        row = yield self.status_of("ims")
        self.assertEqual(row[:3], ["registering", "-", "in progress"])
        started = time.monotonic()

        def unreachable():
            return self.status_of("ims").addCallback(
                lambda row: row if row[0] == "unreachable" else None)
        row = yield self.until(unreachable, 12, "the registration timed out")
        self.assertGreater(time.monotonic() - started, 5)          # Timer F: 6.4 s
        self.assertTrue(row[1].startswith("408 no answer"), row)
        self.assertIn(row[2], ("4s", "5s"))
        self.assertIn("retrying in 5s", self.switch.output)

        def retrying():
            return self.status_of("ims").addCallback(
                lambda row: row if row[2] == "in progress" else None)
        row = yield self.until(retrying, 8, "the retry under way")
        self.assertEqual(row[0], "unreachable")


class UnresolvableDomainTests(TrunkTestCase):

    @defer.inlineCallbacks
    def test_trunk_without_proxy_and_an_unresolvable_domain(self):
        """No proxy and a domain that resolves nowhere: the registration is "unreachable"
        (retried with back-off), nothing crashes, and the switch still answers."""
        yield self.mssctl("trunk", "add", "lost", "--domain", "nowhere.invalid",
                          "--account", "acme", "--password", "pw", "--register")
        yield self.switch.start()

        def unreachable():
            return self.trunk_status().addCallback(
                lambda rows: rows.get("lost", [""])[0] == "unreachable")
        yield self.until(unreachable, 10, "trunk lost unreachable")
        rows = yield self.trunk_status()
        self.assertEqual(rows["lost"][1], "cannot resolve nowhere.invalid")
        self.assertNotIn("Traceback", self.switch.output)
        self.assertNotIn("Unhandled", self.switch.output)
        ua = RawUA(self, self.switch, host="127.0.0.5")
        call = yield ua.call(f"sip:1234@127.0.0.1:{self.switch.port}")
        self.assertEqual(call.status, 407)
