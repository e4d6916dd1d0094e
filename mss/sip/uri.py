# -*- test-case-name: tests.sip.test_uri -*-
"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; IPv6 references: RFC 5118, 5954).

``parse_uri`` validates what a server must rely on (scheme, host, port, escapes) and keeps the
original text so that serialization gives back exactly what was received; a URI built or
changed by us (``URI.evolve``) is serialized from its parts. Unknown schemes parse as opaque
URIs (RFC 4475 §3.4: accepted in headers, answered 416 in the Request-URI by the core).
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote

import attrs

from mss.sip.errors import SIPParseError

_HOSTNAME = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*"
                       r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?$")
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BAD_URI_CHARS = re.compile('[ \t\r\n<>"]')
# user = 1*( unreserved / escaped / user-unreserved ); unreserved includes mark -_.!~*'()
# and '#' too, unescaped: phones send feature
# codes like *93# that way (RFC 3261 wants %23; being liberal costs nothing here)
_USER = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/#]|%[0-9A-Fa-f]{2})+$")
_PASSWORD = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*$")
_PARAM = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*$")
_TEL = re.compile(r"^(?:\+[0-9\-.()]*[0-9][0-9\-.()]*|[0-9A-Fa-f*#\-.()pw]+)$")


def valid_host(host: str) -> bool:
    """hostname / IPv4address / IPv6reference (RFC 3261 §25.1, RFC 5118)."""
    if not host:
        return False
    if host[0] == "[":
        if host[-1] != "]" or "%" in host:     # no zone index in a SIP URI (RFC 5118)
            return False
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if _IPV4.match(host):
        return all(int(part) <= 255 for part in host.split("."))
    return _HOSTNAME.match(host) is not None


def split_host_port(hostport: str) -> tuple[str, int | None]:
    """``host[:port]`` with IPv6 references; raises ValueError on a bad port."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference")
        host, rest = hostport[:end + 1], hostport[end + 1:]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise ValueError("junk after IPv6 reference")
        port = rest[1:]
    else:
        host, sep, port = hostport.partition(":")
        if not sep:
            return host, None
    if not (port.isascii() and port.isdigit()) or len(port) > 5 or int(port) > 65535:
        raise ValueError(f"bad port {port!r}")
    return host, int(port)


@attrs.frozen(slots=True, cache_hash=True)
class URI:
    """A parsed URI. ``params`` keeps order: a tuple of (lower-case name, value or None)."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple = ()
    headers: str | None = None          # the raw ``hname=hvalue&...`` part, if any
    opaque: str | None = None           # the text after the scheme for unknown schemes
    raw: str | None = attrs.field(default=None, eq=False, repr=False)

    def param(self, name: str, default=None):
        for key, value in self.params:
            if key == name:
                return value if value is not None else ""
        return default

    def has_param(self, name: str) -> bool:
        return any(key == name for key, _ in self.params)

    def evolve(self, **changes) -> "URI":
        """A changed copy, serialized from its parts."""
        return attrs.evolve(self, raw=None, **changes)

    def with_param(self, name: str, value: str | None) -> "URI":
        params = tuple(p for p in self.params if p[0] != name) + ((name, value),)
        return self.evolve(params=params)

    def without_param(self, name: str) -> "URI":
        return self.evolve(params=tuple(p for p in self.params if p[0] != name))

    @property
    def hostport(self) -> str:
        host = self.host
        if ":" in host and host[:1] != "[":
            host = f"[{host}]"          # an IPv6 address given bare
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    @property
    def number(self) -> str | None:
        """The unescaped user part (the dialled number or extension)."""
        if self.user is None:
            return None
        user = unquote(self.user) if "%" in self.user else self.user
        if self.scheme == "tel":
            return user
        return user.split(";", 1)[0]       # telephone-subscriber params are not the number

    def key(self) -> tuple:
        """Comparison key after RFC 3261 §19.1.4 (user case-sensitive, host not)."""
        user = unquote(self.user) if self.user else self.user
        keep = tuple(sorted((k, (v or "").lower()) for k, v in self.params
                            if k in ("transport", "user", "method", "maddr", "ttl")))
        return (self.scheme, user, self.host.lower(), self.port, keep)

    def __str__(self) -> str:
        if self.raw is not None:
            return self.raw
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(self.user)
                if self.password is not None:
                    parts += [":", self.password]
                parts.append("@")
            parts.append(self.hostport)
        for name, value in self.params:
            parts += [";", name] if value is None else [";", name, "=", value]
        if self.headers:
            parts += ["?", self.headers]
        return "".join(parts)


def _params(text: str, where: str) -> tuple:
    out = []
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        if not name or not _PARAM.match(name) or (sep and not _PARAM.match(value)):
            raise SIPParseError(f"bad {where} parameter {item!r}")
        out.append((name.lower(), value if sep else None))
    return tuple(out)


_cache: dict[str, URI] = {}


def parse_uri(text: str) -> URI:
    """Parse a URI, raising ``SIPParseError`` (400) when it is malformed."""
    uri = _cache.get(text)
    if uri is not None:
        return uri
    uri = _parse_uri(text)
    if len(text) <= 256:            # bounded: 4096 entries of at most 256 characters
        if len(_cache) > 4096:
            _cache.clear()
        _cache[text] = uri
    return uri


def _parse_uri(text: str) -> URI:
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME.match(scheme):
        raise SIPParseError(f"bad URI {text!r}")
    lower = scheme.lower()
    if _BAD_URI_CHARS.search(text):
        raise SIPParseError(f"bad character in URI {text!r}")
    if lower == "tel":
        number, _, params = rest.partition(";")
        if not _TEL.match(number):
            raise SIPParseError(f"bad tel URI {text!r}")
        return URI("tel", user=number, params=_params(params, "tel") if params else (), raw=text)
    if lower not in ("sip", "sips"):
        if not rest:
            raise SIPParseError(f"bad URI {text!r}")
        return URI(lower, opaque=rest, raw=text)
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1:]
        user, sep, pw = userinfo.partition(":")
        if not _USER.match(user):
            raise SIPParseError(f"bad user part in URI {text!r}")
        if sep:
            if not _PASSWORD.match(pw):
                raise SIPParseError(f"bad password in URI {text!r}")
            password = pw
    headers = None
    q = rest.find("?")
    if q >= 0:
        rest, headers = rest[:q], rest[q + 1:]
        if not headers or _BAD_ESCAPE.search(headers):
            raise SIPParseError(f"bad headers in URI {text!r}")
    hostport, sep, params = rest.partition(";")
    try:
        host, port = split_host_port(hostport)
    except ValueError as e:
        raise SIPParseError(f"bad host in URI {text!r}: {e}")
    if not valid_host(host):
        raise SIPParseError(f"bad host in URI {text!r}")
    return URI(lower, user=user, password=password, host=host, port=port,
               params=_params(params, "URI") if sep else (), headers=headers, raw=text)
