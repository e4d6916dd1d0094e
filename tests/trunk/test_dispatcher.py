# -*- test-case-name: tests.trunk.test_dispatcher -*-
"""Tests for mss.trunk.dispatcher: outbound routes, inbound trunk recognition, DIDs, limits,
and registrations kept in step with the store. A real SQLiteStore and SipCore, task.Clock."""
from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.address import Address
from mss.sip.core import SipCore
from mss.sip.parser import parse
from mss.store.sqlite import SQLiteStore
from mss.trunk.dispatcher import TrunkDispatcher
from mss.store.records import Trunk

NAMES = {"sbc.carrier.example": "10.0.0.5"}


def trunk(name, **changes) -> Trunk:
    values = dict(name=name, domain="gd.ctcims.cn", account="+8675512345678", password="pw",
                  register=False)
    values.update(changes)
    return Trunk(**values)


class DispatcherTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.core = SipCore(domain="mss.test", local_host=lambda host: "127.0.0.1")
        self.store = SQLiteStore(self.mktemp() + ".sqlite")
        self.addCleanup(self.store.close)
        self.store.add_extension("1001", "pw-1001", "mss.test")
        self.store.add_extension("1002", "pw-1002", "mss.test")
        self.resolved = []
        self.names = dict(NAMES)
        self.d = TrunkDispatcher(self.core, self.clock, self.store, resolve=self.resolve)

    def resolve(self, host):
        self.resolved.append(host)
        return self.names.get(host, host)

    def sent(self):
        return [(parse(data)[0], dest) for data, dest in self.core.datagrams_to_send()]


class OutboundTests(DispatcherTestCase):
    def setUp(self):
        super().setUp()
        for name in ("a", "b", "c"):
            self.store.put_trunk(trunk(name))

    def plan(self, number, caller="1001"):
        return [(t.name, n) for t, n in self.d.outbound(number, caller)]

    def test_longest_prefix_wins_whatever_the_order_added(self):
        self.store.add_route("0", ["a"])
        self.store.add_route("0086", ["b"], strip=4, prepend="+86")
        self.store.add_route("00", ["c"], strip=2, prepend="+")
        self.d.reload()
        self.assertEqual(self.plan("0086755123"), [("b", "+86755123")])
        self.assertEqual(self.plan("0044207123"), [("c", "+44207123")])
        self.assertEqual(self.plan("0755123"), [("a", "0755123")])
        self.assertEqual(self.plan("1755123"), [])

    def test_length_restricts_and_is_preferred_for_the_same_prefix(self):
        self.store.add_route("1", ["a"])
        self.store.add_route("1", ["b"], length=11)
        self.d.reload()
        self.assertEqual(self.plan("13800138000"), [("b", "13800138000")])
        self.assertEqual(self.plan("1380013800"), [("a", "1380013800")])

    def test_trunks_in_order_for_failover(self):
        self.store.add_route("9", ["b", "a", "c"], strip=1)
        self.d.reload()
        self.assertEqual(self.plan("9123"), [("b", "123"), ("a", "123"), ("c", "123")])

    def test_allowed_extensions(self):
        self.store.add_route("00", ["a"], extensions=["1001"])
        self.store.add_route("0", ["b"])
        self.d.reload()
        self.assertEqual(self.plan("00123", "1001"), [("a", "00123")])
        self.assertEqual(self.plan("00123", "1002"), [("b", "00123")])
        self.assertEqual(self.plan("00123", None), [("b", "00123")])

    def test_disabled_trunks_are_skipped(self):
        self.store.add_route("00", ["a"])
        self.store.add_route("0", ["b", "c"])
        self.store.put_trunk(trunk("a", enabled=False), replace=True)
        self.store.put_trunk(trunk("b", enabled=False), replace=True)
        self.d.reload()
        self.assertEqual(self.plan("00123"), [("c", "00123")])

    def test_an_invalid_row_is_ignored_not_fatal(self):
        self.store.add_route("0", ["a", "b"])
        with self.store._write() as conn:            # as an older or foreign writer might
            conn.execute("UPDATE trunks SET proxy = 'host:99999' WHERE name = 'a'")
        self.d.reload()
        self.assertNotIn("a", self.d.trunks)
        self.assertEqual(self.plan("0123"), [("b", "0123")])

    def test_no_routes(self):
        self.d.reload()
        self.assertEqual(self.plan("123"), [])


class InboundTests(DispatcherTestCase):
    def setUp(self):
        super().setUp()
        self.store.put_trunk(trunk("listed", allow=("127.0.0.2", "10.20.0.0/16")))
        self.store.put_trunk(trunk("byproxy", proxy="sbc.carrier.example:5060"))
        self.store.put_trunk(trunk("literal", proxy="127.0.0.3:5070"))
        self.store.put_trunk(trunk("off", allow=("127.0.0.9",), enabled=False))
        self.store.add_did("+8675512345678", "1001")
        self.store.add_did("2000", "1002")
        self.d.reload()

    def test_inbound_trunk_by_allow_list(self):
        self.assertEqual(self.d.inbound_trunk("127.0.0.2").name, "listed")
        self.assertEqual(self.d.inbound_trunk("10.20.3.4").name, "listed")

    def test_inbound_trunk_by_the_proxys_resolved_address(self):
        self.assertIn("sbc.carrier.example", self.resolved)
        self.assertEqual(self.d.inbound_trunk("10.0.0.5").name, "byproxy")
        self.assertEqual(self.d.inbound_trunk("127.0.0.3").name, "literal")

    def test_other_addresses_are_not_trunk_traffic(self):
        for host in ("127.0.0.1", "127.0.0.9", "10.21.0.1", "sbc.carrier.example", "", "::1"):
            self.assertIsNone(self.d.inbound_trunk(host), host)

    def test_shared_address_picks_the_account_called(self):
        self.store.put_trunk(trunk("acct1", account="+8675500000001", allow=("127.0.0.8",)))
        self.store.put_trunk(trunk("acct2", account="+8675500000002", allow=("127.0.0.8",)))
        self.d.reload()
        self.assertEqual(self.d.inbound_trunk("127.0.0.8", "+8675500000002").name, "acct2")
        self.assertEqual(self.d.inbound_trunk("127.0.0.8", "8675500000001").name, "acct1")
        self.assertEqual(self.d.inbound_trunk("127.0.0.8", "2000").name, "acct1")
        self.assertEqual(self.d.inbound_trunk("127.0.0.8").name, "acct1")
        self.assertIsNone(self.d.inbound_trunk("127.0.0.9", "+8675500000002"))

    def test_an_explicit_allow_wins_over_an_address_inferred_from_the_proxy(self):
        """Two accounts at one carrier: "second" lists 127.0.0.3 with --allow, "literal" only
        sends to it. Calls from there are the listed trunk's, whatever number they call."""
        self.store.put_trunk(trunk("second", account="+8675500000002", allow=("127.0.0.3",)))
        self.d.reload()
        self.assertEqual(self.d.inbound_trunk("127.0.0.3").name, "second")
        self.assertEqual(self.d.inbound_trunk("127.0.0.3", "+8675512345678").name, "second")
        self.assertEqual(self.d.inbound_trunk("127.0.0.3", None, "+8675512345678").name,
                         "second")
        self.store.put_trunk(trunk("second", allow=("10.9.9.9",)), replace=True)
        self.d.reload()
        self.assertEqual(self.d.inbound_trunk("127.0.0.3").name, "literal")   # inferred still

    def test_shared_allow_tie_broken_by_the_to_user_when_the_uri_says_nothing(self):
        self.store.put_trunk(trunk("acct1", account="acme1", allow=("127.0.0.8",)))
        self.store.put_trunk(trunk("acct2", account="acme2", from_user="+4930123456",
                                   allow=("127.0.0.8",)))
        self.store.put_trunk(trunk("acct3", account="acme3",
                                   auth_id="+4930999@ims.example", allow=("127.0.0.8",)))
        self.d.reload()
        self.assertEqual(self.d.inbound_trunk("127.0.0.8", "2000", "acme2").name, "acct2")
        self.assertEqual(self.d.inbound_trunk("127.0.0.8", "", "4930123456").name, "acct2")
        self.assertEqual(self.d.inbound_trunk("127.0.0.8", None, "+49-30-999").name, "acct3")
        self.assertEqual(self.d.inbound_trunk("127.0.0.8", "acme3", "acme2").name, "acct3")
        self.assertEqual(self.d.inbound_trunk("127.0.0.8", "2000", "2000").name, "acct1")

    def test_did_forms(self):
        self.assertEqual(self.d.did("+8675512345678"), "1001")
        self.assertEqual(self.d.did("8675512345678"), "1001")          # without the +
        self.assertEqual(self.d.did("+86-755-1234-5678"), "1001")      # tel: visual separators
        self.assertEqual(self.d.did("(86)755.12345678"), "1001")
        self.assertEqual(self.d.did("2000"), "1002")
        self.assertEqual(self.d.did("+2000"), "1002")                  # a + the carrier added
        for unknown in ("", None, "2001", "+", "86755"):
            self.assertIsNone(self.d.did(unknown), unknown)

    def test_reload_follows_the_store(self):
        self.store.remove_did("2000")
        self.store.put_trunk(trunk("listed", allow=("127.0.0.4",)), replace=True)
        self.d.reload()
        self.assertIsNone(self.d.did("2000"))
        self.assertIsNone(self.d.inbound_trunk("127.0.0.2"))
        self.assertEqual(self.d.inbound_trunk("127.0.0.4").name, "listed")


class LimitTests(DispatcherTestCase):
    def test_limit_zero_forbids_the_direction_only(self):
        t = trunk("t", max_in=0)
        self.assertEqual(self.d.acquire(t, "in"), 403)
        self.assertEqual(self.d.acquire(t, "in"), 403)
        self.assertEqual(self.d.acquire(t, "out"), 0)
        self.assertEqual(self.d.active, {("t", "out"): 1})

    def test_limit_one(self):
        t = trunk("t", max_out=1)
        self.assertEqual(self.d.acquire(t, "out"), 0)
        self.assertEqual(self.d.acquire(t, "out"), 503)
        self.assertEqual(self.d.acquire(t, "in"), 0)            # the other direction is apart
        self.d.release("t", "out")
        self.assertEqual(self.d.acquire(t, "out"), 0)

    def test_limit_n_and_counts_back_to_zero(self):
        t = trunk("t", max_in=3, max_out=2)
        self.assertEqual([self.d.acquire(t, "in") for _ in range(4)], [0, 0, 0, 503])
        self.assertEqual([self.d.acquire(t, "out") for _ in range(3)], [0, 0, 503])
        for _ in range(3):
            self.d.release("t", "in")
        for _ in range(2):
            self.d.release("t", "out")
        self.assertEqual(self.d.active, {})

    def test_unlimited(self):
        t = trunk("t")
        self.assertEqual({self.d.acquire(t, "out") for _ in range(500)}, {0})
        self.assertEqual(self.d.active[("t", "out")], 500)

    def test_extra_release_never_goes_negative(self):
        t = trunk("t", max_out=1)
        self.d.release("t", "out")
        self.assertEqual(self.d.active, {})
        self.assertEqual(self.d.acquire(t, "out"), 0)
        self.assertEqual(self.d.acquire(t, "out"), 503)

    def test_status_shows_counts(self):
        self.store.put_trunk(trunk("t", max_out=2, proxy="127.0.0.2"))
        self.d.reload()
        self.d.acquire(self.d.trunks["t"], "out")
        self.assertEqual(self.d.status(), [{"name": "t", "state": "no registration", "last": "",
                                            "next_refresh": None, "in": 0, "out": 1}])


class RegistrationFollowsStoreTests(DispatcherTestCase):
    def registers(self):
        return [(str(m.from_.uri), dest) for m, dest in self.sent()
                if m.is_request and m.method == "REGISTER"]

    def test_start_change_and_stop(self):
        self.store.put_trunk(trunk("ims", register=True, proxy="127.0.0.2:5070"))
        self.store.put_trunk(trunk("quiet"))
        self.d.reload()
        self.assertEqual(sorted(self.d.registrations), ["ims"])
        self.assertEqual(self.registers(), [("sip:+8675512345678@gd.ctcims.cn",
                                             Address("udp", "127.0.0.2", 5070))])
        first = self.d.registrations["ims"]
        self.d.reload()                                     # nothing changed: same client
        self.assertIs(self.d.registrations["ims"], first)
        self.assertEqual(self.registers(), [])
        self.store.put_trunk(trunk("ims", register=True, proxy="127.0.0.2:5071"), replace=True)
        self.d.reload()
        self.assertTrue(first.stopped)
        self.assertEqual([d for _, d in self.registers()], [Address("udp", "127.0.0.2", 5071)])
        second = self.d.registrations["ims"]
        self.store.put_trunk(trunk("ims", register=False, proxy="127.0.0.2:5071"), replace=True)
        self.d.reload()
        self.assertTrue(second.stopped)
        self.assertEqual(self.d.registrations, {})

    def test_removed_trunk_stops_registering(self):
        self.store.put_trunk(trunk("ims", register=True, proxy="127.0.0.2:5070"))
        self.d.reload()
        reg = self.d.registrations["ims"]
        self.store.remove_trunk("ims")
        self.d.reload()
        self.assertTrue(reg.stopped)
        self.d.stop()


class UnresolvedHostTests(DispatcherTestCase):
    """A trunk whose proxy (or domain) does not resolve: no REGISTER to a host name (the
    UDP transport only takes addresses), "unreachable" in the store, outbound calls refused
    with 503 (the route's next trunk is tried), and resolution retried with back-off."""

    def advance(self, seconds):
        self.clock.advance(seconds)
        self.core.handle_timer(self.clock.seconds())

    def test_unreachable_until_it_resolves(self):
        self.store.put_trunk(trunk("lost", register=True))           # domain gd.ctcims.cn
        self.d.reload()
        self.assertEqual(self.sent(), [])
        status = self.store.list_trunk_status()["lost"]
        self.assertEqual((status["state"], status["last_reason"]),
                         ("unreachable", "cannot resolve gd.ctcims.cn"))
        t = self.d.trunks["lost"]
        self.assertEqual(self.d.acquire(t, "out"), 503)
        self.assertEqual(self.d.acquire(t, "in"), 0)
        lookups = self.resolved.count("gd.ctcims.cn")
        self.advance(5)
        self.assertEqual(self.resolved.count("gd.ctcims.cn"), lookups + 1)
        self.advance(9.9)                                            # back-off: 10 s next
        self.assertEqual(self.resolved.count("gd.ctcims.cn"), lookups + 1)
        self.assertEqual(self.sent(), [])
        self.names["gd.ctcims.cn"] = "127.0.0.7"
        self.advance(0.1)
        sent = self.sent()
        self.assertEqual([(m.method, d) for m, d in sent],
                         [("REGISTER", Address("udp", "127.0.0.7", 5060))])
        self.assertEqual(self.d.acquire(t, "out"), 0)
        self.assertEqual(self.d.inbound_trunk("127.0.0.7").name, "lost")
        self.advance(600)
        self.assertEqual(self.resolved.count("gd.ctcims.cn"), lookups + 2)   # no more retries

    def test_back_off_is_capped_and_stop_cancels(self):
        from mss.trunk.dispatcher import RESOLVE_RETRY_CAP
        self.store.put_trunk(trunk("lost"))
        self.d.reload()
        for _ in range(12):
            self.advance(RESOLVE_RETRY_CAP)
        self.assertEqual(self.d._resolve_backoff, RESOLVE_RETRY_CAP)
        self.d.stop()
        before = len(self.resolved)
        self.advance(RESOLVE_RETRY_CAP * 2)
        self.assertEqual(len(self.resolved), before)
