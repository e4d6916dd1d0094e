# -*- test-case-name: tests.call.test_call -*-
"""The INVITE a B leg sends: who the callee (or carrier) is told is calling, and how.

- To a device: From is the caller's extension (or number) at our domain, with the
  identity its digest proved as P-Asserted-Identity (RFC 3325: a phone's own assertion is
  not trusted; a carrier's, on a call in from a trunk, is passed on). A caller hiding its
  number (anonymous From) stays anonymous.
- To a carrier: the trunk's From user, display and domain; its identity header (PAI or PPI)
  when configured; ``Privacy: id`` for a caller hiding its number; 100rel as the trunk says.
- Headers the call adds (``Diversion`` after forwarding) and the caller's Privacy follow.

A function of the call's parties, so that anything placing a new B leg (forking, hunting,
a transfer or a hunt group) builds the same INVITE.
"""
from __future__ import annotations

from mss.services.api import is_anonymous
from mss.sip.headers import Headers
from mss.sip.message import Request
from mss.sip.uri import parse_uri


def b_leg_invite(ctx, a: Request, leg, sdp: bytes, *, caller: str, display: str | None,
                 callee: str, caller_ext: str | None, extra_headers) -> Request:
    """The INVITE for ``leg`` of the call the caller's INVITE ``a`` set up, offering ``sdp``."""
    trunk = leg.trunk
    if trunk is not None:
        caller = trunk.from_user or caller
        display = trunk.from_display or display
    from_disp = f'"{display}" ' if display else ""
    from_host = trunk.domain if trunk is not None else ctx.domain
    if trunk is None and is_anonymous(a.from_.uri.number):
        # the caller hid its number (anonymous From): the callee sees no more than that
        caller, from_disp, from_host = "anonymous", '"Anonymous" ', "anonymous.invalid"
    to_uri = leg.target if trunk is not None else f"sip:{callee}@{from_host}"
    headers = [
        ["Max-Forwards", str(max(0, (a.max_forwards or 70) - 1))],
        ["From", f"{from_disp}<sip:{caller}@{from_host}>;tag={leg.tag}"],
        ["To", f"<{to_uri}>"],
        ["Call-ID", leg.call_id],
        ["CSeq", "1 INVITE"],
        ["Contact", f"<{leg.contact}>"],
        ["Allow", ctx.allow],
    ]
    prack = trunk.prack if trunk is not None else "supported"
    if prack != "off":
        headers.append(["Supported", "100rel"])
    if prack == "required":
        headers.append(["Require", "100rel"])
    if trunk is not None and trunk.identity:
        name = "P-Asserted-Identity" if trunk.identity == "pai" else "P-Preferred-Identity"
        headers.append([name, f"{from_disp}<sip:{caller}@{from_host}>"])
    for name, value in extra_headers:
        headers.append([name, value])
    # RFC 3325: an identity asserted by a phone is not trusted (it would let an extension
    # show any number); only a carrier's (a call in from a trunk) is passed on. A call
    # from an extension carries the identity its digest authentication proved.
    trusted_pai = trunk is None and caller_ext is None
    for name in ("privacy", "p-asserted-identity") if trusted_pai else ("privacy",):
        for value in a.headers.get_lines(name):
            headers.append([name.title(), value])
    if trunk is None and caller_ext is not None:
        headers.append(["P-Asserted-Identity",
                        f"{from_disp}<sip:{caller_ext}@{ctx.domain}>"])
    if trunk is not None and "privacy" not in a.headers and is_anonymous(a.from_.uri.number):
        # a phone hiding its number (anonymous From) calling out: the carrier gets the
        # trunk's identity with Privacy: id (RFC 3325 section 9.3) so it withholds it
        headers.append(["Privacy", "id"])
    req = Request("INVITE", parse_uri(leg.target), Headers(headers))
    if sdp:
        req.set_body(sdp, a.headers.get("content-type") or "application/sdp")
    else:
        req.headers.add("Content-Length", "0")
    return req
