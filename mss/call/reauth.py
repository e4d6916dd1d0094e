# -*- test-case-name: tests.trunk.test_calls -*-
"""Answering a carrier's challenge (401/407) to a request we sent it with a trunk's
credentials: the initial INVITE of a B leg as well as anything sent in its dialog (BYE,
PRACK, a relayed re-INVITE or INFO...). RFC 3261 §22.2-3, the digest itself is
``mss.sip.digest.client``.

One rule for every request: the first challenge is answered; a second only when it says our
nonce was stale (otherwise the carrier refused the password: answering again would only
repeat the refusal); never a third.
"""
from __future__ import annotations

from typing import Callable

from mss.sip.digest import client as digest
from mss.sip.headers import canonical
from mss.sip.message import Request

# headers a request re-sent in its dialog gets anew from the dialog, or must not repeat
_NOT_COPIED = frozenset(("via", "from", "to", "call-id", "cseq", "max-forwards", "route",
                         "contact", "authorization", "proxy-authorization",
                         "content-length", "content-type"))


def reauthorized(request: Request, response, trunk, tries: int, new_cnonce: Callable[[], str],
                 dialog=None) -> Request | None:
    """``request`` again with ``trunk``'s credentials for the challenge in ``response``, or
    None when it is not to be answered (``tries``: how often this request was answered).

    Outside a dialog (the initial INVITE) it is a copy with the next CSeq; in a dialog, the
    dialog's new request (its CSeq, tags and route set) with the original's other headers.
    """
    challenge = digest.challenge_in(response)
    if challenge is None or tries >= 2 or (tries and not challenge.stale):
        return None
    method = request.method
    if dialog is None:
        again = Request(method, request.uri, request.headers.copy(), request.body)
        again.headers.remove("via")
        again.headers.remove("authorization")
        again.headers.remove("proxy-authorization")
        again.headers.set("CSeq", f"{request.cseq.number + 1} {method}")
    else:
        again = dialog.request(method)
        for name, value in request.headers:
            if canonical(name) not in _NOT_COPIED:
                again.headers.add(name, value)
    if request.body:
        again.set_body(request.body, request.headers.get("content-type") or "application/sdp")
    else:
        again.headers.set("Content-Length", "0")
    again.headers.add("Authorization" if response.status == 401 else "Proxy-Authorization",
                      digest.authorization(challenge, trunk.username, trunk.password, method,
                                           str(again.uri), cnonce=new_cnonce(), nc=1))
    again.invalidate()
    return again


def credentials_sent(request: Request) -> int:
    """1 when ``request`` already carried credentials (it was answered once), else 0."""
    headers = request.headers
    return 1 if "authorization" in headers or "proxy-authorization" in headers else 0
