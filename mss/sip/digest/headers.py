# -*- test-case-name: tests.sip.test_digest -*-
"""The Digest header values: WWW-Authenticate/Proxy-Authenticate challenges and
Authorization/Proxy-Authorization credentials (RFC 3261 §25.1, RFC 7235 §2.1, RFC 7616 §3.3-4).

``parse_credentials`` and ``parse_challenges`` read them with a one-regex fast path for the
common shape and a scanner that decides errors (``DigestParseError`` says what is malformed);
``quote`` writes a parameter value. ``userhash`` (RFC 7616 §3.4.4) and ``username*`` are not
supported: SIP phones do not use them.
"""
from __future__ import annotations

import re

import attrs

from mss.sip.digest.hashing import DigestError, canonical_algorithm


class DigestParseError(DigestError):
    """A malformed Authorization/WWW-Authenticate value; the message says what is wrong."""


_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WS = " \t\r\n"
MAX_VALUE_LENGTH = 8192
MAX_PARAMS = 64


_CONTROL = re.compile("[\r\n\x00]")


def quote(value: str) -> str:
    """A quoted-string for a parameter we write; control characters are refused."""
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
