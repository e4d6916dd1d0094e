# -*- test-case-name: tests.media.test_bencode -*-
"""Bencoding, the wire format of rtpengine's ``ng`` control protocol.

Integers ``i42e``, byte strings ``4:spam``, lists ``l...e`` and dictionaries ``d...e`` (keys are
byte strings, written sorted). ``decode`` accepts exactly one value and nothing after it; any
malformed input raises ``BencodeError`` (never IndexError/ValueError), and nesting is bounded so
that hostile input costs little. Strings are returned as ``bytes``; ``encode`` accepts ``str``
(UTF-8) as a convenience, and ``bool`` as ``i1e``/``i0e``.
"""
from __future__ import annotations

from typing import Any

MAX_DEPTH = 32


class BencodeError(ValueError):
    """The datagram is not a single well-formed bencoded value."""


def encode(value: Any) -> bytes:
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BencodeError("nesting too deep")
    if isinstance(value, bytes):
        out.append(b"%d:" % len(value))
        out.append(value)
    elif isinstance(value, str):
        data = value.encode("utf-8")
        out.append(b"%d:" % len(data))
        out.append(data)
    elif isinstance(value, bool):
        out.append(b"i1e" if value else b"i0e")
    elif isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, float):
        out.append(b"i%de" % int(value))
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        items = []
        for k, v in value.items():
            key = k.encode("utf-8") if isinstance(k, str) else k
            if not isinstance(key, bytes):
                raise BencodeError(f"dictionary key {k!r} is not a string")
            items.append((key, v))
        items.sort(key=lambda kv: kv[0])
        for key, v in items:
            out.append(b"%d:" % len(key))
            out.append(key)
            _encode(v, out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Any:
    """Decode exactly one value from ``data``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BencodeError("input must be bytes")
    data = bytes(data)
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"trailing data at offset {end}")
    return value


def decode_prefix(data: bytes) -> tuple[Any, int]:
    """Decode one value at the start of ``data``; return it and the offset after it."""
    return _decode(bytes(data), 0, 0)


def _decode(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise BencodeError("nesting too deep")
    if pos >= len(data):
        raise BencodeError("unexpected end of data")
    c = data[pos]
    if c == 0x69:  # i
        end = data.find(b"e", pos + 1)
        if end < 0:
            raise BencodeError("unterminated integer")
        text = data[pos + 1:end]
        if not text or not (text.isdigit() or (text[:1] == b"-" and text[1:].isdigit())):
            raise BencodeError(f"bad integer at offset {pos}")
        if len(text) > 20:
            raise BencodeError(f"integer too long at offset {pos}")
        return int(text), end + 1
    if 0x30 <= c <= 0x39:
        colon = data.find(b":", pos, pos + 12)
        if colon < 0:
            raise BencodeError(f"bad string length at offset {pos}")
        text = data[pos:colon]
        if not text.isdigit():
            raise BencodeError(f"bad string length at offset {pos}")
        n = int(text)
        start = colon + 1
        if start + n > len(data):
            raise BencodeError(f"string at offset {pos} runs past the end")
        return data[start:start + n], start + n
    if c == 0x6C:  # l
        items = []
        pos += 1
        while True:
            if pos >= len(data):
                raise BencodeError("unterminated list")
            if data[pos] == 0x65:
                return items, pos + 1
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
    if c == 0x64:  # d
        result: dict[bytes, Any] = {}
        pos += 1
        while True:
            if pos >= len(data):
                raise BencodeError("unterminated dictionary")
            if data[pos] == 0x65:
                return result, pos + 1
            key, pos = _decode(data, pos, depth + 1)
            if not isinstance(key, bytes):
                raise BencodeError(f"dictionary key at offset {pos} is not a string")
            value, pos = _decode(data, pos, depth + 1)
            result[key] = value
    raise BencodeError(f"unexpected byte {data[pos:pos + 1]!r} at offset {pos}")
