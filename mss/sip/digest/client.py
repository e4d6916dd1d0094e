# -*- test-case-name: tests.sip.test_digest -*-
"""The client side of Digest: choosing a challenge and answering it (RFC 3261 §22.2-3,
RFC 7616 §3.4, RFC 8760 §2.4), for the trunk registration and calls to a carrier.
"""
from __future__ import annotations

from typing import Iterable

from mss.sip.digest.hashing import ALGORITHMS, DigestError, canonical_algorithm, ha1, response
from mss.sip.digest.headers import Challenge, parse_challenges, quote


_PREFERENCE = ("SHA-512-256", "SHA-256", "MD5", "SHA-512-256-sess", "SHA-256-sess", "MD5-sess")


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The strongest Digest challenge we support (RFC 8760 §2.4: the client picks), or None."""
    best, rank = None, len(_PREFERENCE)
    for c in challenges:
        if c.scheme != "Digest" or c.algorithm not in _PREFERENCE:
            continue
        if c.algorithm not in ALGORITHMS:
            continue
        r = _PREFERENCE.index(c.algorithm)
        if r < rank:
            best, rank = c, r
    return best


def challenge_in(response) -> Challenge | None:
    """The challenge to answer in a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate):
    the strongest usable Digest one; malformed header values are skipped."""
    header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
    challenges: list[Challenge] = []
    for value in response.headers.get_lines(header):
        try:
            challenges.extend(parse_challenges(value))
        except DigestError:
            continue
    return choose_challenge(challenges)


def authorization(challenge: Challenge, username: str, password: str, method: str, uri: str,
                  cnonce: str, nc: int = 1, body: bytes = b"") -> str:
    """An Authorization/Proxy-Authorization value answering ``challenge``.

    Uses qop=auth when offered (auth-int only when it is the only qop offered), and the plain
    RFC 2617/2069 form when the challenge has no qop. ``nc`` counts the requests made with
    this nonce, starting at 1.
    """
    algorithm = canonical_algorithm(challenge.algorithm)
    if algorithm is None:
        raise DigestError(f"unsupported digest algorithm {challenge.algorithm!r}")
    if challenge.scheme != "Digest":
        raise DigestError(f"unsupported auth scheme {challenge.scheme!r}")
    if challenge.qop:
        if "auth" in challenge.qop:
            qop = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        else:
            raise DigestError(f"no supported qop in {', '.join(challenge.qop)}")
    else:
        qop = None
    if not 0 < nc <= 0xFFFFFFFF:
        raise DigestError(f"nonce-count {nc} out of range")
    nc_text = f"{nc:08x}"
    secret = ha1(algorithm, username, challenge.realm, password)
    digest = response(algorithm, secret, method, uri, challenge.nonce,
                      nc_text if qop else None, cnonce if (qop or algorithm.endswith("-sess")) else None,
                      qop, body)
    parts = [f"Digest username={quote(username)}", f"realm={quote(challenge.realm)}",
             f"nonce={quote(challenge.nonce)}", f"uri={quote(uri)}", f"response={quote(digest)}"]
    if challenge.algorithm_given or algorithm != "MD5":
        parts.append(f"algorithm={algorithm}")
    if qop or algorithm.endswith("-sess"):
        parts.append(f"cnonce={quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    if qop:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_text}")
    return ", ".join(parts)
