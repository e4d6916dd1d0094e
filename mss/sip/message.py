"""SIP requests and responses: parse from bytes, serialize to bytes (RFC 3261 §7, §18.3, §20, §25).

Theory of operation
-------------------
``parse(data)`` reads one message from a datagram or a framed stream chunk. The header section
is decoded with ``surrogateescape`` so that any byte survives a round trip, folded lines are
unfolded (§7.3.1), and each header line is kept as ``[name, value]`` exactly as received: a
message we relay or answer serializes with the order, spelling and values it came with, except
what we changed. The headers every transaction and dialog needs (Via, From, To, Call-ID, CSeq,
Max-Forwards, Content-Length) are validated at parse time, so that a message that passes
``parse`` can be answered; other headers are parsed on demand.

Errors are ``SIPParseError`` with the status code to answer (400, 505, 513, ...). When the
message was a request complete enough to answer (Via, From, To, Call-ID, CSeq parsed), the
error carries it as ``partial`` so the core can send that answer; otherwise the core drops it.

Bytes after the body (more than Content-Length announces) in a datagram are ignored (§18.3);
fewer bytes than announced is an error for a datagram (400) and "need more" for a stream.
"""
# -*- test-case-name: tests.sip.test_message -*-
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


class Headers:
    """Ordered header lines ``[name, value]`` with a lookup index by canonical name."""

    __slots__ = ("_items", "_index")

    def __init__(self, items=None):
        self._items: list[list[str]] = items if items is not None else []
        self._index: dict[str, list[int]] | None = None

    def _idx(self) -> dict[str, list[int]]:
        index = self._index
        if index is None:
            self._index = index = {}
            index = {}
            for i, item in enumerate(self._items):
                index.setdefault(canonical(item[0]), []).append(i)
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
        if first:
            self._items.insert(0, [name, value])
        else:
            self._items.append([name, value])
        self._index = None

    def insert_before(self, name: str, value: str) -> None:
        """Insert above the first line of the same header (Via, Route), else on top."""
        found = self._idx().get(canonical(name))
        self._items.insert(found[0] if found else 0, [name, value])
        self._index = None

    def set(self, name: str, value: str) -> None:
        """Replace every line of that header by one line, where the first one stood."""
        key = canonical(name)
        found = self._idx().get(key)
        if not found:
            self._items.append([pretty(name) if name.islower() else name, value])
        else:
            self._items[found[0]][1] = value
            for i in reversed(found[1:]):
                del self._items[i]
        self._index = None

    def remove(self, name: str) -> None:
        key = canonical(name)
        self._items = [item for item in self._items if canonical(item[0]) != key]
        self._index = None

    def remove_first(self, name: str) -> None:
        found = self._idx().get(canonical(name))
        if found:
            del self._items[found[0]]
            self._index = None

    def copy(self) -> "Headers":
        return Headers([list(item) for item in self._items])


class Message:
    """Common parts of requests and responses. Parsed values are cached on first use."""

    __slots__ = ("headers", "body", "_via", "_from", "_to", "_cseq", "_contact")

    def __init__(self, headers: Headers, body: bytes = b""):
        self.headers = headers
        self.body = body
        self._via = self._from = self._to = self._cseq = self._contact = None

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
        lines = [self._start_line()]
        has_length = False
        for name, value in self.headers._items:
            if not has_length and (name == "Content-Length" or canonical(name) == "content-length"):
                has_length = True
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

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
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason
        self.version = version

    is_request = False

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# -- parsing ----------------------------------------------------------------------------------

class Incomplete(Exception):
    """A stream holds only part of a message; read more (TCP framing)."""


def _split_head(data: bytes) -> tuple[int, int]:
    """Index of the end of the header section and of the start of the body."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return end, end + 4
    end = data.find(b"\n\n")            # bare-LF senders (tolerated, RFC 3261 §7.5 says CRLF)
    if end >= 0:
        return end, end + 2
    return -1, -1


def parse(data: bytes, stream: bool = False, max_size: int = 65535,
          max_headers: int = 256) -> tuple[Message, int]:
    """Parse one message from the start of ``data``.

    Returns ``(message, consumed)``. With ``stream=True`` an incomplete message raises
    ``Incomplete``; for datagrams the trailing bytes beyond Content-Length are ignored.
    """
    head_end, body_start = _split_head(data)
    if head_end < 0:
        if stream:
            if len(data) > max_size:
                raise SIPParseError("message too large", 513)
            raise Incomplete()
        raise SIPParseError("no end of header section")
    if head_end > max_size:
        raise SIPParseError("message too large", 513)
    text = data[:head_end].decode("utf-8", "surrogateescape")
    if "\n " in text or "\n\t" in text:
        text = re.sub(r"\r?\n[ \t]+", " ", text)
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    start = lines[0]
    if len(lines) - 1 > max_headers:
        raise SIPParseError("too many header fields", 400)

    items = []
    index: dict[str, list[int]] = {}
    known = _CANON
    for line in lines[1:]:
        colon = line.find(":")
        if colon <= 0:
            if not line.strip():
                continue
            raise SIPParseError(f"malformed header line {line[:40]!r}")
        name = line[:colon]
        key = known.get(name)
        if key is None:
            if name[-1] in " \t":
                name = name.rstrip(" \t")
            if not _HEADER_NAME.match(name):
                raise SIPParseError(f"bad header name {name[:40]!r}")
            key = canonical(name)
        found = index.get(key)
        if found is None:
            index[key] = [len(items)]
        else:
            found.append(len(items))
        items.append([name, line[colon + 1:].strip(" \t")])
    headers = Headers(items)
    headers._index = index

    if start.startswith("SIP/"):
        msg = _response(start, headers)
    else:
        msg = _request(start, headers)

    # Content-Length: exactly one, a valid number; body framing (§18.3, §20.14)
    cl_lines = headers.get_lines("content-length")
    if len(cl_lines) > 1:
        _fail(msg, "more than one Content-Length")
    if cl_lines:
        length_text = cl_lines[0]
        if not length_text.isdigit() or len(length_text) > 10:
            _fail(msg, f"bad Content-Length {length_text!r}")
        length = int(length_text)
    elif stream:
        _fail(msg, "missing Content-Length on a stream transport")
    else:
        length = len(data) - body_start
    if length > max_size:
        raise SIPParseError("message too large", 513, msg if msg.is_request else None)
    available = len(data) - body_start
    if available < length:
        if stream:
            raise Incomplete()
        _fail(msg, "body shorter than Content-Length")
    msg.body = data[body_start:body_start + length]
    _validate(msg)
    return msg, body_start + length


def _fail(msg: Message, reason: str, status: int = 400):
    """Raise, attaching the request when it is complete enough to answer."""
    partial = None
    if msg.is_request:
        try:
            _answerable(msg)
            partial = msg
        except SIPParseError:
            partial = None
    raise SIPParseError(reason, status, partial)


def _answerable(msg: Message) -> None:
    for name in ("call-id", "from", "to", "cseq", "via"):
        if name not in msg.headers:
            raise SIPParseError(f"missing {pretty(name)} header")
    msg.vias, msg.from_, msg.to, msg.cseq   # parse them (raises when malformed)


def _request(start: str, headers: Headers) -> Request:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SIPParseError("malformed Request-Line")
    method, uri_text, version = parts
    if not _METHOD.match(method):
        raise SIPParseError(f"bad method {method[:20]!r}")
    # the Request-URI must be a bare URI: no <>, no embedded LWS (checked by the split)
    try:
        uri = parse_uri(uri_text)
    except SIPParseError as e:
        req = Request(method, URI("sip", host="invalid"), headers)
        _fail(req, f"bad Request-URI: {e.reason}")
    req = Request(method, uri, headers, version=version)
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
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
        raise SIPParseError(f"bad status code {code[:20]!r}")
    return Response(int(code), reason, headers)


def _validate(msg: Message) -> None:
    """Check the headers every transaction needs; raise with a reason naming the header."""
    hdrs = msg.headers
    idx = hdrs._idx()
    for name in ("call-id", "from", "to", "cseq", "via"):
        if name not in idx:
            _fail(msg, f"missing {pretty(name)} header")
    for name in ("call-id", "from", "to", "cseq", "max-forwards"):
        lines = idx.get(name)
        if lines and len(lines) > 1:
            _fail(msg, f"more than one {pretty(name)} header")
    try:
        msg.vias
        msg.from_
        msg.to
        cseq = msg.cseq
    except SIPParseError as e:
        raise SIPParseError(e.reason, e.status, None) from None
    call_id = hdrs._items[idx["call-id"][0]][1]
    if not call_id or " " in call_id or "\t" in call_id:
        _fail(msg, "bad Call-ID")
    if msg.is_request:
        if cseq.method != msg.method:
            _fail(msg, "CSeq method does not match the request method")
        mf = idx.get("max-forwards")
        if mf:
            try:
                msg.max_forwards
            except SIPParseError as e:
                _fail(msg, e.reason)


def parse_datagram(data: bytes, max_size: int = 65535, max_headers: int = 256) -> Message:
    return parse(data, False, max_size, max_headers)[0]


# -- building requests and responses -----------------------------------------------------------

_COPY_TO_RESPONSE = ("via", "from", "to", "call-id", "cseq")


def make_response(request: Request, status: int, reason: str | None = None,
                  to_tag: str | None = None) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6: Via, From, To, Call-ID, CSeq copied."""
    items = []
    for name, value in request.headers._items:
        key = canonical(name)
        if key in _COPY_TO_RESPONSE or (key == "record-route" and 100 < status < 300):
            if key == "to" and to_tag is not None and status > 100 and request.to.tag is None:
                value = f"{value};tag={to_tag}"
            items.append([name, value])
    resp = Response(status, reason, Headers(items))
    return resp
