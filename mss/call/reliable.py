# -*- test-case-name: tests.call.test_call -*-
"""Reliable provisional responses (RFC 3262, 100rel/PRACK) on both sides of a B2BUA.

Toward the caller (an A leg, mss as UAS): when it required 100rel (or only supports it and
``prefer_100rel`` is set) each provisional goes out with ``Require: 100rel`` and an RSeq; the
transaction layer retransmits it until the PRACK. One at a time (§3): later ones wait in the
leg's queue for the PRACK of the last one; a queued 180 is not queued twice.

From a callee (a B leg, mss as UAC): each reliable provisional is PRACKed once, in the early
dialog it created (its To tag, Contact as Request-URI, Record-Route as route set, §4); its
retransmissions are neither PRACKed nor relayed again.

Functions over legs, not methods of a call: whatever answers a caller or rings a device (a
call, a pickup, a park retrieval) uses them the same way.
"""
from __future__ import annotations

from mss.call.legs import ALeg, BLeg, respond
from mss.sip.dialog import Dialog
from mss.sip.message import Request, Response, make_response


def caller_wants_reliable(request: Request, prefer: bool) -> bool:
    """Send this caller's provisionals reliably: it requires 100rel, or supports it and
    ``prefer`` (``[calls] prefer_100rel``) is set."""
    return "100rel" in request.option_tags("require") or (
        prefer and "100rel" in request.option_tags("supported"))


def send_provisional(ctx, a: ALeg, status: int, reason: str, sdp: bytes) -> None:
    """A provisional to the caller: reliably when ``a.reliable`` (queued while an earlier
    one awaits its PRACK), else once."""
    if a.reliable and a.tx.reliable_1xx:
        if sdp or not any(q[0] == status and not q[2] for q in a.queued):
            a.queued.append((status, reason, sdp))
        return
    resp = make_response(a.request, status, reason, to_tag=a.tag)
    resp.headers.add("Contact", f"<{a.contact}>")
    if sdp:
        resp.set_body(sdp, "application/sdp")
    if a.dialog is None:
        a.dialog = Dialog.from_uas(a.request, a.tag, a.source, a.contact)
    now = ctx.now()
    if a.reliable:
        a.rseq += 1
        resp.headers.add("Require", "100rel")
        resp.headers.add("RSeq", str(a.rseq))
        ctx.send_reliable_provisional(a.tx, resp, now)
    else:
        ctx.send_response(a.tx, resp, now)


def caller_prack(ctx, a: ALeg, req: Request, tx):
    """Answer the caller's PRACK: 200 when its RAck matches a provisional awaiting it (no
    longer retransmitted then), else 481. Returns the queued (status, reason, sdp) now due,
    if any, for the call to send while it still rings."""
    rack = (req.headers.get("rack") or "").split()
    ok = False
    if len(rack) == 3 and rack[0].isdigit():
        a_tx = a.tx
        ok = a_tx is not None and ctx.prack_received(a_tx, int(rack[0]))
    respond(ctx, tx, req, 200 if ok else 481, a)
    if ok and a.queued and not a.tx.reliable_1xx:
        return a.queued.pop(0)
    return None


def needs_prack(resp: Response) -> bool:
    """A callee's provisional sent reliably (Require: 100rel with an RSeq)."""
    return "100rel" in resp.option_tags("require") and bool(resp.headers.get("rseq"))


def prack_callee(ctx, call, leg: BLeg, dialog: Dialog, resp: Response) -> bool:
    """PRACK a callee's reliable provisional in its early ``dialog`` (the transaction is
    ``call``'s, purpose "prack": any answer to it leaves the call alone). False for a
    retransmission, already PRACKed, or a bad RSeq."""
    try:
        rseq = int(resp.headers.get("rseq").strip())
    except ValueError:
        return False
    last = dialog.prack_rseq
    if last is not None and rseq <= last:
        return False
    dialog.prack_rseq = rseq
    prack = dialog.request("PRACK")
    prack.headers.add("RAck", f"{rseq} {leg.invite.cseq.number} INVITE")
    prack.headers.add("Content-Length", "0")
    ctx.send_request(prack, dialog.destination(), call, leg, "prack")
    return True
