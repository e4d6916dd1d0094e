# -*- test-case-name: tests.trunk.test_registration -*-
"""Tests for mss.trunk.registration: the REGISTER client toward a carrier.

A real ``SipCore`` (transactions, retransmissions, Timer F) and a real ``SQLiteStore`` are
driven by ``task.Clock``; the carrier is this test reading what the core sends to the outbound
proxy address and answering with hand-made responses.
"""
from __future__ import annotations

import os

from twisted.internet import task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.digest.hashing import ha1
from mss.sip.digest.headers import parse_credentials
from mss.sip.digest.server import challenge, verify
from mss.sip.address import Address
from mss.sip.core import SipCore
from mss.sip.message import make_response
from mss.sip.parser import parse
from mss.store.sqlite import SQLiteStore
from mss.store.records import Trunk
from mss.trunk.registration import BACKOFF_CAP, BACKOFF_START, REJECTED_RETRY, TrunkRegistration

PROXY = Address("udp", "127.0.0.2", 5070)
DOMAIN = "gd.ctcims.cn"
IMS_ID = "+8675512345678@gd.ctcims.cn"
START = 1_700_000_000.0


def ims_trunk(**changes) -> Trunk:
    values = dict(name="ims", domain=DOMAIN, account="+8675512345678", password="secret",
                  proxy="127.0.0.2:5070", auth_id=IMS_ID, expires=600)
    values.update(changes)
    return Trunk(**values).validate()


class Carrier:
    """The registration under test, its core and store, and the carrier's side of the wire."""

    def __init__(self, testcase, trunk: Trunk):
        self.clock = task.Clock()
        self.clock.advance(START)
        self.core = SipCore(domain="mss.test", local_host=lambda host: "127.0.0.1",
                            ports={"udp": 5060, "tcp": 5060})
        path = os.path.join(testcase.mktemp() + ".sqlite")
        self.store = SQLiteStore(path)
        testcase.addCleanup(self.store.close)
        self.trunk = trunk
        self.reg = TrunkRegistration(self.core, self.clock, trunk, PROXY, store=self.store)
        self.core.register_user(self.reg, [])
        self.elsewhere: list = []

    def now(self) -> float:
        return self.clock.seconds()

    def received(self) -> list:
        """REGISTERs the core sent to the proxy address since the last call."""
        out = []
        for data, dest in self.core.datagrams_to_send():
            msg, _ = parse(data)
            if dest == PROXY:
                out.append(msg)
            else:
                self.elsewhere.append((msg, dest))
        return out

    def one(self, testcase):
        got = self.received()
        testcase.assertEqual(len(got), 1, [m.method for m in got])
        return got[0]

    def answer(self, request, status: int, *headers, reason=None) -> None:
        resp = make_response(request, status, reason, to_tag="carrier1",
                             headers=[list(h) for h in headers])
        resp.headers.add("Content-Length", "0")
        self.core.receive(resp.to_bytes(), PROXY, self.now())

    def challenge(self, request, status: int = 401, nonce: str = "n1", realm: str = DOMAIN,
                  stale: bool = False) -> None:
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        self.answer(request, status, (name, challenge(realm, nonce, stale=stale)))

    def ok(self, request, expires: int | None = None) -> None:
        contact = request.headers.get("contact")
        value = contact if expires is None else f"{contact};expires={expires}"
        self.answer(request, 200, ("Contact", value))

    def advance(self, seconds: float) -> None:
        """Let time pass, firing the core's timers (retransmissions, the refresh) as due."""
        end = self.now() + seconds
        while True:
            deadline = self.core.get_timer()
            if deadline is None or deadline > end:
                break
            self.clock.advance(max(0.0, deadline - self.now()))
            self.core.handle_timer(self.now())
        self.clock.advance(max(0.0, end - self.now()))
        self.core.handle_timer(self.now())

    def status(self) -> dict:
        return self.store.list_trunk_status()[self.trunk.name]


def credentials(request):
    for name in ("authorization", "proxy-authorization"):
        value = request.headers.get(name)
        if value:
            return name, parse_credentials(value)
    return None, None


class RequestShapeTests(SynchronousTestCase):
    def test_uris_carry_the_domain_while_the_datagram_goes_to_the_proxy(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        req = c.one(self)
        self.assertEqual(req.method, "REGISTER")
        self.assertEqual(str(req.uri), "sip:gd.ctcims.cn")
        self.assertEqual(str(req.from_.uri), "sip:+8675512345678@gd.ctcims.cn")
        self.assertEqual(str(req.to.uri), "sip:+8675512345678@gd.ctcims.cn")
        self.assertTrue(req.from_.tag)
        self.assertIsNone(req.to.tag)
        self.assertEqual(req.headers.get("expires"), "600")
        self.assertIn("sip:+8675512345678@127.0.0.1:5060", req.headers.get("contact"))
        self.assertEqual(c.elsewhere, [])
        self.assertEqual(c.reg.state, "registering")

    def test_supported_names_only_implemented_extensions(self):
        """No path or outbound: the client implements neither, so it must not claim them."""
        c = Carrier(self, ims_trunk())
        c.reg.start()
        self.assertEqual(c.one(self).headers.get("supported"), "100rel")

    def test_call_id_and_from_tag_stay_cseq_grows(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        first = c.one(self)
        c.challenge(first)
        second = c.one(self)
        self.assertEqual(second.call_id, first.call_id)
        self.assertEqual(second.from_.tag, first.from_.tag)
        self.assertEqual(second.cseq.number, first.cseq.number + 1)
        self.assertNotEqual(second.top_via.param("branch"), first.top_via.param("branch"))


class ChallengeTests(SynchronousTestCase):
    def test_401_answered_with_the_auth_id_and_the_challenge_realm(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.challenge(c.one(self), 401, realm="gd.ctcims.cn")
        req = c.one(self)
        name, creds = credentials(req)
        self.assertEqual(name, "authorization")
        self.assertEqual(creds.username, IMS_ID)
        self.assertEqual(creds.realm, "gd.ctcims.cn")
        self.assertEqual(creds.uri, "sip:gd.ctcims.cn")
        self.assertTrue(verify(creds, ha1("MD5", IMS_ID, DOMAIN, "secret"),
                               "REGISTER"))
        c.ok(req, expires=600)
        self.assertEqual(c.reg.state, "registered")
        self.assertEqual(c.status()["state"], "registered")
        self.assertEqual(c.status()["last_status"], 200)

    def test_407_answered_with_proxy_authorization(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.challenge(c.one(self), 407, realm="proxy.realm")
        name, creds = credentials(c.one(self))
        self.assertEqual(name, "proxy-authorization")
        self.assertEqual((creds.username, creds.realm), (IMS_ID, "proxy.realm"))

    def test_account_is_the_username_without_auth_id(self):
        c = Carrier(self, ims_trunk(auth_id=""))
        c.reg.start()
        c.challenge(c.one(self))
        _, creds = credentials(c.one(self))
        self.assertEqual(creds.username, "+8675512345678")

    def test_refused_credentials_mark_rejected_not_a_loop(self):
        """A second challenge to an authorised REGISTER (not stale) means wrong credentials."""
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.challenge(c.one(self), nonce="n1")
        c.challenge(c.one(self), nonce="n1")
        self.assertEqual(c.received(), [])
        self.assertEqual(c.reg.state, "rejected")

    def test_refused_credentials_with_a_fresh_nonce_are_rejected_too(self):
        """Many registrars issue a new nonce with every 401: still wrong credentials."""
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.challenge(c.one(self), nonce="n1")
        c.challenge(c.one(self), nonce="n2")
        self.assertEqual(c.received(), [])
        self.assertEqual(c.reg.state, "rejected")
        self.assertEqual(c.status()["state"], "rejected")

    def test_stale_nonce_is_answered_again(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.challenge(c.one(self), nonce="n1")
        c.challenge(c.one(self), nonce="n2", stale=True)
        _, creds = credentials(c.one(self))
        self.assertEqual(creds.nonce, "n2")
        self.assertNotEqual(c.reg.state, "rejected")

    def test_challenge_without_usable_digest_backs_off(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.answer(c.one(self), 401, ("WWW-Authenticate", 'Basic realm="x"'))
        self.assertEqual(c.received(), [])
        self.assertEqual(c.reg.state, "failed")
        c.advance(BACKOFF_START - 0.1)
        self.assertEqual(c.received(), [])
        c.advance(0.2)
        self.assertEqual(len(c.received()), 1)


class RefreshTests(SynchronousTestCase):
    def register(self, c, expires):
        c.reg.start()
        c.challenge(c.one(self))
        c.ok(c.one(self), expires=expires)
        self.assertEqual(c.reg.state, "registered")

    def test_refresh_before_expiry_uses_the_granted_time(self):
        c = Carrier(self, ims_trunk(expires=3600))
        self.register(c, expires=300)                  # the carrier grants less than asked
        self.assertEqual(c.status()["next_refresh"], START + 240)
        c.advance(239)
        self.assertEqual(c.received(), [])
        c.advance(1.2)                                 # before the first retransmission
        again = c.one(self)
        self.assertLess(c.now(), START + 300)
        self.assertEqual(again.headers.get("expires"), "3600")
        c.challenge(again, nonce="n9")
        c.ok(c.one(self), expires=300)
        self.assertEqual(c.reg.state, "registered")

    def test_short_registration_refreshes_at_half(self):
        c = Carrier(self, ims_trunk(expires=60))
        self.register(c, expires=60)
        c.advance(29.5)
        self.assertEqual(c.received(), [])
        c.advance(0.7)
        self.assertEqual(len(c.received()), 1)

    def test_expires_header_when_the_contact_has_none(self):
        c = Carrier(self, ims_trunk(expires=3600))
        c.reg.start()
        c.answer(c.one(self), 200, ("Expires", "120"))
        self.assertEqual(c.reg.state, "registered")
        self.assertEqual(c.reg.next_refresh, START + 60)

    def test_423_adopts_min_expires(self):
        c = Carrier(self, ims_trunk(expires=60))
        c.reg.start()
        c.answer(c.one(self), 423, ("Min-Expires", "1800"))
        again = c.one(self)
        self.assertEqual(again.headers.get("expires"), "1800")
        c.ok(again)
        self.assertEqual(c.reg.state, "registered")
        self.assertEqual(c.reg.next_refresh, START + 1740)

    def test_423_without_a_larger_min_expires_backs_off(self):
        c = Carrier(self, ims_trunk(expires=600))
        c.reg.start()
        c.answer(c.one(self), 423, ("Min-Expires", "300"))
        self.assertEqual(c.received(), [])
        self.assertEqual(c.reg.state, "failed")
        self.assertEqual(c.status()["last_status"], 423)


class FailureTests(SynchronousTestCase):
    def test_timeouts_back_off_exponentially_up_to_the_cap(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.received()
        starts, delays = [], []
        for _ in range(9):
            c.advance(32)                         # Timer F: 64*T1 = 32 s
            self.assertEqual(c.reg.state, "unreachable")
            delays.append(c.reg.next_refresh - c.now())
            c.advance(delays[-1])
            sent = c.received()
            self.assertTrue(sent, "no retry after the back-off")
            starts.append(c.now())
        self.assertEqual(delays[:4], [BACKOFF_START, 2 * BACKOFF_START, 4 * BACKOFF_START,
                                      8 * BACKOFF_START])
        self.assertEqual(max(delays), BACKOFF_CAP)
        self.assertEqual(delays[-1], BACKOFF_CAP)
        status = c.status()
        self.assertEqual(status["state"], "unreachable")
        self.assertEqual(status["last_status"], 408)

    def test_store_shows_every_attempt_and_the_true_next_one(self):
        """The store follows each step: a REGISTER under way (no next attempt), the failure
        with the time of the retry the log announces, the retry under way again."""
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.received()
        self.assertEqual((c.status()["state"], c.status()["next_refresh"]), ("registering", None))
        c.advance(32)
        self.assertEqual(c.status()["state"], "unreachable")
        self.assertEqual(c.status()["next_refresh"], c.now() + BACKOFF_START)
        c.advance(BACKOFF_START)
        self.assertTrue(c.received())
        self.assertEqual((c.status()["state"], c.status()["next_refresh"]), ("unreachable", None))
        c.answer(c.reg._tx.request, 503)
        self.assertEqual((c.status()["state"], c.status()["last_status"]), ("failed", 503))
        self.assertEqual(c.status()["next_refresh"], c.now() + 2 * BACKOFF_START)

    def test_transport_error_is_unreachable_at_once(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        c.received()
        c.core.transport_error(PROXY, c.now())
        self.assertEqual(c.reg.state, "unreachable")
        self.assertEqual(c.reg.next_refresh - c.now(), BACKOFF_START)
        self.assertIn("no answer", c.status()["last_reason"])

    def test_success_resets_the_back_off(self):
        c = Carrier(self, ims_trunk(expires=120))
        c.reg.start()
        c.answer(c.one(self), 500)
        c.advance(BACKOFF_START)
        c.answer(c.one(self), 503)
        self.assertEqual(c.reg.next_refresh - c.now(), 2 * BACKOFF_START)
        c.advance(2 * BACKOFF_START)
        c.ok(c.one(self))
        self.assertEqual(c.reg.backoff, BACKOFF_START)
        c.advance(60)                             # refresh of a 120 s registration
        c.answer(c.one(self), 500)
        self.assertEqual(c.reg.next_refresh - c.now(), BACKOFF_START)

    def test_403_rejected_logged_and_retried_slowly(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        c = Carrier(self, ims_trunk(auth_id=""))
        c.reg.start()
        c.challenge(c.one(self))
        c.answer(c.one(self), 403)
        self.assertEqual(c.reg.state, "rejected")
        status = c.status()
        self.assertEqual((status["state"], status["last_status"], status["last_reason"]),
                         ("rejected", 403, "Forbidden"))
        self.assertEqual(status["next_refresh"], START + REJECTED_RETRY)
        warnings = [e for e in events if e.get("trunk") == "ims" and "rejected" in
                    e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        from twisted.logger import formatEvent
        text = formatEvent(warnings[0])
        self.assertIn("wrong password", text)
        self.assertIn("full URI", text)
        self.assertIn("+8675512345678@gd.ctcims.cn", text)
        c.advance(REJECTED_RETRY - 1)
        self.assertEqual(c.received(), [])
        c.advance(1)
        retry = c.one(self)
        c.challenge(retry, nonce="n5")
        c.answer(c.one(self), 403)
        self.assertEqual(c.reg.next_refresh - c.now(), REJECTED_RETRY)

    def test_stop_cancels_the_refresh_and_ignores_late_answers(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        first = c.one(self)
        c.reg.stop()
        c.ok(first)
        self.assertNotEqual(c.reg.state, "registered")
        c.advance(4000)
        self.assertEqual([m for m in c.received() if m.cseq.number > 1], [])

    def test_responses_to_other_transactions_are_ignored(self):
        c = Carrier(self, ims_trunk())
        c.reg.start()
        first = c.one(self)
        c.challenge(first)
        c.one(self)
        c.ok(first)                              # late answer to the finished transaction
        self.assertNotEqual(c.reg.state, "registered")
