# -*- test-case-name: tests.transport.test_dns -*-
"""Tests for mss.transport.dns: NamesResolver answering ProxyResolver over a loopback
twisted.names server and from the system hosts file."""
from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from mss.sip.address import Address
from mss.transport.dns import NamesResolver
from mss.trunk.resolver import ProxyResolver


class LoopbackDNSTests(TestCase):
    """NamesResolver against a twisted.names server on 127.0.0.1 (free port) serving NAPTR,
    SRV and A records."""

    timeout = 20

    def setUp(self):
        from twisted.internet import reactor
        from twisted.names import dns, server
        soa = dns.Record_SOA(mname=b"ns.carrier.test", rname=b"root.carrier.test", serial=1,
                             refresh=60, retry=60, expire=60, minimum=60, ttl=60)
        records = {
            b"carrier.test": [soa, dns.Record_NAPTR(10, 10, b"s", b"SIP+D2T", b"",
                                                    b"_sip._tcp.carrier.test", ttl=300)],
            b"_sip._tcp.carrier.test": [dns.Record_SRV(10, 0, 5070, b"sbc.carrier.test",
                                                       ttl=120)],
            b"sbc.carrier.test": [dns.Record_A("127.0.0.9", ttl=90)],
        }
        zone = _Zone(soa, records)
        factory = server.DNSServerFactory(authorities=[zone])
        protocol = dns.DNSDatagramProtocol(factory)
        self.port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.reactor = reactor

    @defer.inlineCallbacks
    def test_naptr_srv_a_over_udp(self):
        names = NamesResolver(self.reactor, servers=[("127.0.0.1", self.port.getHost().port)])
        resolver = ProxyResolver(names, self.reactor)
        answer = yield resolver.resolve("carrier.test")
        self.assertEqual(answer.targets, (Address("tcp", "127.0.0.9", 5070),))
        left = answer.expires - self.reactor.seconds()
        self.assertTrue(85 <= left <= 90, left)                # the smallest TTL: the A's
        missing = yield resolver.resolve("nothing.carrier.test:5060")
        self.assertEqual(missing.targets, ())


def _Zone(soa, records):
    """A twisted.names authority holding ``records`` for carrier.test."""
    from twisted.names import authority

    class Zone(authority.FileAuthority):
        def __init__(self):
            authority.FileAuthority.__init__(self, None)
            self.soa = (b"carrier.test", soa)
            self.records = records

        def loadFile(self, filename):
            pass
    return Zone()


class SystemResolverTests(TestCase):
    """The default NamesResolver (system hosts file and resolv.conf) builds on the reactor it
    is given and answers from /etc/hosts without a server."""

    @defer.inlineCallbacks
    def test_localhost_from_hosts_file(self):
        from twisted.internet import reactor
        names = NamesResolver(reactor)
        self.addCleanup(_stop_reparsing, names)
        answer = yield ProxyResolver(names, reactor).resolve("localhost:5070")
        self.assertEqual(answer.targets[0], Address("udp", "127.0.0.1", 5070))


def _stop_reparsing(names):
    """client.Resolver re-reads resolv.conf on a timer; end it with the test."""
    for r in names._resolver.resolvers:
        call = getattr(r, "_parseCall", None)
        if call is not None and call.active():
            call.cancel()
