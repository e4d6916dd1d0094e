# -*- test-case-name: tests.sip.test_checks -*-
"""The checks a UAS makes on a request before processing it (RFC 3261 §8.2, §16.3; RFC 4475).

``check_request`` says what to answer instead of processing a parsed request (405/501, 483,
416, 420, 400, 415, 406), as a ``Rejection``; the core applies it to the requests it handles.
``merge_key`` is the key of merged-request detection (§8.2.2.2, answered 482).
"""
from __future__ import annotations

from mss.sip.errors import SIPParseError
from mss.sip.message import Request, Response, make_response

# Methods with a standard meaning (RFC 3261, 3262, 3265, 3311, 3428, 3515, 3903, 6086).
KNOWN_METHODS = frozenset((
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
))
# Methods whose body we interpret as a session description (offer/answer, RFC 3264).
SDP_METHODS = frozenset(("INVITE", "UPDATE", "PRACK"))
SDP_TYPES = ("application/sdp", "multipart/mixed", "multipart/alternative", "multipart/related")
# Requests this server answers itself even with Max-Forwards 0 (§16.3 item 2, RFC 4475 §3.3.11).
LOCAL_METHODS = frozenset(("OPTIONS", "REGISTER", "CANCEL"))


class Rejection(tuple):
    """``(status, reason, headers)``: the answer ``check_request`` asks for; ``headers`` are
    ``(name, value)`` pairs to add (Unsupported, Accept, Allow...), ready for
    ``make_response(req, *rejection)``-style use via ``respond``."""

    __slots__ = ()

    def __new__(cls, status: int, reason: str, headers: tuple = ()):
        return tuple.__new__(cls, (status, reason, tuple(headers)))

    status = property(lambda self: self[0])
    reason = property(lambda self: self[1])
    headers = property(lambda self: self[2])

    def respond(self, request: Request, to_tag: str | None = None) -> Response:
        return make_response(request, self[0], self[1], to_tag, self[2])


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip(" \t").lower()


def check_request(req: Request, *, supported=frozenset(), schemes=("sip", "sips"),
                  allowed=None, local: bool = False,
                  sdp_types=SDP_TYPES) -> Rejection | None:
    """What a UAS must answer instead of processing ``req``, or None to go on.

    Called by the core after ``parse`` for requests it handles (never for ACK, which gets
    no response). In order (RFC 3261 §8.2, §16.3):

    - a method nobody defined: 501 (RFC 4475 §3.1.1.5); a known one not in ``allowed``
      (when given): 405 with Allow (§8.2.1);
    - Max-Forwards 0: 483 (§16.3 item 2), unless the request ends here: ``local=True`` or
      OPTIONS/REGISTER/CANCEL, which a server answers itself (RFC 4475 §3.3.11);
    - Request-URI scheme not in ``schemes``: 416 (§8.2.2.1, RFC 4475 §3.3.2-3);
    - Require / Proxy-Require tags not in ``supported``: 420 with Unsupported (§8.2.2.3,
      RFC 4475 §3.3.5; a B2BUA stands in for the proxies on its legs);
    - Contact headers that do not parse: 400 (RFC 4475 §3.1.2.13);
    - a top Via branch that is only the magic cookie: 400 (RFC 4475 §3.2.1);
    - a body without Content-Type: 400 (§20.15); Content-Encoding other than identity: 415
      with Accept-Encoding (§8.2.3); a session body of a type not in ``sdp_types`` for
      INVITE/UPDATE/PRACK: 415 with Accept (§8.2.3, RFC 4475 §3.3.6);
    - an INVITE whose Accept excludes application/sdp: 406 (§21.4.7, RFC 4475 §3.3.15).

    A header these checks read that does not parse (an unterminated quote in Require, ...)
    is answered 400.
    """
    try:
        return _check_request(req, supported, schemes, allowed, local, sdp_types)
    except SIPParseError as e:
        return Rejection(400, e.phrase)


def _check_request(req, supported, schemes, allowed, local, sdp_types):
    method = req.method
    if method == "ACK":
        return None
    if method not in KNOWN_METHODS:
        return Rejection(501, "Not Implemented")
    if allowed is not None and method not in allowed:
        return Rejection(405, "Method Not Allowed", (("Allow", ", ".join(sorted(allowed))),))
    hdrs = req.headers
    if not local and method not in LOCAL_METHODS and req.max_forwards == 0:
        return Rejection(483, "Too Many Hops")
    if req.uri.scheme not in schemes:
        return Rejection(416, "Unsupported URI Scheme")
    if method != "CANCEL":
        unknown = []
        for name in ("require", "proxy-require"):
            for tag in hdrs.get_all(name):
                if tag.lower() not in supported and tag not in unknown:
                    unknown.append(tag)
        if unknown:
            return Rejection(420, "Bad Extension", (("Unsupported", ", ".join(unknown)),))
    if "contact" in hdrs:
        try:
            req.contacts
        except SIPParseError as e:
            return Rejection(400, f"Bad Contact: {e.reason}"[:100])
    if req.top_via.branch == "z9hG4bK":
        return Rejection(400, "Via branch has no transaction identifier")
    if req.body:
        ctype = hdrs.get("content-type")
        if ctype is None:
            return Rejection(400, "Body without Content-Type")
        encoding = hdrs.get_all("content-encoding")
        if any(e.lower() != "identity" for e in encoding):
            return Rejection(415, "Unsupported Media Type", (("Accept-Encoding", "identity"),))
        if method in SDP_METHODS and _media_type(ctype) not in sdp_types:
            return Rejection(415, "Unsupported Media Type",
                             (("Accept", ", ".join(sdp_types)),))
    if method == "INVITE" and "accept" in hdrs:
        accepted = {_media_type(v) for v in hdrs.get_all("accept")}
        if accepted and not accepted & {"application/sdp", "application/*", "*/*"}:
            return Rejection(406, "Not Acceptable", (("Accept", "application/sdp"),))
    return None


def merge_key(req: Request) -> tuple | None:
    """The key of §8.2.2.2 merged-request detection: (From tag, Call-ID, CSeq number, method)
    for a request outside a dialog (no To tag), else None. The core answers 482 (Loop
    Detected) to a request whose key belongs to an ongoing server transaction that the
    request does not match (a fork that reached us twice, RFC 4475's 482 case)."""
    if req.to.tag is not None or req.method == "ACK":
        return None
    cseq = req.cseq
    return (req.from_.tag, req.call_id, cseq.number, cseq.method)
