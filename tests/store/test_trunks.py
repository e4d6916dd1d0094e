# -*- test-case-name: tests.store.test_trunks -*-
"""Tests for mss.store.sqlite_trunks: trunks, outbound routes, DIDs and registration state in
the SQLite store (migration 4)."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.store.interface import StoreError
from mss.store.sqlite import SQLiteStore
from mss.store.records import Trunk


def trunk(name="ims", **changes) -> Trunk:
    values = dict(name=name, domain="gd.ctcims.cn", account="+8675512345678",
                  password="pw", proxy="127.0.0.2:5070", auth_id="+8675512345678@gd.ctcims.cn")
    values.update(changes)
    return Trunk(**values)


class StoreTestCase(SynchronousTestCase):
    def setUp(self):
        self.path = self.mktemp() + ".sqlite"
        self.store = SQLiteStore(self.path)
        self.addCleanup(self.store.close)

    def reopen(self) -> SQLiteStore:
        other = SQLiteStore(self.path)
        self.addCleanup(other.close)
        return other


class TrunkTests(StoreTestCase):
    def test_round_trip_every_field(self):
        t = trunk(register=False, expires=120, from_user="+86755", from_display="ACME",
                  identity="pai", allow=("127.0.0.2", "10.0.0.0/8"), max_in=0, max_out=3,
                  prack="required", uri_format="tel", enabled=False)
        self.store.put_trunk(t)
        self.assertEqual(self.reopen().get_trunk("ims"), t)
        self.assertEqual(self.store.list_trunks(), [t])

    def test_unlimited_is_none_not_zero(self):
        self.store.put_trunk(trunk())
        got = self.store.get_trunk("ims")
        self.assertEqual((got.max_in, got.max_out), (None, None))

    def test_duplicate_refused_replace_allowed(self):
        self.store.put_trunk(trunk())
        self.assertRaises(StoreError, self.store.put_trunk, trunk(password="other"))
        self.store.put_trunk(trunk(password="other"), replace=True)
        self.assertEqual(self.store.get_trunk("ims").password, "other")
        self.assertEqual(len(self.store.list_trunks()), 1)

    def test_invalid_trunk_is_a_store_error_and_writes_nothing(self):
        for bad in (trunk(name="bad name"), trunk(prack="maybe"), trunk(max_out=-1),
                    trunk(proxy="host:0")):
            self.assertRaises(StoreError, self.store.put_trunk, bad)
        self.assertEqual(self.store.list_trunks(), [])

    def test_list_in_name_order_and_remove(self):
        for name in ("b", "a", "c"):
            self.store.put_trunk(trunk(name))
        self.assertEqual([t.name for t in self.store.list_trunks()], ["a", "b", "c"])
        self.assertTrue(self.store.remove_trunk("b"))
        self.assertFalse(self.store.remove_trunk("b"))
        self.assertIsNone(self.store.get_trunk("b"))

    def test_remove_refused_while_a_route_uses_it(self):
        self.store.put_trunk(trunk("a"))
        self.store.put_trunk(trunk("b"))
        rid = self.store.add_route("0", ["b", "a"])
        e = self.assertRaises(StoreError, self.store.remove_trunk, "a")
        self.assertIn(f"route {rid}", str(e))
        self.store.remove_route(rid)
        self.assertTrue(self.store.remove_trunk("a"))


class StatusTests(StoreTestCase):
    def test_put_replaces_and_remove_trunk_drops_it(self):
        self.store.put_trunk(trunk())
        self.store.put_trunk_status("ims", "registering", 0, "", None, 100.0)
        self.store.put_trunk_status("ims", "registered", 200, "OK", 3700.0, 160.0)
        self.assertEqual(self.reopen().list_trunk_status(), {"ims": {
            "state": "registered", "last_status": 200, "last_reason": "OK",
            "next_refresh": 3700.0, "updated": 160.0}})
        self.store.remove_trunk("ims")
        self.assertEqual(self.store.list_trunk_status(), {})


class RouteTests(StoreTestCase):
    def setUp(self):
        super().setUp()
        self.store.put_trunk(trunk("a"))
        self.store.put_trunk(trunk("b"))

    def test_round_trip_and_match_order(self):
        r1 = self.store.add_route("0", ["a"])
        r2 = self.store.add_route("00", ["b", "a"], strip=2, prepend="+", extensions=["1001"])
        r3 = self.store.add_route("0", ["b"], length=11)
        r4 = self.store.add_route("", ["a"])
        routes = self.reopen().list_routes()
        self.assertEqual([r.id for r in routes], [r2, r3, r1, r4])
        self.assertEqual((routes[0].prefix, routes[0].trunks, routes[0].strip,
                          routes[0].prepend, routes[0].extensions, routes[0].length),
                         ("00", ("b", "a"), 2, "+", ("1001",), None))
        self.assertEqual(routes[1].length, 11)

    def test_bad_routes(self):
        for args, kwargs in ((("0x", ["a"]), {}), (("0", []), {}), (("0", ["nope"]), {}),
                             (("0", ["a"]), {"strip": -1}), (("0", ["a"]), {"length": 0}),
                             (("0", ["a"]), {"prepend": "+8+6"})):
            self.assertRaises(StoreError, self.store.add_route, *args, **kwargs)
        self.assertEqual(self.store.list_routes(), [])

    def test_remove(self):
        rid = self.store.add_route("0", ["a"])
        self.assertTrue(self.store.remove_route(rid))
        self.assertFalse(self.store.remove_route(rid))


class DIDTests(StoreTestCase):
    def setUp(self):
        super().setUp()
        self.store.add_extension("1001", "pw-1001", "mss.test")

    def test_add_replace_list_remove(self):
        self.store.add_did("+8675512345678", "1001")
        self.store.add_did("2000", "1001")
        self.assertEqual(self.reopen().list_dids(), {"+8675512345678": "1001", "2000": "1001"})
        self.store.add_extension("1002", "pw-1002", "mss.test")
        self.store.add_did("2000", "1002")
        self.assertEqual(self.store.list_dids()["2000"], "1002")
        self.assertTrue(self.store.remove_did("2000"))
        self.assertFalse(self.store.remove_did("2000"))

    def test_unknown_extension_and_bad_numbers(self):
        self.assertRaises(StoreError, self.store.add_did, "2000", "1999")
        for bad in ("20a0", "", "+", "2 000", "1" * 33):
            self.assertRaises(StoreError, self.store.add_did, bad, "1001")
        self.assertEqual(self.store.list_dids(), {})

    def test_removing_the_extension_removes_its_dids(self):
        self.store.add_did("2000", "1001")
        self.store.remove_extension("1001")
        self.assertEqual(self.store.list_dids(), {})
