"""Digest authentication of requests from extensions (RFC 3261 §22, RFC 7616, RFC 8760).

Shared by the registrar (401/WWW-Authenticate) and the call core (407/Proxy-Authenticate).
Abuse rules live here too, because they decide on the same facts:

- No user enumeration: the challenge is the same whoever is named, and a request for an
  unknown or disabled user is verified against a dummy HA1 so that it costs the same time and
  gets the same answer (403) as a wrong password.
- Brute force: each failed verification counts against the source address (``BanList``);
  a banned address gets no answer at all.
- MD5 is offered first: SIPp 3.6.1 and older phones only answer the first challenge, and only
  when it is MD5; modern clients pick SHA-256 (RFC 8760 §2.4).
"""
# -*- test-case-name: tests.registrar.test_auth -*-
from __future__ import annotations

import os

import attrs
from twisted.logger import Logger

from mss.sip import digest
from mss.sip.errors import SIPParseError
from mss.sip.uri import parse_uri

_ALGORITHM_SPELLING = {"MD5": "MD5", "SHA-256": "SHA-256"}
_NONCE_MARK = "mss-nonce-goes-here"


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
                 algorithms=("MD5", "SHA-256"), on_ban=None):
        self.directory = directory          # number -> Extension | None (cached store view)
        self.bans = bans
        self.realm = realm
        self.nonces = digest.NonceFactory(secret)
        self.counter = digest.NonceCounter(lifetime=nonce_lifetime * 2)
        self.lifetime = nonce_lifetime
        self.algorithms = tuple(a for a in ("MD5", "SHA-256") if a in algorithms) or ("MD5",)
        self.on_ban = on_ban
        self._dummy = {alg: digest.ha1(alg, "dummy", realm, os.urandom(8).hex())
                       for alg in ("MD5", "SHA-256")}
        self.failures = 0
        # digest.challenge() text around the nonce, per algorithm: one format, built once
        self._challenge_parts = {
            stale: tuple(digest.challenge(realm, _NONCE_MARK, alg, stale=stale)
                         .split(_NONCE_MARK) for alg in self.algorithms)
            for stale in (False, True)}

    def challenge_headers(self, header: str, now: float, stale: bool = False) -> tuple:
        nonce = self.nonces.make(now)       # base64url: quoting leaves it as it is
        return tuple((header, f"{prefix}{nonce}{suffix}")
                     for prefix, suffix in self._challenge_parts[stale])

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
                c = digest.parse_credentials(value)
            except digest.DigestError:
                continue
            parsed += 1
            if c.realm == self.realm:
                creds = c
                break
        if creds is None:
            if values and not parsed:
                return self._fail(source_host, now, "unusable credentials")
            # none, or only for other realms (a phone reusing another server's credentials)
            return AuthOutcome("challenge", headers=self.challenge_headers(challenge_header, now))
        algorithm = digest.canonical_algorithm(creds.algorithm)
        if algorithm not in self.algorithms or creds.qop != "auth":
            return self._fail(source_host, now, f"unsupported algorithm or qop {creds.algorithm}")
        if not self._same_uri(creds.uri, request.uri):
            return self._fail(source_host, now, "digest uri does not match the Request-URI")
        state = self.nonces.check(creds.nonce, now, self.lifetime)
        if state == "invalid":
            return self._fail(source_host, now, "invalid nonce")
        number = self.username_to_number(creds.username)
        ext = self.directory(number)
        ha1_value = None
        if ext is not None and ext.enabled:
            ha1_value = ext.ha1_for(algorithm, creds.username, self.realm)
        good = digest.verify(creds, ha1_value or self._dummy[algorithm], request.method)
        if not good or ha1_value is None:
            return self._fail(source_host, now, "wrong credentials")
        if expected_user is not None and number != expected_user:
            return self._fail(source_host, now, "credentials for another user")
        if state == "stale":
            return AuthOutcome("challenge", headers=self.challenge_headers(challenge_header, now, True))
        if not self.counter.accept(creds.nonce, creds.nc, now):
            # a replayed nonce-count: not a password failure, but no access either
            return AuthOutcome("challenge", headers=self.challenge_headers(challenge_header, now, True))
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
