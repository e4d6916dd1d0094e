# -*- test-case-name: tests.sip.test_parser -*-
"""Parsing SIP messages from bytes, and stream framing (RFC 3261 §7, §18.3, §20, §25; RFC 4475).

Theory of operation
-------------------
``parse(data)`` reads one message from a datagram or a framed stream chunk. The header section
is decoded with ``surrogateescape`` so that any byte survives a round trip, folded lines are
unfolded (§7.3.1), and each header line is kept as ``(name, value)`` exactly as received: a
message we relay or answer serializes with the order, spelling and values it came with, except
what we changed. The headers every transaction and dialog needs (Via, From, To, Call-ID, CSeq,
Max-Forwards, Content-Length) are validated at parse time, so that a message that passes
``parse`` can be answered; other headers are parsed on demand.

Errors are ``SIPParseError`` with the status code to answer (400, 505, 513, ...). When the
message is a request whose top Via parses (so a response can be routed, §18.2.2), the error
carries it as ``partial`` and the core answers it with ``make_response(partial, status,
error.phrase)``, which copies Via, From, To, Call-ID and CSeq as received; otherwise (a
response, or no usable Via) the core drops it. RFC 4475 asks for that answer even when From,
To, CSeq or the Request-Line are what is broken.

Framing (§18.3): bytes after the body (more than Content-Length announces) in a datagram are
ignored; fewer bytes than announced is an error for a datagram (400) and ``Incomplete`` for a
stream, where Content-Length is required. CRLF keep-alives before a message are skipped (§7.5,
RFC 5626 §3.5.1). On a stream, any ``SIPParseError`` means the framing is lost: answer the
partial request if there is one, then close the connection.

Values a server acts on are checked strictly (RFC 3261 ABNF, RFC 4475, RFC 5118): bare control
characters, duplicate single-value headers or tags, Unicode digits, headers in the
Request-URI, etc. are answered 400.

This is the hot path: the parser fills the ``Headers`` slots (lines, index, raw block) itself
rather than through the methods.
"""
from __future__ import annotations

import re

from mss.sip import headers as H
from mss.sip.errors import SIPParseError
from mss.sip.headers import Headers, canonical, pretty, split_values
from mss.sip.message import SIP_VERSION, Message, Request, Response
from mss.sip.uri import URI, parse_uri

_CANON = H._CANONICAL
_METHOD = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")


class Incomplete(Exception):
    """A stream holds only part of a message; read more (TCP framing).

    ``skip`` counts the CRLF keep-alive bytes (RFC 5626 §3.5.1) at the start of the buffer
    that the transport may discard now, so that keep-alives never accumulate."""

    def __init__(self, skip: int = 0):
        super().__init__(skip)
        self.skip = skip


def is_keepalive(data: bytes) -> bool:
    """A datagram or stream chunk that is only a CRLF keep-alive (RFC 5626 §3.5.1, §4.4.1)."""
    return bool(data) and not data.strip(b"\r\n")


def _digits(text: str) -> bool:
    # str.isdigit() accepts "²" and other Unicode digits that int() refuses
    return text.isascii() and text.isdigit()


def _split_head(data: bytes) -> tuple[int, int]:
    """Index of the end of the header section and of the start of the body.

    The earliest empty line wins, whatever its line ending: CRLF CRLF (RFC 3261 §7), or the
    bare-LF forms some senders use (tolerated, §7.5 asks for CRLF)."""
    end = data.find(b"\r\n\r\n")
    limit = end if end >= 0 else len(data)
    lf = data.find(b"\n\n", 0, limit)
    if lf >= 0:
        limit = lf
        body = lf + 2
        end = lf - 1 if lf and data[lf - 1] == 13 else lf      # CRLF then a bare LF
    elif end >= 0:
        body = end + 4
    lfcr = data.find(b"\n\r\n", 0, limit)
    if lfcr >= 0:
        return lfcr, lfcr + 3
    if end >= 0:
        return end, body
    return -1, -1


_FOLD = re.compile(r"\n[ \t]+")
# A control character is only allowed escaped, as a quoted-pair (§25.1, RFC 4475 §3.1.1.2);
# a bare one (NUL, ESC, ...) would travel on into other parsers, logs and the store.
_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 13)) + b"\x7f"
_BARE_CONTROL = re.compile(rb"(?<!\\)[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FOLD_CRLF = re.compile(r"\r\n[ \t]+")


def parse(data: bytes, stream: bool = False, max_size: int = 65535,
          max_headers: int = 256) -> tuple[Message, int]:
    """Parse one message from the start of ``data``.

    Returns ``(message, consumed)``. With ``stream=True`` an incomplete message raises
    ``Incomplete`` and Content-Length is required (§18.3); for datagrams the bytes beyond
    Content-Length are ignored (§18.3, RFC 4475 §3.1.1.8). CRLFs before the start line are
    skipped (§7.5) and counted in ``consumed``. Anything else that is wrong raises
    ``SIPParseError`` (see the module docstring for ``partial``).
    """
    skip = 0
    if data[:1] in (b"\r", b"\n"):
        stripped = data.lstrip(b"\r\n")
        skip = len(data) - len(stripped)
        if not stripped:
            if stream:
                raise Incomplete(skip)
            raise SIPParseError("keep-alive, not a message")
        data = stripped
    end = data.find(b"\r\n\r\n")
    head = data[:end] if end >= 0 else b""
    crs = head.count(b"\r")
    if end >= 0 and crs == head.count(b"\n") == head.count(b"\r\n"):
        # the common case: CRLF line ends only, so this is the first empty line
        if end > max_size:
            raise SIPParseError("message too large", 513)
        body_start = end + 4
        unterminated = False
        text = head.decode("utf-8", "surrogateescape")
        if b"\n " in head or b"\n\t" in head:
            text = _FOLD_CRLF.sub(" ", text)            # §7.3.1: folding is one SP
        lines = text.split("\r\n")
        first_eol = head.find(b"\r\n")               # bytes: the start line may hold UTF-8
        raw = head[first_eol + 2:] if first_eol >= 0 else None
    else:
        head_end, body_start = _split_head(data)
        unterminated = head_end < 0
        if unterminated:
            if stream:
                if len(data) > max_size:
                    raise SIPParseError("message too large", 513)
                raise Incomplete(skip)
            # a datagram without the empty line: parse what is there to answer 400 (§7.5)
            head_end = body_start = len(data)
        if head_end > max_size:
            raise SIPParseError("message too large", 513)
        # bare LF or mixed line ends (tolerated, §7.5 asks for CRLF); a bare CR never ends
        # a line, and the raw header block is not kept: to_bytes() writes CRLF
        raw = None
        head = data[:head_end]
        text = head.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
        if unterminated:
            text = text.rstrip("\n")
        if "\r" in text:
            raise SIPParseError("bare CR in header section")
        if "\n " in text or "\n\t" in text:
            text = _FOLD.sub(" ", text)
        lines = text.split("\n")
    if len(lines) - 1 > max_headers:
        raise SIPParseError("too many header fields")
    control = None
    if len(head.translate(None, _CONTROLS)) != len(head):       # rare: look closer
        control = _BARE_CONTROL.search(head)

    items = []
    index: dict[str, list[int]] = {}
    known = _CANON
    bad = None
    n = 0
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name:
            bad = bad or f"malformed header line {line[:40]!r}"
            continue
        key = known.get(name)
        if key is None:
            if name[-1] in " \t":
                name = name.rstrip(" \t")
            if not _HEADER_NAME.fullmatch(name):
                bad = bad or f"bad header name {name[:40]!r}"
                continue
            key = canonical(name)
        found = index.get(key)
        if found is None:
            index[key] = [n]
        else:
            found.append(n)
        items.append((name, value.strip(" \t")))
        n += 1
    headers = Headers(items)
    headers._index = index

    start = lines[0]
    if start[:4].upper() == "SIP/":
        msg = _response(start, headers)
    else:
        msg = _request(start, headers)
    if control is not None:
        _fail(msg, f"control character {control[0]!r} in header section")
    if bad is not None:
        _fail(msg, bad)
    if unterminated:
        _fail(msg, "no empty line after the header section")

    # Content-Length: at most one, a valid number; body framing (§18.3, §20.14)
    cl_lines = index.get("content-length")
    if cl_lines:
        if len(cl_lines) > 1:
            _fail(msg, "more than one Content-Length")
        length_text = items[cl_lines[0]][1]
        if not _digits(length_text) or len(length_text) > 10:
            _fail(msg, f"bad Content-Length {length_text[:20]!r}")
        length = int(length_text)
    elif stream:
        _fail(msg, "missing Content-Length on a stream transport")
    else:
        length = len(data) - body_start
    if body_start + length > max_size:
        _fail(msg, "message too large", 513)
    if len(data) - body_start < length:
        if stream:
            raise Incomplete(skip)
        _fail(msg, "body shorter than Content-Length")
    msg.body = data[body_start:body_start + length]
    _validate(msg)
    headers._raw = raw
    msg._wire_length = length
    return msg, skip + body_start + length


def _top_via_ok(msg: Message) -> bool:
    """Whether a response can be routed: the top Via parses (§18.2.2)."""
    lines = msg.headers.get_lines("via")
    if not lines:
        return False
    try:
        H.parse_via(split_values(lines[0])[0])
    except SIPParseError:
        return False
    return True


def _fail(msg: Message, reason: str, status: int = 400):
    """Raise, attaching the request when a response to it can be routed."""
    partial = msg if msg.is_request and _top_via_ok(msg) else None
    raise SIPParseError(reason, status, partial)


_PLACEHOLDER_URI = URI("sip", host="invalid")


def _request(start: str, headers: Headers) -> Request:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        # RFC 4475 §3.1.2.9/10: extra SP between or after the elements is unambiguous (a
        # Request-URI holds no SP) and accepted; the line is rebuilt with single SPs.
        parts = [p for p in parts if p]
        if len(parts) != 3:
            method = parts[0] if parts and _METHOD.match(parts[0]) else "UNKNOWN"
            _fail(Request(method, _PLACEHOLDER_URI, headers), "malformed Request-Line")
    method, uri_text, version = parts
    if not _METHOD.match(method):
        _fail(Request("UNKNOWN", _PLACEHOLDER_URI, headers), f"bad method {method[:20]!r}")
    try:
        uri = parse_uri(uri_text)
    except SIPParseError as e:
        _fail(Request(method, _PLACEHOLDER_URI, headers), f"bad Request-URI: {e.reason}")
    req = Request(method, uri, headers, version=version)
    if uri.headers is not None:
        _fail(req, "header fields in the Request-URI")     # §19.1.1 Table 1, RFC 4475 §3.1.2.11
    if version != SIP_VERSION:
        if version.upper() == SIP_VERSION:
            req.version = SIP_VERSION
        else:
            _fail(req, f"SIP version {version[:20]} not supported", 505)
    return req


def _response(start: str, headers: Headers) -> Response:
    version, _, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != SIP_VERSION:
        raise SIPParseError(f"SIP version {version[:20]} not supported", 505)
    if len(code) != 3 or not _digits(code) or code[0] not in "123456":
        raise SIPParseError(f"bad status code {code[:20]!r}")
    return Response(int(code), reason, headers)


def _validate(msg: Message) -> None:
    """Check the headers every transaction needs; raise with a reason naming the header.

    Reads the index directly (this runs for every message) and leaves the parsed Via, From,
    To and CSeq cached on the message."""
    idx = msg.headers._index
    items = msg.headers._items
    via_lines = idx.get("via")
    call_id = idx.get("call-id")
    from_line = idx.get("from")
    to_line = idx.get("to")
    cseq_line = idx.get("cseq")
    if not (via_lines and call_id and from_line and to_line and cseq_line):
        for name in ("via", "call-id", "from", "to", "cseq"):
            if name not in idx:
                _fail(msg, f"missing {pretty(name)} header")
    mf_line = idx.get("max-forwards")
    if (len(call_id) > 1 or len(from_line) > 1 or len(to_line) > 1 or len(cseq_line) > 1
            or (mf_line and len(mf_line) > 1)):
        for name in ("call-id", "from", "to", "cseq", "max-forwards"):
            if len(idx.get(name) or ()) > 1:
                _fail(msg, f"more than one {pretty(name)} header")
    try:
        vias = []
        for i in via_lines:
            value = items[i][1]
            if "," in value:
                vias.extend(H.parse_via(v) for v in split_values(value) if v)
            else:
                vias.append(H.parse_via(value))
        msg._via = vias
        msg._from = from_ = H.parse_name_addr(items[from_line[0]][1])
        msg._to = to = H.parse_name_addr(items[to_line[0]][1])
        msg._cseq = cseq = H.parse_cseq(items[cseq_line[0]][1])
    except SIPParseError as e:
        msg.invalidate()
        _fail(msg, e.reason)
    if not vias:
        _fail(msg, "empty Via header")
    # one tag, one branch: transaction and dialog matching must not depend on which we read
    if _twice(from_.params, "tag") or _twice(to.params, "tag"):
        _fail(msg, "more than one tag parameter")
    for via in vias:
        if _twice(via.params, "branch"):
            _fail(msg, "more than one branch parameter")
    value = items[call_id[0]][1]
    if not value or " " in value or "\t" in value:
        _fail(msg, "bad Call-ID")
    if msg.is_request:
        if cseq.method != msg.method:
            _fail(msg, "CSeq method does not match the request method")
        if mf_line:
            try:
                H.parse_int(items[mf_line[0]][1], "Max-Forwards", 255)
            except SIPParseError as e:
                _fail(msg, e.reason)


def _twice(params: tuple, name: str) -> bool:
    return len(params) > 1 and sum(1 for key, _ in params if key == name) > 1


def parse_datagram(data: bytes, max_size: int = 65535, max_headers: int = 256) -> Message:
    return parse(data, False, max_size, max_headers)[0]
