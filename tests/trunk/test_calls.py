# -*- test-case-name: tests.trunk.test_calls -*-
"""Trunk calls in the call core (mss.call.hunting, mss.call.reauth, mss.call.call and
mss.call.manager _trunk_invite) with a real TrunkDispatcher: the INVITE a carrier gets,
digest on the INVITE, failover rules, and per-direction counts released on every way a
call ends. Driven through the call tests' in-memory switch (tests.call.fakes) and task.Clock;
carriers are phones on 127.0.0.2 / 127.0.0.3."""
from __future__ import annotations

import itertools

from twisted.trial.unittest import SynchronousTestCase

from mss.sip.digest.hashing import ha1
from mss.sip.digest.headers import parse_credentials
from mss.sip.digest.server import challenge, verify
from mss.sip.address import Address
from mss.trunk.dispatcher import TrunkDispatcher
from mss.store.records import Trunk
from tests.call.fakes import SDP, Phone, Switch, sdp

DOMAIN = "gd.ctcims.cn"
_calls = itertools.count(1)
AUTH_ID = "+8675512345678@gd.ctcims.cn"


def trunk(name, host, **changes) -> Trunk:
    values = dict(name=name, domain=DOMAIN, account="+8675512345678", auth_id=AUTH_ID,
                  password="carrier-pw", proxy=f"{host}:5070", register=False, allow=(host,))
    values.update(changes)
    return Trunk(**values)


class TrunkCallTestCase(SynchronousTestCase):
    trunks = (trunk("first", "127.0.0.2"), trunk("second", "127.0.0.3"))
    routes = (("0", ("first", "second"), 1, "+86"),)

    def setUp(self):
        self.sw = Switch(self)
        for number in ("1001", "1002"):
            self.sw.extension(number)
        for t in self.trunks:
            self.sw.store.put_trunk(t)
        for prefix, names, strip, prepend in self.routes:
            self.sw.store.add_route(prefix, list(names), strip=strip, prepend=prepend)
        self.sw.store.add_did("+8675512345678", "1002")
        self.d = TrunkDispatcher(self.sw.core, self.sw.clock, self.sw.store, resolve=lambda h: h)
        self.d.reload()
        self.sw.calls.trunks = self.d
        self.sw.calls.router.trunks = self.d
        self.a = self.sw.phone("1001", 5061, register=False)
        self.b = self.sw.phone("1002", 5062)
        self.c1 = self.carrier("127.0.0.2")
        self.c2 = self.carrier("127.0.0.3")

    def carrier(self, host: str) -> Phone:
        p = Phone(self.sw, "carrier", 5070)
        p.addr = Address("udp", host, 5070)
        p.contact = f"sip:carrier@{host}:5070"
        self.sw.phones[(host, 5070)] = p
        return p

    def dial(self, number="0755123"):
        out = self.a.invite(number)
        self.a.take(100)
        return out

    def released(self):
        self.assertEqual(self.d.active, {})

    def assert_clean(self):
        self.sw.assert_clean(self)
        self.released()


class OutboundInviteTests(TrunkCallTestCase):
    def test_invite_to_the_carrier(self):
        out = self.dial("0755123")
        inv = self.c1.incoming().invite
        self.assertEqual(str(inv.uri), "sip:+86755123@gd.ctcims.cn")
        self.assertEqual(str(inv.to.uri), "sip:+86755123@gd.ctcims.cn")
        self.assertEqual(str(inv.from_.uri), "sip:1001@gd.ctcims.cn")
        self.assertIn("100rel", inv.option_tags("supported"))
        self.assertFalse(inv.option_tags("require"))
        self.assertNotEqual(inv.call_id, out.call_id)
        self.assertEqual(self.d.active, {("first", "out"): 1})
        self.assertEqual(self.c2.inbox, [])

    def test_caller_id_identity_and_uri_format(self):
        self.sw.store.put_trunk(trunk("first", "127.0.0.2", from_user="+8675500000000",
                                      from_display="ACME", identity="ppi", uri_format="tel",
                                      prack="off"), replace=True)
        self.d.reload()
        self.a.invite("0755123", headers=[("P-Asserted-Identity", "<sip:1001@inside>"),
                                          ("Privacy", "id")])
        inv = self.c1.incoming().invite
        self.assertEqual(str(inv.uri), "tel:+86755123")
        self.assertEqual(str(inv.from_.uri), "sip:+8675500000000@gd.ctcims.cn")
        self.assertEqual(inv.from_.display, "ACME")
        self.assertIn("sip:+8675500000000@gd.ctcims.cn", inv.headers.get("p-preferred-identity"))
        self.assertIsNone(inv.headers.get("p-asserted-identity"))   # the caller's is not leaked
        self.assertEqual(inv.headers.get("privacy"), "id")
        self.assertFalse(inv.option_tags("supported"))

    def test_407_answered_with_the_auth_id(self):
        self.dial()
        inc = self.c1.incoming()
        inc.respond(407, headers=[("Proxy-Authenticate", challenge(DOMAIN, "nA"))])
        self.c1.take("ACK")
        again = self.c1.incoming().invite
        creds = parse_credentials(again.headers.get("proxy-authorization"))
        self.assertEqual((creds.username, creds.realm, creds.uri),
                         (AUTH_ID, DOMAIN, "sip:+86755123@gd.ctcims.cn"))
        self.assertTrue(verify(creds, ha1("MD5", AUTH_ID, DOMAIN, "carrier-pw"),
                               "INVITE"))
        self.assertEqual(again.call_id, inc.invite.call_id)
        self.assertEqual(again.from_.tag, inc.invite.from_.tag)
        self.assertEqual(again.cseq.number, 2)
        self.assertEqual(self.a.kinds(), [])              # the caller sees nothing of it

    def test_401_answered_with_authorization(self):
        self.dial()
        inc = self.c1.incoming()
        inc.respond(401, headers=[("WWW-Authenticate", challenge(DOMAIN, "nB"))])
        again = self.c1.incoming().invite
        self.assertIn(AUTH_ID, again.headers.get("authorization"))

    def test_refused_credentials_fail_over_and_never_reach_the_caller(self):
        """A carrier that challenges our answer again is not answered a third time; its
        401/407 must not reach the extension (which would try its own credentials)."""
        self.dial()
        inc = self.c1.incoming()
        inc.respond(407, headers=[("Proxy-Authenticate", challenge(DOMAIN, "n1"))])
        again = self.c1.incoming()
        again.respond(407, headers=[("Proxy-Authenticate", challenge(DOMAIN, "n2"))])
        self.assertEqual(self.c1.kinds(), ["ACK", "ACK"])
        self.c1.inbox.clear()
        self.assertNotIn(407, self.a.kinds())
        second = self.c2.incoming()
        second.respond(503)
        self.assertEqual(self.a.kinds(), [503])
        self.assert_clean()


class FailoverTests(TrunkCallTestCase):
    def test_503_fails_over_then_the_answer_and_bye_release(self):
        out = self.dial()
        self.c1.incoming().respond(503)
        inc = self.c2.incoming()
        self.assertEqual(self.d.active, {("second", "out"): 1})
        inc.respond(180)
        self.a.take(180)
        inc.respond(200, sdp(5000))
        out.ack(self.a.take(200))
        self.c2.take("ACK")
        inc.request("BYE")                                 # the carrier hangs up
        self.a.take("BYE")
        self.released()
        cdr = self.sw.cdrs()[0]
        self.assertEqual((cdr.direction, cdr.disposition, cdr.trunk),
                         ("outbound", "answered", "second"))

    def test_timeout_fails_over(self):
        """Timer B (32 s) on the first trunk; needs a ring time longer than that."""
        self.sw.calls.no_answer_timeout = 60
        self.dial()
        self.c1.inbox.clear()
        self.sw.advance(32.5)                              # Timer B
        self.c2.incoming()
        self.assertEqual(self.d.active, {("second", "out"): 1})

    def test_transport_failure_fails_over(self):
        self.dial()
        self.c1.inbox.clear()
        self.sw.core.transport_error(Address("udp", "127.0.0.2", 5070), self.sw.now())
        self.sw.deliver()
        self.c2.incoming()
        self.assertEqual(self.d.active, {("second", "out"): 1})

    def test_no_failover_on_busy_decline_not_found(self):
        for status in (486, 603, 404):
            self.dial()
            inc = self.c1.incoming()
            inc.respond(status)
            self.assertEqual(self.a.kinds(), [status])
            self.a.inbox.clear()
            self.c1.inbox.clear()
            self.assertEqual(self.c2.inbox, [])
            self.released()
        self.assert_clean()

    def test_every_trunk_failing_gives_the_caller_the_first_5xx(self):
        self.dial()
        self.c1.incoming().respond(500)
        self.c2.incoming().respond(503)
        self.assertEqual(self.a.kinds(), [500])
        self.assert_clean()


class ReleaseTests(TrunkCallTestCase):
    def test_caller_cancels_while_the_carrier_rings(self):
        out = self.dial()
        inc = self.c1.incoming()
        inc.respond(180)
        out.cancel()
        self.assertIn(487, self.a.kinds())
        cancel = self.c1.take("CANCEL")
        inc.respond(200, request=cancel)
        inc.respond(487)
        self.released()
        self.assert_clean()

    def test_no_answer(self):
        self.dial()
        self.c1.incoming().respond(180)
        self.sw.advance(31)
        self.assertIn(480, self.a.kinds())
        self.released()

    def test_caller_hangs_up(self):
        out = self.dial()
        inc = self.c1.incoming()
        inc.respond(200, sdp(5000))
        out.ack(self.a.take(200))
        self.assertEqual(self.d.active, {("first", "out"): 1})
        out.request("BYE")
        bye = self.c1.take("BYE")
        inc.respond(200, request=bye)
        self.released()

    def user_timers(self) -> int:
        """Live timers on the core's heap other than the transactions' own."""
        layer = self.sw.core.layer
        return sum(1 for _, _, t in self.sw.core.timers._heap
                   if not t.cancelled and getattr(t.fn, "__self__", None) is not layer)

    def test_limits_refuse_before_sending(self):
        self.sw.store.put_trunk(trunk("first", "127.0.0.2", max_out=0), replace=True)
        self.sw.store.put_trunk(trunk("second", "127.0.0.3", max_out=0), replace=True)
        self.d.reload()
        timers = self.user_timers()
        self.dial()
        self.assertEqual(self.a.kinds(), [403])            # every trunk forbids: 403
        self.assertEqual(self.user_timers(), timers, "a refused call left a ring timer")
        self.a.inbox.clear()
        self.sw.store.put_trunk(trunk("second", "127.0.0.3", max_out=1), replace=True)
        self.d.reload()
        self.dial()
        self.c2.incoming().respond(180)
        self.dial()
        self.assertEqual(self.a.kinds(), [180, 503])       # one forbids, one is full: 503
        self.assertEqual(self.c1.inbox, [])
        self.assertEqual(self.d.active, {("second", "out"): 1})


class InboundTests(TrunkCallTestCase):
    def inbound(self, carrier, number="+8675512345678", scheme="sip"):
        p = carrier
        uri = f"tel:{number}" if scheme == "tel" else f"sip:{number}@127.0.0.1"
        lines = [f"INVITE {uri} SIP/2.0", f"Via: {p.via()}",
                 f"From: <sip:+8613800138000@{DOMAIN}>;tag=cin{next(_calls)}", f"To: <{uri}>",
                 f"Call-ID: in-{next(_calls)}", "CSeq: 1 INVITE",
                 f"Contact: <{p.contact}>", "Max-Forwards: 70", "Content-Type: application/sdp",
                 f"Content-Length: {len(SDP)}"]
        p.send(("\r\n".join(lines) + "\r\n\r\n").encode() + SDP)

    def test_did_rings_the_extension_and_counts_in(self):
        self.inbound(self.c1, scheme="tel")
        inc = self.b.incoming()
        self.assertEqual(self.d.active, {("first", "in"): 1})
        self.assertEqual(inc.invite.from_.uri.number, "+8613800138000")
        inc.respond(486)
        self.assertIn(486, self.c1.kinds())
        self.released()

    def test_did_from_the_to_header(self):
        """IMS delivers calls to the registered Contact (the account); the DID is in To."""
        p = self.c1
        lines = [f"INVITE sip:+8675500000001@127.0.0.1:5060 SIP/2.0", f"Via: {p.via()}",
                 f"From: <sip:+8613800138000@{DOMAIN}>;tag=cto", "To: <tel:+86-755-1234-5678>",
                 f"Call-ID: in-to-{next(_calls)}", "CSeq: 1 INVITE", f"Contact: <{p.contact}>",
                 "Max-Forwards: 70", "Content-Length: 0"]
        p.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.b.incoming()
        self.assertEqual(self.d.active, {("first", "in"): 1})

    def test_shared_address_counts_on_the_account_called(self):
        self.sw.store.put_trunk(trunk("second", "127.0.0.2", account="+8675500000002",
                                      max_in=1), replace=True)
        self.sw.store.add_did("+8675500000002", "1002")
        self.d.reload()
        self.inbound(self.c1, number="+8675500000002")
        self.b.incoming()
        self.assertEqual(self.d.active, {("second", "in"): 1})

    def test_callee_offline_releases(self):
        self.sw.bindings.remove_all("1002")
        self.inbound(self.c1)
        self.assertIn(480, self.c1.kinds())
        self.released()

    def test_limits(self):
        self.sw.store.put_trunk(trunk("first", "127.0.0.2", max_in=1), replace=True)
        self.sw.store.put_trunk(trunk("second", "127.0.0.3", max_in=0), replace=True)
        self.d.reload()
        self.inbound(self.c2)
        self.assertIn(403, self.c2.kinds())
        self.inbound(self.c1)
        self.b.incoming().respond(180)
        self.c1.inbox.clear()
        self.inbound(self.c1, number="8675512345678")
        self.assertIn(503, self.c1.kinds())

    def test_unknown_did_404(self):
        self.inbound(self.c1, number="+8675599999999")
        self.assertIn(404, self.c1.kinds())
        self.released()


class SilentCarrierTests(TrunkCallTestCase):
    """A carrier that sends nothing, not even 100 Trying: the next trunk is tried after
    TRUNK_NO_RESPONSE seconds instead of Timer B (32 s, longer than the ring time)."""

    def test_next_trunk_after_silence(self):
        from mss.call.hunting import TRUNK_NO_RESPONSE
        out = self.dial()
        self.c1.inbox.clear()
        self.sw.advance(TRUNK_NO_RESPONSE - 0.1)
        self.assertEqual(self.c2.inbox, [])
        self.c1.inbox.clear()                               # INVITE retransmissions
        self.sw.advance(0.2)
        inc = self.c2.incoming()
        self.assertEqual(self.d.active, {("second", "out"): 1})
        inc.respond(200, sdp(5000))
        out.ack(self.a.take(200))
        self.c2.take("ACK")
        out.request("BYE")
        inc.respond(200, request=self.c2.take("BYE"))
        self.released()

    def test_late_answers_of_the_silent_carrier_are_ended(self):
        from mss.call.hunting import TRUNK_NO_RESPONSE
        self.dial()
        late = self.c1.incoming()
        self.c1.inbox.clear()
        self.sw.advance(TRUNK_NO_RESPONSE + 0.1)
        self.c1.inbox.clear()
        second = self.c2.incoming()
        late.respond(180)
        self.assertEqual(self.a.kinds(), [])                # not relayed to the caller
        cancel = self.c1.take("CANCEL")                     # the deferred CANCEL goes now
        late.respond(200, request=cancel)
        late.respond(200, sdp(6000))                        # yet it answers (a race)
        self.c1.take("ACK")
        bye = self.c1.take("BYE")
        late.respond(200, request=bye)
        self.assertEqual(self.a.kinds(), [])                # the second trunk still rings
        second.respond(200, sdp(5000))
        self.assertEqual(self.a.kinds(), [200])
        self.assertEqual(self.d.active, {("second", "out"): 1})

    def test_single_trunk_waits_for_the_ring_time(self):
        self.sw.store.add_route("5", ["first"])
        self.d.reload()
        self.dial("5123")
        self.sw.advance(10)
        self.assertEqual(self.a.kinds(), [])
        self.assertEqual(self.c2.inbox, [])
        self.sw.advance(21)
        self.assertEqual(set(self.a.kinds()), {480})        # (and its retransmissions)
        self.released()


class InDialogChallengeTests(TrunkCallTestCase):
    """Carriers that challenge requests inside the dialog: answered once with the auth ID."""

    def answered(self):
        out = self.dial()
        inc = self.c1.incoming()
        inc.respond(200, sdp(5000))
        out.ack(self.a.take(200))
        self.c1.take("ACK")
        return out, inc

    def challenge(self, inc, request, status=407, nonce="nD"):
        name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        inc.respond(status, request=request, headers=[(name, challenge(DOMAIN, nonce))])

    def test_bye_answered_once(self):
        out, inc = self.answered()
        out.request("BYE")
        self.a.take(200)
        bye = self.c1.take("BYE")
        self.challenge(inc, bye)
        again = self.c1.take("BYE")
        creds = parse_credentials(again.headers.get("proxy-authorization"))
        self.assertEqual((creds.username, creds.realm), (AUTH_ID, DOMAIN))
        self.assertTrue(verify(creds, ha1("MD5", AUTH_ID, DOMAIN, "carrier-pw"),
                               "BYE"))
        self.assertEqual(again.cseq.number, bye.cseq.number + 1)
        self.assertEqual((again.call_id, again.to.tag), (bye.call_id, bye.to.tag))
        self.challenge(inc, again, nonce="nE")              # refused again: give up
        self.assertEqual(self.c1.kinds(), [])
        self.released()

    def test_prack_answered(self):
        self.dial()
        inc = self.c1.incoming()
        inc.respond(180, headers=[("Require", "100rel"), ("RSeq", "1")])
        prack = self.c1.take("PRACK")
        self.challenge(inc, prack, status=401)
        again = self.c1.take("PRACK")
        self.assertIn(AUTH_ID, again.headers.get("authorization"))
        self.assertEqual(again.headers.get("rack"), prack.headers.get("rack"))
        self.assertEqual(again.cseq.number, prack.cseq.number + 1)

    def test_relayed_reinvite_answered_and_the_caller_never_sees_the_challenge(self):
        out, inc = self.answered()
        out.request("INVITE", body=sdp(4002, "sendonly"))
        reinvite = self.c1.take("INVITE")
        self.challenge(inc, reinvite)
        self.c1.take("ACK")                                  # the 407 is ACKed hop by hop
        again = self.c1.take("INVITE")
        self.assertIn(AUTH_ID, again.headers.get("proxy-authorization"))
        self.assertIn(b"sendonly", again.body)
        self.assertNotIn(407, self.a.kinds())
        inc.respond(200, sdp(5000, "recvonly"), request=again)
        self.assertEqual([k for k in self.a.kinds() if k != 100], [200])

    def test_extension_legs_are_not_answered(self):
        """Only carrier legs carry credentials; a phone's 407 is relayed as before."""
        self.sw.store.add_extension("1003", "pw-1003", "mss.test")
        self.sw.directory.invalidate()
        phone = self.sw.phone("1003", 5063)
        out = self.a.invite("1003")
        inc = phone.incoming()
        inc.respond(200, sdp(5000))
        out.ack(self.a.take(200))
        phone.take("ACK")
        out.request("INFO")
        info = phone.take("INFO")
        inc.respond(407, request=info, headers=[("Proxy-Authenticate",
                                                 challenge("x", "n"))])
        self.assertIn(407, self.a.kinds())
        self.assertFalse(phone.has("INFO"))


class FakeEngine:
    """Services that decide at the terminating hook (what a Lua forwarding service does)."""

    def __init__(self, terminating):
        self.decision = terminating

    def claims(self, dialled):
        return None

    def originating(self, facts):
        from mss.services.api import CONTINUE_DECISION
        return CONTINUE_DECISION

    def terminating(self, facts, callee):
        return self.decision

    def busy(self, facts):
        from mss.services.api import CONTINUE_DECISION
        return CONTINUE_DECISION

    no_answer = busy

    def answered(self, facts):
        pass

    def ended(self, facts, cause):
        pass


class ServiceTests(TrunkCallTestCase):
    """An inbound trunk call that a service forwards out again (hairpin) or answers itself
    keeps its inbound count until it ends, next to the outbound one."""

    def install(self, decision):
        from mss.call.services import ServiceHooks
        m = self.sw.calls
        m.hooks = ServiceHooks(FakeEngine(decision), m.directory, m.bindings, m.wall, m.in_call)

    def inbound(self, number="+8675512345678"):
        InboundTests.inbound(self, self.c1, number)

    def test_forwarded_back_out_through_a_trunk(self):
        from mss.services.api import Decision
        self.install(Decision.redirect("0755999", service="forward"))
        self.inbound()
        out = self.c1.incoming()                        # the carrier gets the forwarded call
        self.assertEqual(str(out.invite.uri), "sip:+86755999@gd.ctcims.cn")
        self.assertEqual(self.d.active, {("first", "in"): 1, ("first", "out"): 1})
        out.respond(200, sdp(5000))
        self.c1.take(200)
        out.request("BYE")
        self.released()

    def test_forwarded_call_that_fails_releases_both(self):
        from mss.services.api import Decision
        self.install(Decision.redirect("0755999", service="forward"))
        self.inbound()
        self.c1.incoming().respond(486)
        self.released()

    def test_forwarded_on_no_answer(self):
        from mss.services.api import CONTINUE_DECISION, Decision
        self.install(CONTINUE_DECISION)
        self.sw.calls.hooks.engine.no_answer = lambda facts: Decision.redirect(
            "0755888", reason="no_answer", service="forward")
        self.inbound()
        ringing = self.b.incoming()
        ringing.respond(180)
        self.sw.advance(30.5)                           # the ring time: forward
        self.b.take("CANCEL")
        out = self.c1.incoming()
        self.assertEqual(str(out.invite.uri), "sip:+86755888@gd.ctcims.cn")
        self.assertIn("sip:1002@", out.invite.headers.get("diversion"))
        self.assertEqual(self.d.active, {("first", "in"): 1, ("first", "out"): 1})
        out.respond(503)
        self.c2.incoming().respond(603)                 # failover, then a final refusal
        self.released()

    def test_answered_by_a_service(self):
        from mss.services.api import ANSWER, Decision
        self.install(Decision(ANSWER, tone="announcement", service="ivr"))
        self.inbound()
        self.assertEqual(self.d.active, {("first", "in"): 1})
        self.sw.advance(3)                              # the service hangs up
        self.released()
