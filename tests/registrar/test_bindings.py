# -*- test-case-name: tests.registrar.test_bindings -*-
"""Tests for mss.registrar.bindings: the location service, its expiry timers, the multi-device
rule and write-through to the store."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.registrar.bindings import BindingTable
from mss.sip.address import Address
from mss.sip.timers import TimerHeap
from mss.store.interface import Binding, StoreError
from mss.store.sqlite import SQLiteStore


def binding(aor="1001", n=1, at=100.0, expires=3600.0, transport="udp", call_id="c"):
    contact = f"sip:{aor}@192.0.2.{n}:5060"
    return Binding(aor=aor, key=contact, contact=contact, expires_at=at + expires, call_id=call_id,
                   cseq=1, transport=transport, source_host=f"192.0.2.{n}", source_port=5060,
                   registered_at=at)


class BindingTableTests(SynchronousTestCase):
    def setUp(self):
        self.store = SQLiteStore(":memory:")
        self.addCleanup(self.store.close)
        self.timers = TimerHeap()
        self.ends: list = []                    # work asked for the end of the turn
        self.table = BindingTable(self.store, self.timers, self.end_of_turn, max_devices=3)
        self.changes = []
        self.table.listeners.append(self.changes.append)

    def stored(self):
        return sorted(b.contact for b in self.store.list_bindings(0))

    def end_of_turn(self, fn):
        if fn not in self.ends:
            self.ends.append(fn)

    def turn(self):
        """What the core does at the end of the reactor turn: the group commit."""
        ends, self.ends = self.ends, []
        for fn in ends:
            fn()

    def test_put_get_write_through(self):
        b = binding()
        self.assertEqual(self.table.put(b), [])
        self.assertEqual(self.table.get("1001"), [b])
        self.assertEqual(self.stored(), [])          # queued for the end of the turn
        self.assertEqual(self.ends, [self.table.flush])
        self.turn()
        self.assertEqual(self.stored(), [b.contact])
        self.assertEqual(len(self.table), 1)
        self.assertEqual(self.table.aors(), ["1001"])
        self.assertEqual(self.changes, ["1001"])

    def test_group_commit(self):
        """Bindings put in one turn are committed in one store transaction, then the
        ``when_stored`` callbacks run; with nothing queued a callback runs at once."""
        batches = []
        put_many = self.store.put_bindings

        def recording(bindings):
            batches.append([b.aor for b in bindings])
            put_many(bindings)
        self.store.put_bindings = recording
        called = []
        self.table.when_stored(lambda: called.append("idle"))
        self.assertEqual(called, ["idle"])
        self.table.put(binding(aor="1001"))
        self.table.when_stored(lambda: called.append(("first", self.stored())))
        self.table.put(binding(aor="1002", n=2))
        self.table.when_stored(lambda: called.append("second"))
        self.assertEqual((batches, called), ([], ["idle"]))
        self.turn()
        self.assertEqual(batches, [["1001", "1002"]])
        self.assertEqual(called, ["idle", ("first", ["sip:1001@192.0.2.1:5060",
                                                     "sip:1002@192.0.2.2:5060"]), "second"])
        self.assertEqual(self.timers.next_deadline(), 100 + 3600)    # flush timer used up

    def test_removal_commits_queue_first(self):
        b = binding()
        self.table.put(b)
        self.table.remove(b.aor, b.key)
        self.assertEqual(self.stored(), [])
        self.turn()
        self.assertEqual(self.stored(), [])
        self.assertIsNone(self.timers.next_deadline())

    def test_failed_binding_costs_only_its_waiters(self):
        """A batch that fails is written one by one; a callback runs only when every
        binding put before it was stored."""
        def no_batch(bindings):
            raise StoreError("batch failed")
        self.store.put_bindings = no_batch
        put_one = self.store.put_binding

        def picky(b):
            if b.aor == "1002":
                raise StoreError("no room for 1002")
            put_one(b)
        self.store.put_binding = picky
        called = []
        self.table.put(binding(aor="1001"))
        self.table.when_stored(lambda: called.append("1001"))
        self.table.put(binding(aor="1002", n=2))
        self.table.when_stored(lambda: called.append("1002"))
        self.table.put(binding(aor="1003", n=3))
        self.table.when_stored(lambda: called.append("1003"))
        self.turn()
        self.assertEqual(called, ["1001"])
        self.assertEqual(self.stored(), ["sip:1001@192.0.2.1:5060", "sip:1003@192.0.2.3:5060"])
        self.assertEqual(len(self.flushLoggedErrors(StoreError)), 1)     # the one binding

    def test_find(self):
        b = binding()
        self.table.put(b)
        self.assertEqual(self.table.find("1001", b.key), b)
        self.assertIsNone(self.table.find("1001", "sip:other@192.0.2.9"))
        self.assertIsNone(self.table.find("1002", b.key))

    def test_refresh_keeps_first_registration_time(self):
        self.table.put(binding(at=100))
        self.table.put(binding(at=500))
        (b,) = self.table.get("1001")
        self.assertEqual((b.registered_at, b.expires_at), (100, 500 + 3600))

    def test_single_device_newest_wins(self):
        self.table.put(binding(n=1, at=100))
        dropped = self.table.put(binding(n=2, at=200))
        self.assertEqual([b.contact for b in dropped], ["sip:1001@192.0.2.1:5060"])
        self.assertEqual([b.contact for b in self.table.get("1001")], ["sip:1001@192.0.2.2:5060"])
        self.assertEqual(self.stored(), ["sip:1001@192.0.2.2:5060"])

    def test_multi_device_limit_drops_oldest(self):
        for n in range(1, 5):
            self.table.put(binding(n=n, at=100 * n), multi_device=True)
        self.assertEqual(sorted(b.contact for b in self.table.get("1001")),
                         [f"sip:1001@192.0.2.{n}:5060" for n in (2, 3, 4)])
        self.assertEqual(len(self.stored()), 3)

    def test_just_registered_stays_even_if_clock_says_older(self):
        """The device registering now is kept, even with a registered_at older than others."""
        self.table.put(binding(n=1, at=500))
        self.table.put(binding(n=2, at=100))
        self.assertEqual([b.contact for b in self.table.get("1001")], ["sip:1001@192.0.2.2:5060"])

    def test_enforce_when_permission_removed(self):
        for n in range(1, 4):
            self.table.put(binding(n=n, at=100 * n), multi_device=True)
        dropped = self.table.enforce("1001", multi_device=False)
        self.assertEqual(len(dropped), 2)
        self.assertEqual([b.contact for b in self.table.get("1001")], ["sip:1001@192.0.2.3:5060"])
        self.assertEqual(self.stored(), ["sip:1001@192.0.2.3:5060"])
        self.assertEqual(self.table.enforce("1001", multi_device=False), [])

    def test_expiry_timer(self):
        self.table.put(binding(at=100, expires=60))
        self.turn()
        self.assertEqual(self.timers.next_deadline(), 160)
        self.timers.run_due(159)
        self.assertEqual(len(self.table), 1)
        self.timers.run_due(160)
        self.assertEqual(len(self.table), 0)
        self.assertEqual(self.stored(), [])
        self.assertEqual(self.table.aors(), [])

    def test_refresh_rearms_timer(self):
        self.table.put(binding(at=100, expires=60))
        self.table.put(binding(at=150, expires=60))
        self.timers.run_due(170)
        self.assertEqual(len(self.table), 1)
        self.assertEqual(self.timers.next_deadline(), 210)

    def test_remove_cancels_timer(self):
        self.table.put(binding())
        self.table.remove("1001", "sip:1001@192.0.2.1:5060")
        self.assertIsNone(self.timers.next_deadline())
        self.assertEqual(self.stored(), [])
        self.table.remove("1001", "nothing")                    # harmless

    def test_remove_all(self):
        self.table.put(binding(n=1), multi_device=True)
        self.table.put(binding(n=2), multi_device=True)
        self.table.put(binding(aor="1002"))
        self.table.remove_all("1001")
        self.assertEqual(self.table.get("1001"), [])
        self.assertEqual(self.table.aors(), ["1002"])
        self.assertEqual(len(self.stored()), 1)

    def test_load_prunes_expired_and_arms_timers(self):
        self.table.put(binding(n=1, at=100, expires=1000), multi_device=True)
        self.table.put(binding(n=2, at=100, expires=50), multi_device=True)
        self.turn()
        fresh = BindingTable(self.store, TimerHeap(), self.end_of_turn)
        self.assertEqual(fresh.load(now=500), 1)
        self.assertEqual([b.contact for b in fresh.get("1001")], ["sip:1001@192.0.2.1:5060"])
        self.assertEqual(fresh.timers.next_deadline(), 1100)
        self.assertEqual(self.stored(), ["sip:1001@192.0.2.1:5060"])

    def test_address_of_keeps_tcp_connection(self):
        conn = object()
        b = binding(transport="tcp")
        self.table.put(b, connection=conn)
        address = self.table.address_of(b)
        self.assertEqual(address, Address("tcp", "192.0.2.1", 5060))
        self.assertIs(address.connection, conn)
        # a refresh over UDP forgets the connection
        self.table.put(binding(at=200))
        self.assertIsNone(self.table.address_of(b).connection)
