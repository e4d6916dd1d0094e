# -*- test-case-name: tests.registrar.test_registrar -*-
"""Tests for mss.registrar.registrar: REGISTER handling (RFC 3261 §10.3) through the real SIP
core, authenticator, binding table and an in-memory store, on a ``Clock``.

``Rig`` wires the parts the way ``mss.tap.Switch`` does; ``Phone`` is a UA that answers the
401 with the MD5 challenge (like SIPp and most phones) unless told to use SHA-256.
"""
from __future__ import annotations

import secrets

from twisted.internet.task import Clock
import attrs
from twisted.trial.unittest import SynchronousTestCase

from mss.registrar.abuse import BanList
from mss.registrar.auth import Authenticator
from mss.registrar.bindings import BindingTable
from mss.registrar.directory import Directory
from mss.registrar.registrar import MULTI_DEVICE, Registrar
from mss.sip.digest.client import authorization
from mss.sip.digest.headers import parse_challenge
from mss.sip.address import Address
from mss.sip.core import SipCore
from mss.sip.parser import parse
from mss.store.interface import StoreError
from mss.store.sqlite import SQLiteStore

REALM = "mss.test"
START = 1_700_000_000.0


class Rig:
    """Core + registrar + authenticator + bindings on one store and one Clock."""

    def __init__(self, *, store=None, clock=None, max_devices=5, threshold=3, allow=(),
                 min_expires=60, max_expires=3600, default_expires=3600, algorithms=("MD5",)):
        self.clock = clock or Clock()
        if clock is None:
            self.clock.advance(START)
        self.store = store or SQLiteStore(":memory:")
        self.core = SipCore(domain=REALM)
        self.directory = Directory(self.store)
        self.bans = BanList(threshold=threshold, window=60, ban_time=600, allow=allow)
        self.banned = []
        self.auth = Authenticator(self.directory, self.bans, realm=REALM, secret=b"s" * 32,
                                  nonce_lifetime=300, on_ban=self.banned.append,
                                  algorithms=algorithms)
        self.bindings = BindingTable(self.store, self.core.timers, self.core.at_end_of_turn,
                                     max_devices=max_devices)
        self.registrar = Registrar(self.core, self.clock, self.auth, self.bindings,
                                   self.directory, min_expires=min_expires,
                                   max_expires=max_expires, default_expires=default_expires,
                                   scanner_agents=("friendly-scanner", "sipvicious"),
                                   domain=REALM)
        self.core.register_user(self.registrar, ["REGISTER"])

    def add(self, number, password="pw", multi=False):
        self.store.add_extension(number, password, REALM,
                                 permissions=[MULTI_DEVICE] if multi else [])
        self.directory.invalidate()

    def advance(self, seconds):
        self.clock.advance(seconds)
        self.core.handle_timer(self.clock.seconds())

    def deliver(self, data: bytes, source: Address):
        self.core.receive(data, source, self.clock.seconds())
        self.core.end_turn(self.clock.seconds())      # as the shell ends the turn: group commit
        return [parse(d)[0] for d, _ in self.core.datagrams_to_send()]

    def contacts(self, number):
        return sorted(b.contact for b in self.bindings.get(number))


class Phone:
    def __init__(self, rig, number, password="pw", host="192.0.2.10", port=5062,
                 algorithm="MD5", user_agent="TestPhone/1.0"):
        self.rig = rig
        self.number = number
        self.password = password
        self.source = Address("udp", host, port)
        self.algorithm = algorithm
        self.user_agent = user_agent
        self.call_id = secrets.token_hex(8)
        self.cseq = 0
        self.contact = f"<sip:{number}@{host}:{port}>"
        self.last_auth = None

    def message(self, contacts=None, expires=None, auth=None, extra=(), to=None) -> bytes:
        self.cseq += 1
        lines = [
            f"REGISTER sip:{REALM} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.source.host}:{self.source.port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.number}@{REALM}>;tag={secrets.token_hex(3)}",
            f"To: <sip:{to or self.number}@{REALM}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
        ]
        if self.user_agent:
            lines.append(f"User-Agent: {self.user_agent}")
        for contact in ([self.contact] if contacts is None else contacts):
            lines.append(f"Contact: {contact}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        lines.extend(f"{n}: {v}" for n, v in extra)
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, **kw):
        out = self.rig.deliver(self.message(**kw), self.source)
        return out[0] if out else None

    def authorization(self, challenge_response, username=None, uri=f"sip:{REALM}", nc=1):
        challenges = [parse_challenge(v)
                      for v in challenge_response.headers.get_lines("www-authenticate")]
        chosen = next((c for c in challenges if c.algorithm == self.algorithm), None)
        if chosen is None:      # answer with our algorithm anyway (a downgrade or upgrade try)
            chosen = attrs.evolve(challenges[0], algorithm=self.algorithm)
        return authorization(chosen, username or self.number, self.password, "REGISTER",
                             uri, secrets.token_hex(4), nc=nc)

    def register(self, contacts=None, expires=None, extra=(), to=None):
        """Unauthenticated REGISTER, then the answer to its 401: the final response."""
        first = self.send(contacts=contacts, expires=expires, extra=extra, to=to)
        if first is None or first.status != 401:
            return first
        self.last_auth = self.authorization(first)
        return self.send(contacts=contacts, expires=expires, extra=extra, to=to,
                         auth=self.last_auth)


def listed(response) -> dict:
    return {str(c.uri): int(c.param("expires")) for c in response.contacts}


class RegistrarTestCase(SynchronousTestCase):
    rig_options: dict = {}

    def setUp(self):
        self.rig = Rig(**self.rig_options)
        self.addCleanup(self.rig.store.close)
        self.rig.add("1001")
        self.phone = Phone(self.rig, "1001")


class BindingTests(RegistrarTestCase):

    def test_add(self):
        response = self.phone.register(expires=600)
        self.assertEqual(response.status, 200)
        self.assertEqual(listed(response), {"sip:1001@192.0.2.10:5062": 600})
        self.assertIsNotNone(response.headers.get("date"))
        (b,) = self.rig.bindings.get("1001")
        self.assertEqual((b.source_host, b.source_port, b.transport), ("192.0.2.10", 5062, "udp"))
        self.assertEqual(b.user_agent, "TestPhone/1.0")
        self.assertEqual([x.aor for x in self.rig.store.list_bindings(START)], ["1001"])

    def test_200_only_once_committed(self):
        """Group commit: the 200 waits for the binding's commit (kill -9 after a 200 must not
        lose the registration); the commit is the core's end-of-turn step."""
        challenge = self.phone.send(expires=600)
        auth = self.phone.authorization(challenge)
        rig = self.rig
        rig.core.receive(self.phone.message(expires=600, auth=auth), self.phone.source,
                         rig.clock.seconds())
        self.assertEqual(rig.core.datagrams_to_send(), [])
        self.assertEqual(rig.store.list_bindings(START), [])
        self.assertEqual(len(rig.bindings.get("1001")), 1)      # routing sees it already
        rig.core.end_turn(rig.clock.seconds())
        self.assertEqual([b.aor for b in rig.store.list_bindings(START)], ["1001"])
        (data, _), = rig.core.datagrams_to_send()
        self.assertEqual(parse(data)[0].status, 200)

    def test_no_200_when_the_commit_fails(self):
        def broken(bindings):
            raise StoreError("disk full")
        self.rig.store.put_bindings = self.rig.store.put_binding = broken
        self.assertIsNone(self.phone.register(expires=600))
        self.assertEqual(len(self.flushLoggedErrors(StoreError)), 1)

    def test_default_expires(self):
        response = self.phone.register()
        self.assertEqual(listed(response), {"sip:1001@192.0.2.10:5062": 3600})

    def test_refresh(self):
        self.phone.register(expires=600)
        self.rig.advance(500)
        response = self.phone.register(expires=900)
        self.assertEqual(listed(response), {"sip:1001@192.0.2.10:5062": 900})
        self.assertEqual(len(self.rig.bindings.get("1001")), 1)
        self.rig.advance(600)                 # the old expiry (600 s after the first) passed
        self.assertEqual(len(self.rig.bindings.get("1001")), 1)

    def test_remove_with_expires_zero(self):
        self.phone.register(expires=600)
        response = self.phone.register(expires=0)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.contacts, [])
        self.assertEqual(self.rig.bindings.get("1001"), [])
        self.assertEqual(self.rig.store.list_bindings(START), [])

    def test_remove_with_contact_expires_param(self):
        self.phone.register(expires=600)
        response = self.phone.register(contacts=[self.phone.contact + ";expires=0"], expires=600)
        self.assertEqual(response.contacts, [])

    def test_contact_expires_param_wins(self):
        response = self.phone.register(contacts=[self.phone.contact + ";expires=120"], expires=600)
        self.assertEqual(listed(response), {"sip:1001@192.0.2.10:5062": 120})

    def test_wildcard(self):
        self.rig.store.set_permission("1001", MULTI_DEVICE, True)
        self.rig.directory.invalidate()
        self.phone.register(contacts=["<sip:1001@192.0.2.10:5062>", "<sip:1001@192.0.2.10:5064>"])
        self.assertEqual(len(self.rig.bindings.get("1001")), 2)
        response = self.phone.register(contacts=["*"], expires=0)
        self.assertEqual(response.status, 200)
        self.assertEqual(self.rig.bindings.get("1001"), [])

    def test_wildcard_needs_expires_zero(self):
        self.phone.register()
        response = self.phone.register(contacts=["*"], expires=60)
        self.assertEqual(response.status, 400)
        response = self.phone.register(contacts=["*", self.phone.contact], expires=0)
        self.assertEqual(response.status, 400)
        self.assertEqual(len(self.rig.bindings.get("1001")), 1)

    def test_query(self):
        self.phone.register(expires=600)
        self.rig.advance(100)
        response = Phone(self.rig, "1001", host="192.0.2.50").register(contacts=[])
        self.assertEqual(response.status, 200)
        self.assertEqual(listed(response), {"sip:1001@192.0.2.10:5062": 500})

    def test_too_brief_423(self):
        response = self.phone.register(expires=30)
        self.assertEqual(response.status, 423)
        self.assertEqual(response.headers.get("min-expires"), "60")
        self.assertEqual(self.rig.bindings.get("1001"), [])

    def test_max_expires_cap(self):
        response = self.phone.register(expires=99999)
        self.assertEqual(listed(response), {"sip:1001@192.0.2.10:5062": 3600})
        response = self.phone.register(expires=99999999999999)
        self.assertEqual(listed(response), {"sip:1001@192.0.2.10:5062": 3600})

    def test_bad_expires_400(self):
        response = self.phone.register(expires="soon")
        self.assertEqual(response.status, 400)

    def test_non_sip_contact_400(self):
        response = self.phone.register(contacts=["<tel:+15551234>"])
        self.assertEqual(response.status, 400)

    def test_out_of_order_500(self):
        self.phone.register(expires=600)             # CSeq 1 (401) and 2 (200)
        self.phone.cseq = 1                          # next request goes out with CSeq 2 again
        first = self.phone.send(expires=600)
        self.assertEqual(first.status, 401)
        self.phone.cseq = 1
        response = self.phone.send(expires=600, auth=self.phone.authorization(first))
        self.assertEqual(response.status, 500)
        self.assertEqual(response.headers.get("retry-after"), "1")

    def test_new_call_id_any_cseq(self):
        self.phone.register(expires=600)
        other = Phone(self.rig, "1001")               # same contact, new Call-ID, CSeq 1
        self.assertEqual(other.register(expires=300).status, 200)

    def test_expiry_by_clock(self):
        self.phone.register(expires=600)
        self.rig.advance(599)
        self.assertEqual(len(self.rig.bindings.get("1001")), 1)
        self.rig.advance(1)
        self.assertEqual(self.rig.bindings.get("1001"), [])
        self.assertEqual(self.rig.store.list_bindings(0), [])

    def test_instance_id_identifies_device(self):
        """RFC 5626: same +sip.instance with a new contact is the same device."""
        inst = ';+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>"'
        self.phone.register(contacts=["<sip:1001@192.0.2.10:5062>" + inst])
        response = self.phone.register(contacts=["<sip:1001@192.0.2.10:6000>" + inst])
        self.assertEqual(list(listed(response)), ["sip:1001@192.0.2.10:6000"])


class MultiDeviceTests(RegistrarTestCase):
    rig_options = {"max_devices": 3}

    def device(self, n, number="1001"):
        return Phone(self.rig, number, host=f"192.0.2.{10 + n}")

    def test_newest_replaces_without_permission(self):
        self.device(1).register()
        self.rig.advance(1)
        response = self.device(2).register()
        self.assertEqual(list(listed(response)), ["sip:1001@192.0.2.12:5062"])
        self.assertEqual(self.rig.contacts("1001"), ["sip:1001@192.0.2.12:5062"])
        self.assertEqual([b.contact for b in self.rig.store.list_bindings(0)],
                         ["sip:1001@192.0.2.12:5062"])

    def test_up_to_max_devices_oldest_dropped(self):
        self.rig.add("1002", multi=True)
        for n in range(1, 5):
            self.device(n, "1002").register()
            self.rig.advance(1)
        self.assertEqual(self.rig.contacts("1002"),
                         [f"sip:1002@192.0.2.{10 + n}:5062" for n in (2, 3, 4)])

    def test_refresh_does_not_make_a_device_newer(self):
        """The oldest device is the one registered first, refreshes do not reorder."""
        self.rig.add("1002", multi=True)
        first = self.device(1, "1002")
        first.register()
        self.rig.advance(1)
        self.device(2, "1002").register()
        self.rig.advance(1)
        self.device(3, "1002").register()
        self.rig.advance(1)
        first.register()                      # refresh of the first device
        self.rig.advance(1)
        self.device(4, "1002").register()
        # age counts from the first registration: device 1 is still the oldest and goes
        self.assertEqual(self.rig.contacts("1002"),
                         [f"sip:1002@192.0.2.{10 + n}:5062" for n in (2, 3, 4)])

    def test_permission_changed_at_run_time(self):
        self.rig.add("1002", multi=True)
        self.device(1, "1002").register()
        self.rig.advance(1)
        self.device(2, "1002").register()
        self.assertEqual(len(self.rig.bindings.get("1002")), 2)
        self.rig.store.set_permission("1002", MULTI_DEVICE, False)
        self.rig.directory.invalidate()
        # the next REGISTER applies the rule: only the device registering now stays
        self.device(3, "1002").register()
        self.assertEqual(self.rig.contacts("1002"), ["sip:1002@192.0.2.13:5062"])
        # and granted again, devices add up
        self.rig.store.set_permission("1002", MULTI_DEVICE, True)
        self.rig.directory.invalidate()
        self.device(1, "1002").register()
        self.assertEqual(len(self.rig.bindings.get("1002")), 2)


class RestartTests(SynchronousTestCase):

    def test_reload_prunes_expired(self):
        path = self.mktemp()
        rig = Rig(store=SQLiteStore(path))
        rig.add("1001")
        rig.add("1002")
        Phone(rig, "1001").register(expires=3600)
        Phone(rig, "1002", host="192.0.2.20").register(expires=120)
        rig.store.close()                               # the process dies here
        clock = Clock()
        clock.advance(START + 600)                      # 1002 expired while we were down
        again = Rig(store=SQLiteStore(path), clock=clock)
        self.addCleanup(again.store.close)
        self.assertEqual(again.bindings.load(clock.seconds()), 1)
        self.assertEqual(again.contacts("1001"), ["sip:1001@192.0.2.10:5062"])
        self.assertEqual(again.contacts("1002"), [])
        self.assertEqual([b.aor for b in again.store.list_bindings(0)], ["1001"])
        # the loaded binding keeps its expiry timer and is listed with the right remainder
        response = Phone(again, "1001", host="192.0.2.99").register(contacts=[])
        self.assertEqual(listed(response), {"sip:1001@192.0.2.10:5062": 3000})
        again.advance(3000)
        self.assertEqual(again.contacts("1001"), [])


class ScannerTests(RegistrarTestCase):

    def test_scanner_user_agent_dropped(self):
        phone = Phone(self.rig, "1001", user_agent="friendly-scanner")
        self.assertIsNone(phone.send())
        self.assertEqual(self.rig.registrar.counters["dropped"], 1)
        phone.user_agent = "SIPVicious PBX scanner"
        self.assertIsNone(phone.send())

    def test_ordinary_agent_answered(self):
        self.assertEqual(Phone(self.rig, "1001", user_agent="").send().status, 401)
