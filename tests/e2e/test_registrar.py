# -*- test-case-name: tests.e2e.test_registrar -*-
"""End-to-end tests of the registrar: the real ``twistd -n mss``, SIPp phones, ``mssctl``.

Provisioning goes through ``mssctl`` against the switch's store, as an operator would. SIPp
registers with digest authentication; a small raw client (``Phone``) makes the requests SIPp
cannot check well (a query REGISTER, the exact headers of two refusals, silence when banned).

Authentication failures count towards bans per source address, so 127.0.0.1 is allow-listed
in these tests and the tests that fail on purpose use other loopback addresses (127.0.0.2 ...).
"""
from __future__ import annotations

import os
import secrets
import time

from twisted.internet import defer
from twisted.trial import unittest

from mss.sip.digest.client import authorization
from mss.sip.digest.headers import parse_challenge
from mss.sip.parser import parse
from mss.store.interface import Binding
from mss.store.sqlite import SQLiteStore
from tests.e2e.harness import SIPP, Switch, free_port, sipp, udp_client, until

TIMEOUT = 40
SETTINGS = {"security": {"allow": ["127.0.0.1/32"], "ban_threshold": 3, "ban_window": 60,
                         "ban_time": 600},
            "registrar": {"min_expires": 10, "max_expires": 3600}}


class Phone:
    """A hand-made SIP UA on its own UDP socket: REGISTER with digest, OPTIONS."""

    def __init__(self, testcase, switch, number: str, password: str, host: str = "127.0.0.1"):
        self.client = udp_client(testcase, host)
        self.switch = switch
        self.number = number
        self.password = password
        self.host = host
        self.port = self.client.transport.getHost().port
        self.call_id = secrets.token_hex(8)
        self.cseq = 0

    @property
    def dest(self):
        return ("127.0.0.1", self.switch.port)

    def _register(self, contact: str | None, expires: int | None, auth: str | None) -> bytes:
        self.cseq += 1
        lines = [
            f"REGISTER sip:127.0.0.1:{self.switch.port} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.number}@127.0.0.1>;tag={secrets.token_hex(4)}",
            f"To: <sip:{self.number}@127.0.0.1>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            "User-Agent: e2e-phone",
        ]
        if contact is not None:
            lines.append(f"Contact: {contact}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    @defer.inlineCallbacks
    def register(self, contact: str | None = None, expires: int | None = None):
        """REGISTER, answer the 401 (MD5, the first challenge), return the final response."""
        self.client.transport.write(self._register(contact, expires, None), self.dest)
        first = parse((yield self.client.next()))[0]
        if first.status != 401:
            return first
        challenge = parse_challenge(first.headers.get_lines("www-authenticate")[0])
        auth = authorization(challenge, self.number, self.password, "REGISTER",
                             f"sip:127.0.0.1:{self.switch.port}", secrets.token_hex(4))
        self.client.transport.write(self._register(contact, expires, auth), self.dest)
        final = parse((yield self.client.next()))[0]
        return final

    @defer.inlineCallbacks
    def options(self):
        data = (f"OPTIONS sip:127.0.0.1:{self.switch.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n"
                "To: <sip:127.0.0.1>\r\nCall-ID: " + secrets.token_hex(6) + "\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        self.client.transport.write(data, self.dest)
        return parse((yield self.client.next()))[0]


def contacts(response) -> dict[str, int]:
    """Contact URI -> expires param of a 200 to REGISTER."""
    out = {}
    for value in response.contacts:
        out[str(value.uri)] = int(value.param("expires"))
    return out


class RegistrarTestCase(unittest.TestCase):
    timeout = TIMEOUT
    settings = SETTINGS

    def setUp(self):
        if SIPP is None:
            raise unittest.SkipTest("sipp is not installed")
        self.switch = Switch(self, self.settings)
        return self.switch.start()

    @defer.inlineCallbacks
    def mssctl(self, *args):
        out, err, code = yield self.switch.mssctl(*args)
        self.assertEqual(code, 0, f"mssctl {' '.join(args)}: {err.decode(errors='replace')}")
        return out.decode()

    @defer.inlineCallbacks
    def register_sipp(self, number, password, *, local_ip="127.0.0.1", local_port=None,
                      expires=300, device="A", scenario="register.xml", transport="u1"):
        out, err, code = yield sipp(scenario, f"127.0.0.1:{self.switch.port}", "-m", "1",
                                    "-s", number, "-au", number, "-ap", password,
                                    "-set", "expires", str(expires), "-set", "device", device,
                                    "-trace_err", local_ip=local_ip, local_port=local_port,
                                    transport=transport, timeout=10, cwd=self.switch.dir)
        return code, out.decode(errors="replace") + err.decode(errors="replace")

    @defer.inlineCallbacks
    def registrations(self, number=None):
        """``mssctl registrations`` as a list of (extension, contact, user agent)."""
        out = yield self.mssctl("registrations", *([number] if number else []))
        rows = []
        for line in out.splitlines()[1:]:
            cells = line.split()
            if len(cells) >= 5:
                rows.append((cells[0], cells[1], " ".join(cells[4:])))
        return rows

    def until(self, check, seconds: float, what: str):
        return until(self, check, seconds, what)


class AuthenticationTests(RegistrarTestCase):

    @defer.inlineCallbacks
    def test_register_with_password(self):
        yield self.mssctl("extension", "add", "1001", "--password", "s3cret-1001")
        code, text = yield self.register_sipp("1001", "s3cret-1001", expires=300, device="A")
        self.assertEqual(code, 0, text)
        rows = yield self.registrations()
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0][0], "1001")
        self.assertIn("sip:1001@127.0.0.1:", rows[0][1])
        self.assertEqual(rows[0][2], "SIPp A")
        # a query REGISTER (no Contact) lists the binding with its remaining expiry
        phone = Phone(self, self.switch, "1001", "s3cret-1001")
        response = yield phone.register()
        self.assertEqual(response.status, 200)
        listed = contacts(response)
        self.assertEqual(list(listed), [rows[0][1]])
        self.assertTrue(290 <= listed[rows[0][1]] <= 300, listed)

    @defer.inlineCallbacks
    def test_register_over_tcp(self):
        yield self.mssctl("extension", "add", "1001", "--password", "pw-1001-reg")
        code, text = yield self.register_sipp("1001", "pw-1001-reg", transport="t1")
        self.assertEqual(code, 0, text)
        rows = yield self.registrations("1001")
        self.assertEqual(len(rows), 1, rows)
        self.assertIn("TRANSPORT=TCP", rows[0][1].upper())
        out = yield self.mssctl("registrations", "1001")
        self.assertIn(" tcp:127.0.0.1:", out)          # the source: the TCP connection

    @defer.inlineCallbacks
    def test_wrong_password_and_unknown_user_403(self):
        yield self.mssctl("extension", "add", "1001", "--password", "right-pass")
        code, text = yield self.register_sipp("1001", "wrong", scenario="register_refused.xml",
                                              local_ip="127.0.0.2")
        self.assertEqual(code, 0, text)
        code, text = yield self.register_sipp("1999", "anything", scenario="register_refused.xml",
                                              local_ip="127.0.0.2")
        self.assertEqual(code, 0, text)
        rows = yield self.registrations()
        self.assertEqual(rows, [])
        # the two refusals are identical apart from per-request values: no user enumeration
        wrong = yield Phone(self, self.switch, "1001", "wrong", host="127.0.0.4").register(
            "<sip:1001@127.0.0.4:5062>")
        unknown = yield Phone(self, self.switch, "1998", "wrong", host="127.0.0.4").register(
            "<sip:1998@127.0.0.4:5062>")
        self.assertEqual((wrong.status, wrong.reason), (403, unknown.reason))
        self.assertEqual(unknown.status, 403)
        self.assertEqual([name.lower() for name, _ in wrong.headers],
                         [name.lower() for name, _ in unknown.headers])

    @defer.inlineCallbacks
    def challenge_algorithms(self, number):
        phone = Phone(self, self.switch, number, "x")
        phone.client.transport.write(phone._register("<sip:x@127.0.0.1:5062>", 60, None),
                                     phone.dest)
        first = parse((yield phone.client.next()))[0]
        self.assertEqual(first.status, 401)
        return [parse_challenge(v).algorithm
                for v in first.headers.get_lines("www-authenticate")]

    @defer.inlineCallbacks
    def test_one_md5_challenge_by_default_sha256_per_extension(self):
        """As shipped one MD5 challenge (SIPp registers); ``extension digest 1001 sha-256``
        makes 1001 SHA-256 only: its phones are challenged with SHA-256, MD5 is refused."""
        yield self.mssctl("extension", "add", "1001", "--password", "s3cret-1001")
        self.assertEqual((yield self.challenge_algorithms("1001")), ["MD5"])
        code, text = yield self.register_sipp("1001", "s3cret-1001")
        self.assertEqual(code, 0, text)
        yield self.mssctl("extension", "digest", "1001", "sha-256")

        @defer.inlineCallbacks
        def sha256_only():
            return (yield self.challenge_algorithms("1001")) == ["SHA-256"]
        yield self.until(sha256_only, 5, "the switch challenges 1001 with SHA-256")
        self.assertEqual((yield self.challenge_algorithms("1999")), ["MD5"])    # unknown user
        response = yield Phone(self, self.switch, "1001", "s3cret-1001").register(
            "<sip:1001@127.0.0.1:5064>")
        self.assertEqual(response.status, 200)
        before = yield self.registrations("1001")
        # SIPp 3.6.1 computes MD5 only: it cannot register a SHA-256 extension
        code, text = yield self.register_sipp("1001", "s3cret-1001", device="B")
        self.assertNotEqual(code, 0, text)
        self.assertEqual((yield self.registrations("1001")), before)
        self.assertNotIn("SIPp B", str(before))


class BanTests(RegistrarTestCase):

    @defer.inlineCallbacks
    def test_brute_force_ban(self):
        """After ``ban_threshold`` failures the address gets silence and is listed by mssctl."""
        yield self.mssctl("extension", "add", "1001", "--password", "right-pass")
        for _ in range(3):
            code, text = yield self.register_sipp("1001", "guess", scenario="register_refused.xml",
                                                  local_ip="127.0.0.3")
            self.assertEqual(code, 0, text)
        phone = Phone(self, self.switch, "1001", "right-pass", host="127.0.0.3")
        # REGISTER then OPTIONS on the same socket: the OPTIONS answer arriving first (and
        # alone) shows the REGISTER was dropped, without waiting for a timeout
        phone.client.transport.write(phone._register("<sip:1001@127.0.0.3:5062>", 60, None),
                                     phone.dest)
        answer = yield phone.options()
        self.assertEqual(answer.method if answer.is_request else answer.cseq.method, "OPTIONS")
        self.assertEqual(phone.client.queue.pending, [])
        out = yield self.mssctl("bans")
        self.assertIn("127.0.0.3", out)
        self.assertNotIn("127.0.0.1 ", out)
        # another address is not affected, nor is the allow-listed one
        other = Phone(self, self.switch, "1001", "right-pass", host="127.0.0.5")
        response = yield other.register("<sip:1001@127.0.0.5:5062>", 60)
        self.assertEqual(response.status, 200)
        # lifting the ban with mssctl reaches the running switch
        yield self.mssctl("bans", "remove", "127.0.0.3")

        @defer.inlineCallbacks
        def answered():
            phone.client.transport.write(
                phone._register("<sip:1001@127.0.0.3:5062>", 60, None), phone.dest)
            yield phone.options()
            got = list(phone.client.queue.pending)
            del phone.client.queue.pending[:]
            return got
        yield self.until(answered, 3, "the lifted ban is seen by the switch")

    @defer.inlineCallbacks
    def test_allow_listed_never_banned(self):
        yield self.mssctl("extension", "add", "1001", "--password", "right-pass")
        phone = Phone(self, self.switch, "1001", "wrong")             # from 127.0.0.1
        for i in range(5):
            response = yield phone.register(f"<sip:1001@127.0.0.1:{5062 + i}>", 60)
            self.assertEqual(response.status, 403)
        phone.password = "right-pass"
        response = yield phone.register("<sip:1001@127.0.0.1:5062>", 60)
        self.assertEqual(response.status, 200)
        out = yield self.mssctl("bans")
        self.assertEqual(out.strip(), "no bans")


class MultiDeviceTests(RegistrarTestCase):

    @defer.inlineCallbacks
    def _two_devices(self, number):
        port_a, port_b = free_port(), free_port("127.0.0.2")
        code, text = yield self.register_sipp(number, "pw-1001-reg", local_port=port_a, device="A")
        self.assertEqual(code, 0, text)
        code, text = yield self.register_sipp(number, "pw-1001-reg", local_ip="127.0.0.2",
                                              local_port=port_b, device="B")
        self.assertEqual(code, 0, text)
        return port_a, port_b

    @defer.inlineCallbacks
    def test_newest_device_replaces_without_permission(self):
        yield self.mssctl("extension", "add", "1001", "--password", "pw-1001-reg")
        yield self._two_devices("1001")
        rows = yield self.registrations("1001")
        self.assertEqual([r[2] for r in rows], ["SIPp B"])
        self.assertIn("@127.0.0.2:", rows[0][1])

    @defer.inlineCallbacks
    def test_both_devices_with_permission_then_off(self):
        yield self.mssctl("extension", "add", "1001", "--password", "pw-1001-reg", "--multi-device")
        yield self._two_devices("1001")
        rows = yield self.registrations("1001")
        self.assertEqual(sorted(r[2] for r in rows), ["SIPp A", "SIPp B"])
        phone = Phone(self, self.switch, "1001", "pw-1001-reg")
        response = yield phone.register()
        self.assertEqual(len(contacts(response)), 2)
        # turn the permission off: the running switch keeps only the newest device, within ~2 s
        yield self.mssctl("extension", "multi-device", "1001", "off")

        @defer.inlineCallbacks
        def one_left():
            rows = yield self.registrations("1001")
            return rows if len(rows) == 1 else None
        rows = yield self.until(one_left, 2.5, "multi-device off applied by the switch")
        self.assertEqual(rows[0][2], "SIPp B")
        response = yield phone.register()
        self.assertEqual(list(contacts(response)), [rows[0][1]])


class RestartTests(RegistrarTestCase):

    @defer.inlineCallbacks
    def test_registrations_survive_kill_9(self):
        yield self.mssctl("extension", "add", "1001", "--password", "pw-1001-reg")
        yield self.mssctl("extension", "add", "1002", "--password", "pw-1001-reg")
        code, text = yield self.register_sipp("1001", "pw-1001-reg", expires=600)
        self.assertEqual(code, 0, text)
        yield self.switch.kill()
        # while the switch is down, 1002's binding expires in the store
        store = SQLiteStore(os.path.join(self.switch.dir, "mss.sqlite"))
        now = time.time()
        store.put_binding(Binding(aor="1002", key="sip:1002@127.0.0.9:5060",
                                  contact="sip:1002@127.0.0.9:5060", expires_at=now - 5,
                                  call_id="old", cseq=1, transport="udp",
                                  source_host="127.0.0.9", source_port=5060,
                                  registered_at=now - 65))
        store.close()
        yield self.switch.start()
        self.assertIn("loaded 1 live registrations", self.switch.output)
        rows = yield self.registrations()
        self.assertEqual([r[0] for r in rows], ["1001"])
        phone = Phone(self, self.switch, "1001", "pw-1001-reg")
        response = yield phone.register()
        self.assertEqual(response.status, 200)
        listed = contacts(response)
        self.assertEqual(list(listed), [rows[0][1]])
        self.assertTrue(0 < listed[rows[0][1]] <= 600)
        # the expired row was pruned from the store, not only hidden
        store = SQLiteStore(os.path.join(self.switch.dir, "mss.sqlite"))
        self.addCleanup(store.close)
        self.assertEqual([b.aor for b in store.list_bindings(0)], ["1001"])
