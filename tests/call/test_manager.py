# -*- test-case-name: tests.call.test_manager -*-
"""The call core's transaction user (mss.call.manager): what happens to a new INVITE before a
call rings (overload, authentication, routing, call waiting, merged requests), requests and
responses that match no call, CDR durability, and that nothing leaks."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.call.context import CALL_WAITING_OFF
from tests.call.fakes import SDP, InCall, OutCall, Switch, sdp


class ManagerTestCase(SynchronousTestCase):
    options: dict = {}

    def setUp(self):
        self.sw = Switch(self, **self.options)
        for number in ("1001", "1002", "1003"):
            self.sw.extension(number)
        self.a = self.sw.phone("1001", 5061, register=False)
        self.b = self.sw.phone("1002", 5062)

    def answered(self, caller, callee_phone, callee="1002"):
        out = caller.invite(callee)
        inc = callee_phone.incoming()
        inc.respond(200, sdp(5000))
        ok = caller.take(200)
        callee_phone.take("ACK")
        out.ack(ok)
        return out, inc


class NewInviteTests(ManagerTestCase):
    def test_challenge(self):
        """An INVITE without credentials gets 407 with the digest challenge; no call, no CDR."""
        self.a.invite("1002", auth=False)
        challenge = self.a.take(407)
        self.assertIn("Digest", challenge.headers.get("proxy-authenticate"))
        self.assertIsNotNone(challenge.to.tag)
        self.assertFalse(self.b.has("INVITE"))
        self.assertEqual(self.sw.calls.calls, {})
        self.assertEqual(self.sw.cdrs(), [])

    def test_challenge_then_authorised(self):
        """The retry after a 407 (same Call-ID, next CSeq) rings the callee."""
        out = self.a.invite("1002", auth=False)
        self.a.take(407)
        out.send_invite()
        self.assertTrue(self.b.has("INVITE"))

    def test_forbidden(self):
        stranger = self.sw.phone("1999", 5069, register=False)
        stranger.invite("1002")
        stranger.take(403)
        self.assertFalse(self.b.has("INVITE"))

    def test_unknown_number(self):
        self.a.invite("4711")
        self.a.take(404)
        cdr = self.sw.cdrs()[0]
        self.assertEqual((cdr.callee, cdr.disposition), ("4711", "failed"))
        self.assertTrue(cdr.cause.startswith("404"))
        self.sw.assert_clean(self)

    def test_not_registered(self):
        self.a.invite("1003")
        self.a.take(480)
        cdr = self.sw.cdrs()[0]
        self.assertEqual((cdr.callee, cdr.disposition), ("1003", "no answer"))
        self.sw.assert_clean(self)

    def test_merged_request(self):
        """§8.2.2.2: the same INVITE arriving again by another path (new branch) gets 482."""
        out = self.a.invite("1002")
        self.b.take("INVITE")
        out.cseq -= 1
        out.send_invite()
        self.a.take(482)
        self.assertFalse(self.b.has("INVITE"))
        self.assertEqual(len(self.sw.calls.calls), 1)


class CallIdReuseTests(ManagerTestCase):
    def test_other_invite_with_a_live_call_id(self):
        """Another INVITE (other From tag) with the Call-ID of a live call cannot take its
        place: 482, and the first call goes on and ends normally."""
        first = self.a.invite("1002")
        inc = self.b.incoming()
        other = self.sw.phone("1003", 5063, register=False)
        second = OutCall(other, "1002")
        second.call_id = first.call_id
        second.send_invite()
        other.take(482)
        inc.respond(200, sdp(5000))
        ok = self.a.take(200)
        self.b.take("ACK")
        first.ack(ok)
        first.request("BYE")
        inc.respond(200, request=self.b.take("BYE"))
        self.assertEqual([c.disposition for c in self.sw.cdrs()], ["answered"])
        self.sw.assert_clean(self)


class OverloadTests(ManagerTestCase):
    options = {"max_setup": 2, "retry_after": 7}

    def test_overload(self):
        """With max_setup calls ringing, a new call gets 503 + Retry-After at once, before
        authentication; once one is answered there is room again."""
        c1 = self.a.invite("1002")
        c2 = self.a.invite("1002")
        first = self.b.incoming()
        self.b.incoming()
        checked = self.sw.auth.checked
        self.a.invite("1002")
        busy = self.a.take(503)
        self.assertEqual(busy.headers.get("retry-after"), "7")
        self.assertEqual(self.sw.auth.checked, checked)
        self.assertEqual(self.sw.calls.counters["overload"], 1)
        first.respond(200, sdp(5000))
        self.a.invite("1002")
        self.assertTrue(self.b.has("INVITE"))


class CallWaitingTests(ManagerTestCase):
    def setUp(self):
        super().setUp()
        self.c = self.sw.phone("1003", 5063)

    def test_rings_by_default(self):
        self.answered(self.c, self.b)                 # 1003 talks to 1002
        self.a.invite("1002")
        self.assertTrue(self.b.has("INVITE"))
        self.assertFalse(self.a.has(486))

    def test_call_waiting_off(self):
        self.sw.store.set_permission("1002", CALL_WAITING_OFF, True)
        self.sw.directory.invalidate()
        out, inc = self.answered(self.c, self.b)
        self.a.invite("1002")
        self.a.take(486)
        self.assertFalse(self.b.has("INVITE"))
        cdr = [c for c in self.sw.cdrs() if c.caller == "1001"][0]
        self.assertEqual(cdr.disposition, "busy")
        # after the first call ends, 1002 rings again
        out.request("BYE")
        inc.respond(200, request=self.b.take("BYE"))
        self.a.invite("1002")
        self.assertTrue(self.b.has("INVITE"))

    def test_caller_in_a_call_counts(self):
        """An extension that is calling out is in a call too."""
        self.sw.store.set_permission("1003", CALL_WAITING_OFF, True)
        self.sw.directory.invalidate()
        self.c.invite("1002")                         # 1003 is calling (ringing)
        self.a.invite("1003")
        self.a.take(486)


class CallWaitingDisabledTests(ManagerTestCase):
    options = {"call_waiting": False}

    def test_global_switch(self):
        self.answered(self.sw.phone("1003", 5063), self.b)
        self.a.invite("1002")
        self.a.take(486)


class StrayTests(ManagerTestCase):
    def test_bye_outside_a_dialog(self):
        out, inc = self.answered(self.a, self.b)
        out.dialog.remote_tag = "nosuchtag"
        out.request("BYE")
        self.a.take(481)
        self.assertFalse(self.b.has("BYE"))

    def test_2xx_retransmission_after_the_transaction_ended(self):
        """§13.2.2.4: a 2xx that matches no transaction any more is ACKed again."""
        out, inc = self.answered(self.a, self.b)
        self.sw.advance(40)
        self.assertEqual(len(self.sw.core.layer), 0)
        inc.respond(200, sdp(5000))
        ack = self.b.take("ACK")
        self.assertEqual(ack.call_id, inc.invite.call_id)

    def test_unknown_stray_2xx_ignored(self):
        self.answered(self.a, self.b)
        self.sw.advance(40)
        self.b.inbox.clear()
        InCall(self.b, _other_invite()).respond(200, SDP)
        self.assertEqual(self.b.inbox, [])


def _other_invite():
    """An INVITE mss never sent (for a stray response)."""
    from mss.sip.parser import parse
    data = (b"INVITE sip:1002@127.0.0.1:5062 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-nothere\r\n"
            b"From: <sip:1001@mss.test>;tag=zz\r\nTo: <sip:1002@mss.test>\r\n"
            b"Call-ID: nothere@mss.test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    return parse(data)[0]


class CDRDurabilityTests(ManagerTestCase):
    def test_cdr_written_before_the_call_is_dropped(self):
        seen = []
        real = self.sw.store.add_cdr

        def add_cdr(cdr):
            seen.append(cdr.call_id in self.sw.calls.calls)
            real(cdr)
        self.sw.store.add_cdr = add_cdr
        out, inc = self.answered(self.a, self.b)
        out.request("BYE")
        self.assertEqual(seen, [True])

    def test_store_failure_does_not_leak(self):
        def broken(cdr):
            raise RuntimeError("disk full")
        self.sw.store.add_cdr = broken
        out, inc = self.answered(self.a, self.b)
        out.request("BYE")
        inc.respond(200, request=self.b.take("BYE"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.sw.assert_clean(self)

    def test_listeners(self):
        events = []
        self.sw.calls.listeners.append(lambda call, event: events.append((call.id, event)))
        out, inc = self.answered(self.a, self.b)
        out.request("BYE")
        self.assertEqual(events, [(out.call_id, "answered"), (out.call_id, "ended")])
        self.assertEqual(self.sw.calls.counters["answered"], 1)
        self.assertEqual(self.sw.calls.counters["calls"], 1)


class LeakTests(ManagerTestCase):
    def test_many_outcomes_leave_nothing(self):
        """A mix of answered, busy, cancelled and unanswered calls: all state is gone after."""
        for i in range(5):
            out, inc = self.answered(self.a, self.b)
            out.request("BYE")
            inc.respond(200, request=self.b.take("BYE"))
            out = self.a.invite("1002")
            self.b.incoming().respond(486)
            out = self.a.invite("1002")
            inc = self.b.incoming()
            inc.respond(180)
            out.cancel()
            inc.respond(200, request=self.b.take("CANCEL"))
            inc.respond(487)
            self.assertEqual(self.b.kinds(), ["ACK", "ACK"])        # for the 486 and the 487
            self.b.inbox.clear()
            self.assertEqual(sorted(self.a.kinds()), [100, 100, 100, 180, 200, 200, 486, 487])
            self.a.inbox.clear()
        self.a.invite("1002")
        self.sw.advance(31)
        self.assertEqual(len(self.sw.cdrs()), 16)
        self.sw.assert_clean(self)


class ContainmentTests(ManagerTestCase):
    """A bug in a call's handler ends that call cleanly and leaks nothing."""

    def broken(self, *args, **kwargs):
        raise RuntimeError("bug")

    def test_bug_while_ringing(self):
        out = self.a.invite("1002")
        inc = self.b.incoming()
        self.sw.calls.calls[out.call_id].b_invite_response = self.broken
        inc.respond(180)
        self.a.take(500)
        inc.respond(200, request=self.b.take("CANCEL"))
        inc.respond(487)
        self.assertTrue(self.flushLoggedErrors(RuntimeError))   # the 180, and the 487 after
        self.assertEqual(self.sw.cdrs()[0].disposition, "failed")
        self.sw.assert_clean(self)

    def test_bug_in_answered_call(self):
        out, inc = self.answered(self.a, self.b)
        self.sw.calls.calls[out.call_id].in_dialog_request = self.broken
        out.request("INFO")
        out.respond(self.a.take("BYE"), 200)
        inc.respond(200, request=self.b.take("BYE"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.sw.assert_clean(self)

    def test_bug_in_a_timer(self):
        out = self.a.invite("1002")
        inc = self.b.incoming()
        inc.respond(180)
        self.sw.calls.calls[out.call_id]._no_answer = self.broken   # not the scheduled one
        call = self.sw.calls.calls[out.call_id]
        timer = call.timers[0]
        timer.args = (self.broken.__get__(call), ())          # the no-answer timer now fails
        self.sw.advance(31)
        self.a.take(500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_bug_in_new_invite(self):
        self.sw.calls.start_call = self.broken
        self.a.invite("1002")
        self.a.take(500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.sw.assert_clean(self)


class MediaGatewayDownTests(ManagerTestCase):
    """No call without audio: while the gateway is known to be down a new INVITE gets 503
    with Retry-After and a Reason, before authentication; a gateway that fails the call's
    offer (not answering, out of ports) gives the same answer."""
    options = {"retry_after": 9}

    def setUp(self):
        super().setUp()
        from twisted.internet import defer
        from mss.call.media import GatewayMedia
        from mss.media.client import MediaTimeout
        from mss.media.health import MediaHealth

        class Client:
            def offer(self, *args, **kwargs):
                return defer.fail(MediaTimeout("no answer from media gateway"))

            def delete(self, call_id):
                return defer.succeed({})
        self.health = MediaHealth()
        self.sw.calls.media = GatewayMedia(Client(), health=self.health)

    def assertRefused(self, response):
        self.assertEqual((response.status, response.reason), (503, "Media Gateway Unavailable"))
        self.assertEqual(response.headers.get("retry-after"), "9")
        self.assertEqual(response.headers.get("reason"),
                         'SIP;cause=503;text="media gateway unavailable"')
        self.assertFalse(self.b.has("INVITE"))

    def test_down(self):
        self.health.mark_down(1.0, "cannot listen on control 127.0.0.1:22222: in use")
        checked = self.sw.auth.checked
        self.a.invite("1002")
        self.assertRefused(self.a.take(503))
        self.assertEqual(self.sw.auth.checked, checked)
        self.assertEqual(self.sw.calls.counters["media_down"], 1)
        self.assertEqual(self.sw.calls.calls, {})

    def test_up_but_the_offer_fails(self):
        self.health.mark_up(1.0, "127.0.0.1:40000")
        self.a.invite("1002")
        self.assertRefused(self.a.take(503))
        self.assertEqual(self.sw.calls.counters["media_down"], 0)
        self.assertEqual([c.disposition for c in self.sw.cdrs()], ["failed"])
