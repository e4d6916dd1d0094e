# -*- test-case-name: tests.sip.test_digest -*-
"""The server side of Digest: the challenge to send and the check of the credentials that
answer it (RFC 3261 §22.4, RFC 7616 §3.3, §3.4.1).

A registrar should send one challenge per algorithm, MD5 first: many phones (and SIPp 3.6) only
answer the first challenge and only know MD5. Nonces are ``mss.sip.digest.nonces``; reading the
Authorization value is ``mss.sip.digest.headers.parse_credentials``.
"""
from __future__ import annotations

import hmac

from mss.sip.digest.hashing import DigestError, canonical_algorithm, response
from mss.sip.digest.headers import Credentials, quote


def challenge(realm: str, nonce: str, algorithm: str = "MD5", stale: bool = False,
              opaque: str | None = None) -> str:
    """A WWW-Authenticate/Proxy-Authenticate value offering qop=auth (RFC 3261 §22.4)."""
    canon = canonical_algorithm(algorithm)
    if canon is None:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    parts = [f"Digest realm={quote(realm)}", f"nonce={quote(nonce)}"]
    if opaque is not None:
        parts.append(f"opaque={quote(opaque)}")
    parts.append(f"algorithm={canon}")
    parts.append('qop="auth"')
    if stale:
        parts.append("stale=true")
    return ", ".join(parts)


def verify(creds: Credentials, ha1_value: str, method: str, body: bytes = b"") -> bool:
    """True if ``creds.response`` is right for the stored base HA1 and the request ``method``.

    Checks only the hash: the caller checks the nonce (``NonceFactory.check``), the realm, the
    nonce-count (``NonceCounter.accept``) and that ``creds.uri`` matches the Request-URI.
    """
    if canonical_algorithm(creds.algorithm) is None:
        return False
    if creds.qop not in (None, "auth", "auth-int"):
        return False
    try:
        expected = response(creds.algorithm, ha1_value, method, creds.uri, creds.nonce,
                            creds.nc, creds.cnonce, creds.qop, body)
    except DigestError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), creds.response.lower().encode("ascii", "replace"))
