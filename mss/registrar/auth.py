# -*- test-case-name: tests.registrar.test_auth -*-
"""Digest authentication of requests from extensions (RFC 3261 §22, RFC 7616, RFC 8760).

Shared by the registrar (401/WWW-Authenticate) and the call core (407/Proxy-Authenticate).
Abuse rules live here too, because they decide on the same facts:

- No user enumeration: the challenge is the same whoever is named, and a request for an
  unknown or disabled user is verified against a dummy HA1 so that it costs the same time and
  gets the same answer (403) as a wrong password.
- Brute force: each failed verification counts against the source address (``BanList``);
  a banned address gets no answer at all.
- One challenge by default: baresip 1.0 and SIPp 3.6.1 give up when a 401 offers MD5 and
  SHA-256 together, so ``[auth] algorithms`` ships as ``["MD5"]``. An extension may be set to
  its own algorithms (``mssctl extension digest``): it is challenged with those, named by the
  To (REGISTER) or From (INVITE) user, and may answer with no other. An unknown user gets the
  configured challenge, so only an extension whose setting differs from the default can be
  told apart from an unknown one (docs/configuration.md). With both, MD5 comes first: clients
  that only answer the first challenge keep working, modern ones pick SHA-256 (RFC 8760 §2.4).
"""
from __future__ import annotations

import os

import attrs
from twisted.logger import Logger

from mss.sip.digest.hashing import DigestError, canonical_algorithm, ha1
from mss.sip.digest.headers import parse_credentials
from mss.sip.digest.nonces import NonceCounter, NonceFactory
from mss.sip.digest.server import challenge, verify
from mss.sip.errors import SIPParseError
from mss.sip.uri import parse_uri

_NONCE_MARK = "mss-nonce-goes-here"


def _ordered(algorithms) -> tuple[str, ...]:
    """The supported algorithms among ``algorithms``, MD5 first (see the module docstring)."""
    return tuple(a for a in ("MD5", "SHA-256") if a in algorithms)


@attrs.frozen
class AuthOutcome:
    """``kind``: "ok" (``extension`` set), "challenge", "forbidden", "drop"."""

    kind: str
    extension: object = None
    headers: tuple = ()           # (name, value) to add to the 401/407
    reason: str = ""


def load_secret(path: str) -> bytes:
    """The server secret for nonces, created once (so nonces survive a restart)."""
    try:
        with open(path, "rb") as f:
            secret = f.read()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    secret = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


class Authenticator:
    log = Logger()

    def __init__(self, directory, bans, realm: str, secret: bytes, nonce_lifetime: float = 300,
                 algorithms=("MD5",), on_ban=None):
        self.directory = directory          # number -> Extension | None (cached store view)
        self.bans = bans
        self.realm = realm
        self.nonces = NonceFactory(secret)
        self.counter = NonceCounter(lifetime=nonce_lifetime * 2)
        self.lifetime = nonce_lifetime
        self.algorithms = _ordered(algorithms) or ("MD5",)
        self.on_ban = on_ban
        self._dummy = {alg: ha1(alg, "dummy", realm, os.urandom(8).hex())
                       for alg in ("MD5", "SHA-256")}
        self.failures = 0
        # challenge() text around the nonce, per (algorithms, stale): built once
        self._challenge_parts: dict[tuple, tuple] = {}

    def challenge_headers(self, header: str, now: float, stale: bool = False,
                          algorithms: tuple[str, ...] | None = None) -> tuple:
        algorithms = algorithms or self.algorithms
        parts = self._challenge_parts.get((algorithms, stale))
        if parts is None:
            parts = self._challenge_parts[algorithms, stale] = tuple(
                challenge(self.realm, _NONCE_MARK, alg, stale=stale).split(_NONCE_MARK)
                for alg in _ordered(algorithms))
        nonce = self.nonces.make(now)       # base64url: quoting leaves it as it is
        return tuple((header, f"{prefix}{nonce}{suffix}") for prefix, suffix in parts)

    def algorithms_for(self, number: str | None) -> tuple[str, ...]:
        """The algorithms extension ``number`` is challenged with (the default if unknown)."""
        ext = self.directory(number) if number is not None else None
        if ext is None or not ext.enabled:
            return self.algorithms
        return ext.digest_algorithms(self.algorithms)

    def username_to_number(self, username: str) -> str:
        user = username
        if user.lower().startswith(("sip:", "sips:")):
            user = user.split(":", 1)[1]
        return user.split("@", 1)[0]

    def check(self, request, source_host: str, now: float, proxy: bool,
              expected_user: str | None = None) -> AuthOutcome:
        """Authenticate ``request``; ``proxy`` selects 407/Proxy-* instead of 401/WWW-*."""
        if self.bans.is_banned(source_host, now):
            return AuthOutcome("drop", reason="banned")
        challenge_header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        cred_header = "proxy-authorization" if proxy else "authorization"
        values = request.headers.get_lines(cred_header)
        creds = None
        parsed = 0
        for value in values:
            try:
                c = parse_credentials(value)
            except DigestError:
                continue
            parsed += 1
            if c.realm == self.realm:
                creds = c
                break
        if creds is None:
            if values and not parsed:
                return self._fail(source_host, now, "unusable credentials")
            # none, or only for other realms (a phone reusing another server's credentials)
            return AuthOutcome("challenge", headers=self.challenge_headers(
                challenge_header, now, algorithms=self.algorithms_for(expected_user)))
        algorithm = canonical_algorithm(creds.algorithm)
        number = self.username_to_number(creds.username)
        ext = self.directory(number)
        if ext is not None and not ext.enabled:
            ext = None
        allowed = ext.digest_algorithms(self.algorithms) if ext is not None else self.algorithms
        if algorithm not in allowed or creds.qop != "auth":
            return self._fail(source_host, now, f"unsupported algorithm or qop {creds.algorithm}")
        if not self._same_uri(creds.uri, request.uri):
            return self._fail(source_host, now, "digest uri does not match the Request-URI")
        state = self.nonces.check(creds.nonce, now, self.lifetime)
        if state == "invalid":
            return self._fail(source_host, now, "invalid nonce")
        ha1_value = ext.ha1_for(algorithm, creds.username, self.realm) if ext is not None else None
        good = verify(creds, ha1_value or self._dummy[algorithm], request.method)
        if not good or ha1_value is None:
            return self._fail(source_host, now, "wrong credentials")
        if expected_user is not None and number != expected_user:
            return self._fail(source_host, now, "credentials for another user")
        if state == "stale" or not self.counter.accept(creds.nonce, creds.nc, now):
            # an old nonce, or a replayed nonce-count: not a password failure, no access either
            return AuthOutcome("challenge", headers=self.challenge_headers(
                challenge_header, now, True, allowed))
        return AuthOutcome("ok", extension=ext)

    @staticmethod
    def _same_uri(text: str, uri) -> bool:
        """RFC 3261 §22.4: the digest-uri names the Request-URI (compared as URIs).

        SIPp and some old phones put only the server's host:port there (no user part):
        accepted when host and port match; the nonce-count still stops replays.
        """
        if text == str(uri):
            return True
        try:
            other = parse_uri(text)
        except SIPParseError:
            return False
        if (other.scheme, other.host.lower(), other.port) != (uri.scheme, uri.host.lower(), uri.port):
            return False
        return other.user is None or other.user == uri.user

    def _fail(self, source_host: str, now: float, reason: str) -> AuthOutcome:
        self.failures += 1
        if self.bans.failure(source_host, now):
            if self.on_ban is not None:
                self.on_ban(self.bans.get_ban(source_host, now))
        return AuthOutcome("forbidden", reason=reason)
