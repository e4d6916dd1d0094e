# -*- test-case-name: tests.sip.test_headers -*-
"""Header names and the structured header values a SIP server relies on (RFC 3261 §7.3, §20, §25).

- ``canonical(name)``: lower-case full name for any spelling, compact forms expanded.
- ``split_values``: splits a multi-value header at commas outside quotes and ``<...>``.
- ``NameAddr`` (From, To, Contact, Route, Record-Route, ...), ``Via`` (with received/rport
  per RFC 3581, maddr, ttl, branch) and ``CSeq`` parsed into frozen attrs values.
  Values keep their original text in ``raw`` so that untouched headers serialize unchanged.
- ``Headers``: a message's header lines in order, with an index by canonical name; the
  received header block is kept until a line changes, so that untouched messages serialize
  byte for byte.

Speed: the common shapes of Via, name-addr and CSeq are recognised by one anchored regular
expression each; anything else (LWS around separators, quoted parameters, escapes) takes the
general path, which is the reference (tests check both give the same value). Parsed values
are frozen and shared through small bounded caches keyed by the header text.
"""
from __future__ import annotations

import re

import attrs

from mss.sip.errors import SIPParseError
from mss.sip.uri import URI, parse_uri, split_host_port, valid_host

COMPACT = {
    "i": "call-id", "m": "contact", "f": "from", "t": "to", "v": "via", "l": "content-length",
    "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding",
    "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
    "x": "session-expires", "a": "accept-contact", "j": "reject-contact",
    "d": "request-disposition", "y": "identity", "n": "identity-info",
}

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1). The authentication
# headers are not: their parameters contain commas.
MULTI = frozenset((
    "via", "contact", "route", "record-route", "allow", "supported", "require",
    "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language",
    "content-encoding", "allow-events", "in-reply-to", "warning", "error-info", "call-info",
    "alert-info", "history-info", "diversion", "path", "service-route", "reason",
    "p-asserted-identity", "p-preferred-identity", "security-client", "security-server",
    "security-verify", "privacy",
))

# Headers that must appear once (RFC 3261 §20, RFC 4475 §3.4.8-9).
SINGLE = frozenset(("call-id", "cseq", "from", "to", "max-forwards", "content-length",
                    "content-type", "expires", "min-expires", "rseq", "rack"))

# How we spell headers we create (serialization keeps received spelling otherwise).
PRETTY = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "rseq": "RSeq", "rack": "RAck", "mime-version": "MIME-Version",
    "p-asserted-identity": "P-Asserted-Identity", "p-preferred-identity": "P-Preferred-Identity",
}

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")


def is_digits(text: str) -> bool:
    """ASCII digits only (str.isdigit() also accepts "²", which int() refuses)."""
    return text.isascii() and text.isdigit()
_LWS = " \t"


_CANONICAL: dict[str, str] = {}


def canonical(name: str) -> str:
    """Lower-case full header name (cached: header spellings repeat)."""
    key = _CANONICAL.get(name)
    if key is None:
        lower = name.lower()
        key = COMPACT.get(lower, lower)
        if len(_CANONICAL) < 2048:
            _CANONICAL[name] = key
    return key


def pretty(name: str) -> str:
    lower = canonical(name)
    return PRETTY.get(lower) or "-".join(p.capitalize() for p in lower.split("-"))


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def split_values(value: str) -> list[str]:
    """Split at commas that are not inside quotes or angle brackets."""
    if "," not in value:
        return [value.strip()]
    if '"' not in value and "<" not in value:
        return [v.strip() for v in value.split(",")]
    out, start, quoted, angle, i, n = [], 0, False, False, 0, len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    if quoted:
        raise SIPParseError("unterminated quoted string")
    out.append(value[start:].strip())
    return out


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a quoted-string beginning at ``text[start] == '"'``; return (unescaped, end)."""
    end = text.find('"', start + 1)
    if end > 0 and "\\" not in text[start:end]:
        return text[start + 1:end], end + 1
    out, i, n = [], start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise SIPParseError("unterminated quoted string")


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SIMPLE_PARAMS = re.compile(r"^(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)+$")


def parse_params(text: str, where: str = "header") -> tuple:
    """``;name[=value]`` list (value token, host or quoted-string) into ((name, value), ...)."""
    if _SIMPLE_PARAMS.match(text):           # the common case: no LWS, no quotes
        out = []
        for item in text[1:].split(";"):
            name, sep, value = item.partition("=")
            out.append((name.lower(), value if sep else None))
        return tuple(out)
    out = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _LWS:
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise SIPParseError(f"bad {where} parameters {text!r}")
        i += 1
        j = i
        while j < n and text[j] not in "=;":
            j += 1
        name = text[i:j].strip(_LWS)
        if not name or not is_token(name):
            raise SIPParseError(f"bad {where} parameter name {name!r}")
        value = None
        if j < n and text[j] == "=":
            j += 1
            while j < n and text[j] in _LWS:
                j += 1
            if j < n and text[j] == '"':
                raw_start = j
                _, j = read_quoted(text, j)
                value = text[raw_start:j]
            else:
                k = j
                while j < n and text[j] != ";":
                    j += 1
                value = text[k:j].strip(_LWS)
                if not value or any(c in value for c in ' \t"<>,'):
                    raise SIPParseError(f"bad {where} parameter value {value!r}")
        out.append((name.lower(), value))
        i = j
    return tuple(out)


def format_params(params: tuple) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params: tuple, name: str, default=None):
    for key, value in params:
        if key == name:
            return value if value is not None else ""
    return default


@attrs.frozen(slots=True)
class NameAddr:
    """``[display] <uri> *(;param)`` or ``addr-spec *(;param)`` (From, To, Contact, Route...)."""

    uri: URI
    display: str | None = None
    params: tuple = ()
    raw: str | None = attrs.field(default=None, eq=False, repr=False)

    def param(self, name: str, default=None):
        return _param(self.params, name, default)

    @property
    def tag(self) -> str | None:
        return _param(self.params, "tag")

    def with_param(self, name: str, value: str | None) -> "NameAddr":
        params = tuple(p for p in self.params if p[0] != name) + ((name, value),)
        return attrs.evolve(self, params=params, raw=None)

    def evolve(self, **changes) -> "NameAddr":
        return attrs.evolve(self, raw=None, **changes)

    def __str__(self) -> str:
        if self.raw is not None:
            return self.raw
        display = ""
        if self.display:
            display = (self.display if is_token_list(self.display) else quote(self.display)) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"


def is_token_list(text: str) -> bool:
    return all(is_token(word) for word in text.split(" ")) if text else False


_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
# The common shapes, checked in one match: ["quoted" | token words] <uri> *(;token[=token])
_NAME_ADDR_FAST = re.compile(
    r'(?:"([^"\\\x00-\x1f\x7f]*)"[ \t]*|(' + _T + r'(?: ' + _T + r')*)[ \t]*)?'
    r'<([^<>"\x00-\x20\x7f]+)>((?:;' + _T + r'(?:=' + _T + r')?)*)')


# Parsed values are frozen, so equal header texts can share one value: From and To repeat in
# every message of a dialog, the top Via in every response of a transaction, CSeq across
# calls. Bounded in entries and in key length (a long value is parsed, not remembered).
_CACHE_ENTRIES = 1024
_CACHE_KEY_CHARS = 256
_NAME_ADDRS: dict = {}
_VIAS: dict = {}
_CSEQS: dict = {}


def _remember(cache: dict, key: str, value):
    if len(key) <= _CACHE_KEY_CHARS:
        if len(cache) >= _CACHE_ENTRIES:
            cache.clear()
        cache[key] = value
    return value


def parse_name_addr(value: str) -> NameAddr:
    """Parse one name-addr or addr-spec with its header parameters."""
    hit = _NAME_ADDRS.get(value)
    return hit if hit is not None else _remember(_NAME_ADDRS, value, _parse_name_addr(value))


def _parse_name_addr(value: str) -> NameAddr:
    text = value.strip(_LWS)
    m = _NAME_ADDR_FAST.fullmatch(text) if "<" in text else None
    if m is not None:
        quoted, words, uri, params = m.groups()
        if params:
            params = _split_simple_params(params)
        return NameAddr(parse_uri(uri), quoted if quoted is not None else words,
                        params or (), raw=text)
    display = None
    if text.startswith('"'):
        display, end = read_quoted(text, 0)
        rest = text[end:].lstrip(_LWS)
        if not rest.startswith("<"):
            raise SIPParseError(f"expected <URI> after display name in {value!r}")
    else:
        lt = text.find("<")
        if lt >= 0:
            words = text[:lt].strip(_LWS)
            if words:
                if not all(is_token(w) for w in words.split()):
                    raise SIPParseError(f"bad display name {words!r}")
                display = " ".join(words.split())
            rest = text[lt:]
        else:
            rest = None
    if rest is not None:
        gt = rest.find(">")
        if gt < 0:
            raise SIPParseError(f"missing '>' in {value!r}")
        uri = parse_uri(rest[1:gt])
        params = parse_params(rest[gt + 1:]) if gt + 1 < len(rest) else ()
    else:
        # addr-spec: no display, no '<'; a URI with ',', ';' or '?' must be in <> (§20)
        cut = text.find(";")
        spec = text if cut < 0 else text[:cut]
        spec = spec.rstrip(_LWS)
        if not spec or any(c in spec for c in " \t?,"):
            raise SIPParseError(f"bad addr-spec {value!r}")
        uri = parse_uri(spec)
        params = parse_params(text[cut:]) if cut >= 0 else ()
    return NameAddr(uri, display, params, raw=text)


@attrs.frozen(slots=True)
class Via:
    """``SIP/2.0/transport sent-by *(;param)`` (RFC 3261 §20.42, RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: tuple = ()
    raw: str | None = attrs.field(default=None, eq=False, repr=False)
    version: str = "2.0"        # protocol-version is a token (§25.1): RFC 4475 §3.1.2.16

    def param(self, name: str, default=None):
        return _param(self.params, name, default)

    @property
    def branch(self) -> str | None:
        return _param(self.params, "branch")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **values) -> "Via":
        """Set parameters (value None for a flag, e.g. rport with no value)."""
        params = list(self.params)
        for name, value in values.items():
            for i, (key, _) in enumerate(params):
                if key == name:
                    params[i] = (name, value)
                    break
            else:
                params.append((name, value))
        return attrs.evolve(self, params=tuple(params), raw=None)

    def __str__(self) -> str:
        if self.raw is not None:
            return self.raw
        return (f"SIP/{self.version}/{self.transport} {self.sent_by}"
                f"{format_params(self.params)}")


_VIA = re.compile(r"^SIP[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
                  r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+([^;]+)(.*)$", re.I | re.S)


_VIA_FAST = re.compile(
    r"SIP/2\.0/([A-Z]+) ([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    r"((?:;" + _T + r"(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*)")
_CHECKED_VIA_PARAMS = frozenset(("received", "rport", "ttl", "maddr"))
_HOSTS: dict[str, bool] = {}


def _valid_host(host: str) -> bool:
    """valid_host with a bounded cache: peers and their addresses repeat."""
    ok = _HOSTS.get(host)
    if ok is None:
        ok = valid_host(host)
        if len(_HOSTS) > 4096:
            _HOSTS.clear()
        _HOSTS[host] = ok
    return ok


def parse_via(value: str) -> Via:
    """Parse one via-parm (``SIP/2.0/UDP host:port;params``)."""
    hit = _VIAS.get(value)
    return hit if hit is not None else _remember(_VIAS, value, _parse_via_fast(value))


def _split_simple_params(text: str) -> tuple:
    """``;a=b;c`` already checked by a regex: ((name, value or None), ...)."""
    out = []
    for item in text[1:].split(";"):
        name, sep, val = item.partition("=")
        out.append((name.lower(), val if sep else None))
    return tuple(out)


def _parse_via_fast(value: str) -> Via:
    text = value.strip(_LWS)
    m = _VIA_FAST.fullmatch(text)
    if m is not None:
        transport, host, port, params = m.groups()
        if _valid_host(host) and (port is None or int(port) <= 65535):
            if params:
                params = _split_simple_params(params)
                for name, _ in params:
                    if name in _CHECKED_VIA_PARAMS:
                        _check_via_params(params)
                        break
            return Via(transport, host, None if port is None else int(port), params or (),
                       raw=text)
    return _parse_via(value)


_COLON_LWS = re.compile(r"[ \t]*:[ \t]*")


def _parse_via(value: str) -> Via:
    m = _VIA.match(value.strip(_LWS))
    if m is None:
        raise SIPParseError(f"bad Via {value!r}")
    version, transport, hostport, rest = m.groups()
    hostport = _COLON_LWS.sub(":", hostport.strip(_LWS))     # COLON = SWS ":" SWS
    if " " in hostport or "\t" in hostport:
        raise SIPParseError(f"bad Via sent-by {hostport!r}")
    try:
        host, port = split_host_port(hostport)
    except ValueError as e:
        raise SIPParseError(f"bad Via sent-by {hostport!r}: {e}")
    if not valid_host(host):
        raise SIPParseError(f"bad Via host {host!r}")
    params = parse_params(rest, "Via") if rest else ()
    _check_via_params(params)
    return Via(transport.upper(), host, port, params, raw=value.strip(_LWS),
               version="2.0" if version == "2.0" else version)


def _check_via_params(params: tuple) -> None:
    for name, pvalue in params:
        if name == "received" and pvalue is not None:
            h = pvalue
            if ":" in h and not h.startswith("["):
                h = f"[{h}]"          # RFC 5118 §4.5: IPv6 received without brackets
            if not _valid_host(h):
                raise SIPParseError(f"bad Via received {pvalue!r}")
        elif name == "rport" and pvalue is not None and not (
                is_digits(pvalue) and len(pvalue) <= 5 and int(pvalue) < 65536):
            raise SIPParseError(f"bad Via rport {pvalue!r}")
        elif name == "ttl" and not (pvalue and is_digits(pvalue) and len(pvalue) <= 3
                                    and int(pvalue) <= 255):
            raise SIPParseError(f"bad Via ttl {pvalue!r}")
        elif name == "maddr" and not (pvalue and _valid_host(pvalue)):
            raise SIPParseError(f"bad Via maddr {pvalue!r}")


@attrs.frozen(slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


_CSEQ = re.compile(r"([0-9]{1,10})[ \t]+(" + _T + r")")


def parse_cseq(value: str) -> CSeq:
    hit = _CSEQS.get(value)
    return hit if hit is not None else _remember(_CSEQS, value, _parse_cseq(value))


def _parse_cseq(value: str) -> CSeq:
    m = _CSEQ.fullmatch(value)
    if m is not None:
        number = int(m[1])
        if number < 2 ** 31:
            return CSeq(number, m[2])
    parts = value.split()
    if len(parts) != 2 or not is_digits(parts[0]) or len(parts[0]) > 10 or not is_token(parts[1]):
        raise SIPParseError(f"bad CSeq {value!r}")
    number = int(parts[0])
    if number >= 2 ** 31:
        raise SIPParseError(f"CSeq number {number} too large")
    return CSeq(number, parts[1])


def parse_int(value: str, name: str, limit: int = 2 ** 32 - 1) -> int:
    value = value.strip(_LWS)
    if not is_digits(value) or len(value) > 10 or int(value) > limit:
        raise SIPParseError(f"bad {name} {value!r}")
    return int(value)


def parse_token_list(value: str) -> list[str]:
    """Comma-separated option tags / methods (Supported, Require, Allow)."""
    return [v.strip() for v in value.split(",") if v.strip()]


# -- the header container --------------------------------------------------------------------

def _line(name: str, value: str) -> tuple[str, str]:
    """A header line we write: a token name (all-lower-case names spelled canonically, "via"
    -> "Via"), a value on one line (CR/LF from a service or a copied value become SP, so
    nothing can be injected into the message)."""
    if not _TOKEN.fullmatch(name):
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
        found = index.get(_CANONICAL.get(name) or canonical(name))
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
        if key not in MULTI:
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
