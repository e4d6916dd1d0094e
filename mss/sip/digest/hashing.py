# -*- test-case-name: tests.sip.test_digest -*-
"""The Digest hashes: HA1 and the request-digest (RFC 7616 §3.4.1-2, RFC 2617 §3.2.2.1).

Algorithms are those of RFC 7616 (MD5, SHA-256, SHA-512-256 and their ``-sess`` variants)
that RFC 8760 brings to SIP. The store keeps HA1 = H(username:realm:password) and never the
password. For the ``-sess`` algorithms the session HA1 is derived from that base HA1 and the
nonces inside ``response``, so the same stored value serves both variants.

This module imports only the standard library: the store computes HA1 with it without
depending on the SIP stack (docs/architecture.md).
"""
from __future__ import annotations

import hashlib


class DigestError(ValueError):
    """A Digest value we cannot use (unsupported algorithm or qop, missing parameter)."""


def _hash_names() -> dict[str, str]:
    names = {"MD5": "md5", "SHA-256": "sha256"}
    try:
        hashlib.new("sha512_256")
    except ValueError:          # OpenSSL without SHA-512/256
        pass
    else:
        names["SHA-512-256"] = "sha512_256"
    return names


_HASHES = _hash_names()

#: Canonical spellings of the supported algorithms (RFC 7616 §6.1), base and session variants.
ALGORITHMS: tuple[str, ...] = tuple(_HASHES) + tuple(name + "-sess" for name in _HASHES)
_CANONICAL = {name.lower(): name for name in ALGORITHMS}


def canonical_algorithm(algorithm: str | None) -> str | None:
    """``"md5"`` → ``"MD5"``, ``"sha-256-SESS"`` → ``"SHA-256-sess"``; ``None`` if unsupported.

    Algorithm names are case-insensitive tokens (RFC 7616 §3.3); a missing algorithm means MD5.
    """
    if algorithm is None:
        return "MD5"
    return _CANONICAL.get(algorithm.lower())


def _base(algorithm: str) -> tuple[str, bool]:
    canon = canonical_algorithm(algorithm)
    if canon is None:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    if canon.endswith("-sess"):
        return canon[:-5], True
    return canon, False


def _h(algorithm: str, text: str | bytes) -> str:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return hashlib.new(_HASHES[algorithm], text).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password), the value the store keeps instead of the password.

    For a ``-sess`` algorithm this is the base HA1; ``response`` derives the session value.
    """
    base, _ = _base(algorithm)
    return _h(base, f"{username}:{realm}:{password}")


def session_ha1(algorithm: str, ha1_value: str, nonce: str, cnonce: str) -> str:
    """HA1 for the ``-sess`` variants: H(H(username:realm:password):nonce:cnonce) (RFC 7616 §3.4.2)."""
    base, _ = _base(algorithm)
    return _h(base, f"{ha1_value}:{nonce}:{cnonce}")


def response(algorithm: str, ha1: str, method: str, uri: str, nonce: str,
             nc: str | None = None, cnonce: str | None = None, qop: str | None = None,
             body: bytes = b"") -> str:
    """The request-digest (RFC 7616 §3.4.1; RFC 2617 §3.2.2.1 when ``qop`` is None).

    ``ha1`` is always the base HA1 (see ``ha1``). ``qop`` is ``"auth"``, ``"auth-int"`` (then
    ``body`` is the message body) or None for the RFC 2069 form that old phones still send.
    """
    base, sess = _base(algorithm)
    if qop is not None and qop not in ("auth", "auth-int"):
        raise DigestError(f"unsupported qop {qop!r}")
    if qop is not None and (nc is None or cnonce is None):
        raise DigestError("qop needs nc and cnonce")
    a1 = ha1
    if sess:
        if cnonce is None:
            raise DigestError(f"{algorithm} needs a cnonce")
        a1 = _h(base, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(base, f"{method}:{uri}:{_h(base, body)}")
    else:
        ha2 = _h(base, f"{method}:{uri}")
    if qop is None:
        return _h(base, f"{a1}:{nonce}:{ha2}")
    return _h(base, f"{a1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
