# -*- test-case-name: tests.store.test_records -*-
"""The records the store keeps, as values: trunks, outbound routes and call detail records.

They belong to the store's interface (``IStore`` takes and returns them), below the layers
that use them: the trunk layer routes with ``Trunk`` and ``OutboundRoute``, the call core
writes ``CDR``. Validation of provisioning values lives with them (``TrunkError``).

A trunk's ``domain`` may be purely logical (IMS: ``gd.ctcims.cn``): it goes into URIs, while
every request is physically sent to ``proxy`` (``host[:port][;transport=tcp]``). The digest
username is ``auth_id`` when set (IMS wants the full URI, e.g. ``+8675512345678@gd.ctcims.cn``),
otherwise ``account``. ``max_in``/``max_out``: None is unlimited, 0 forbids that direction.

A CDR is one per call, written when the call ends (``mss.call.cdr`` builds it). Times are Unix
timestamps; ``duration`` runs from the INVITE to the end, ``billsec`` from the answer to the
end; ``disposition`` is answered, busy, no answer, cancelled or failed and ``cause`` keeps
the SIP status and why.
"""
from __future__ import annotations

import ipaddress
import re

import attrs

PRACK_POLICIES = ("off", "supported", "required")
URI_FORMATS = ("sip", "phone", "tel")          # sip:N@domain, sip:N@domain;user=phone, tel:N

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_DIGITS = re.compile(r"^\+?[0-9*#]{0,32}$")
_VISUAL = str.maketrans("", "", "-.()")           # tel: visual separators (RFC 3966 §5.1.1)


class TrunkError(ValueError):
    """A provisioning value is not acceptable (the message says which and why)."""


def parse_proxy(text: str) -> tuple[str, int, str]:
    """``host[:port][;transport=tcp|udp]`` -> (host, port, transport)."""
    hostport, _, params = text.partition(";")
    transport = "udp"
    for param in params.split(";") if params else ():
        name, _, value = param.partition("=")
        if name.strip().lower() == "transport":
            transport = value.strip().lower()
    if transport not in ("udp", "tcp"):
        raise TrunkError(f"proxy transport must be udp or tcp, not {transport!r}")
    hostport = hostport.strip()
    host, port = hostport, 5060
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise TrunkError(f"bad proxy {text!r}: unclosed [")
        host, rest = hostport[1:end], hostport[end + 1:]
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise TrunkError(f"bad proxy {text!r}")
    elif hostport.count(":") > 1:
        pass                                   # a bare IPv6 address: no port can follow
    elif ":" in hostport:
        host, port = hostport.rsplit(":", 1)
    try:
        port = int(port)
    except ValueError:
        raise TrunkError(f"bad proxy port in {text!r}")
    if not host or not 0 < port < 65536:
        raise TrunkError(f"bad proxy {text!r}")
    return host, port, transport


@attrs.frozen
class Trunk:
    name: str
    domain: str
    account: str
    password: str = attrs.field(repr=False)
    proxy: str = ""                    # where requests go; empty: the domain itself
    auth_id: str = ""
    register: bool = True
    expires: int = 3600
    from_user: str = ""                # caller-ID presentation: From user (empty: the caller)
    from_display: str = ""
    identity: str = ""                 # "" | "pai" | "ppi": send P-Asserted/Preferred-Identity
    allow: tuple = ()                  # addresses/networks inbound calls may come from
    max_in: int | None = None
    max_out: int | None = None
    prack: str = "supported"
    uri_format: str = "sip"
    enabled: bool = True

    @property
    def username(self) -> str:
        """The digest username (auth ID, else the account)."""
        return self.auth_id or self.account

    def allows(self, host: str, proxy_address: str | None) -> bool:
        """Is ``host`` one of the carrier's addresses (its allow list or the proxy's address)?"""
        return bool(proxy_address and host == proxy_address) or self.lists(host)

    def lists(self, host: str) -> bool:
        """Is ``host`` in the allow list (stated by the operator, not inferred from the proxy)?"""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        for item in self.allow:
            try:
                if ip in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def numbers(self) -> set[str]:
        """The numbers a carrier may call this trunk by: its account, the user part of its
        auth ID and its presented number, without a leading + (for telling apart several
        accounts that share the carrier's address)."""
        out = set()
        for value in (self.account, self.auth_id.partition("@")[0], self.from_user):
            value = value.translate(_VISUAL).lstrip("+")
            if value:
                out.add(value)
        return out

    def request_uri(self, number: str) -> str:
        if self.uri_format == "tel":
            return f"tel:{number}"
        suffix = ";user=phone" if self.uri_format == "phone" else ""
        return f"sip:{number}@{self.domain}{suffix}"

    def validate(self) -> "Trunk":
        if not _NAME.match(self.name):
            raise TrunkError(f"trunk name {self.name!r}: letters, digits, _ . - (max 64)")
        if not self.domain or any(c in self.domain for c in " <>;@"):
            raise TrunkError(f"bad domain {self.domain!r}")
        if not self.account:
            raise TrunkError("the account (user part) is required")
        if self.proxy:
            parse_proxy(self.proxy)
        if self.prack not in PRACK_POLICIES:
            raise TrunkError(f"prack must be one of {', '.join(PRACK_POLICIES)}")
        if self.uri_format not in URI_FORMATS:
            raise TrunkError(f"uri format must be one of {', '.join(URI_FORMATS)}")
        if self.identity not in ("", "pai", "ppi"):
            raise TrunkError("identity must be pai, ppi or empty")
        for limit in (self.max_in, self.max_out):
            if limit is not None and limit < 0:
                raise TrunkError("call limits must be 0 or more (empty: unlimited)")
        if not 60 <= self.expires <= 86400:
            raise TrunkError("expires must be 60-86400 seconds")
        for item in self.allow:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise TrunkError(f"allow: {item!r} is not an address or network")
        return self


@attrs.frozen
class OutboundRoute:
    """Dialled numbers starting with ``prefix`` (and of ``length`` digits, if set) go out
    through ``trunks`` in order, after stripping ``strip`` digits and prepending ``prepend``.
    ``extensions`` limits which callers may use it (empty: everyone)."""
    id: int
    prefix: str
    trunks: tuple
    length: int | None = None
    strip: int = 0
    prepend: str = ""
    extensions: tuple = ()

    def matches(self, number: str, caller: str | None) -> bool:
        if not number.startswith(self.prefix):
            return False
        if self.length is not None and len(number) != self.length:
            return False
        return not self.extensions or caller in self.extensions

    def translate(self, number: str) -> str:
        return self.prepend + number[self.strip:]


def check_digits(value: str, what: str) -> str:
    if not _DIGITS.match(value):
        raise TrunkError(f"{what} {value!r}: digits (and a leading +) only")
    return value


@attrs.frozen
class CDR:
    call_id: str
    caller: str
    callee: str
    direction: str
    start: float
    answer: float | None
    end: float
    duration: float
    billsec: float
    disposition: str
    cause: str
    trunk: str = ""
