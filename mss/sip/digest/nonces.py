# -*- test-case-name: tests.sip.test_digest -*-
"""Server nonces for Digest (RFC 7616 §3.3, §3.4; RFC 3261 §22.4).

``NonceFactory`` makes nonces that verify without server state (a timestamp and a random
salt, signed with HMAC-SHA256); ``NonceCounter`` rejects replayed nonce-counts.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections import OrderedDict
from typing import Callable


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
