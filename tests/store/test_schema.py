# -*- test-case-name: tests.store.test_schema -*-
"""Tests for mss.store.schema: ordered migrations, upgrades of older files, refusals."""
from __future__ import annotations

import os
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from mss.store import schema
from mss.store.interface import Extension, StoreError
from mss.store.schema import MIGRATIONS, Migration, migrate
from mss.store.sqlite import SQLiteStore, _ha1_to_json, compute_ha1

NEXT = len(MIGRATIONS) + 1          # the version an appended migration gets


def tables(path: str) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


class MigrationTests(SynchronousTestCase):
    def setUp(self):
        self.path = os.path.join(self.mktemp(), "mss.sqlite")

    def test_upgrade_from_version_1_keeps_data(self):
        old = SQLiteStore(self.path, migrations=MIGRATIONS[:1])
        self.assertEqual(old.schema_version(), 1)
        ha1 = compute_ha1("1001", "mss.local", "pw")
        with old._write() as conn:      # as version 1 wrote it (today's code reads newer columns)
            conn.execute("INSERT INTO extensions (number, name, enabled, call_level, realm, ha1)"
                         " VALUES ('1001', 'Desk', 1, 3, 'mss.local', ?)", (_ha1_to_json(ha1),))
            conn.execute("INSERT INTO extension_permissions VALUES ('1001', 'multi_device')")
        old.close()
        self.assertNotIn("service_settings", tables(self.path))

        store = SQLiteStore(self.path)
        self.addCleanup(store.close)
        self.assertEqual(store.schema_version(), len(MIGRATIONS))
        self.assertEqual(store.get_extension("1001"), Extension(
            "1001", "Desk", True, frozenset(["multi_device"]), 3, ha1, "mss.local", ""))
        store.set_service_setting("vm", "x", 1)
        self.assertEqual(store.get_service_settings("vm"), {"x": 1})

    def test_appended_migration_runs_once(self):
        extra = MIGRATIONS + (
            Migration(NEXT, "test table", "CREATE TABLE things (name TEXT PRIMARY KEY);\n"
                                          "INSERT INTO things VALUES ('a;b');"),)
        SQLiteStore(self.path).close()
        store = SQLiteStore(self.path, migrations=extra)
        self.assertEqual(store.schema_version(), NEXT)
        store.close()
        store = SQLiteStore(self.path, migrations=extra)     # nothing to do the second time
        self.addCleanup(store.close)
        self.assertEqual(store._read("SELECT name FROM things"), [("a;b",)])

    def test_python_migration(self):
        def fill(conn):
            conn.execute("UPDATE extensions SET name = 'migrated'")
        SQLiteStore(self.path).close()
        s = SQLiteStore(self.path)
        s.add_extension("1", "pw", "r")
        s.close()
        s = SQLiteStore(self.path, migrations=MIGRATIONS + (Migration(NEXT, "names", apply=fill),))
        self.addCleanup(s.close)
        self.assertEqual(s.get_extension("1").name, "migrated")

    def test_failing_migration_rolls_back(self):
        SQLiteStore(self.path).close()
        bad = MIGRATIONS + (Migration(NEXT, "broken", "CREATE TABLE t3 (x);\nINSERT INTO nowhere VALUES (1);"),)
        e = self.assertRaises(StoreError, SQLiteStore, self.path, migrations=bad)
        self.assertIn(f"migration {NEXT} (broken) failed: no such table: nowhere", str(e))
        self.assertNotIn("t3", tables(self.path))
        s = SQLiteStore(self.path)
        self.addCleanup(s.close)
        self.assertEqual(s.schema_version(), len(MIGRATIONS))

    def test_newer_database_refused(self):
        SQLiteStore(self.path).close()
        e = self.assertRaises(StoreError, SQLiteStore, self.path, migrations=MIGRATIONS[:1])
        self.assertIn("newer than this mss knows", str(e))

    def test_migration_list_checked(self):
        conn = sqlite3.connect(":memory:", isolation_level=None)
        self.addCleanup(conn.close)
        gap = (MIGRATIONS[0], Migration(3, "gap", "SELECT 1;"))
        self.assertRaises(StoreError, migrate, conn, gap)
        both = (Migration(1, "both", "SELECT 1;", apply=lambda c: None),)
        self.assertRaises(StoreError, migrate, conn, both)
        self.assertRaises(StoreError, schema._statements, "CREATE TABLE x (a")

    def test_statements_split(self):
        self.assertEqual(schema._statements("CREATE TABLE a (x TEXT DEFAULT ';');\n -- c\nSELECT 1;\n"),
                         ["CREATE TABLE a (x TEXT DEFAULT ';');", "-- c\nSELECT 1;"])
