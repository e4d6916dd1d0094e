# -*- test-case-name: tests.trunk.test_resolver -*-
"""Where a trunk's proxy is: RFC 3263 §4 server location, without blocking the reactor.

``ProxyResolver.resolve(text)`` takes a trunk's ``proxy`` (or ``domain``) as provisioned,
``host[:port][;transport=udp|tcp]``, and answers (through a Deferred) a ``Resolution``: the
addresses to try in order, and until when they may be used (the smallest TTL on the way):

- a numeric IP: no lookup (port 5060 unless given);
- a name with an explicit port: A records only (RFC 3263 §4.2);
- a name without a port: NAPTR (§4.1; ``SIP+D2U``/``SIP+D2T``, the transports we speak,
  lowest order then preference first; skipped when a transport is stated), else SRV
  ``_sip._udp``/``_sip._tcp`` (§4.1 when no NAPTR), SRV targets by priority then weight; and
  when no SRV record exists, A records of the name itself on port 5060 (§4.2).

Answers are cached until their TTL expires; a lookup after that asks again. DNS is reached
through ``IResolver``: the switch gives it ``mss.transport.dns.NamesResolver`` (twisted.names,
on the shell side), tests a fake one and a ``Clock``. Only A (IPv4) records are asked for: the SIP transports bind IPv4.
"""
from __future__ import annotations

import ipaddress

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import Interface

from mss.sip.address import Address
from mss.store.records import parse_proxy

#: How long a numeric address or a name without any record-borne TTL is kept (seconds).
NUMERIC_TTL = float("inf")
#: NAPTR services we can use (RFC 3263 §4.1), and the transport each means.
NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp"}
SRV_PREFIXES = {"udp": "_sip._udp.", "tcp": "_sip._tcp."}


@attrs.frozen
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str
    ttl: int


@attrs.frozen
class Srv:
    priority: int
    weight: int
    port: int
    target: str
    ttl: int


@attrs.frozen
class A:
    address: str
    ttl: int


class IResolver(Interface):
    """The DNS seen by ``ProxyResolver``."""

    def lookup(name: str, kind: str) -> defer.Deferred:
        """Records of ``kind`` ("NAPTR", "SRV" or "A") for ``name``: a Deferred firing with a
        list of ``Naptr``/``Srv``/``A`` (empty when the name or the records do not exist)."""


@attrs.frozen
class Resolution:
    targets: tuple          # Address, in the order to try
    expires: float          # clock time after which the answer must be asked for again


def split_target(text: str) -> tuple[str, int | None, str | None]:
    """``host[:port][;transport=x]`` -> (host, port or None, transport or None): what the
    operator stated, since RFC 3263 treats a missing port or transport differently."""
    host, port, transport = parse_proxy(text)
    hostport, _, params = text.partition(";")
    hostport = hostport.strip()
    if hostport.startswith("["):
        explicit_port = "]:" in hostport
    else:
        explicit_port = hostport.count(":") == 1
    explicit_transport = any(p.strip().lower().startswith("transport=")
                             for p in params.split(";")) if params else False
    return host, port if explicit_port else None, transport if explicit_transport else None


def is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ProxyResolver:
    """RFC 3263 location of trunk proxies with a TTL-honouring cache (see the module doc)."""

    log = Logger()

    def __init__(self, resolver: IResolver, clock):
        self.resolver = resolver
        self.clock = clock
        self._cache: dict[str, Resolution] = {}

    def cached(self, text: str) -> Resolution | None:
        """The cached answer for ``text`` while it is fresh, else None."""
        answer = self._cache.get(text)
        if answer is not None and self.clock.seconds() < answer.expires:
            return answer
        self._cache.pop(text, None)
        return None

    def resolve(self, text: str) -> defer.Deferred:
        """A Deferred firing with a ``Resolution`` (no targets: the name does not resolve)."""
        answer = self.cached(text)
        if answer is not None:
            return defer.succeed(answer)
        d = self._locate(text)

        def remember(answer: Resolution) -> Resolution:
            if answer.targets:
                self._cache[text] = answer
            return answer
        return d.addCallback(remember)

    @defer.inlineCallbacks
    def _locate(self, text: str):
        host, port, transport = split_target(text)
        now = self.clock.seconds()
        if is_numeric(host):
            return Resolution((Address(transport or "udp", host, port or 5060),), NUMERIC_TTL)
        ttls: list[int] = []
        if port is not None:                                  # §4.2: A records only
            targets = yield self._addresses(host, port, transport or "udp", ttls)
            return Resolution(tuple(targets), now + min(ttls, default=0))
        if transport:                   # §4.1: a stated transport needs no NAPTR
            services = [(transport, SRV_PREFIXES[transport] + host)]
        else:
            services = yield self._naptr(host, ttls)     # [(transport, SRV name)]
            if not services:
                services = [(t, SRV_PREFIXES[t] + host) for t in ("udp", "tcp")]
        for proto, name in services:
            records = yield self._lookup(name, "SRV")
            records = [r for r in records if r.target not in ("", ".")]
            if not records:
                continue
            ttls.extend(r.ttl for r in records)
            targets = []
            for srv in sorted(records, key=lambda r: (r.priority, -r.weight)):
                targets.extend((yield self._addresses(srv.target, srv.port, proto, ttls)))
            if targets:
                return Resolution(tuple(targets), now + min(ttls))
        # no usable SRV: the name's own A records on the default port (§4.2)
        targets = yield self._addresses(host, 5060, transport or "udp", ttls)
        return Resolution(tuple(targets), now + min(ttls, default=0))

    @defer.inlineCallbacks
    def _naptr(self, host: str, ttls: list[int]):
        records = yield self._lookup(host, "NAPTR")
        out = []
        for r in sorted(records, key=lambda r: (r.order, r.preference)):
            proto = NAPTR_SERVICES.get(r.service.upper())
            if proto is None or r.flags.lower() != "s":
                continue
            out.append((proto, r.replacement.rstrip(".")))
            ttls.append(r.ttl)
        return out

    @defer.inlineCallbacks
    def _addresses(self, host: str, port: int, transport: str, ttls: list[int]):
        if is_numeric(host):
            return [Address(transport, host, port)]
        records = yield self._lookup(host.rstrip("."), "A")
        ttls.extend(r.ttl for r in records)
        return [Address(transport, r.address, port) for r in records]

    def _lookup(self, name: str, kind: str) -> defer.Deferred:
        """Records, or [] (logged) when the lookup itself fails (timeout, server failure)."""
        def failed(failure):
            self.log.info("DNS {kind} {name}: {error}", kind=kind, name=name,
                          error=failure.getErrorMessage())
            return []
        return defer.maybeDeferred(self.resolver.lookup, name, kind).addErrback(failed)
