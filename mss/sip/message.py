# -*- test-case-name: tests.sip.test_message -*-
"""SIP requests and responses as objects, and their serialization (RFC 3261 §7, §8.2.6, §20, §25).

``Request`` and ``Response`` hold a ``Headers`` container (``mss.sip.headers``) and a body;
Via, From, To, CSeq and Contact are parsed on first use and cached. ``mss.sip.parser`` builds
them from bytes; ``mss.sip.checks`` holds the checks a UAS makes before processing a request.

Serialization: an untouched parsed message gives back its header block byte for byte (folding,
spacing, compact names), after a start line rebuilt from its fields; a message whose headers
were changed through ``Headers`` methods is written one ``Name: value`` line per header, in
order. Content-Length always matches the body (§18.3, §20.14).

``make_response`` builds a response as §8.2.6 asks, copying Via, From, To, Call-ID and CSeq as
received, so that it also answers a request whose parse failed (``SIPParseError.partial``).
"""
from __future__ import annotations

from mss.sip import headers as H
from mss.sip.errors import SIPParseError
from mss.sip.headers import CSeq, Headers, NameAddr, Via, canonical, pretty
from mss.sip.uri import URI

SIP_VERSION = "SIP/2.0"
_CANON = H._CANONICAL

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


# -- building responses ----------------------------------------------------------------------

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
