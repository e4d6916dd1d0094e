# -*- test-case-name: tests.media.test_ng -*-
"""The ``ng`` control protocol framing (rtpengine compatible) and the retransmission cache.

A datagram is ``<cookie> <bencoded dictionary>``: the cookie is an opaque token without spaces
chosen by the client, echoed in the reply so that the client can match replies to requests and
resend a request unchanged when a reply is lost. The server answers a retransmitted request
(same cookie from the same source) with the very same reply bytes and does not execute it again
(``CookieCache``), which makes ``offer``/``answer``/``delete`` idempotent under loss.

``MediaError`` (an ``error`` reply) and ``MediaTimeout`` (no reply) are how a client reports
failed commands; they live here, with the protocol, so that users of the client (the call
core's media seam) need not import its Twisted side.

Dictionary keys and byte-string values are converted to ``str`` (UTF-8, with
``surrogateescape`` so that any byte survives a round trip).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from mss.media import bencode


class MediaError(Exception):
    """The gateway answered with an error (``reason`` is its ``error-reason``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MediaTimeout(Exception):
    """The gateway did not answer in time."""


MAX_COOKIE = 64
MAX_DATAGRAM = 65535


class NgError(Exception):
    """A request that cannot be executed; ``reason`` is sent back as ``error-reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    return value


def _raw(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple)):
        return [_raw(v) for v in value]
    if isinstance(value, dict):
        return {_raw(k): _raw(v) for k, v in value.items()}
    return value


def split_cookie(datagram: bytes) -> tuple[bytes, bytes]:
    """Return (cookie, payload); raise NgError when there is no usable cookie."""
    cookie, sep, payload = datagram.partition(b" ")
    if not sep or not cookie or len(cookie) > MAX_COOKIE:
        raise NgError("no cookie")
    return cookie, payload


def parse(datagram: bytes) -> tuple[bytes, dict[str, Any]]:
    """Parse a request or reply datagram into (cookie, dictionary)."""
    cookie, payload = split_cookie(datagram)
    try:
        value = bencode.decode(payload)
    except bencode.BencodeError as e:
        raise NgError(f"malformed bencoding: {e}")
    if not isinstance(value, dict):
        raise NgError("message is not a dictionary")
    return cookie, _text(value)


def format(cookie: bytes, message: dict[str, Any]) -> bytes:
    """Build a datagram from a cookie and a dictionary (str or bytes values)."""
    return cookie + b" " + bencode.encode(_raw(message))


def error(reason: str) -> dict[str, Any]:
    return {"result": "error", "error-reason": reason}


class CookieCache:
    """Replies by (source, cookie): bounded in size, each entry forgotten after ``ttl`` seconds.

    ``PENDING`` marks a request being executed asynchronously (the front process forwards to a
    worker): a retransmission that arrives meanwhile is dropped instead of executed twice.
    """

    PENDING = object()

    def __init__(self, max_entries: int = 10000, ttl: float = 30.0):
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, source: Any, cookie: bytes, now: float) -> Any:
        """The cached reply (bytes or PENDING), or None."""
        self.expire(now)
        entry = self._entries.get((source, cookie))
        return None if entry is None else entry[1]

    def put(self, source: Any, cookie: bytes, reply: Any, now: float) -> None:
        key = (source, cookie)
        self._entries.pop(key, None)
        self._entries[key] = (now, reply)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def expire(self, now: float) -> None:
        limit = now - self.ttl
        entries = self._entries
        while entries:
            key, (stamp, _) = next(iter(entries.items()))
            if stamp > limit:
                break
            del entries[key]
