# -*- test-case-name: tests.store.test_schema -*-
"""The SQLite schema as an ordered list of migrations, and the code that applies them.

The database records its version in ``schema_version``; at start-up every migration with a
higher version runs, in order, each in its own transaction together with the version bump, so
a crash mid-migration leaves the previous version intact. To change the schema, append one
``Migration`` to ``MIGRATIONS`` (never edit a released one)::

    Migration(3, "trunks", '''CREATE TABLE trunks (name TEXT PRIMARY KEY, ...);'''),

``sql`` is a script of ``;``-separated statements; ``apply`` may instead be a callable that
receives the connection (inside the transaction) for migrations that move data with Python.
"""
from __future__ import annotations

import sqlite3
from typing import Callable, Sequence

import attrs

from mss.store.interface import StoreError


@attrs.frozen
class Migration:
    version: int
    description: str
    sql: str = ""
    apply: Callable[[sqlite3.Connection], None] | None = None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "extensions, registration bindings, bans", """
        CREATE TABLE extensions (
            number      TEXT PRIMARY KEY,
            name        TEXT NOT NULL DEFAULT '',
            enabled     INTEGER NOT NULL DEFAULT 1,
            call_level  INTEGER NOT NULL DEFAULT 0,
            realm       TEXT NOT NULL,
            ha1         TEXT NOT NULL              -- JSON {"ALG user": hex}
        );
        CREATE TABLE extension_permissions (
            number      TEXT NOT NULL REFERENCES extensions(number) ON DELETE CASCADE,
            permission  TEXT NOT NULL,
            PRIMARY KEY (number, permission)
        ) WITHOUT ROWID;
        CREATE TABLE bindings (
            aor           TEXT NOT NULL,
            key           TEXT NOT NULL,
            contact       TEXT NOT NULL,
            expires_at    REAL NOT NULL,
            call_id       TEXT NOT NULL,
            cseq          INTEGER NOT NULL,
            transport     TEXT NOT NULL,
            source_host   TEXT NOT NULL,
            source_port   INTEGER NOT NULL,
            registered_at REAL NOT NULL,
            q             REAL,
            user_agent    TEXT NOT NULL DEFAULT '',
            instance      TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (aor, key)
        );
        CREATE INDEX bindings_expires ON bindings(expires_at);
        CREATE TABLE bans (
            address     TEXT PRIMARY KEY,
            until       REAL NOT NULL,
            reason      TEXT NOT NULL DEFAULT ''
        );
    """),
    Migration(2, "generic data of the Lua services", """
        CREATE TABLE service_settings (
            service     TEXT NOT NULL,
            key         TEXT NOT NULL,
            value       TEXT NOT NULL,            -- JSON
            PRIMARY KEY (service, key)
        ) WITHOUT ROWID;
        CREATE TABLE service_extension_data (
            service     TEXT NOT NULL,
            extension   TEXT NOT NULL,
            key         TEXT NOT NULL,
            value       TEXT NOT NULL,            -- JSON
            PRIMARY KEY (service, extension, key)
        ) WITHOUT ROWID;
        CREATE TABLE service_rows (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            service     TEXT NOT NULL,
            tbl         TEXT NOT NULL,
            data        TEXT NOT NULL             -- JSON object
        );
        CREATE INDEX service_rows_table ON service_rows(service, tbl, id);
    """),
    Migration(3, "call detail records", """
        CREATE TABLE cdrs (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            call_id     TEXT NOT NULL,
            caller      TEXT NOT NULL,
            callee      TEXT NOT NULL,
            direction   TEXT NOT NULL,
            start       REAL NOT NULL,
            answer      REAL,
            end         REAL NOT NULL,
            duration    REAL NOT NULL,
            billsec     REAL NOT NULL,
            disposition TEXT NOT NULL,
            cause       TEXT NOT NULL DEFAULT '',
            trunk       TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX cdrs_start ON cdrs(start);
    """),
    Migration(4, "trunks, outbound routes, DIDs, trunk registration state", """
        CREATE TABLE trunks (
            name         TEXT PRIMARY KEY,
            domain       TEXT NOT NULL,
            account      TEXT NOT NULL,
            password     TEXT NOT NULL,
            proxy        TEXT NOT NULL DEFAULT '',
            auth_id      TEXT NOT NULL DEFAULT '',
            register     INTEGER NOT NULL DEFAULT 1,
            expires      INTEGER NOT NULL DEFAULT 3600,
            from_user    TEXT NOT NULL DEFAULT '',
            from_display TEXT NOT NULL DEFAULT '',
            identity     TEXT NOT NULL DEFAULT '',
            allow        TEXT NOT NULL DEFAULT '[]',
            max_in       INTEGER,
            max_out      INTEGER,
            prack        TEXT NOT NULL DEFAULT 'supported',
            uri_format   TEXT NOT NULL DEFAULT 'sip',
            enabled      INTEGER NOT NULL DEFAULT 1
        );
        CREATE TABLE trunk_status (
            name         TEXT PRIMARY KEY,
            state        TEXT NOT NULL,
            last_status  INTEGER NOT NULL DEFAULT 0,
            last_reason  TEXT NOT NULL DEFAULT '',
            next_refresh REAL,
            updated      REAL NOT NULL
        );
        CREATE TABLE routes (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            prefix      TEXT NOT NULL,
            length      INTEGER,
            strip       INTEGER NOT NULL DEFAULT 0,
            prepend     TEXT NOT NULL DEFAULT '',
            trunks      TEXT NOT NULL,
            extensions  TEXT NOT NULL DEFAULT '[]'
        );
        CREATE TABLE dids (
            number      TEXT PRIMARY KEY,
            extension   TEXT NOT NULL REFERENCES extensions(number) ON DELETE CASCADE
        );
    """),
    Migration(5, "per-extension digest algorithms", """
        ALTER TABLE extensions ADD COLUMN digest TEXT NOT NULL DEFAULT '';
    """),
)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of the database (0 for a new file)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        return 0
    return int(row[0])


def check_migrations(migrations: Sequence[Migration]) -> None:
    for index, m in enumerate(migrations, start=1):
        if m.version != index:
            raise StoreError(f"migration {m.description!r} has version {m.version}, expected {index}")
        if bool(m.sql.strip()) == (m.apply is not None):
            raise StoreError(f"migration {m.version} needs exactly one of sql or apply")


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS,
            path: str = "") -> list[int]:
    """Bring the database up to the last migration; return the versions applied.

    ``conn`` must be in autocommit mode (``isolation_level=None``): transactions are explicit.
    """
    check_migrations(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    latest = len(migrations)
    if version > latest:
        raise StoreError(f"{path or 'the database'} has schema version {version}, newer than this "
                         f"mss knows ({latest}); upgrade mss")
    applied = []
    for m in migrations[version:]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            if current_version(conn) >= m.version:
                conn.execute("COMMIT")
                continue
            if m.apply is not None:
                m.apply(conn)
            else:
                for statement in _statements(m.sql):
                    conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (m.version,))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            conn.execute("ROLLBACK")
            raise StoreError(f"{path or 'the database'}: migration {m.version} ({m.description}) "
                             f"failed: {e}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(m.version)
    return applied


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (``sqlite3.complete_statement`` knows quoting)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise StoreError(f"incomplete SQL statement in migration: {buf.strip()[:60]!r}")
    return out
