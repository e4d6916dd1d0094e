# -*- test-case-name: tests.transport.test_dns -*-
"""DNS for the trunk layer's RFC 3263 location (``mss.trunk.resolver.IResolver``) on
twisted.names: the network side of it, kept out of the sans-I/O trunk layer.
"""
from __future__ import annotations

from twisted.internet import defer
from twisted.names import client, dns, error, hosts, resolve
from zope.interface import implementer

from mss.trunk.resolver import A, IResolver, Naptr, Srv


@implementer(IResolver)
class NamesResolver:
    """``IResolver`` on twisted.names: the system's servers (``/etc/resolv.conf``, and
    ``/etc/hosts`` for A records) unless ``servers`` [(host, port)] are given."""

    def __init__(self, reactor, servers=None, timeout=(1, 3, 11)):
        self.timeout = timeout
        if servers:
            self._resolver = client.Resolver(servers=servers, reactor=reactor)
        else:
            self._resolver = resolve.ResolverChain([
                hosts.Resolver(), client.Resolver(resolv="/etc/resolv.conf", reactor=reactor)])

    def lookup(self, name: str, kind: str) -> defer.Deferred:
        method = {"NAPTR": self._resolver.lookupNamingAuthorityPointer,
                  "SRV": self._resolver.lookupService,
                  "A": self._resolver.lookupAddress}[kind]
        want = {"NAPTR": dns.NAPTR, "SRV": dns.SRV, "A": dns.A}[kind]

        def records(result):
            answers = result[0]
            out = []
            for rr in answers:
                if rr.type != want:
                    continue                       # CNAMEs on the way
                p = rr.payload
                if kind == "NAPTR":
                    out.append(Naptr(p.order, p.preference, _text(p.flags), _text(p.service),
                                     _text(p.replacement.name), rr.ttl))
                elif kind == "SRV":
                    out.append(Srv(p.priority, p.weight, p.port, _text(p.target.name), rr.ttl))
                else:
                    out.append(A(p.dottedQuad(), rr.ttl))
            return out

        def missing(failure):
            failure.trap(error.DNSNameError, error.DNSQueryRefusedError)
            return []                              # NXDOMAIN: no records
        return method(name, timeout=self.timeout).addCallbacks(records, missing)


def _text(value) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
