# -*- test-case-name: tests.store.test_sqlite -*-
"""Tests for mss.store.sqlite.SQLiteStore (and the data classes in mss.store.interface)."""
from __future__ import annotations

import os
import sqlite3
import stat

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from mss.sip.digest.client import authorization
from mss.sip.digest.hashing import ha1
from mss.sip.digest.headers import parse_challenge, parse_credentials
from mss.sip.digest.server import challenge, verify
from mss.store.interface import (
    Ban, Binding, ExtensionExists, IStore, NoSuchExtension, StoreError)
from mss.store.schema import MIGRATIONS
from mss.store.sqlite import SQLiteStore

REALM = "mss.local"


def binding(aor="1001", key="<urn:uuid:1>", expires_at=1060.0, **kw) -> Binding:
    values = dict(aor=aor, key=key, contact="sip:1001@192.0.2.10:5060", expires_at=expires_at,
                  call_id="abc@192.0.2.10", cseq=7, transport="udp", source_host="192.0.2.10",
                  source_port=5060, registered_at=1000.0, q=0.5, user_agent="Phone/1.0",
                  instance="<urn:uuid:1>")
    values.update(kw)
    return Binding(**values)


class StoreTestMixin:
    def setUp(self):
        self.path = os.path.join(self.mktemp(), "sub", "mss.sqlite")
        self.store = SQLiteStore(self.path)
        self.addCleanup(self.store.close)

    def reopen(self) -> SQLiteStore:
        self.store.close()
        self.store = SQLiteStore(self.path)
        return self.store


class OpenTests(StoreTestMixin, SynchronousTestCase):
    def test_interface(self):
        self.assertTrue(verifyObject(IStore, self.store))

    def test_file_created_private_wal(self):
        self.assertTrue(os.path.exists(self.path))
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode) & 0o077, 0)
        conn = sqlite3.connect(self.path)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(conn.execute("SELECT version FROM schema_version").fetchone()[0],
                         len(MIGRATIONS))
        self.assertEqual(self.store.schema_version(), len(MIGRATIONS))

    def test_synchronous_normal(self):
        self.assertEqual(self.store._conn.execute("PRAGMA synchronous").fetchone()[0], 1)

    def test_not_a_database(self):
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"this is not sqlite" * 100)
        e = self.assertRaises(StoreError, SQLiteStore, path)
        self.assertIn(path, str(e))

    def test_unwritable_directory(self):
        base = self.mktemp()
        os.makedirs(base)
        blocker = os.path.join(base, "file")
        open(blocker, "w").close()
        e = self.assertRaises(StoreError, SQLiteStore, os.path.join(blocker, "x.sqlite"))
        self.assertIn("cannot create", str(e))

    def test_memory(self):
        s = SQLiteStore(":memory:")
        self.addCleanup(s.close)
        s.add_extension("1", "pw", REALM)
        self.assertEqual(s.get_extension("1").number, "1")


class ExtensionTests(StoreTestMixin, SynchronousTestCase):
    def test_add_get(self):
        ext = self.store.add_extension("1001", "secret", REALM, name="Alice",
                                       permissions=["multi_device"], call_level=3)
        self.assertEqual(self.store.get_extension("1001"), ext)
        self.assertEqual((ext.number, ext.name, ext.enabled, ext.permissions, ext.call_level, ext.realm),
                         ("1001", "Alice", True, frozenset({"multi_device"}), 3, REALM))
        self.assertTrue(ext.has("multi_device"))
        self.assertIsNone(self.store.get_extension("1002"))
        self.assertEqual(len({ext, self.store.get_extension("1001")}), 1)    # hashable

    def test_password_change_is_visible_in_equality(self):
        before = self.store.add_extension("1001", "old", REALM)
        self.store.set_password("1001", "new", REALM)
        self.assertNotEqual(self.store.get_extension("1001"), before)
        self.assertNotIn("ha1", repr(before))

    def test_ha1_values_not_password(self):
        ext = self.store.add_extension("1001", "secret", REALM)
        self.assertEqual(len(ext.ha1), 4)
        for alg in ("MD5", "SHA-256"):
            for user in ("1001", "1001@mss.local"):
                self.assertEqual(ext.ha1[(alg, user)], ha1(alg, user, REALM, "secret"))
                self.assertEqual(ext.ha1_for(alg, user, REALM), ext.ha1[(alg, user)])
        self.assertEqual(ext.ha1_for("SHA-256-sess", "1001", REALM), ext.ha1[("SHA-256", "1001")])
        self.assertIsNone(ext.ha1_for("MD5", "1001", "other.realm"))
        self.assertIsNone(ext.ha1_for("MD5", "1002", REALM))
        self.store.close()
        with open(self.path, "rb") as f:
            self.assertNotIn(b"secret", f.read())
        for suffix in ("-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                with open(self.path + suffix, "rb") as f:
                    self.assertNotIn(b"secret", f.read())
        self.store = SQLiteStore(self.path)

    def test_verify_against_stored_ha1(self):
        self.store.add_extension("1001", "pw", REALM)
        ext = self.store.get_extension("1001")
        chal = parse_challenge(challenge(REALM, "n", "SHA-256"))
        creds = parse_credentials(
            authorization(chal, "1001@mss.local", "pw", "REGISTER", "sip:mss.local", "c"))
        self.assertTrue(verify(creds, ext.ha1_for(creds.algorithm, creds.username, creds.realm),
                               "REGISTER"))

    def test_duplicate(self):
        self.store.add_extension("1001", "a", REALM)
        e = self.assertRaises(ExtensionExists, self.store.add_extension, "1001", "b", REALM)
        self.assertEqual(str(e), "extension 1001 already exists")

    def test_number_validation(self):
        for bad, message in (("", "empty"), ("12a", "digits"), ("+", "digits"), ("1 2", "digits"),
                             ("1" * 33, "longer than 32"), ("++1", "digits"), (1001, "text")):
            e = self.assertRaises(StoreError, self.store.add_extension, bad, "pw", REALM)
            self.assertIn(message, str(e))
        self.store.add_extension("+4930123", "pw", REALM)
        self.store.add_extension("1" * 32, "pw", REALM)
        self.store.add_extension("+" + "1" * 31, "pw", REALM)
        self.assertEqual(len(self.store.list_extensions()), 3)

    def test_other_validation(self):
        self.assertRaises(StoreError, self.store.add_extension, "1", "", REALM)
        self.assertRaises(StoreError, self.store.add_extension, "1", "pw", "")
        self.assertRaises(StoreError, self.store.add_extension, "1", "pw", REALM, permissions=["Bad Name"])
        self.assertRaises(StoreError, self.store.add_extension, "1", "pw", REALM, call_level=100)
        self.assertRaises(StoreError, self.store.add_extension, "1", "pw", REALM, call_level=True)
        self.assertEqual(self.store.list_extensions(), [])

    def test_list_ordered(self):
        for n in ("200", "1001", "30", "1000"):
            self.store.add_extension(n, "pw", REALM)
        self.store.set_permission("1000", "break_in", True)
        exts = self.store.list_extensions()
        self.assertEqual([e.number for e in exts], ["30", "200", "1000", "1001"])
        self.assertEqual(exts[2].permissions, frozenset({"break_in"}))
        self.assertEqual(exts[2], self.store.get_extension("1000"))

    def test_remove(self):
        self.store.add_extension("1001", "pw", REALM, permissions=["forward"])
        self.store.add_extension("1002", "pw", REALM)
        self.store.put_binding(binding("1001", "a"))
        self.store.put_binding(binding("sip:1001@mss.local", "b"))
        self.store.put_binding(binding("1002", "a"))
        self.assertTrue(self.store.remove_extension("1001"))
        self.assertFalse(self.store.remove_extension("1001"))
        self.assertIsNone(self.store.get_extension("1001"))
        self.assertEqual([b.aor for b in self.store.load_bindings(0)], ["1002"])
        self.store.add_extension("1001", "pw", REALM)
        self.assertEqual(self.store.get_extension("1001").permissions, frozenset())

    def test_set_password(self):
        self.store.add_extension("1001", "old", REALM)
        self.store.set_password("1001", "new", "other.realm")
        ext = self.store.get_extension("1001")
        self.assertEqual(ext.realm, "other.realm")
        self.assertEqual(ext.ha1_for("MD5", "1001@other.realm", "other.realm"),
                         ha1("MD5", "1001@other.realm", "other.realm", "new"))
        e = self.assertRaises(NoSuchExtension, self.store.set_password, "9", "x", REALM)
        self.assertEqual(str(e), "extension 9 does not exist")

    def test_permissions(self):
        self.store.add_extension("1001", "pw", REALM)
        self.store.set_permission("1001", "multi_device", True)
        self.store.set_permission("1001", "call-waiting-off", True)
        self.store.set_permission("1001", "multi_device", True)
        self.assertEqual(self.store.get_extension("1001").permissions,
                         frozenset({"multi_device", "call_waiting_off"}))
        self.store.set_permission("1001", "multi_device", False)
        self.store.set_permission("1001", "overstep", False)
        self.assertEqual(self.store.get_extension("1001").permissions, frozenset({"call_waiting_off"}))
        self.assertRaises(NoSuchExtension, self.store.set_permission, "9", "forward", True)
        self.assertRaises(StoreError, self.store.set_permission, "1001", "DROP TABLE", True)

    def test_enable_and_level(self):
        self.store.add_extension("1001", "pw", REALM)
        self.store.set_enabled("1001", False)
        self.assertFalse(self.store.get_extension("1001").enabled)
        self.store.set_enabled("1001", True)
        self.assertTrue(self.store.get_extension("1001").enabled)
        self.store.set_call_level("1001", 7)
        self.assertEqual(self.store.get_extension("1001").call_level, 7)
        self.assertRaises(StoreError, self.store.set_call_level, "1001", -1)
        self.assertRaises(NoSuchExtension, self.store.set_enabled, "9", True)
        self.assertRaises(NoSuchExtension, self.store.set_call_level, "9", 1)

    def test_digest_mode(self):
        self.store.add_extension("1001", "pw", REALM)
        self.assertEqual(self.store.get_extension("1001").digest, "")
        self.assertEqual(self.store.get_extension("1001").digest_algorithms(("MD5",)), ("MD5",))
        self.store.set_digest("1001", "sha-256")
        ext = self.store.get_extension("1001")
        self.assertEqual(ext.digest_algorithms(("MD5",)), ("SHA-256",))
        self.assertEqual(self.store.list_extensions()[0].digest, "sha-256")
        self.assertRaises(StoreError, self.store.set_digest, "1001", "SHA-512")
        self.assertRaises(NoSuchExtension, self.store.set_digest, "9", "md5")

    def test_persistence(self):
        self.store.add_extension("1001", "pw", REALM, name="Bob", permissions=["multi_device"])
        self.store.put_binding(binding())
        self.store.put_ban("192.0.2.66", 5000.0, "auth failures")
        self.store.set_service_setting("voicemail", "greeting", {"lang": "en"})
        before = self.store.get_extension("1001")
        store = self.reopen()
        self.assertEqual(store.get_extension("1001"), before)
        self.assertEqual(store.get_extension("1001").ha1, before.ha1)
        self.assertEqual(store.load_bindings(1000.0), [binding()])
        self.assertEqual(store.list_bans(1000.0), [Ban("192.0.2.66", 5000.0, "auth failures")])
        self.assertEqual(store.get_service_settings("voicemail"), {"greeting": {"lang": "en"}})


class BindingTests(StoreTestMixin, SynchronousTestCase):
    def test_put_replace_load(self):
        self.store.put_binding(binding(key="a"))
        self.store.put_binding(binding(key="b", q=None))
        self.store.put_binding(binding(key="a", contact="sip:1001@192.0.2.11", cseq=8))
        live = self.store.load_bindings(1000.0)
        self.assertEqual(live, [binding(key="a", contact="sip:1001@192.0.2.11", cseq=8),
                                binding(key="b", q=None)])
        self.assertIsNone(live[1].q)

    def test_expired_deleted_on_load(self):
        self.store.put_binding(binding(key="old", expires_at=1000.0))
        self.store.put_binding(binding(key="new", expires_at=1000.5))
        self.assertEqual([b.key for b in self.store.load_bindings(1000.0)], ["new"])
        self.assertEqual(self.store._conn.execute("SELECT count(*) FROM bindings").fetchone()[0], 1)

    def test_delete(self):
        self.store.put_binding(binding(key="a"))
        self.store.put_binding(binding(key="b"))
        self.store.put_binding(binding(aor="1002", key="a"))
        self.assertTrue(self.store.delete_binding("1001", "a"))
        self.assertFalse(self.store.delete_binding("1001", "a"))
        self.assertEqual(self.store.delete_bindings("1001"), 1)
        self.assertEqual([(b.aor, b.key) for b in self.store.load_bindings(0)], [("1002", "a")])

    def test_bad_binding(self):
        self.assertRaises(StoreError, self.store.put_binding, binding(transport="sctp"))
        self.assertRaises(StoreError, self.store.put_binding, binding(expires_at=float("inf")))
        self.assertRaises(StoreError, self.store.put_binding, ("not", "a", "binding"))


class BanTests(StoreTestMixin, SynchronousTestCase):
    def test_bans(self):
        self.store.put_ban("192.0.2.1", 1600.0, "auth failures")
        self.store.put_ban("2001:db8::1", 1100.0, "scanner")
        self.assertEqual(self.store.list_bans(1000.0), [Ban("192.0.2.1", 1600.0, "auth failures"),
                                                         Ban("2001:db8::1", 1100.0, "scanner")])
        self.assertEqual(self.store.list_bans(1100.0), [Ban("192.0.2.1", 1600.0, "auth failures")])
        self.store.put_ban("192.0.2.1", 2000.0, "again")
        self.assertEqual(self.store.list_bans(1000.0)[0], Ban("192.0.2.1", 2000.0, "again"))
        self.assertTrue(self.store.remove_ban("192.0.2.1"))
        self.assertFalse(self.store.remove_ban("192.0.2.1"))
        self.assertEqual(self.store.purge_bans(1100.0), 1)
        self.assertEqual(self.store.list_bans(0), [])
        self.assertRaises(StoreError, self.store.put_ban, "", 1.0, "x")


class ServiceDataTests(StoreTestMixin, SynchronousTestCase):
    def test_settings(self):
        self.store.set_service_setting("vm", "max_seconds", 120)
        self.store.set_service_setting("vm", "greeting", "hello")
        self.store.set_service_setting("other", "x", [1, 2])
        self.assertEqual(self.store.get_service_settings("vm"), {"max_seconds": 120, "greeting": "hello"})
        self.store.set_service_setting("vm", "greeting", None)
        self.store.set_service_setting("vm", "never-set", None)
        self.assertEqual(self.store.get_service_settings("vm"), {"max_seconds": 120})
        self.assertEqual(self.store.get_service_settings("nothing"), {})

    def test_extension_data(self):
        self.store.set_extension_data("forward", "1001", "target", "1002")
        self.store.set_extension_data("forward", "1001", "on", True)
        self.store.set_extension_data("forward", "1002", "on", False)
        self.assertEqual(self.store.get_extension_data("forward", "1001"), {"target": "1002", "on": True})
        self.store.set_extension_data("forward", "1001", "on", None)
        self.assertEqual(self.store.get_extension_data("forward", "1001"), {"target": "1002"})
        self.assertEqual(self.store.get_extension_data("forward", "1002"), {"on": False})

    def test_rows(self):
        a = self.store.add_row("speed", "entries", {"code": "1", "target": "0301234"})
        b = self.store.add_row("speed", "entries", {"code": "2"})
        self.store.add_row("speed", "other", {"x": 1})
        self.assertLess(a, b)
        self.assertEqual(self.store.list_rows("speed", "entries"),
                         [(a, {"code": "1", "target": "0301234"}), (b, {"code": "2"})])
        self.assertTrue(self.store.remove_row("speed", "entries", a))
        self.assertFalse(self.store.remove_row("speed", "entries", a))
        self.assertFalse(self.store.remove_row("speed", "other", b))
        self.assertEqual(self.store.list_rows("speed", "entries"), [(b, {"code": "2"})])
        c = self.store.add_row("speed", "entries", {})
        self.assertGreater(c, b)

    def test_bad_values(self):
        self.assertRaises(StoreError, self.store.set_service_setting, "vm", "k", object())
        self.assertRaises(StoreError, self.store.set_service_setting, "vm", "k", float("nan"))
        self.assertRaises(StoreError, self.store.set_service_setting, "vm", "k", "x" * 70000)
        self.assertRaises(StoreError, self.store.set_service_setting, "bad name", "k", 1)
        self.assertRaises(StoreError, self.store.set_service_setting, "vm", "", 1)
        self.assertRaises(StoreError, self.store.set_service_setting, "vm", "a\nb", 1)
        self.assertRaises(StoreError, self.store.add_row, "vm", "t", [1, 2])
        self.assertRaises(StoreError, self.store.list_rows, "vm", "")
        self.assertEqual(self.store.get_service_settings("vm"), {})


class DataVersionTests(StoreTestMixin, SynchronousTestCase):
    def test_other_connection_commit_changes_version(self):
        other = SQLiteStore(self.path)
        self.addCleanup(other.close)
        v0 = self.store.data_version()
        self.store.add_extension("1001", "pw", REALM)       # our own write: no change
        self.assertEqual(self.store.data_version(), v0)
        other.set_enabled("1001", False)
        v1 = self.store.data_version()
        self.assertNotEqual(v1, v0)
        self.assertFalse(self.store.get_extension("1001").enabled)
        self.assertEqual(self.store.data_version(), v1)     # stable until the next commit
        other.set_service_setting("vm", "x", 1)
        self.assertNotEqual(self.store.data_version(), v1)

    def test_busy_write_is_a_store_error(self):
        other = SQLiteStore(self.path, busy_timeout=0.01)
        self.addCleanup(other.close)
        self.store._conn.execute("BEGIN IMMEDIATE")
        try:
            e = self.assertRaises(StoreError, other.add_extension, "1", "pw", REALM)
            self.assertIn("busy", str(e))
        finally:
            self.store._conn.execute("ROLLBACK")
        other.add_extension("1", "pw", REALM)
