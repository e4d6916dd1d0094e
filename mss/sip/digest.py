# -*- test-case-name: tests.sip.test_digest -*-
"""Digest authentication for SIP: pure functions and small objects, no I/O.

Implements the Digest scheme as SIP uses it (RFC 3261 §22.4, which profiles RFC 2617), with the
algorithms of RFC 7616 (MD5, SHA-256, SHA-512-256 and their ``-sess`` variants) that RFC 8760
brings to SIP. Both sides are here:

- server: ``NonceFactory`` makes nonces that can be verified without keeping state (a timestamp
  and a random salt, signed with HMAC-SHA256), ``NonceCounter`` rejects replayed nonce-counts,
  ``challenge`` builds a WWW-Authenticate/Proxy-Authenticate value, ``parse_credentials`` reads
  an Authorization/Proxy-Authorization value and ``verify`` checks it against a stored HA1;
- client (trunk registration to a carrier): ``parse_challenge`` and ``authorization``.

The store keeps HA1 = H(username:realm:password) and never the password. For the ``-sess``
algorithms the session HA1 is derived from that base HA1 and the nonces inside ``response``, so
the same stored value serves both variants. ``userhash`` (RFC 7616 §3.4.4) and ``username*``
are not supported: SIP phones do not use them.

A registrar should send one challenge per algorithm, MD5 first: many phones (and SIPp 3.6) only
answer the first challenge and only know MD5.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from typing import Callable, Iterable

import attrs

__all__ = [
    "DigestError", "DigestParseError", "Credentials", "Challenge",
    "ALGORITHMS", "canonical_algorithm", "ha1", "session_ha1", "response",
    "NonceFactory", "NonceCounter", "challenge", "parse_credentials", "parse_challenge",
    "parse_challenges", "verify", "authorization", "choose_challenge", "challenge_in",
]


class DigestError(ValueError):
    """A Digest value we cannot use (unsupported algorithm or qop, missing parameter)."""


class DigestParseError(DigestError):
    """A malformed Authorization/WWW-Authenticate value; the message says what is wrong."""


# -- algorithms ----------------------------------------------------------------------------

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


# -- server nonces -------------------------------------------------------------------------

_NONCE_TIME = struct.Struct(">Q")     # milliseconds since the epoch
_SALT_LEN = 8
_MAC_LEN = 16
_NONCE_LEN = _NONCE_TIME.size + _SALT_LEN + _MAC_LEN


class NonceFactory:
    """Nonces that verify without server state: base64url(time ‖ salt ‖ HMAC-SHA256(secret, time ‖ salt)).

    The salt makes every challenge's nonce distinct, so that ``NonceCounter`` can track the
    nonce-count per nonce. ``context`` (for example the client's IP address) may be mixed into
    the MAC so a nonce is only good for the peer it was issued to.
    """

    #: How far in the future a nonce's timestamp may be (clock steps between workers).
    max_skew = 5.0

    def __init__(self, secret: bytes, random: Callable[[int], bytes] = os.urandom):
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        self._secret = secret
        self._random = random

    def _mac(self, payload: bytes, context: bytes) -> bytes:
        return hmac.new(self._secret, payload + b"|" + context, hashlib.sha256).digest()[:_MAC_LEN]

    def make(self, now: float, context: bytes = b"") -> str:
        payload = _NONCE_TIME.pack(int(now * 1000)) + self._random(_SALT_LEN)
        raw = payload + self._mac(payload, context)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def check(self, nonce: str, now: float, lifetime: float, context: bytes = b"") -> str:
        """``"ok"``, ``"stale"`` (ours but older than ``lifetime`` seconds) or ``"invalid"``."""
        if not isinstance(nonce, str) or len(nonce) != 43:
            return "invalid"
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (ValueError, TypeError):
            return "invalid"
        if len(raw) != _NONCE_LEN:
            return "invalid"
        payload, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(payload, context)):
            return "invalid"
        issued = _NONCE_TIME.unpack(payload[:_NONCE_TIME.size])[0] / 1000.0
        if issued > now + self.max_skew:
            return "invalid"
        if now - issued > lifetime:
            return "stale"
        return "ok"

    @staticmethod
    def issued_at(nonce: str) -> float | None:
        """The timestamp inside a nonce (unverified), or None if it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (ValueError, TypeError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        return _NONCE_TIME.unpack(raw[:_NONCE_TIME.size])[0] / 1000.0


class NonceCounter:
    """Replay protection: the nonce-count of each nonce must strictly increase (RFC 7616 §3.4).

    Call ``accept`` only after the credentials verified, so that only authenticated clients
    cost memory. Entries are forgotten ``lifetime`` seconds after their first use (make it at
    least the nonce lifetime: by then ``NonceFactory.check`` says "stale" anyway). At most
    ``max_entries`` are kept; beyond that the oldest are dropped, which could let a replay of
    a dropped, still-fresh nonce through — the bound only matters under a flood of valid logins.
    """

    def __init__(self, lifetime: float = 300.0, max_entries: int = 100_000):
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()   # nonce -> (nc, expires)

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now: float) -> None:
        seen = self._seen
        while seen:
            nonce, (_, expires) = next(iter(seen.items()))
            if expires > now and len(seen) <= self.max_entries:
                break
            del seen[nonce]

    def accept(self, nonce: str, nc: str | int, now: float) -> bool:
        """True if ``nc`` is greater than every nonce-count seen with ``nonce``; records it."""
        if isinstance(nc, str):
            if not 1 <= len(nc) <= 8:
                return False
            try:
                count = int(nc, 16)
            except ValueError:
                return False
        elif isinstance(nc, int) and not isinstance(nc, bool):
            count = nc
        else:
            return False
        if count < 1:
            return False
        self._prune(now)
        previous = self._seen.get(nonce)
        if previous is None:
            self._seen[nonce] = (count, now + self.lifetime)
            self._prune(now)
            return True
        if count <= previous[0]:
            return False
        self._seen[nonce] = (count, previous[1])
        return True


# -- header values ---------------------------------------------------------------------------

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WS = " \t\r\n"
MAX_VALUE_LENGTH = 8192
MAX_PARAMS = 64


_CONTROL = re.compile("[\r\n\x00]")


def _quote(value: str) -> str:
    if _CONTROL.search(value):
        raise DigestError(f"control characters in {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Scanner:
    """A cursor over an auth header value (RFC 3261 §25.1 / RFC 7235 §2.1 grammar)."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str:
        text, start = self.text, self.pos
        pos = start
        while pos < len(text) and text[pos] in _TOKEN_CHARS:
            pos += 1
        self.pos = pos
        return text[start:pos]

    def quoted(self) -> str:
        text = self.text
        pos = self.pos + 1                   # after the opening quote
        out = []
        while pos < len(text):
            c = text[pos]
            if c == '"':
                self.pos = pos + 1
                return "".join(out)
            if c == "\\":
                if pos + 1 >= len(text):
                    break
                out.append(text[pos + 1])
                pos += 2
                continue
            out.append(c)
            pos += 1
        raise DigestParseError(f"unterminated quoted string at offset {self.pos}")


_TOKEN_RE = "[" + re.escape("".join(sorted(_TOKEN_CHARS))) + "]+"
_FAST_SCHEME = re.compile(r"[ \t]*(" + _TOKEN_RE + r")[ \t]+")
_FAST_PARAM = re.compile(r"[ \t]*(" + _TOKEN_RE + r')[ \t]*=[ \t]*(?:"([^"\\\r\n]*)"|(' + _TOKEN_RE
                         + r"))[ \t]*(?:,|$)")


def _parse_auth_fast(value: str):
    """The common shape in one regex pass: one scheme, ``name=value`` pairs, quoted values
    without escapes. None when the value needs the full scanner (it decides errors)."""
    m = _FAST_SCHEME.match(value)
    if m is None:
        return None
    params: dict[str, str] = {}
    quoted: set[str] = set()
    pos, end = m.end(), len(value)
    match = _FAST_PARAM.match
    while pos < end:
        p = match(value, pos)
        if p is None:
            return None
        key = p.group(1).lower()
        if key in params:
            return None
        q = p.group(2)
        if q is not None:
            params[key] = q
            quoted.add(key)
        else:
            params[key] = p.group(3)
        pos = p.end()
    if not params or len(params) > MAX_PARAMS:
        return None
    return [(m.group(1), params, quoted)]


def _parse_auth(value: str) -> list[tuple[str, dict[str, str], set[str]]]:
    """Split a header value into ``(scheme, params, quoted_param_names)`` per challenge."""
    if not isinstance(value, str):
        raise DigestParseError("the header value is not text")
    if len(value) > MAX_VALUE_LENGTH:
        raise DigestParseError(f"the header value is longer than {MAX_VALUE_LENGTH} characters")
    fast = _parse_auth_fast(value)
    if fast is not None:
        return fast
    s = _Scanner(value)
    result: list[tuple[str, dict[str, str], set[str]]] = []
    if s.at_end():
        raise DigestParseError("empty header value")
    while True:
        s.skip_ws()
        scheme = s.token()
        if not scheme:
            raise DigestParseError(f"expected an auth scheme at offset {s.pos}")
        params: dict[str, str] = {}
        quoted: set[str] = set()
        result.append((scheme, params, quoted))
        if s.peek() not in _WS and s.peek() != "" and s.peek() != ",":
            raise DigestParseError(f"unexpected {s.peek()!r} after scheme {scheme!r}")
        while True:
            s.skip_ws()
            # empty list elements are allowed: "a=1,,b=2"
            while s.peek() == ",":
                s.pos += 1
                s.skip_ws()
            if s.at_end():
                return result
            mark = s.pos
            name = s.token()
            if not name:
                raise DigestParseError(f"expected a parameter name at offset {s.pos}")
            s.skip_ws()
            if s.peek() != "=":
                # "name" alone: a new scheme starts here (several challenges in one value)
                if params and s.peek() and s.peek() in _TOKEN_CHARS:
                    s.pos = mark
                    break
                raise DigestParseError(f"expected '=' after {name!r}")
            s.pos += 1
            s.skip_ws()
            if s.peek() == '"':
                val = s.quoted()
                quoted.add(name.lower())
            else:
                val = s.token()
                if not val:
                    raise DigestParseError(f"missing value for {name!r}")
            key = name.lower()
            if key in params:
                raise DigestParseError(f"duplicate parameter {name!r}")
            if len(params) >= MAX_PARAMS:
                raise DigestParseError("too many parameters")
            params[key] = val
            s.skip_ws()
            if s.at_end():
                return result
            if s.peek() != ",":
                raise DigestParseError(f"expected ',' at offset {s.pos}, found {s.peek()!r}")
            s.pos += 1


@attrs.frozen
class Credentials:
    """A parsed Authorization/Proxy-Authorization value (RFC 3261 §25.1 ``credentials``)."""
    scheme: str
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"          # canonical spelling when supported, as sent otherwise
    cnonce: str | None = None
    qop: str | None = None
    nc: str | None = None
    opaque: str | None = None
    params: dict = attrs.field(factory=dict, eq=False)   # every parameter, lower-case names

    @property
    def nc_value(self) -> int | None:
        return int(self.nc, 16) if self.nc is not None else None


@attrs.frozen
class Challenge:
    """A parsed WWW-Authenticate/Proxy-Authenticate challenge."""
    scheme: str
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()       # offered qop values, lower case
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    params: dict = attrs.field(factory=dict, eq=False)
    algorithm_given: bool = attrs.field(default=False, eq=False)


_HEX_DIGITS = "0123456789abcdefABCDEF"


def parse_credentials(value: str) -> Credentials:
    """Parse a Digest Authorization value; ``DigestParseError`` explains what is malformed."""
    parsed = _parse_auth(value)
    if len(parsed) != 1:
        raise DigestParseError("more than one set of credentials in one header value")
    scheme, params, _ = parsed[0]
    if scheme.lower() != "digest":
        raise DigestParseError(f"unsupported auth scheme {scheme!r} (only Digest)")
    for name in ("username", "realm", "nonce", "uri", "response"):
        if name not in params:
            raise DigestParseError(f"missing parameter {name!r}")
    algorithm = params.get("algorithm")
    canon = canonical_algorithm(algorithm)
    qop = params.get("qop")
    if qop is not None:
        qop = qop.lower()
        if "cnonce" not in params or "nc" not in params:
            raise DigestParseError("qop given without cnonce and nc")
    nc = params.get("nc")
    if nc is not None:
        if len(nc) != 8 or nc.strip(_HEX_DIGITS):       # strip leaves what is not hex
            raise DigestParseError(f"nc {nc!r} is not 8 hexadecimal digits")
    resp = params["response"]
    if not resp or resp.strip(_HEX_DIGITS):
        raise DigestParseError("response is not hexadecimal")
    return Credentials(
        scheme="Digest", username=params["username"], realm=params["realm"],
        nonce=params["nonce"], uri=params["uri"], response=resp.lower(),
        algorithm=canon if canon is not None else algorithm,
        cnonce=params.get("cnonce"), qop=qop, nc=nc, opaque=params.get("opaque"),
        params=dict(params))


def _challenge_from(scheme: str, params: dict[str, str]) -> Challenge:
    if scheme.lower() == "digest":
        for name in ("realm", "nonce"):
            if name not in params:
                raise DigestParseError(f"Digest challenge without {name!r}")
    algorithm = params.get("algorithm")
    canon = canonical_algorithm(algorithm)
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        scheme="Digest" if scheme.lower() == "digest" else scheme,
        realm=params.get("realm", ""), nonce=params.get("nonce", ""),
        algorithm=canon if canon is not None else algorithm,
        qop=qop, opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        domain=params.get("domain"), params=dict(params),
        algorithm_given=algorithm is not None)


def parse_challenges(value: str) -> list[Challenge]:
    """Every challenge in one WWW-Authenticate value (several may share one header)."""
    return [_challenge_from(scheme, params) for scheme, params, _ in _parse_auth(value)]


def parse_challenge(value: str) -> Challenge:
    """The Digest challenge in a WWW-Authenticate/Proxy-Authenticate value."""
    for c in parse_challenges(value):
        if c.scheme == "Digest":
            return c
    raise DigestParseError("no Digest challenge in the header value")


def challenge(realm: str, nonce: str, algorithm: str = "MD5", stale: bool = False,
              opaque: str | None = None) -> str:
    """A WWW-Authenticate/Proxy-Authenticate value offering qop=auth (RFC 3261 §22.4)."""
    canon = canonical_algorithm(algorithm)
    if canon is None:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    parts = [f"Digest realm={_quote(realm)}", f"nonce={_quote(nonce)}"]
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
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


# -- client side ----------------------------------------------------------------------------

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
    parts = [f"Digest username={_quote(username)}", f"realm={_quote(challenge.realm)}",
             f"nonce={_quote(challenge.nonce)}", f"uri={_quote(uri)}", f"response={_quote(digest)}"]
    if challenge.algorithm_given or algorithm != "MD5":
        parts.append(f"algorithm={algorithm}")
    if qop or algorithm.endswith("-sess"):
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_text}")
    return ", ".join(parts)
