# -*- test-case-name: tests.call.test_call -*-
"""The B2BUA call (mss.call.call) driven through a real SipCore and CallManager with a fake
network and ``task.Clock``: setup outcomes, forking, CANCEL, in-dialog relays, hold/resume,
glare, RFC 3262 on both legs, teardown on failures, and the CDR of each outcome."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.call.call import COMPLETED_ELSEWHERE, _best_failure
from tests.call.fakes import SDP, Switch, sdp


class CallTestCase(SynchronousTestCase):
    options: dict = {}

    def setUp(self):
        self.sw = Switch(self, **self.options)
        for number in ("1001", "1002", "1003"):
            self.sw.extension(number, "multi_device")
        self.a = self.sw.phone("1001", 5061, register=False)
        self.b = self.sw.phone("1002", 5062)

    def ringing(self, phone=None, headers=(), body=SDP):
        """A call from 1001 to 1002 that rings: (OutCall, InCall)."""
        out = self.a.invite("1002", body=body, headers=headers)
        self.a.take(100)
        inc = (phone or self.b).incoming()
        inc.respond(180)
        return out, inc

    def answered(self):
        out, inc = self.ringing()
        self.a.take(180)
        inc.respond(200, sdp(5000))
        ok = self.a.take(200)
        self.b.take("ACK")
        out.ack(ok)
        self.assertEqual(self.b.inbox, [])
        return out, inc

    def cdr(self):
        cdrs = self.sw.cdrs()
        self.assertEqual(len(cdrs), 1, cdrs)
        return cdrs[0]


class SetupTests(CallTestCase):
    def test_basic_call(self):
        """100 at once, 180 and 200 (with the callee's SDP) relayed, ACK per leg, BYE relayed,
        one CDR with the billable seconds, nothing left behind."""
        out = self.a.invite("1002")
        self.assertEqual(self.a.kinds(), [100])
        self.a.take(100)
        inc = self.b.incoming()
        self.assertEqual(self.b.inbox, [])
        inc.respond(180)
        ringing = self.a.take(180)
        self.assertIsNotNone(ringing.to.tag)
        inc.respond(200, sdp(5000))
        ok = self.a.take(200)
        self.assertEqual(ok.to.tag, ringing.to.tag)
        self.assertIn(b"m=audio 5000", ok.body)
        self.assertEqual(ok.contacts[0].uri.host, "127.0.0.1")
        ack = self.b.take("ACK")
        self.assertEqual(ack.call_id, inc.invite.call_id)
        self.assertEqual(ack.cseq.number, inc.invite.cseq.number)
        self.assertEqual(ack.to.tag, inc.tag)
        out.ack(ok)
        self.assertEqual(self.b.inbox, [])
        self.sw.advance(5)
        self.assertEqual(self.a.kinds() + self.b.kinds(), [])       # 2xx retransmission stops
        out.request("BYE")
        self.a.take(200)
        bye = self.b.take("BYE")
        self.assertEqual(bye.call_id, inc.invite.call_id)
        inc.respond(200, request=bye)
        cdr = self.cdr()
        self.assertEqual((cdr.caller, cdr.callee, cdr.disposition, cdr.direction),
                         ("1001", "1002", "answered", "internal"))
        self.assertEqual(cdr.billsec, 5.0)
        self.assertEqual(cdr.call_id, out.call_id)
        self.sw.assert_clean(self)

    def test_b_leg_is_its_own_dialog(self):
        """New Call-ID and tags on the B leg, Request-URI = the registered contact, Supported:
        100rel, Max-Forwards decremented, the caller's SDP offered."""
        out = self.a.invite("1002")
        invite = self.b.take("INVITE")
        self.assertNotEqual(invite.call_id, out.call_id)
        self.assertNotEqual(invite.from_.tag, out.tag)
        self.assertEqual(str(invite.uri), "sip:1002@127.0.0.1:5062")
        self.assertIn("100rel", invite.option_tags("supported"))
        self.assertEqual(invite.max_forwards, 69)
        self.assertEqual(invite.from_.uri.user, "1001")
        self.assertEqual(invite.body, SDP)

    def test_busy_relayed(self):
        out, inc = self.ringing()
        inc.respond(486)
        self.b.take("ACK")                      # the transaction layer ACKs the 486
        busy = self.a.take(486)
        self.assertEqual(busy.to.tag is not None, True)
        cdr = self.cdr()
        self.assertEqual(cdr.disposition, "busy")
        self.assertTrue(cdr.cause.startswith("486"), cdr.cause)
        self.assertIsNone(cdr.answer)
        self.assertEqual(cdr.billsec, 0)
        self.sw.assert_clean(self)

    def test_decline_relayed(self):
        out, inc = self.ringing()
        inc.respond(603)
        self.a.take(603)
        self.assertTrue(self.cdr().cause.startswith("603"))
        self.sw.assert_clean(self)

    def test_no_answer(self):
        """After the ring time: CANCEL to the callee, 480 to the caller."""
        out, inc = self.ringing()
        self.a.take(180)
        self.sw.advance(29)
        self.assertEqual(self.a.kinds() + self.b.kinds(), [])
        self.sw.advance(1.5)
        cancel = self.b.take("CANCEL")
        self.assertEqual(cancel.call_id, inc.invite.call_id)
        self.a.take(480)
        inc.respond(200, request=cancel)
        inc.respond(487)
        self.b.take("ACK")
        cdr = self.cdr()
        self.assertEqual(cdr.disposition, "no answer")
        self.assertTrue(cdr.cause.startswith("480"), cdr.cause)
        self.assertEqual(cdr.duration, 30.0)
        self.sw.assert_clean(self)

    def test_no_answer_without_provisional(self):
        """A device that never answered is not CANCELled (§9.1) and is given up later."""
        self.a.invite("1002")
        self.a.take(100)
        self.b.take("INVITE")
        self.sw.advance(30.1)
        self.a.take(480)
        self.assertFalse(self.b.has("CANCEL"))
        self.assertEqual(self.cdr().disposition, "no answer")
        self.sw.assert_clean(self)

    def test_caller_cancel(self):
        out, inc = self.ringing()
        self.a.take(180)
        out.cancel()
        self.a.take(200)                       # for the CANCEL
        self.a.take(487)
        cancel = self.b.take("CANCEL")
        inc.respond(200, request=cancel)
        inc.respond(487)
        self.b.take("ACK")
        self.assertEqual(self.a.inbox, [])
        cdr = self.cdr()
        self.assertEqual(cdr.disposition, "cancelled")
        self.assertTrue(cdr.cause.startswith("487"))
        self.sw.assert_clean(self)

    def test_cancel_crossing_answer(self):
        """The callee's 200 crosses our CANCEL: that leg is ACKed and BYEd."""
        out, inc = self.ringing()
        out.cancel()
        self.a.take(487)
        self.b.take("CANCEL")
        inc.respond(200, sdp(5000))
        self.b.take("ACK")
        bye = self.b.take("BYE")
        inc.respond(200, request=bye)
        self.assertEqual([m for m in self.a.inbox if m.cseq.method == "INVITE" and m.status == 200],
                         [])
        self.assertEqual(self.cdr().disposition, "cancelled")
        self.sw.assert_clean(self)

    def test_unreachable_device(self):
        """No answer at all (timer B) with a long ring time: 480 (not 408) to the caller."""
        self.sw.calls.no_answer_timeout = 100
        self.a.invite("1002")
        self.a.take(100)
        self.b.take("INVITE")
        self.sw.advance(33)
        final = {m.status for m in self.a.inbox if m.status >= 400}      # with retransmissions
        self.assertEqual(final, {480})
        self.assertEqual(self.cdr().disposition, "no answer")
        self.sw.assert_clean(self)

    def test_transport_error_on_b_leg(self):
        self.a.invite("1002")
        self.a.take(100)
        self.b.take("INVITE")
        self.sw.core.transport_error(self.b.addr, self.sw.now())
        self.sw.deliver()
        self.a.take(480)
        self.assertEqual(self.cdr().disposition, "no answer")
        self.sw.assert_clean(self)

    def test_early_media(self):
        """183 with SDP is relayed with its SDP; the 200 after it too."""
        out = self.a.invite("1002")
        inc = self.b.incoming()
        inc.respond(183, sdp(5002))
        progress = self.a.take(183)
        self.assertIn(b"m=audio 5002", progress.body)
        inc.respond(200, sdp(5002))
        self.assertIn(b"m=audio 5002", self.a.take(200).body)

    def test_late_offer(self):
        """INVITE without SDP: the callee's offer goes to the caller in the 200; the caller's
        answer in its ACK is carried to the callee's ACK."""
        out = self.a.invite("1002", body=b"")
        inc = self.b.incoming()
        self.assertEqual(inc.invite.body, b"")
        inc.respond(200, sdp(5000))
        ok = self.a.take(200)
        self.assertIn(b"m=audio 5000", ok.body)
        self.assertFalse(self.b.has("ACK"))
        out.ack(ok, sdp(4002))
        ack = self.b.take("ACK")
        self.assertIn(b"m=audio 4002", ack.body)


class ForkingTests(CallTestCase):
    def setUp(self):
        super().setUp()
        self.b2 = self.sw.phone("1002", 5063)

    def both_ringing(self):
        out = self.a.invite("1002")
        one, two = self.b.incoming(), self.b2.incoming()
        self.assertNotEqual(one.invite.call_id, two.invite.call_id)
        one.respond(180)
        two.respond(180)
        return out, one, two

    def test_first_answer_wins(self):
        out, one, two = self.both_ringing()
        two.respond(200, sdp(5003))
        ok = self.a.take(200)
        self.assertIn(b"m=audio 5003", ok.body)
        self.b2.take("ACK")
        cancel = self.b.take("CANCEL")
        self.assertEqual(cancel.headers.get("reason"), COMPLETED_ELSEWHERE)
        self.assertEqual(COMPLETED_ELSEWHERE, 'SIP;cause=200;text="Call completed elsewhere"')
        one.respond(200, request=cancel)
        one.respond(487)
        self.b.take("ACK")
        out.ack(ok)
        out.request("BYE")
        bye = self.b2.take("BYE")
        two.respond(200, request=bye)
        self.assertFalse(self.b.has("BYE"))
        self.assertEqual(self.cdr().disposition, "answered")
        self.sw.assert_clean(self)

    def test_late_2xx_is_acked_and_byed(self):
        out, one, two = self.both_ringing()
        one.respond(200, sdp(5002))
        ok = self.a.take(200)
        self.b2.take("CANCEL")
        two.respond(200, sdp(5003))              # crossed our CANCEL
        self.b2.take("ACK")
        bye = self.b2.take("BYE")
        self.assertIn("Call completed elsewhere", bye.headers.get("reason"))
        two.respond(200, request=bye)
        self.assertEqual(self.a.inbox, [m for m in self.a.inbox if m.status != 200])
        out.ack(ok)
        self.assertFalse(self.b.has("BYE"))
        # the winner's call goes on and ends normally
        out.request("BYE")
        one.respond(200, request=self.b.take("BYE"))
        self.sw.assert_clean(self)

    def test_busy_device_does_not_end_the_call(self):
        out, one, two = self.both_ringing()
        self.a.take(180)
        one.respond(486)
        self.b.take("ACK")
        self.assertFalse(any(m.status >= 300 for m in self.a.inbox))
        two.respond(200, sdp(5003))
        self.a.take(200)
        self.assertEqual(self.sw.calls.counters["answered"], 1)

    def test_all_busy(self):
        out, one, two = self.both_ringing()
        one.respond(486)
        two.respond(480)
        self.a.take(486)
        self.assertEqual(self.cdr().disposition, "busy")
        self.sw.assert_clean(self)

    def test_caller_cancel_cancels_every_device(self):
        out, one, two = self.both_ringing()
        out.cancel()
        self.a.take(487)
        for phone, inc in ((self.b, one), (self.b2, two)):
            cancel = phone.take("CANCEL")
            self.assertIsNone(cancel.headers.get("reason"))
            inc.respond(200, request=cancel)
            inc.respond(487)
        self.sw.assert_clean(self)

    def test_bye_from_a_losing_branch_does_not_end_the_call(self):
        out, one, two = self.both_ringing()
        one.respond(200, sdp(5002))
        ok = self.a.take(200)
        out.ack(ok)
        self.b2.take("CANCEL")
        two.respond(200, sdp(5003))
        self.b2.take("ACK")
        bye = self.b2.take("BYE")
        two.request("BYE")                       # the loser hangs up too
        self.assertFalse(self.a.has("BYE"))
        self.assertIn(self.sw.calls.calls[out.call_id].state, ("answered",))


class InDialogTests(CallTestCase):
    def test_bye_from_callee(self):
        out, inc = self.answered()
        self.sw.advance(3)
        inc.request("BYE")
        self.b.take(200)
        bye = self.a.take("BYE")
        self.assertEqual(bye.call_id, out.call_id)
        self.assertEqual(bye.to.tag, out.tag)
        out.respond(bye, 200)
        cdr = self.cdr()
        self.assertEqual((cdr.disposition, cdr.billsec), ("answered", 3.0))
        self.assertIn("callee", cdr.cause)
        self.sw.assert_clean(self)

    def test_bye_unanswered_on_the_other_side(self):
        """The far side never answers our BYE: the call is still over and nothing leaks."""
        out, inc = self.answered()
        out.request("BYE")
        self.b.take("BYE")
        self.sw.assert_clean(self)

    def test_hold_and_resume_from_caller(self):
        out, inc = self.answered()
        out.request("INVITE", sdp(4000, "sendonly"))
        self.a.take(100)
        reinvite = self.b.take("INVITE")
        self.assertEqual(reinvite.call_id, inc.invite.call_id)
        self.assertEqual(reinvite.to.tag, inc.tag)
        self.assertIn(b"a=sendonly", reinvite.body)
        self.assertIn("100rel", reinvite.option_tags("supported"))
        self.assertGreater(reinvite.cseq.number, inc.invite.cseq.number)
        ok = inc.respond(200, sdp(5000, "recvonly"), request=reinvite)
        ack = self.b.take("ACK")
        self.assertEqual(ack.cseq.number, reinvite.cseq.number)
        a_ok = self.a.take(200)
        self.assertIn(b"a=recvonly", a_ok.body)
        out.ack(a_ok)
        self.assertEqual(self.b.inbox, [])
        # resume
        out.request("INVITE", sdp(4000, "sendrecv"))
        reinvite = self.b.take("INVITE")
        self.assertIn(b"a=sendrecv", reinvite.body)
        inc.respond(200, sdp(5000), request=reinvite)
        self.b.take("ACK")
        out.ack(self.a.take(200))
        self.sw.advance(5)
        self.assertEqual([k for k in self.a.kinds() + self.b.kinds() if k != 100], [])

    def test_hold_and_resume_from_callee(self):
        out, inc = self.answered()
        inc.request("INVITE", sdp(5000, "inactive"))
        self.b.take(100)
        reinvite = self.a.take("INVITE")
        self.assertEqual(reinvite.call_id, out.call_id)
        self.assertEqual(reinvite.from_.tag, out.dialog.remote_tag)
        self.assertIn(b"a=inactive", reinvite.body)
        out.respond(reinvite, 200, sdp(4000, "inactive"))
        self.a.take("ACK")
        b_ok = self.b.take(200)
        self.assertIn(b"a=inactive", b_ok.body)
        inc.ack(b_ok)
        self.assertEqual(self.a.inbox, [])
        inc.request("INVITE", sdp(5000))
        reinvite = self.a.take("INVITE")
        out.respond(reinvite, 200, sdp(4000))
        self.a.take("ACK")
        inc.ack(self.b.take(200))
        self.sw.advance(5)
        self.assertEqual([k for k in self.a.kinds() + self.b.kinds() if k != 100], [])

    def test_reinvite_without_offer(self):
        """A re-INVITE without SDP: the offer comes in the 200, the answer in the ACK."""
        out, inc = self.answered()
        out.request("INVITE")
        reinvite = self.b.take("INVITE")
        self.assertEqual(reinvite.body, b"")
        inc.respond(200, sdp(5000, "sendonly"), request=reinvite)
        self.assertFalse(self.b.has("ACK"))
        a_ok = self.a.take(200)
        self.assertIn(b"a=sendonly", a_ok.body)
        out.ack(a_ok, sdp(4000, "recvonly"))
        ack = self.b.take("ACK")
        self.assertIn(b"a=recvonly", ack.body)

    def test_reinvite_rejected_is_relayed(self):
        out, inc = self.answered()
        out.request("INVITE", sdp(4000, "sendonly"))
        reinvite = self.b.take("INVITE")
        inc.respond(488, request=reinvite)
        self.b.take("ACK")
        self.a.take(488)
        self.assertEqual(self.sw.calls.calls[out.call_id].state, "answered")

    def test_update(self):
        out, inc = self.answered()
        out.request("UPDATE", sdp(4000, "sendonly"))
        update = self.b.take("UPDATE")
        self.assertIn(b"a=sendonly", update.body)
        inc.respond(200, sdp(5000, "recvonly"), request=update)
        ok = self.a.take(200)
        self.assertEqual(ok.cseq.method, "UPDATE")
        self.assertIn(b"a=recvonly", ok.body)
        inc.request("UPDATE", sdp(5000))
        update = self.a.take("UPDATE")
        out.respond(update, 200, sdp(4000))
        self.assertIn(b"m=audio 4000", self.b.take(200).body)

    def test_glare(self):
        """An offer from the callee while the caller's re-INVITE is pending: 491."""
        out, inc = self.answered()
        out.request("INVITE", sdp(4000, "sendonly"))
        reinvite = self.b.take("INVITE")
        inc.request("INVITE", sdp(5000, "sendonly"))
        glare = self.b.take(491)
        self.assertEqual(glare.cseq.method, "INVITE")
        self.assertFalse(self.a.has("INVITE"))
        inc.request("UPDATE", sdp(5000, "sendonly"))
        self.b.take(491)
        # the first re-INVITE still completes
        inc.respond(200, sdp(5000, "recvonly"), request=reinvite)
        self.b.take("ACK")
        self.a.take(200)

    def test_491_from_far_side_relayed(self):
        out, inc = self.answered()
        out.request("INVITE", sdp(4000, "sendonly"))
        reinvite = self.b.take("INVITE")
        inc.respond(491, request=reinvite)
        self.a.take(491)
        out.request("INVITE", sdp(4000, "sendonly"))       # the retry goes through
        self.assertTrue(self.b.has("INVITE"))

    def test_info_and_options_relayed(self):
        out, inc = self.answered()
        out.request("INFO", headers=(("Content-Type", "application/dtmf-relay"),))
        info = self.b.take("INFO")
        self.assertEqual(info.call_id, inc.invite.call_id)
        inc.respond(200, request=info)
        self.assertEqual(self.a.take(200).cseq.method, "INFO")
        inc.request("OPTIONS")
        options = self.a.take("OPTIONS")
        out.respond(options, 200)
        self.assertEqual(self.b.take(200).cseq.method, "OPTIONS")

    def test_info_body_relayed(self):
        out, inc = self.answered()
        req = out.dialog.request("INFO")
        req.headers.insert_before("Via", self.a.via())
        req.set_body(b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay")
        self.a.send(req)
        info = self.b.take("INFO")
        self.assertEqual(info.body, b"Signal=5\r\nDuration=160\r\n")
        self.assertEqual(info.headers.get("content-type"), "application/dtmf-relay")

    def test_request_after_the_call_ended(self):
        out, inc = self.answered()
        out.request("BYE")
        self.b.take("BYE")
        out.request("INFO")
        self.a.take(200)
        self.a.take(481)

    def test_cseq_out_of_order(self):
        out, inc = self.answered()
        out.dialog.local_cseq = -1
        out.request("INFO")
        self.a.take(500)

    def test_relayed_request_times_out(self):
        """The callee stops answering: 408 to the caller and both legs torn down."""
        out, inc = self.answered()
        out.request("INVITE", sdp(4000, "sendonly"))
        self.b.take("INVITE")
        self.sw.advance(33)
        self.a.take(408)
        self.a.take("BYE")
        self.b.take("BYE")
        cdr = self.cdr()
        self.assertEqual(cdr.disposition, "answered")
        self.assertIn("timeout", cdr.cause)
        self.sw.assert_clean(self)

    def test_no_ack_from_caller(self):
        """§13.3.1.4: no ACK for our 2xx within 64*T1: BYE both legs."""
        out, inc = self.ringing()
        inc.respond(200, sdp(5000))
        self.b.take("ACK")
        self.sw.advance(33)
        self.assertTrue(self.a.has(200))           # retransmitted meanwhile
        self.b.take("BYE")
        self.a.take("BYE")
        self.assertEqual(self.cdr().disposition, "failed")
        self.sw.assert_clean(self)

    def test_transport_error_to_caller_after_answer(self):
        out, inc = self.ringing()
        inc.respond(200, sdp(5000))
        self.sw.core.transport_error(self.a.addr, self.sw.now())
        self.sw.deliver()
        self.b.take("BYE")
        self.assertEqual(self.cdr().disposition, "failed")
        self.sw.assert_clean(self)


class MaxDurationTests(CallTestCase):
    options = {"max_duration": 60}

    def test_max_duration(self):
        out, inc = self.answered()
        self.sw.advance(59)
        self.assertEqual(self.a.kinds() + self.b.kinds(), [])
        self.sw.advance(1)
        out.respond(self.a.take("BYE"), 200)
        inc.respond(200, request=self.b.take("BYE"))
        cdr = self.cdr()
        self.assertEqual((cdr.disposition, cdr.billsec), ("answered", 60.0))
        self.assertIn("max duration", cdr.cause)
        self.sw.assert_clean(self)


class ReliableProvisionalTests(CallTestCase):
    options = {"no_answer_timeout": 60}

    def test_caller_requires_100rel(self):
        out, inc = self.ringing(headers=(("Require", "100rel"), ("Supported", "100rel")))
        ringing = self.a.take(180)
        self.assertIn("100rel", ringing.option_tags("require"))
        self.assertEqual(ringing.headers.get("rseq"), "1")
        self.sw.advance(0.6)
        self.assertEqual(self.a.take(180).headers.get("rseq"), "1")      # retransmitted
        out.prack(ringing)
        prack_ok = self.a.take(200)
        self.assertEqual(prack_ok.cseq.method, "PRACK")
        self.sw.advance(10)
        self.assertFalse(self.a.has(180))
        inc.respond(200, sdp(5000))
        ok = self.a.take(200)
        out.ack(ok)
        self.b.take("ACK")
        self.assertEqual(self.sw.calls.calls[out.call_id].state, "answered")

    def test_second_reliable_provisional_waits_for_prack(self):
        """RFC 3262 §3: no second reliable provisional before the first is PRACKed."""
        out, inc = self.ringing(headers=(("Require", "100rel"),))
        first = self.a.take(180)
        inc.respond(183, sdp(5000))
        self.assertFalse(self.a.has(183))
        out.prack(first)
        self.a.take(200)
        second = self.a.take(183)
        self.assertEqual(second.headers.get("rseq"), "2")
        self.assertIn(b"m=audio 5000", second.body)

    def test_no_prack_fails_the_call(self):
        out, inc = self.ringing(headers=(("Require", "100rel"),))
        self.sw.advance(33)
        finals = list({m.status for m in self.a.inbox if m.status >= 300})
        self.assertEqual(len(finals), 1)
        self.assertTrue(500 <= finals[0] < 600, finals)
        cancel = self.b.take("CANCEL")
        inc.respond(200, request=cancel)
        inc.respond(487)
        self.assertEqual(self.cdr().disposition, "failed")
        self.sw.assert_clean(self)

    def test_prack_after_the_answer(self):
        """A PRACK that arrives after the call was answered and ACKed gets 481; the call
        goes on."""
        out, inc = self.ringing(headers=(("Require", "100rel"),))
        ringing = self.a.take(180)
        inc.respond(200, sdp(5000))
        ok = self.a.take(200)
        out.ack(ok)
        out.prack(ringing)
        self.a.take(481)
        self.assertEqual(self.sw.calls.calls[out.call_id].state, "answered")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_prack_for_unknown_rseq(self):
        out, inc = self.ringing(headers=(("Require", "100rel"),))
        ringing = self.a.take(180)
        ringing.headers.set("RSeq", "7")
        out.prack(ringing)
        self.a.take(481)

    def test_supported_only_is_unreliable(self):
        out, inc = self.ringing(headers=(("Supported", "100rel"),))
        ringing = self.a.take(180)
        self.assertIsNone(ringing.headers.get("rseq"))

    def reliable_180(self, inc, rseq=1, proxy_port=5070):
        return inc.respond(180, headers=(("Require", "100rel"), ("RSeq", str(rseq)),
                                         ("Record-Route", f"<sip:127.0.0.1:{proxy_port};lr>")))

    def test_callee_requires_100rel(self):
        """PRACK in the early dialog: its To tag, the 180's Contact as Request-URI, its
        Record-Route as the route set; the 180 still reaches the caller (unreliably)."""
        proxy = self.sw.phone("proxy", 5070, register=False)
        out = self.a.invite("1002")
        inc = self.b.incoming()
        self.reliable_180(inc)
        prack = proxy.take("PRACK")
        self.assertEqual(prack.to.tag, inc.tag)
        self.assertEqual(str(prack.uri), "sip:1002@127.0.0.1:5062")
        self.assertEqual(prack.headers.get_lines("route"), ["<sip:127.0.0.1:5070;lr>"])
        self.assertEqual(prack.headers.get("rack"), f"1 {inc.invite.cseq.number} INVITE")
        self.assertEqual(prack.call_id, inc.invite.call_id)
        ringing = self.a.take(180)
        self.assertIsNone(ringing.headers.get("rseq"))
        # a retransmission of the same 180 is neither PRACKed again nor relayed again
        self.reliable_180(inc)
        self.assertFalse(proxy.has("PRACK"))
        self.assertFalse(self.a.has(180))
        inc.respond(200, request=prack)
        inc.respond(200, sdp(5000))
        self.a.take(200)

    def test_prack_405_does_not_break_the_call(self):
        proxy = self.sw.phone("proxy", 5070, register=False)
        out = self.a.invite("1002")
        inc = self.b.incoming()
        self.reliable_180(inc)
        prack = proxy.take("PRACK")
        inc.respond(405, request=prack)
        inc.respond(200, sdp(5000))
        ok = self.a.take(200)
        out.ack(ok)
        self.assertEqual(self.sw.calls.calls[out.call_id].state, "answered")

    def test_prack_unanswered_does_not_break_the_call(self):
        proxy = self.sw.phone("proxy", 5070, register=False)
        out = self.a.invite("1002")
        inc = self.b.incoming()
        self.reliable_180(inc)
        self.sw.advance(33)
        inc.respond(200, sdp(5000))
        self.a.take(200)

    def test_both_sides_reliable(self):
        proxy = self.sw.phone("proxy", 5070, register=False)
        out = self.a.invite("1002", headers=(("Require", "100rel"),))
        inc = self.b.incoming()
        self.reliable_180(inc)
        proxy.take("PRACK")
        ringing = self.a.take(180)
        self.assertEqual(ringing.headers.get("rseq"), "1")
        out.prack(ringing)
        self.a.take(200)


class BestFailureTests(SynchronousTestCase):
    def test_order(self):
        self.assertEqual(_best_failure([480, 603, 486]), 603)
        self.assertEqual(_best_failure([480, 486, 503]), 486)
        self.assertEqual(_best_failure([503, 404]), 404)
        self.assertEqual(_best_failure([503]), 503)
        self.assertEqual(_best_failure([408, 487]), 480)
        self.assertEqual(_best_failure([]), 480)


class Prefer100relTests(CallTestCase):
    options = {"prefer_100rel": True}

    def test_supported_is_enough_when_preferred(self):
        out, inc = self.ringing(headers=(("Supported", "100rel"),))
        ringing = self.a.take(180)
        self.assertEqual(ringing.headers.get("rseq"), "1")
        self.assertIn("100rel", ringing.option_tags("require"))

    def test_without_support_unreliable(self):
        out, inc = self.ringing()
        self.assertIsNone(self.a.take(180).headers.get("rseq"))


class MoreSetupTests(CallTestCase):
    def test_bye_from_caller_while_ringing(self):
        """A BYE in the early dialog from the caller ends the attempt like a CANCEL."""
        out, inc = self.ringing()
        ringing = self.a.take(180)
        out.confirmed(ringing)
        out.request("BYE")
        self.a.take(487)
        cancel = self.b.take("CANCEL")
        inc.respond(200, request=cancel)
        inc.respond(487)
        self.assertEqual(self.cdr().disposition, "cancelled")
        self.sw.assert_clean(self)

    def test_bye_from_a_ringing_device_early_dialog(self):
        """A callee must not BYE an early dialog (§15); if one does, the caller is not hung
        up on (the device's INVITE transaction decides)."""
        out, inc = self.ringing()
        self.a.take(180)
        inc.request("BYE")
        self.b.take(481)
        self.assertFalse(self.a.has("BYE"))
        self.assertEqual(self.sw.calls.calls[out.call_id].state, "setup")

    def test_other_provisionals_relayed(self):
        out = self.a.invite("1002")
        inc = self.b.incoming()
        inc.respond(181)
        inc.respond(182)
        self.a.take(181)
        self.a.take(182)


class IdentityTests(CallTestCase):
    def test_phone_cannot_assert_another_identity(self):
        """RFC 3325: a P-Asserted-Identity from a phone is replaced by the identity its
        authentication proved."""
        self.a.invite("1002", headers=(("P-Asserted-Identity", "<sip:911@mss.test>"),))
        invite = self.b.take("INVITE")
        self.assertEqual(invite.headers.get_lines("p-asserted-identity"), ["<sip:1001@mss.test>"])
        self.assertEqual(invite.from_.uri.user, "1001")

    def test_privacy_passed_on(self):
        self.a.invite("1002", headers=(("Privacy", "id"),))
        self.assertEqual(self.b.take("INVITE").headers.get("privacy"), "id")
