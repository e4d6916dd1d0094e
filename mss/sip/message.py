# -*- test-case-name: tests.sip.test_message -*-
"""SIP requests and responses: parse from bytes, serialize to bytes (RFC 3261 §7, §18.3, §20, §25).

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

Serialization: an untouched parsed message gives back its header block byte for byte (folding,
spacing, compact names), after a start line rebuilt from its fields; a message whose headers
were changed through ``Headers`` methods is written one ``Name: value`` line per header, in
order. Content-Length always matches the body.

Values a server acts on are checked strictly (RFC 3261 ABNF, RFC 4475, RFC 5118): bare control
characters, duplicate single-value headers or tags, Unicode digits, headers in the
Request-URI, etc. are answered 400. ``check_request`` adds the UAS checks of §8.2 (405/501,
416, 420, 415, 406, 483) for the core to apply to requests it handles.
"""
from __future__ import annotations

import re

from mss.sip import headers as H
from mss.sip.errors import SIPParseError
from mss.sip.headers import CSeq, NameAddr, Via, canonical, pretty, split_values
from mss.sip.uri import URI, parse_uri

SIP_VERSION = "SIP/2.0"
_CANON = H._CANONICAL
_METHOD = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def _line(name: str, value: str) -> tuple[str, str]:
    """A header line we write: a token name (all-lower-case names spelled canonically, "via"
    -> "Via"), a value on one line (CR/LF from a service or a copied value become SP, so
    nothing can be injected into the message)."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"bad header name {name!r}")
    if name.islower():
        name = pretty(name)
    if "\r" in value or "\n" in value:
        value = " ".join(value.splitlines())
    return name, value


class Headers:
    """Ordered header lines ``(name, value)`` with a lookup index by canonical name.

    Change lines only through the methods (add, insert_before, set, remove, ...): they keep
    the index right and drop the received header block, so that ``to_bytes`` writes the
    change. Lines are tuples, replaced rather than changed in place: tuples of strings are
    not tracked by the garbage collector, which matters for the thousands of messages that
    transactions keep for 32 s."""

    __slots__ = ("_items", "_index", "_raw")

    def __init__(self, items=None):
        self._items: list[tuple[str, str]] = items if items is not None else []
        self._index: dict[str, list[int]] | None = None
        # The header lines exactly as received (bytes, CRLF-separated, folding kept), for a
        # lossless to_bytes(); any change through the methods below drops it.
        self._raw: bytes | None = None

    def _idx(self) -> dict[str, list[int]]:
        index = self._index
        if index is None:
            index = {}
            for i, item in enumerate(self._items):
                index.setdefault(canonical(item[0]), []).append(i)
            self._index = index
        return index

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: str) -> bool:
        return canonical(name) in self._idx()

    def get(self, name: str, default=None):
        """The first line's value (the whole line, commas and all)."""
        index = self._index if self._index is not None else self._idx()
        found = index.get(_CANON.get(name) or canonical(name))
        return self._items[found[0]][1] if found else default

    def get_lines(self, name: str) -> list[str]:
        found = self._idx().get(canonical(name))
        return [self._items[i][1] for i in found] if found else []

    def get_all(self, name: str) -> list[str]:
        """Every value, comma-separated lists split (for list-valued headers)."""
        key = canonical(name)
        found = self._idx().get(key)
        if not found:
            return []
        if key not in H.MULTI:
            return [self._items[i][1] for i in found]
        out = []
        for i in found:
            out.extend(v for v in split_values(self._items[i][1]) if v)
        return out

    def count(self, name: str) -> int:
        return len(self._idx().get(canonical(name), ()))

    def add(self, name: str, value: str, first: bool = False) -> None:
        """Append a line (or put it on top); an all-lower-case name is spelled canonically
        (``"via"`` -> ``Via``), as in ``set``."""
        name, value = _line(name, value)
        if first:
            self._items.insert(0, (name, value))
            self._index = None
        else:
            index = self._index
            if index is not None:         # appending keeps every position: extend the index
                index.setdefault(canonical(name), []).append(len(self._items))
            self._items.append((name, value))
        self._raw = None

    def insert_before(self, name: str, value: str) -> None:
        """Insert above the first line of the same header (Via, Route), else on top."""
        found = self._idx().get(canonical(name))
        name, value = _line(name, value)
        self._items.insert(found[0] if found else 0, (name, value))
        self._index = None
        self._raw = None

    def set(self, name: str, value: str) -> None:
        """Replace every line of that header by one line, where the first one stood."""
        key = canonical(name)
        found = self._idx().get(key)
        name, value = _line(name, value)
        if not found:
            self._index.setdefault(key, []).append(len(self._items))
            self._items.append((name, value))
        elif len(found) == 1:
            self._items[found[0]] = (self._items[found[0]][0], value)   # the index stays right
        else:
            self._items[found[0]] = (self._items[found[0]][0], value)
            for i in reversed(found[1:]):
                del self._items[i]
            self._index = None
        self._raw = None

    def remove(self, name: str) -> None:
        key = canonical(name)
        self._items = [item for item in self._items if canonical(item[0]) != key]
        self._index = None
        self._raw = None

    def remove_first(self, name: str) -> None:
        found = self._idx().get(canonical(name))
        if found:
            del self._items[found[0]]
            self._index = None
            self._raw = None

    def copy(self) -> "Headers":
        return Headers([(item[0], item[1]) for item in self._items])


class Message:
    """Common parts of requests and responses. Parsed values are cached on first use."""

    __slots__ = ("headers", "body", "_via", "_from", "_to", "_cseq", "_contact", "_wire_length")

    def __init__(self, headers: Headers, body: bytes = b""):
        self.headers = headers
        self.body = body
        self._via = self._from = self._to = self._cseq = self._contact = None
        self._wire_length = None    # body length when parsed: the raw header block still fits

    # -- structured access -------------------------------------------------------------------
    @property
    def vias(self) -> list[Via]:
        if self._via is None:
            self._via = [H.parse_via(v) for v in self.headers.get_all("via")]
        return self._via

    @property
    def top_via(self) -> Via | None:
        vias = self.vias
        return vias[0] if vias else None

    @property
    def from_(self) -> NameAddr:
        if self._from is None:
            self._from = H.parse_name_addr(self._single("from"))
        return self._from

    @property
    def to(self) -> NameAddr:
        if self._to is None:
            self._to = H.parse_name_addr(self._single("to"))
        return self._to

    @property
    def call_id(self) -> str:
        return self._single("call-id")

    @property
    def cseq(self) -> CSeq:
        if self._cseq is None:
            self._cseq = H.parse_cseq(self._single("cseq"))
        return self._cseq

    @property
    def contacts(self) -> list[NameAddr]:
        if self._contact is None:
            self._contact = [H.parse_name_addr(v) for v in self.headers.get_all("contact")
                             if v.strip() != "*"]
        return self._contact

    def _single(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SIPParseError(f"missing {pretty(name)} header")
        return value

    def invalidate(self) -> None:
        """Forget cached parsed values after editing headers."""
        self._via = self._from = self._to = self._cseq = self._contact = None

    def set_header(self, name: str, value) -> None:
        self.headers.set(name, str(value))
        self.invalidate()

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        self.body = body
        if content_type is not None:
            self.headers.set("Content-Type", content_type)
        elif not body:
            self.headers.remove("content-type")
        self.headers.set("Content-Length", str(len(body)))

    def option_tags(self, name: str) -> set[str]:
        return {t.lower() for v in self.headers.get_lines(name) for t in H.parse_token_list(v)}

    # -- serialization ------------------------------------------------------------------------
    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message on the wire. A parsed message whose headers were not changed gives
        back the bytes it came from (header spelling, order, folding, spacing), the start
        line rebuilt from its fields; a Content-Length line is added when there was none
        and corrected when it no longer matches the body (§18.3, §20.14)."""
        body = self.body
        raw = self.headers._raw
        if raw is not None and self._wire_length == len(body):
            start = self._start_line().encode("utf-8", "surrogateescape")
            if "content-length" in self.headers._idx():
                return b"".join((start, b"\r\n", raw, b"\r\n\r\n", body))
            return b"".join((start, b"\r\n", raw, b"\r\nContent-Length: %d\r\n\r\n" % len(body),
                             body))
        lines = [self._start_line()]
        has_length = False
        for name, value in self.headers._items:
            if not has_length and (name == "Content-Length" or canonical(name) == "content-length"):
                has_length = True
                if value != str(len(body)):
                    value = str(len(body))
            elif has_length and canonical(name) == "content-length":
                continue            # never send two Content-Length values
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body

    __bytes__ = to_bytes


class Request(Message):
    __slots__ = ("method", "uri", "version")

    def __init__(self, method: str, uri: URI, headers: Headers | None = None, body: bytes = b"",
                 version: str = SIP_VERSION):
        super().__init__(headers if headers is not None else Headers(), body)
        self.method = method
        self.uri = uri
        self.version = version

    is_request = True

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("max-forwards")
        return None if value is None else H.parse_int(value, "Max-Forwards", 255)

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("status", "reason", "version")

    def __init__(self, status: int, reason: str | None = None, headers: Headers | None = None,
                 body: bytes = b"", version: str = SIP_VERSION):
        super().__init__(headers if headers is not None else Headers(), body)
        self.status = status
        if reason is None:
            reason = REASONS.get(status, "Unknown")
        elif "\r" in reason or "\n" in reason:
            reason = " ".join(reason.splitlines())      # never a second line (§25.1)
        self.reason = reason
        self.version = version

    is_request = False

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# -- parsing ----------------------------------------------------------------------------------

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


# -- building requests and responses -----------------------------------------------------------

_COPY_TO_RESPONSE = frozenset(("via", "from", "to", "call-id", "cseq"))


def make_response(request: Request, status: int, reason: str | None = None,
                  to_tag: str | None = None, headers=()) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6: Via, From, To, Call-ID, CSeq copied
    as received (so it also answers a ``SIPParseError.partial`` request whose From, To or
    CSeq did not parse), Record-Route in 1xx/2xx, the To tag added when there is none,
    then ``headers`` (``(name, value)`` pairs, e.g. Unsupported for a 420)."""
    items = []
    for name, value in request.headers._items:
        key = _CANON.get(name) or canonical(name)
        if key in _COPY_TO_RESPONSE or (key == "record-route" and 100 < status < 300):
            if key == "to" and to_tag is not None and status > 100 and not _has_tag(value):
                value = f"{value};tag={to_tag}"
            items.append((name, value))
    for name, value in headers:
        items.append((name, value))
    return Response(status, reason, Headers(items))


def _has_tag(to_value: str) -> bool:
    try:
        return H.parse_name_addr(to_value).tag is not None
    except SIPParseError:
        return ";tag=" in to_value.replace(" ", "").lower()


def merge_key(req: Request) -> tuple | None:
    """The key of §8.2.2.2 merged-request detection: (From tag, Call-ID, CSeq number, method)
    for a request outside a dialog (no To tag), else None. The core answers 482 (Loop
    Detected) to a request whose key belongs to an ongoing server transaction that the
    request does not match (a fork that reached us twice, RFC 4475's 482 case)."""
    if req.to.tag is not None or req.method == "ACK":
        return None
    cseq = req.cseq
    return (req.from_.tag, req.call_id, cseq.number, cseq.method)


# -- request checks a UAS makes before processing (RFC 3261 §8.2, §16.3) ----------------------

# Methods with a standard meaning (RFC 3261, 3262, 3265, 3311, 3428, 3515, 3903, 6086).
KNOWN_METHODS = frozenset((
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
))
# Methods whose body we interpret as a session description (offer/answer, RFC 3264).
SDP_METHODS = frozenset(("INVITE", "UPDATE", "PRACK"))
SDP_TYPES = ("application/sdp", "multipart/mixed", "multipart/alternative", "multipart/related")
# Requests this server answers itself even with Max-Forwards 0 (§16.3 item 2, RFC 4475 §3.3.11).
LOCAL_METHODS = frozenset(("OPTIONS", "REGISTER", "CANCEL"))


class Rejection(tuple):
    """``(status, reason, headers)``: the answer ``check_request`` asks for; ``headers`` are
    ``(name, value)`` pairs to add (Unsupported, Accept, Allow...), ready for
    ``make_response(req, *rejection)``-style use via ``respond``."""

    __slots__ = ()

    def __new__(cls, status: int, reason: str, headers: tuple = ()):
        return tuple.__new__(cls, (status, reason, tuple(headers)))

    status = property(lambda self: self[0])
    reason = property(lambda self: self[1])
    headers = property(lambda self: self[2])

    def respond(self, request: Request, to_tag: str | None = None) -> Response:
        return make_response(request, self[0], self[1], to_tag, self[2])


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip(" \t").lower()


def check_request(req: Request, *, supported=frozenset(), schemes=("sip", "sips"),
                  allowed=None, local: bool = False,
                  sdp_types=SDP_TYPES) -> Rejection | None:
    """What a UAS must answer instead of processing ``req``, or None to go on.

    Called by the core after ``parse`` for requests it handles (never for ACK, which gets
    no response). In order (RFC 3261 §8.2, §16.3):

    - a method nobody defined: 501 (RFC 4475 §3.1.1.5); a known one not in ``allowed``
      (when given): 405 with Allow (§8.2.1);
    - Max-Forwards 0: 483 (§16.3 item 2), unless the request ends here: ``local=True`` or
      OPTIONS/REGISTER/CANCEL, which a server answers itself (RFC 4475 §3.3.11);
    - Request-URI scheme not in ``schemes``: 416 (§8.2.2.1, RFC 4475 §3.3.2-3);
    - Require / Proxy-Require tags not in ``supported``: 420 with Unsupported (§8.2.2.3,
      RFC 4475 §3.3.5; a B2BUA stands in for the proxies on its legs);
    - Contact headers that do not parse: 400 (RFC 4475 §3.1.2.13);
    - a top Via branch that is only the magic cookie: 400 (RFC 4475 §3.2.1);
    - a body without Content-Type: 400 (§20.15); Content-Encoding other than identity: 415
      with Accept-Encoding (§8.2.3); a session body of a type not in ``sdp_types`` for
      INVITE/UPDATE/PRACK: 415 with Accept (§8.2.3, RFC 4475 §3.3.6);
    - an INVITE whose Accept excludes application/sdp: 406 (§21.4.7, RFC 4475 §3.3.15).

    A header these checks read that does not parse (an unterminated quote in Require, ...)
    is answered 400.
    """
    try:
        return _check_request(req, supported, schemes, allowed, local, sdp_types)
    except SIPParseError as e:
        return Rejection(400, e.phrase)


def _check_request(req, supported, schemes, allowed, local, sdp_types):
    method = req.method
    if method == "ACK":
        return None
    if method not in KNOWN_METHODS:
        return Rejection(501, "Not Implemented")
    if allowed is not None and method not in allowed:
        return Rejection(405, "Method Not Allowed", (("Allow", ", ".join(sorted(allowed))),))
    hdrs = req.headers
    if not local and method not in LOCAL_METHODS and req.max_forwards == 0:
        return Rejection(483, "Too Many Hops")
    if req.uri.scheme not in schemes:
        return Rejection(416, "Unsupported URI Scheme")
    if method != "CANCEL":
        unknown = []
        for name in ("require", "proxy-require"):
            for tag in hdrs.get_all(name):
                if tag.lower() not in supported and tag not in unknown:
                    unknown.append(tag)
        if unknown:
            return Rejection(420, "Bad Extension", (("Unsupported", ", ".join(unknown)),))
    if "contact" in hdrs:
        try:
            req.contacts
        except SIPParseError as e:
            return Rejection(400, f"Bad Contact: {e.reason}"[:100])
    if req.top_via.branch == "z9hG4bK":
        return Rejection(400, "Via branch has no transaction identifier")
    if req.body:
        ctype = hdrs.get("content-type")
        if ctype is None:
            return Rejection(400, "Body without Content-Type")
        encoding = hdrs.get_all("content-encoding")
        if any(e.lower() != "identity" for e in encoding):
            return Rejection(415, "Unsupported Media Type", (("Accept-Encoding", "identity"),))
        if method in SDP_METHODS and _media_type(ctype) not in sdp_types:
            return Rejection(415, "Unsupported Media Type",
                             (("Accept", ", ".join(sdp_types)),))
    if method == "INVITE" and "accept" in hdrs:
        accepted = {_media_type(v) for v in hdrs.get_all("accept")}
        if accepted and not accepted & {"application/sdp", "application/*", "*/*"}:
            return Rejection(406, "Not Acceptable", (("Accept", "application/sdp"),))
    return None
