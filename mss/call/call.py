# -*- test-case-name: tests.call.test_call -*-
"""A call: one A leg (mss as UAS) and its B legs (mss as UAC), and what happens between them.

Theory of operation
-------------------
A ``Call`` is created by the ``CallManager`` for an authorised, routed INVITE. It sends one
INVITE per target (forking: every registered device of the callee at once), each B leg with
its own Call-ID, tags and CSeq. Between the legs it relays, per RFC 3261/3262:

- provisional responses (180/183 with early-media SDP) to the caller, reliably (RSeq,
  retransmitted until PRACK, one at a time: later ones wait for the PRACK, RFC 3262 §3)
  when the caller required 100rel (or only supports it and ``prefer_100rel`` is set); no
  PRACK within 64*T1 fails the call with 504. Reliable provisionals from a callee are
  PRACKed once each in the early dialog they created (its tag, Contact and Record-Route);
  their retransmissions are neither PRACKed nor relayed again; any answer to our PRACK
  (405, 501, none) leaves the call alone;
- the first 2xx wins: that B leg is ACKed, the other legs are CANCELled with ``Reason:
  SIP;cause=200;text="Call completed elsewhere"``, a late 2xx is ACKed and BYEd; the 2xx is
  relayed to the caller (the transaction layer retransmits it until the ACK);
- failures: when every B leg has failed the caller gets the best final response (6xx, then
  486 Busy, other 4xx, 5xx); no answer within the ring time -> CANCEL and 480;
  CANCEL from the caller -> CANCEL the B legs and 487;
- in-dialog requests (BYE, re-INVITE and UPDATE for hold/resume, INFO, OPTIONS, ...) are
  relayed to the other leg and their responses back; an offer arriving while one is pending
  on either leg gets 491 (glare). Only the winning device's dialog is relayed: a losing
  device that BYEs its late-2xx dialog is answered and forgotten. A relayed request that
  times out ends the call (408 back, BYE on both legs); so does a missing ACK for our 2xx.

Once both INVITEs are answered and ACKed the call drops its INVITE transactions (and the
INVITE it sent): an established call keeps only its dialogs.

Every SDP passes through the media anchor (``IMediaAnchor``), which may rewrite it. The call
ends exactly once (``end``): timers stop, media is freed, the CDR is written, and the manager
forgets the call.

Parts
-----
The call sees the switch only through its ``CallContext`` (``context.py``). What it does is
split into parts that other features reuse: ``invite.py`` (the INVITE a B leg sends),
``hunting.py`` (a route's trunks in order, failover, trunk limits), ``reauth.py`` (a
carrier's 401/407), ``reliable.py`` (100rel/PRACK on both legs) and ``relay.py`` (in-dialog
requests between legs). The parts keep no reference to the call: an ended call is freed by
reference counting, not left to the cyclic garbage collector.
"""
from __future__ import annotations

from twisted.internet import defer      # Deferreds only: the media gateway answers later
from twisted.logger import Logger

from mss.call.cdr import disposition_of
from mss.call.context import CallContext
from mss.call.hunting import TRUNK_NO_RESPONSE, TrunkHunt, fails_over
from mss.call.invite import b_leg_invite
from mss.call.legs import ALeg, BLeg, respond
from mss.call.media import GatewayMedia
from mss.call.reauth import credentials_sent, reauthorized
from mss.call.relay import relay_ack, relay_failed, relay_offer, relay_request
from mss.call.reliable import caller_prack, needs_prack, prack_callee, send_provisional
from mss.call.services import diversion_header
from mss.call.state import (ANSWERED, CANCELLED, EARLY, ENDED, FAILED, LEG_ANSWERED,
                            SETUP)
from mss.services.api import CONTINUE_DECISION
from mss.sip.dialog import Dialog
from mss.sip.message import Request, Response, make_response

COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'


def _best_failure(statuses: list[int]) -> int:
    """RFC 3261 §16.7 step 6, simplified for a B2BUA: 6xx, busy, other 4xx, 5xx, else 480."""
    if not statuses:
        return 480
    six = [s for s in statuses if s >= 600]
    if six:
        return six[0]
    if 486 in statuses:
        return 486
    four = [s for s in statuses if 400 <= s < 500 and s not in (408, 487)]
    if four:
        return four[0]
    five = [s for s in statuses if 500 <= s < 600]
    if five:
        return five[0]
    return 480


class Call:
    log = Logger()

    def __init__(self, ctx: CallContext, a: ALeg, caller: str, caller_display: str | None,
                 callee: str, callee_ext: str | None, direction: str = "internal",
                 caller_ext: str | None = None):
        self.ctx = ctx
        self.a = a
        self.id = a.request.call_id
        self.caller = caller
        self.caller_display = caller_display
        self.caller_ext = caller_ext
        self.callee = callee
        self.callee_ext = callee_ext
        self.direction = direction
        self.b_legs: list[BLeg] = []
        self.winner: BLeg | None = None
        self.state = SETUP
        self.start_time = ctx.wall()
        self.answer_time: float | None = None
        self.end_time: float | None = None
        self.cause = ""
        self.status = 0
        self.disposition = ""
        self.timers: list = []
        self.early_sdp_sent = False
        self.trunk = None                          # name of the trunk the call uses, if any
        self.trunk_direction = ""                  # "in" / "out"
        self.inbound_trunk = None                  # the trunk it came in on (its "in" count)
        self.hunt: TrunkHunt | None = None         # the route's trunks still to try
        self.b_sdp = b""                           # the offer as the trunks get it
        self.extra_headers: list[tuple[str, str]] = []   # added to every B-leg INVITE
        self.diversions: list[str] = []            # numbers the call was forwarded from
        self.awaiting_ack = None                   # (leg, 2xx) of an offerless re-INVITE
        self.barged = None                         # the call this one broke into

    # -- setup ---------------------------------------------------------------------------------
    def ring(self, targets, ring_time: float) -> None:
        """Fork to every target ((contact_uri, Address, device label)) in parallel."""
        if not targets:
            self.fail(480, None, "no reachable device")
            return
        sdp = self.a.request.body
        d = self.ctx.media.offer(self.id, self.a.request.from_.tag, sdp, "A") if sdp else None
        if d is None:
            self._send_invites(targets, b"")
        else:
            d.addCallbacks(lambda s: self._send_invites(targets, s),
                           lambda f: self.media_failed(f))
        self.timers.append(self.ctx.timers.call_at(self.ctx.now() + ring_time, self._no_answer))

    def ring_trunks(self, plan, ring_time: float) -> None:
        """Out through carrier trunks: hunt through ``plan`` in order (mss.call.hunting)."""
        if self.hunt is None:
            self.hunt = TrunkHunt(self.ctx.trunks)
        self.hunt.start(plan)
        sdp = self.a.request.body
        d = self.ctx.media.offer(self.id, self.a.request.from_.tag, sdp, "A") if sdp else None

        def go(sdp_b):
            self.b_sdp = sdp_b
            if not self._next_trunk():
                self.fail(self.hunt.refusal(), None, "no trunk accepted the call")
        # armed first: a call every trunk refuses ends in go(), which stops its timers
        self.timers.append(self.ctx.timers.call_at(self.ctx.now() + ring_time, self._no_answer))
        if d is None:
            go(b"")
        else:
            d.addCallbacks(go, self.media_failed)

    def _next_trunk(self) -> bool:
        """Place the B leg on the next trunk that takes the call; False when none is left."""
        if self.state is not SETUP:
            return False
        hunt = self.hunt
        found = hunt.next(self.id)
        if found is None:
            return False
        trunk, number = found
        self.trunk, self.trunk_direction = trunk.name, "out"
        ctx = self.ctx
        dest = ctx.trunks.destination(trunk)
        leg = BLeg(ctx.new_call_id(), ctx.new_tag(), trunk.request_uri(number), dest,
                   ctx.contact_uri(dest, trunk.account), trunk.name)
        leg.trunk, leg.number = trunk, number
        self.b_legs.append(leg)
        leg.invite = self._b_invite(leg, self.b_sdp)
        ctx.register_leg(self, leg)
        leg.tx = ctx.send_request(leg.invite, dest, self, leg, "invite")
        if hunt.more:
            self.timers.append(ctx.timers.call_at(ctx.now() + TRUNK_NO_RESPONSE,
                                                  self._trunk_silent, leg))
        return True

    def _trunk_silent(self, leg: BLeg) -> None:
        """No response at all from this trunk's carrier: fail over now. The leg is cancelled
        (the CANCEL goes out if a provisional ever comes) and can no longer win the call."""
        if self.state is not SETUP or not leg.open or leg.heard:
            return
        self.log.info("call {call_id}: trunk {trunk} does not answer; trying the next one",
                      call_id=self.id, trunk=leg.trunk.name)
        self._cancel_leg(leg, None)
        self._b_failed(leg, 408, "")

    def _trunk_auth(self, leg: BLeg, resp: Response) -> bool:
        """Answer a carrier's 401/407 to our INVITE with the trunk's credentials."""
        again = reauthorized(leg.invite, resp, leg.trunk, leg.auth_tries, self.ctx.new_tag)
        if again is None:
            return False
        leg.auth_tries += 1
        leg.invite = again
        leg.tx = self.ctx.send_request(again, leg.dest, self, leg, "invite")
        return True

    def trunk_challenged(self, leg, purpose, req: Request, resp: Response) -> bool:
        """A carrier challenged a request we sent in its dialog (BYE, PRACK, a re-INVITE or
        INFO relayed from the caller...): send it again with the trunk's credentials. False
        when it cannot be answered (handled as any failure)."""
        trunk = getattr(leg, "trunk", None)
        if trunk is None or req is None or req.method in ("ACK", "CANCEL"):
            return False
        dialog = leg.dialog if leg.dialog is not None and \
            leg.dialog.remote_tag == req.to.tag else leg.dialogs.get(req.to.tag)
        if dialog is None:
            return False
        again = reauthorized(req, resp, trunk, credentials_sent(req), self.ctx.new_tag, dialog)
        if again is None:
            return False
        self.ctx.send_request(again, dialog.destination(), self, leg, purpose)
        return True

    def media_failed(self, failure) -> None:
        self.log.error("media gateway failed for call {call_id}: {error}", call_id=self.id,
                       error=failure.getErrorMessage())
        self.fail(503, "Media Gateway Unavailable", "media", self.ctx.media_down_headers())

    def _send_invites(self, targets, sdp: bytes) -> None:
        if self.state is not SETUP:
            return
        for uri, dest, device in targets:
            leg = BLeg(self.ctx.new_call_id(), self.ctx.new_tag(), uri, dest,
                       self.ctx.contact_uri(dest, self.ctx.contact_user), device)
            self.b_legs.append(leg)
            leg.invite = self._b_invite(leg, sdp)
            self.ctx.register_leg(self, leg)
            leg.tx = self.ctx.send_request(leg.invite, dest, self, leg, "invite")

    def _b_invite(self, leg: BLeg, sdp: bytes) -> Request:
        return b_leg_invite(self.ctx, self.a.request, leg, sdp, caller=self.caller,
                            display=self.caller_display, callee=self.callee,
                            caller_ext=self.caller_ext, extra_headers=self.extra_headers)

    # -- responses on a B leg's INVITE ---------------------------------------------------------
    def b_invite_response(self, leg: BLeg, resp: Response) -> None:
        status = resp.status
        leg.heard = True
        if status == 100:
            return
        if status < 200:
            self._b_provisional(leg, resp)
        elif status < 300:
            self._b_answered(leg, resp)
        elif status in (401, 407) and leg.trunk is not None:
            if leg.open and self._trunk_auth(leg, resp):
                return
            # the carrier refused our credentials: never relay its challenge to the caller
            # (whose phone would answer it); the trunk is unusable, as with a 503: fail over
            self.log.warn("call {call_id}: trunk {trunk} refused our credentials ({status}); "
                          "check its password and auth ID", call_id=self.id,
                          trunk=leg.trunk.name, status=status)
            self._b_failed(leg, 503, "")
        else:
            self._b_failed(leg, status, resp.reason)

    def _b_provisional(self, leg: BLeg, resp: Response) -> None:
        tag = resp.to.tag
        if tag and leg.open:
            dialog = leg.dialogs.get(tag)
            if dialog is None:
                dialog = Dialog.from_uac(leg.invite, resp, leg.dest, leg.contact)
                leg.dialogs[tag] = dialog
            leg.state = EARLY
            if needs_prack(resp) and not prack_callee(self.ctx, self, leg, dialog, resp):
                return                       # a retransmission (or a bad RSeq): seen already
        if self.state is not SETUP or not leg.open:
            return                           # not from a leg we gave up on (a silent trunk)
        sdp = resp.body if resp.body and not self.early_sdp_sent else b""
        if sdp:
            self.early_sdp_sent = True
            d = self.ctx.media.answer(self.id, self.a.request.from_.tag, leg.tag, sdp, "B")
            d.addCallbacks(lambda s: self._a_provisional(resp.status, resp.reason, s),
                           self.media_failed)
        elif resp.status in (180, 181, 182, 183):
            self._a_provisional(resp.status, resp.reason, b"")

    def _a_provisional(self, status: int, reason: str, sdp: bytes) -> None:
        if self.state is not SETUP or self.a.tx.terminated:
            return
        send_provisional(self.ctx, self.a, status, reason, sdp)

    def _b_answered(self, leg: BLeg, resp: Response) -> None:
        if leg.state is LEG_ANSWERED:
            self.re_ack(leg)                               # 2xx retransmission
            return
        cancelled = leg.state is CANCELLED
        dialog = leg.dialogs.get(resp.to.tag)
        if dialog is None:
            dialog = Dialog.from_uac(leg.invite, resp, leg.dest, leg.contact)
        dialog.update_from_response(resp)
        leg.dialog = dialog
        leg.state = LEG_ANSWERED
        leg.status = resp.status
        if self.state is not ENDED:
            self.ctx.register_leg(self, leg)
        if self.state is not SETUP or self.winner is not None or cancelled:
            # a late 2xx (another device won, the caller is gone, or we gave up on this
            # leg, e.g. a silent trunk): ACK and BYE it
            self._ack(leg, b"")
            self.bye(leg, "Call completed elsewhere" if self.winner else None)
            return
        self.winner = leg
        leg.answered_sdp = resp.body
        if not self.a.late_offer:
            self._ack(leg, b"")
        for other in self.b_legs:
            if other is not leg and other.open:
                self._cancel_leg(other, COMPLETED_ELSEWHERE)
        self._stop_timers()
        if resp.body:
            if self.a.late_offer:
                d = self.ctx.media.offer(self.id, leg.tag, resp.body, "B")
            else:
                d = self.ctx.media.answer(self.id, self.a.request.from_.tag, leg.tag, resp.body,
                                          "B")
            d.addCallbacks(lambda s: self._a_answer(resp, s), self.media_failed)
        else:
            self._a_answer(resp, b"")

    def _a_answer(self, b_resp: Response, sdp: bytes) -> None:
        if self.state is not SETUP:
            return
        self._answer_caller(sdp, b_resp.headers.get("content-type") or "application/sdp")
        if self.ctx.max_duration:
            self.timers.append(self.ctx.timers.call_at(self.ctx.now() + self.ctx.max_duration,
                                                     self._max_duration))

    def _answer_caller(self, sdp: bytes, content_type: str = "application/sdp") -> None:
        """Send the 200 to the caller: the call is answered (dialog confirmed on the ACK)."""
        a = self.a
        resp = make_response(a.request, 200, None, to_tag=a.tag)
        resp.headers.add("Contact", f"<{a.contact}>")
        resp.headers.add("Allow", self.ctx.allow)
        if a.reliable:
            resp.headers.add("Supported", "100rel")
        if sdp:
            resp.set_body(sdp, content_type)
        if a.dialog is None:
            a.dialog = Dialog.from_uas(a.request, a.tag, a.source, a.contact)
        a.dialog.early = False
        self.state = ANSWERED
        self.answer_time = self.ctx.wall()
        self.status = 200
        self.ctx.answered(self)
        self.ctx.send_response(a.tx, resp, self.ctx.now())

    def _b_failed(self, leg: BLeg, status: int, reason: str) -> None:
        if leg.state is FAILED:
            return
        was = leg.state
        leg.state = FAILED if was is not CANCELLED else CANCELLED
        leg.status = status
        self.ctx.forget_leg(leg)
        if self.state is not SETUP:
            return
        if any(b.open for b in self.b_legs):
            return                                   # others still ring
        if leg.trunk is not None and fails_over(status):
            self.hunt.release(leg.trunk)
            self.trunk = None
            if self._next_trunk():                   # failover to the next trunk of the route
                return
        failures = [b.status for b in self.b_legs if b.state is FAILED]
        if not self.b_legs and self.hunt is not None and self.hunt.refusals:
            failures = [self.hunt.refusal()]
        best = _best_failure(failures)
        if best in (486, 600) and self.ctx.hooks.active and self.callee_ext:
            decision = self.ctx.hooks.busy(self.facts())
            if decision.action == "redirect" and self.divert(decision):
                return
            if decision.action == "reject":
                self.fail(decision.code, decision.reason or None, f"service {decision.service}")
                return
        self.fail(best, None, f"all devices failed ({', '.join(map(str, failures)) or 'none'})")

    # -- failure and end of setup ----------------------------------------------------------------
    def fail(self, status: int, reason: str | None, why: str, extra=()) -> None:
        """Answer the caller with a final error and end the call."""
        if self.state is not SETUP:
            return
        for leg in self.b_legs:
            if leg.open:
                self._cancel_leg(leg, None)
        a = self.a
        if not a.tx.terminated:
            resp = make_response(a.request, status, reason, to_tag=a.tag)
            for name, value in extra:
                resp.headers.add(name, value)
            self.ctx.send_response(a.tx, resp, self.ctx.now())
        self.status = status
        self.end(disposition_of(status), f"{status} {why}")

    def _no_answer(self) -> None:
        if self.state is not SETUP:
            return
        self.log.info("call {call_id}: no answer", call_id=self.id)
        if self.ctx.hooks.active and self.callee_ext:
            decision = self.ctx.hooks.no_answer(self.facts())
            if decision.action == "redirect" and self.divert(decision):
                return
            if decision.action == "reject":
                self.fail(decision.code, decision.reason or None, f"service {decision.service}")
                return
        self.fail(480, "No Answer", "no answer", ())

    # -- services: facts, forwarding, local answer, barge-in ------------------------------------
    def facts(self):
        return self.ctx.hooks.facts(self.a.request, self.id, self.caller, self.callee,
                                  display=self.caller_display, caller_ext=self.caller_ext,
                                  direction=self.direction, trunk=self.trunk or "",
                                  diversions=self.diversions)

    def add_diversion(self, number: str, decision) -> None:
        """Record that the call was diverted from ``number`` (RFC 5806 Diversion header)."""
        self.diversions.append(number)
        self.extra_headers.insert(0, ("Diversion",
                                      diversion_header(number, self.ctx.domain, decision)))

    def divert(self, decision) -> bool:
        """Forward a ringing call (busy / no answer): cancel the devices, ring the new target."""
        if self.state is not SETUP or len(self.diversions) >= self.ctx.forward_limit:
            return False
        onward = self.ctx.hooks.onward_refusal(self.facts(), decision)
        if onward is not None:
            self.fail(onward.code, onward.reason or None, f"service {onward.service}")
            return True
        route = self.ctx.router.route(decision.target, self.caller_ext)
        then = self._target_services(decision.target, route)
        if then.action == "reject":                 # e.g. the target has do-not-disturb on
            self.fail(then.code, then.reason or None, f"service {then.service}")
            return True
        if route.status and then.action != "redirect":
            return False           # the target cannot ring: the caller gets the first failure
        for leg in self.b_legs:
            if leg.open:
                self._cancel_leg(leg, None)
        self._stop_timers()
        self.log.info("call {call_id} forwarded from {callee} to {target} ({reason})",
                      call_id=self.id, callee=self.callee, target=decision.target,
                      reason=decision.reason)
        self.add_diversion(self.callee, decision)
        self.callee, self.callee_ext = decision.target, route.extension
        self.early_sdp_sent = False
        if then.action == "redirect" and self.divert(then):
            return True                              # the target's own forwarding
        if route.status:
            self.fail(route.status, route.reason or None, route.reason or "unreachable")
            return True
        ring_time = then.ring_timeout or self.ctx.no_answer_timeout
        if route.trunk_plan:
            self.ring_trunks(route.trunk_plan, ring_time)
        else:
            self.ring(route.targets, ring_time)
        return True

    def _target_services(self, target: str, route):
        """The terminating services of a local forwarding target (its DND, its own forwarding,
        its ring time), as for a call dialled to it; CONTINUE for other numbers."""
        hooks = self.ctx.hooks
        if not hooks.active or route.extension is None:
            return CONTINUE_DECISION
        ext = self.ctx.directory(route.extension)
        return hooks.terminating(self.facts().diverted(target),
                                 hooks.callee_state(route.extension, self.ctx.waiting_blocked(ext)))

    def answer_locally(self, tone: str, hold: float = 2.0) -> None:
        """Answer the caller ourselves (a service's confirmation or announcement).

        With a media gateway the caller's offer goes to it (``play-tone`` with the SDP,
        docs/media-protocol.md): the caller is answered with the gateway's SDP, hears
        ``tone`` for ``hold`` seconds and is released when it ends. With pass-through media,
        a late offer, or a gateway that cannot play (no G.711 offered, no answer), the SDP
        answer accepts the caller's streams as inactive: the answer, no audio, the release
        after ``hold`` seconds.
        """
        a = self.a
        release = f"service ({tone})"
        client = getattr(self.ctx.media, "client", None)
        if isinstance(self.ctx.media, GatewayMedia) and a.request.body \
                and hasattr(client, "play_tone"):
            d = client.play_tone(self.id, a.request.from_.tag, tone, int(hold * 1000),
                                 sdp=a.request.body)

            def playing(reply):
                if self.state is not SETUP:             # the caller gave up meanwhile
                    self.ctx.media.delete(self.id)
                    return
                self._answer_caller(reply["sdp"])
                self.timers.append(self.ctx.timers.call_at(self.ctx.now() + hold, self.hangup,
                                                         release))

            def silent(failure):
                self.log.warn("call {call_id}: no {tone} tone from the media gateway: {error}",
                              call_id=self.id, tone=tone, error=failure.getErrorMessage())
                if self.state is SETUP:
                    self._answer_inactive(hold, release)
            d.addCallbacks(playing, silent)
            return
        self._answer_inactive(hold, release)

    def _answer_inactive(self, hold: float, release: str) -> None:
        a = self.a
        sdp = inactive_answer(a.request.body, self.ctx.local_host(a.source.host)) \
            if a.request.body else b""
        self._answer_caller(sdp)
        self.timers.append(self.ctx.timers.call_at(self.ctx.now() + hold, self.hangup, release))

    def barge_into(self, victim: "Call") -> None:
        """Operator break-in: the victim's two legs and this caller meet in a mixer room."""
        media = self.ctx.media
        room = f"barge-{victim.id}"
        a = self.a
        legs = [(victim.id, victim.a.request.from_.tag)]
        if victim.winner is not None:
            legs.append((victim.id, victim.winner.tag))
        d = defer.gatherResults([media.room_join(room, cid, tag) for cid, tag in legs],
                                consumeErrors=True)
        d.addCallback(lambda _: media.room_join(room, self.id, a.request.from_.tag, a.request.body))
        self.barged = victim

        def joined(sdp):
            if self.state is not SETUP:
                return
            self._answer_caller(sdp)
            self.log.info("call {call_id} broke into call {victim}", call_id=self.id,
                          victim=victim.id)

        def failed(f):
            self.log.error("break-in into {victim} failed: {error}", victim=victim.id,
                           error=f.getErrorMessage())
            self.fail(503, "Break-In Failed", "media gateway refused the room")
        d.addCallbacks(joined, failed)

    def caller_cancelled(self) -> None:
        if self.state is not SETUP:
            return
        for leg in self.b_legs:
            if leg.open:
                self._cancel_leg(leg, None)
        a = self.a
        resp = make_response(a.request, 487, None, to_tag=a.tag)
        self.ctx.send_response(a.tx, resp, self.ctx.now())
        self.status = 487
        self.end("cancelled", "487 caller cancelled")

    def _cancel_leg(self, leg: BLeg, reason: str | None) -> None:
        leg.state = CANCELLED
        if leg.tx is not None:
            self.ctx.cancel(leg.tx, self.ctx.now(), reason)

    # -- ACK / BYE -----------------------------------------------------------------------------------
    def _ack(self, leg: BLeg, sdp: bytes) -> None:
        dialog = leg.dialog
        ack = dialog.request("ACK", cseq=leg.invite.cseq.number)
        if sdp:
            ack.set_body(sdp, "application/sdp")
        else:
            ack.headers.add("Content-Length", "0")
        leg.ack = ack
        self.ctx.send_ack(ack, dialog.destination())
        # answered and ACKed: the dialog has all that is left to know; the INVITE and its
        # transaction (request, bytes, last response) need not live as long as the call
        leg.invite = None
        leg.tx = None

    def re_ack(self, leg: BLeg) -> None:
        """The kept ACK again, for a retransmitted 2xx (RFC 3261 §13.2.2.4)."""
        if leg.ack is not None:
            self.ctx.send_ack(leg.ack, leg.dialog.destination())

    def bye(self, leg, reason: str | None = None) -> None:
        """BYE in ``leg``'s dialog (a Reason when given)."""
        dialog = leg.dialog
        if dialog is None:
            return
        bye = dialog.request("BYE")
        if reason:
            bye.headers.add("Reason", f'SIP;cause=200;text="{reason}"')
        bye.headers.add("Content-Length", "0")
        self.ctx.send_request(bye, dialog.destination(), self, leg, "bye")

    def a_ack(self, ack: Request) -> None:
        """The caller's ACK for our 2xx (initial or re-INVITE)."""
        a = self.a
        if not a.acked and self.state is ANSWERED:
            a.acked = True
            a.tx = None          # the INVITE transaction is done with: do not keep it alive
            if a.late_offer and self.winner is not None and self.winner.ack is None:
                body = ack.body
                if body:
                    d = self.ctx.media.answer(self.id, self.winner.tag, a.request.from_.tag,
                                              body, "A")
                    d.addCallbacks(lambda s: self._ack(self.winner, s), self.media_failed)
                else:
                    self._ack(self.winner, b"")
            return
        relay_ack(self, a, ack)

    def hangup(self, by: str = "operator") -> None:
        """End an answered call from our side (operator, max duration, shutdown, failure)."""
        if self.state is SETUP:
            self.fail(480 if by != "shutdown" else 503, None, by)
            return
        if self.state is not ANSWERED:
            return
        self.bye(self.a)
        if self.winner is not None:
            self.bye(self.winner)
        self.end("answered", f"hangup by {by}")

    def _max_duration(self) -> None:
        self.log.info("call {call_id} reached the maximum duration", call_id=self.id)
        self.hangup("max duration")

    # -- in-dialog requests --------------------------------------------------------------------------
    def other(self, leg):
        return self.winner if leg is self.a else self.a

    def in_dialog_request(self, leg, req: Request, tx) -> None:
        method = req.method
        dialog = leg.dialog
        if method == "ACK":
            if leg is self.a:
                self.a_ack(req)
            else:
                relay_ack(self, leg, req)
            return
        if dialog is None:
            respond(self.ctx, tx, req, 481, leg)
            return
        if not dialog.accept_remote_cseq(req):
            respond(self.ctx, tx, req, 500, leg, "CSeq Out Of Order")
            return
        if method == "PRACK" and leg is self.a:
            self._a_prack(req, tx)
            return
        if leg is not self.a and leg is not self.winner:
            # a device that lost the race (or an early dialog of one that is still ringing)
            if method == "BYE":
                respond(self.ctx, tx, req, 200, leg)
                if leg.state is LEG_ANSWERED:
                    leg.state = FAILED
                    self.ctx.forget_leg(leg)
                return
            if self.winner is not None or self.state is not SETUP:
                respond(self.ctx, tx, req, 481, leg)
                return
        if method == "BYE":
            respond(self.ctx, tx, req, 200, leg)
            other = self.other(leg)
            if self.state is SETUP and leg is self.a:
                self.caller_cancelled()
                return
            if other is not None and other.dialog is not None:
                self.bye(other)
            self.end("answered" if self.answer_time else disposition_of(self.status or 487),
                     "BYE from " + ("caller" if leg is self.a else "callee"))
            return
        other = self.other(leg)
        if other is None or other.dialog is None or self.state is not ANSWERED:
            if method in ("INVITE", "UPDATE") and self.state is SETUP:
                respond(self.ctx, tx, req, 491 if method == "INVITE" else 500, leg)
            else:
                respond(self.ctx, tx, req, 481 if other is None else 491, leg)
            return
        if method in ("INVITE", "UPDATE"):
            relay_offer(self, leg, other, req, tx)
        else:
            relay_request(self, leg, other, req, tx, req.body)

    def media_tag(self, leg) -> str:
        """The leg's tag as the media anchor knows it (the caller's From tag for the A leg)."""
        return self.a.request.from_.tag if leg is self.a else leg.tag

    def _a_prack(self, req: Request, tx) -> None:
        due = caller_prack(self.ctx, self.a, req, tx)
        if due is not None:
            self._a_provisional(*due)

    def leg_failed(self, leg, purpose, reason: str) -> None:
        """A transaction we sent on ``leg`` timed out or hit a transport error."""
        if purpose == "invite":
            # an unreachable device is "temporarily unavailable" to the caller; a carrier we
            # cannot reach is "unavailable", which fails over to the route's next trunk
            if reason == "timeout":
                status = 408
            else:
                status = 503 if leg.trunk is not None else 480
            self._b_failed(leg, status, "")
            return
        if purpose == "prack" or purpose == "bye":
            if purpose == "bye":
                return
            return
        if isinstance(purpose, tuple) and purpose[0] == "relay":
            _, from_leg, req, tx = purpose
            relay_failed(self, leg, from_leg, req, tx, reason)

    def a_failed(self, reason: str) -> None:
        """Our INVITE transaction toward the caller failed (no ACK, no PRACK, transport)."""
        if reason == "prack-timeout" and self.state is SETUP:
            self.fail(504, "No PRACK", "no PRACK from the caller")
            return
        if self.state is ANSWERED and reason in ("ack-timeout", "transport"):
            self.log.info("call {call_id}: caller never acknowledged the answer", call_id=self.id)
            if self.winner is not None:
                self.bye(self.winner)
            if reason == "ack-timeout":
                self.bye(self.a)                   # §13.3.1.4: the UAS core sends BYE
            self.end("failed", "no ACK from caller")
        elif self.state is SETUP:
            for leg in self.b_legs:
                if leg.open:
                    self._cancel_leg(leg, None)
            self.end("failed", f"caller {reason}")

    # -- end ---------------------------------------------------------------------------------------------
    def _stop_timers(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers = []

    def end(self, disposition: str, cause: str) -> None:
        if self.state is ENDED:
            return
        self.state = ENDED
        self.disposition = disposition
        self.cause = cause
        self.end_time = self.ctx.wall()
        self._stop_timers()
        self.ctx.ended(self)


def inactive_answer(offer: bytes, address: str) -> bytes:
    """An SDP answer accepting every offered stream as inactive (RFC 3264 §6)."""
    lines = offer.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    family = "IP6" if ":" in address else "IP4"
    out = ["v=0", f"o=mss 1 1 IN {family} {address}", "s=mss", f"c=IN {family} {address}", "t=0 0"]
    for line in lines:
        if line.startswith("m="):
            parts = line[2:].split()
            if len(parts) >= 4:
                out += [f"m={parts[0]} 9 {parts[2]} {parts[3]}", "a=inactive"]
    return ("\r\n".join(out) + "\r\n").encode()
