# -*- test-case-name: tests.call.test_call -*-
"""In-dialog relay between the two confirmed legs of a call: re-INVITE and UPDATE (hold,
resume, codec changes), INFO, OPTIONS, MESSAGE... and their responses, through the media
anchor.

- A request on one leg goes out as a new request in the other leg's dialog (its own CSeq,
  tags and route set) with the headers in ``RELAYED``; INVITE/UPDATE also say Allow, and an
  INVITE Supported: 100rel.
- An offer arriving while one is pending on either leg is answered 491 (glare, RFC 3261
  §14.2) with Retry-After.
- SDP goes through the media anchor: an offer as an offer; the answer to it as an answer; a
  2xx to an offerless re-INVITE carries the far side's offer, and its answer comes in the
  caller's ACK (carried to the far side in that leg's ACK).
- A relayed request that times out or meets a transport error ends the call: 408 back,
  BYE on both legs (not toward a leg we cannot reach).

Functions over a call that has the few members of ``RelayingCall``, not methods of
``Call``: a transfer, park or conference pairs legs and relays between them the same way.
"""
from __future__ import annotations

from typing import Any, Protocol

from mss.call.legs import respond
from mss.call.state import ANSWERED, ENDED
from mss.sip.message import Request, Response, make_response

# headers copied across when relaying an in-dialog request or a response
RELAYED = ("content-type", "content-disposition", "info-package", "event", "subscription-state",
           "reason", "rseq", "recv-info", "allow-events")
_REQUEST_HEADERS = tuple(name for name in RELAYED if name != "content-type")
_RESPONSE_HEADERS = tuple(name for name in RELAYED if name not in ("rseq", "content-type"))
_TITLES = {name: name.title() for name in RELAYED}


class RelayingCall(Protocol):
    """What the relay uses of a call."""
    ctx: Any                                # CallContext
    log: Any                                # twisted.logger.Logger
    id: str
    state: Any                              # CallState
    answer_time: float | None
    awaiting_ack: tuple | None              # (leg, 2xx) of an offerless re-INVITE

    def media_tag(self, leg) -> str: ...
    def media_failed(self, failure) -> None: ...
    def bye(self, leg, reason: str | None = None) -> None: ...
    def end(self, disposition: str, cause: str) -> None: ...


def relay_offer(call: RelayingCall, leg, other, req: Request, tx) -> None:
    """A re-INVITE or UPDATE on ``leg``: 491 on glare, else its offer (if any) through the
    media anchor and on to ``other``."""
    if leg.pending is not None or other.pending is not None:
        respond(call.ctx, tx, req, 491, leg)            # glare (RFC 3261 §14.2)
        return
    leg.dialog.target_refresh(req)
    leg.pending = tx
    sdp = req.body
    if sdp:
        d = call.ctx.media.offer(call.id, call.media_tag(leg), sdp, leg.label)
        d.addCallbacks(lambda s: relay_request(call, leg, other, req, tx, s), call.media_failed)
    else:
        relay_request(call, leg, other, req, tx, b"")


def relay_request(call: RelayingCall, leg, other, req: Request, tx, body: bytes) -> None:
    """Send ``req`` (received on ``leg``) in ``other``'s dialog with ``body``."""
    if call.state is not ANSWERED:
        leg.pending = None
        respond(call.ctx, tx, req, 481, leg)
        return
    method = req.method
    out = other.dialog.request(method)
    headers = req.headers
    for name in _REQUEST_HEADERS:
        for value in headers.get_lines(name):
            out.headers.add(_TITLES[name], value)
    if method in ("INVITE", "UPDATE"):
        out.headers.add("Allow", call.ctx.allow)
    if method == "INVITE":
        out.headers.add("Supported", "100rel")      # every INVITE we send says so
    if body:
        out.set_body(body, headers.get("content-type") or "application/sdp")
    else:
        out.headers.add("Content-Length", "0")
    if method == "INVITE":
        other.pending = ("relay", tx)
    call.ctx.send_request(out, other.dialog.destination(), call, other, ("relay", leg, req, tx))


def relayed_response(call: RelayingCall, to_leg, from_leg, req: Request, tx,
                     resp: Response) -> None:
    """A response on ``to_leg`` to a request we relayed: send it back on ``from_leg``."""
    status = resp.status
    if status == 100:
        return
    method = req.method
    if method in ("INVITE", "UPDATE") and status >= 200:
        from_leg.pending = None
        to_leg.pending = None
        if 200 <= status < 300 and to_leg.dialog is not None:
            to_leg.dialog.target_refresh(resp)
    if method == "INVITE" and 200 <= status < 300:
        # ACK the far side now when the re-INVITE carried the offer, else on the near ACK
        if req.body:
            ack_reinvite(call.ctx, to_leg, resp, b"")
        else:
            call.awaiting_ack = (to_leg, resp)
    if resp.body and 200 <= status < 300 and method in ("INVITE", "UPDATE") and req.body:
        d = call.ctx.media.answer(call.id, call.media_tag(from_leg), call.media_tag(to_leg),
                                  resp.body, to_leg.label)
        d.addCallbacks(lambda s: _send_response(call.ctx, from_leg, req, tx, resp, s),
                       call.media_failed)
    elif resp.body and 200 <= status < 300 and method == "INVITE":
        d = call.ctx.media.offer(call.id, call.media_tag(to_leg), resp.body, to_leg.label)
        d.addCallbacks(lambda s: _send_response(call.ctx, from_leg, req, tx, resp, s),
                       call.media_failed)
    else:
        _send_response(call.ctx, from_leg, req, tx, resp, resp.body)


def _send_response(ctx, from_leg, req: Request, tx, resp: Response, body: bytes) -> None:
    if tx.terminated:
        return
    status = resp.status
    out = make_response(req, status, resp.reason, to_tag=tx.to_tag or from_leg.dialog.local_tag)
    headers = resp.headers
    for name in _RESPONSE_HEADERS:
        for value in headers.get_lines(name):
            out.headers.add(_TITLES[name], value)
    if req.method in ("INVITE", "UPDATE") and status < 300:
        out.headers.add("Contact", f"<{from_leg.dialog.contact}>")
    if body:
        out.set_body(body, headers.get("content-type") or "application/sdp")
    if status >= 400:
        for name, value in headers:
            if name.lower() == "retry-after":
                out.headers.add(name, value)
    ctx.send_response(tx, out, ctx.now())


def ack_reinvite(ctx, leg, resp: Response, sdp: bytes) -> None:
    """ACK a 2xx to a re-INVITE we relayed onto ``leg`` (with the answer when it was ours
    to give)."""
    dialog = leg.dialog
    ack = dialog.request("ACK", cseq=resp.cseq.number)
    if sdp:
        ack.set_body(sdp, "application/sdp")
    else:
        ack.headers.add("Content-Length", "0")
    ctx.send_ack(ack, dialog.destination())


def relay_ack(call: RelayingCall, leg, ack: Request) -> None:
    """An ACK for a relayed re-INVITE 2xx: carry its answer to the far side if it waited."""
    waiting = call.awaiting_ack
    if waiting is None:
        return
    call.awaiting_ack = None
    to_leg, resp = waiting
    if ack.body:
        d = call.ctx.media.answer(call.id, call.media_tag(to_leg), call.media_tag(leg),
                                  ack.body, leg.label)
        d.addCallbacks(lambda s: ack_reinvite(call.ctx, to_leg, resp, s), call.media_failed)
    else:
        ack_reinvite(call.ctx, to_leg, resp, b"")


def relay_failed(call: RelayingCall, leg, from_leg, req: Request, tx, reason: str) -> None:
    """A request we relayed onto ``leg`` timed out or met a transport error: 408 back on
    ``from_leg``, and the call ends (a leg unreachable in a confirmed dialog)."""
    if req.method in ("INVITE", "UPDATE"):
        from_leg.pending = None
        leg.pending = None
    respond(call.ctx, tx, req, 408, from_leg)
    call.log.info("call {call_id}: {method} to the {label} leg failed ({reason}); ending",
                  call_id=call.id, method=req.method, label=leg.label, reason=reason)
    if call.state is ENDED:
        return
    call.bye(from_leg)
    if reason != "transport":
        call.bye(leg)
    call.end("answered" if call.answer_time else "failed", f"{leg.label} leg {reason}")
