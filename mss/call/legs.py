# -*- test-case-name: tests.call.test_call -*-
"""The two sides of a call: the A leg (the caller's dialog, mss as UAS) and a B leg (one
callee device or carrier, mss as UAC, its own Call-ID and tags). Plain state holders: what
is done with them is in the call and its parts (relay, reliable provisionals, hunting), so
that a transfer, park or pickup can move or make legs without a ``Call``.
"""
from __future__ import annotations

from mss.call.state import CALLING, EARLY
from mss.sip.dialog import Dialog
from mss.sip.message import Request, make_response

class ALeg:
    """The caller side: we are UAS."""

    __slots__ = ("request", "tx", "source", "tag", "dialog", "reliable", "rseq", "contact",
                 "pending", "acked", "late_offer", "offered_sdp", "queued")

    def __init__(self, request: Request, tx, source, tag: str, contact: str, reliable: bool):
        self.request = request
        self.tx = tx
        self.source = source
        self.tag = tag
        self.contact = contact
        self.dialog: Dialog | None = None
        self.reliable = reliable          # send provisionals reliably (RFC 3262)
        self.rseq = 0
        self.pending = None               # in-dialog INVITE/UPDATE server tx awaiting relay
        self.acked = False
        self.late_offer = not request.body
        self.offered_sdp = request.body
        self.queued: list = []            # provisionals waiting for the PRACK of the last one

    @property
    def label(self) -> str:
        return "A"

    @property
    def key(self) -> tuple:
        return (self.request.call_id, self.tag)


class BLeg:
    """One callee device: we are UAC."""

    __slots__ = ("call_id", "tag", "target", "dest", "invite", "tx", "dialogs", "dialog",
                 "state", "status", "ack", "pending", "contact", "device", "answered_sdp",
                 "prack_rseq", "trunk", "number", "auth_tries", "heard")

    def __init__(self, call_id: str, tag: str, target: str, dest, contact: str, device: str = ""):
        self.call_id = call_id
        self.tag = tag
        self.target = target
        self.dest = dest
        self.contact = contact
        self.device = device
        self.invite: Request | None = None
        self.tx = None
        self.dialogs: dict[str, Dialog] = {}      # early dialogs by remote tag
        self.dialog: Dialog | None = None
        self.state = CALLING
        self.status = 0
        self.ack: Request | None = None
        self.pending = None
        self.answered_sdp = b""
        self.prack_rseq = 0
        self.trunk = None                         # the Trunk when this leg goes to a carrier
        self.number = ""
        self.auth_tries = 0
        self.heard = False                        # any response at all (100 included)

    @property
    def label(self) -> str:
        return "B"

    @property
    def key(self) -> tuple:
        return (self.call_id, self.tag)

    @property
    def open(self) -> bool:
        return self.state is CALLING or self.state is EARLY


def respond(ctx, tx, req: Request, status: int, leg, reason: str | None = None) -> None:
    """Answer a request that came in on ``leg`` (its dialog's tag as To tag); a 491 asks
    to retry after 1 s (RFC 3261 §14.1)."""
    if tx is None:
        return
    tag = leg.dialog.local_tag if getattr(leg, "dialog", None) is not None else None
    resp = make_response(req, status, reason, to_tag=tx.to_tag or tag)
    if status == 491:
        resp.headers.add("Retry-After", "1")
    ctx.send_response(tx, resp, ctx.now())
