# -*- test-case-name: tests.trunk.test_resolver -*-
"""Tests for mss.trunk.resolver: RFC 3263 §4 location of trunk proxies (fake DNS and a Clock),
the TTL cache and the dispatcher waiting for answers."""
from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from mss.sip.address import Address
from mss.trunk.resolver import A, IResolver, Naptr, ProxyResolver, Srv, split_target


@implementer(IResolver)
class FakeDNS:
    """Records by (name, kind); ``hold`` keeps answers back until ``release``."""

    def __init__(self, records=None):
        self.records = dict(records or {})
        self.asked: list[tuple[str, str]] = []
        self.hold = False
        self.waiting: list[tuple[defer.Deferred, list]] = []

    def lookup(self, name, kind):
        self.asked.append((name, kind))
        answer = list(self.records.get((name, kind), []))
        if self.hold:
            d = defer.Deferred()
            self.waiting.append((d, answer))
            return d
        return defer.succeed(answer)

    def release(self):
        waiting, self.waiting = self.waiting, []
        for d, answer in waiting:
            d.callback(answer)


class SplitTests(SynchronousTestCase):
    def test_what_was_stated(self):
        self.assertEqual(split_target("sbc.example"), ("sbc.example", None, None))
        self.assertEqual(split_target("sbc.example:5070"), ("sbc.example", 5070, None))
        self.assertEqual(split_target("sbc.example;transport=tcp"), ("sbc.example", None, "tcp"))
        self.assertEqual(split_target("[2001:db8::1]:5061"), ("2001:db8::1", 5061, None))
        self.assertEqual(split_target("2001:db8::1"), ("2001:db8::1", None, None))


class LocateTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.dns = FakeDNS()
        self.resolver = ProxyResolver(self.dns, self.clock)

    def locate(self, text):
        return self.successResultOf(self.resolver.resolve(text))

    def test_numeric_needs_no_lookup(self):
        answer = self.locate("192.0.2.1")
        self.assertEqual(answer.targets, (Address("udp", "192.0.2.1", 5060),))
        self.assertEqual(self.locate("192.0.2.1:5070;transport=tcp").targets,
                         (Address("tcp", "192.0.2.1", 5070),))
        self.assertEqual(self.dns.asked, [])

    def test_explicit_port_asks_a_only(self):
        self.dns.records[("sbc.example", "A")] = [A("192.0.2.5", 60), A("192.0.2.6", 30)]
        answer = self.locate("sbc.example:5070")
        self.assertEqual(answer.targets, (Address("udp", "192.0.2.5", 5070),
                                          Address("udp", "192.0.2.6", 5070)))
        self.assertEqual(answer.expires, 1030)                # the smallest TTL
        self.assertEqual(self.dns.asked, [("sbc.example", "A")])

    def test_naptr_then_srv_then_a(self):
        self.dns.records.update({
            ("carrier.example", "NAPTR"): [
                Naptr(20, 10, "s", "SIP+D2U", "_sip._udp.carrier.example", 300),
                Naptr(10, 10, "s", "SIP+D2T", "_sip._tcp.carrier.example", 300),
                Naptr(5, 10, "s", "SIPS+D2T", "_sips._tcp.carrier.example", 300)],  # not ours
            ("_sip._tcp.carrier.example", "SRV"): [
                Srv(20, 0, 5080, "backup.carrier.example", 120),
                Srv(10, 0, 5070, "sbc1.carrier.example", 200)],
            ("sbc1.carrier.example", "A"): [A("192.0.2.11", 100)],
            ("backup.carrier.example", "A"): [A("192.0.2.12", 100)],
        })
        answer = self.locate("carrier.example")
        self.assertEqual(answer.targets, (Address("tcp", "192.0.2.11", 5070),
                                          Address("tcp", "192.0.2.12", 5080)))
        self.assertEqual(answer.expires, 1100)
        self.assertEqual(self.dns.asked[0], ("carrier.example", "NAPTR"))
        self.assertNotIn(("_sips._tcp.carrier.example", "SRV"), self.dns.asked)

    def test_srv_without_naptr(self):
        self.dns.records.update({
            ("_sip._udp.carrier.example", "SRV"): [Srv(10, 0, 5062, "sbc.carrier.example", 50)],
            ("sbc.carrier.example", "A"): [A("192.0.2.20", 500)]})
        answer = self.locate("carrier.example")
        self.assertEqual(answer.targets, (Address("udp", "192.0.2.20", 5062),))
        self.assertEqual(self.dns.asked, [("carrier.example", "NAPTR"),
                                          ("_sip._udp.carrier.example", "SRV"),
                                          ("sbc.carrier.example", "A")])

    def test_stated_transport_skips_naptr(self):
        self.dns.records[("carrier.example", "A")] = [A("192.0.2.30", 60)]
        answer = self.locate("carrier.example;transport=tcp")
        self.assertEqual(answer.targets, (Address("tcp", "192.0.2.30", 5060),))
        self.assertEqual(self.dns.asked, [("_sip._tcp.carrier.example", "SRV"),
                                          ("carrier.example", "A")])

    def test_a_only_name(self):
        self.dns.records[("carrier.example", "A")] = [A("192.0.2.40", 60)]
        self.assertEqual(self.locate("carrier.example").targets,
                         (Address("udp", "192.0.2.40", 5060),))

    def test_nothing_resolves(self):
        answer = self.locate("nowhere.invalid")
        self.assertEqual(answer.targets, ())

    def test_lookup_failure_is_no_records(self):
        @implementer(IResolver)
        class Broken:
            def lookup(self, name, kind):
                return defer.fail(RuntimeError("server failure"))
        resolver = ProxyResolver(Broken(), self.clock)
        self.assertEqual(self.successResultOf(resolver.resolve("x.example")).targets, ())

    def test_cache_honours_ttl(self):
        self.dns.records[("sbc.example", "A")] = [A("192.0.2.5", 60)]
        self.locate("sbc.example:5060")
        self.locate("sbc.example:5060")
        self.assertEqual(len(self.dns.asked), 1)               # cached
        self.clock.advance(59)
        self.locate("sbc.example:5060")
        self.assertEqual(len(self.dns.asked), 1)
        self.dns.records[("sbc.example", "A")] = [A("192.0.2.6", 60)]
        self.clock.advance(1)                                  # expired: asked again
        self.assertEqual(self.locate("sbc.example:5060").targets[0].host, "192.0.2.6")
        self.assertEqual(len(self.dns.asked), 2)


class DispatcherTests(SynchronousTestCase):
    """The dispatcher never blocks on DNS: a trunk waits for its answer (no REGISTER, calls
    skip it with 503), then registers; the address is located again when its TTL ends."""

    def setUp(self):
        from mss.sip.core import SipCore
        from mss.store.sqlite import SQLiteStore
        from mss.trunk.dispatcher import TrunkDispatcher
        from mss.store.records import Trunk
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.core = SipCore(domain="mss.test", local_host=lambda host: "127.0.0.1")
        self.store = SQLiteStore(self.mktemp() + ".sqlite")
        self.addCleanup(self.store.close)
        self.dns = FakeDNS({("carrier.example", "A"): [A("192.0.2.50", 60)]})
        self.dns.hold = True
        self.d = TrunkDispatcher(self.core, self.clock, self.store,
                                 resolver=ProxyResolver(self.dns, self.clock))
        self.addCleanup(self.d.stop)
        self.store.put_trunk(Trunk(name="c", domain="carrier.example", account="acme",
                                   password="pw", proxy="carrier.example:5060"))

    def sent(self):
        from mss.sip.parser import parse
        return [(parse(data)[0].method, dest) for data, dest in self.core.datagrams_to_send()]

    def advance(self, seconds):
        self.clock.advance(seconds)
        self.core.handle_timer(self.clock.seconds())

    def test_waits_for_the_answer_then_registers_and_refreshes(self):
        self.d.reload()
        trunk = self.d.trunks["c"]
        self.assertEqual(self.sent(), [])                       # nothing sent to a name
        self.assertEqual(self.d.acquire(trunk, "out"), 503)     # calls fail over meanwhile
        self.assertEqual(self.d.destination(trunk), Address("udp", "carrier.example", 5060))
        self.dns.release()
        self.assertEqual(self.sent(), [("REGISTER", Address("udp", "192.0.2.50", 5060))])
        self.assertEqual(self.d.acquire(trunk, "out"), 0)
        self.assertEqual(self.d.inbound_trunk("192.0.2.50").name, "c")
        # the TTL ends: asked again; the old address serves until the new answer
        self.dns.records[("carrier.example", "A")] = [A("192.0.2.51", 60)]
        asked = len(self.dns.asked)
        self.advance(60)
        self.assertEqual(len(self.dns.asked), asked + 1)
        self.assertEqual(self.d.destination(trunk).host, "192.0.2.50")
        self.dns.release()
        self.assertEqual(self.d.destination(trunk).host, "192.0.2.51")
        self.assertEqual(self.d.registrations["c"].destination.host, "192.0.2.51")

    def test_answer_after_reload_or_stop_is_dropped(self):
        self.d.reload()
        self.d.stop()
        self.dns.release()
        self.assertEqual(self.sent(), [])
        self.assertNotIn("c", self.d._addresses)
