# -*- test-case-name: tests.store.test_sqlite -*-
"""``SQLiteStore``: the embedded ``IStore`` on one SQLite file.

The file (and its directory) is created on first start with mode 0600, since it holds digest
secrets. The database runs in WAL mode with ``synchronous=NORMAL``: a committed transaction
survives the process being killed (kill -9, crash), which is what we promise; a power loss may
lose the last transactions before the WAL is checkpointed. Calls are synchronous on the calling
thread (the reactor thread); every write is a small transaction.

``data_version()`` wraps ``PRAGMA data_version``, which changes only when another connection
commits: the switch polls it (``store.poll_interval``) to notice ``mssctl`` changes and reload
its extension cache, without reacting to its own writes.
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

from twisted.logger import Logger
from zope.interface import implementer

from mss.sip.digest.hashing import ha1 as digest_ha1
from mss.store.interface import (
    DIGEST_ALGORITHMS, DIGEST_MODES, Ban, Binding, Extension, ExtensionExists, IStore,
    NoSuchExtension, StoreError, validate_key, validate_name, validate_number, validate_permission)
from mss.store.records import CDR
from mss.store.schema import MIGRATIONS, Migration, migrate
from mss.store.sqlite_trunks import TrunkStoreMixin

__all__ = ["SQLiteStore", "compute_ha1"]

MAX_CALL_LEVEL = 99
MAX_JSON_LENGTH = 64 * 1024


def compute_ha1(number: str, realm: str, password: str) -> dict[tuple[str, str], str]:
    """The four HA1 values of an extension: each algorithm × {number, number@realm}."""
    return {(algorithm, username): digest_ha1(algorithm, username, realm, password)
            for algorithm in DIGEST_ALGORITHMS
            for username in (number, f"{number}@{realm}")}


def _ha1_to_json(values: dict[tuple[str, str], str]) -> str:
    return json.dumps({f"{alg} {user}": h for (alg, user), h in sorted(values.items())})


def _ha1_from_json(text: str) -> dict[tuple[str, str], str]:
    out = {}
    for key, value in json.loads(text).items():
        alg, _, user = key.partition(" ")
        out[(alg, user)] = value
    return out


def _encode(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"value cannot be stored as JSON: {e}")
    if len(text) > MAX_JSON_LENGTH:
        raise StoreError(f"value is larger than {MAX_JSON_LENGTH} bytes as JSON")
    return text


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or not password:
        raise StoreError("password must be non-empty text")
    if len(password) > 256:
        raise StoreError("password is longer than 256 characters")
    return password


def _check_realm(realm: Any) -> str:
    if not isinstance(realm, str) or not realm:
        raise StoreError("realm must be non-empty text")
    return realm


@implementer(IStore)
class SQLiteStore(TrunkStoreMixin):
    """An ``IStore`` on the SQLite file ``path`` (``":memory:"`` for a private in-memory one)."""

    log = Logger()

    def __init__(self, path: str, migrations: Sequence[Migration] = MIGRATIONS,
                 busy_timeout: float = 2.0):
        self.path = path
        if path != ":memory:":
            directory = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(directory, exist_ok=True)
                # Create the file ourselves so that it is private (HA1 values are secrets).
                os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            except OSError as e:
                raise StoreError(f"{path}: cannot create the database: {e.strerror}")
        try:
            self._conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreError(f"{path}: cannot open the database: {e}")
        self._lock = threading.RLock()    # the manhole or a test may call from another thread
        try:
            conn = self._conn
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if path != ":memory:" and mode.lower() != "wal":
                raise StoreError(f"{path}: cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            applied = migrate(conn, migrations, path)
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise StoreError(f"{path}: not a usable mss database: {e}")
        except BaseException:
            self._conn.close()
            raise
        if applied:
            self.log.info("Store {path}: schema migrated to version {version}",
                          path=path, version=applied[-1])

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` takes the lock up front (no upgrade deadlock)."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise StoreError(f"{self.path}: database is busy: {e}")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def _read(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.OperationalError as e:
                raise StoreError(f"{self.path}: {e}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def data_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def schema_version(self) -> int:
        return int(self._read("SELECT version FROM schema_version")[0][0])

    # -- extensions --------------------------------------------------------------------------

    def _extension(self, conn, number: str) -> Extension | None:
        row = conn.execute(
            "SELECT number, name, enabled, call_level, realm, ha1, digest FROM extensions"
            " WHERE number = ?",
            (number,)).fetchone()
        if row is None:
            return None
        perms = frozenset(p for (p,) in conn.execute(
            "SELECT permission FROM extension_permissions WHERE number = ?", (number,)))
        return Extension(number=row[0], name=row[1], enabled=bool(row[2]), permissions=perms,
                         call_level=row[3], ha1=_ha1_from_json(row[5]), realm=row[4],
                         digest=row[6])

    def _require(self, conn, number: str) -> None:
        if conn.execute("SELECT 1 FROM extensions WHERE number = ?", (number,)).fetchone() is None:
            raise NoSuchExtension(f"extension {number} does not exist")

    @staticmethod
    def _check_level(level: Any) -> int:
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= MAX_CALL_LEVEL:
            raise StoreError(f"call level must be a whole number 0-{MAX_CALL_LEVEL}, not {level!r}")
        return level

    def add_extension(self, number: str, password: str, realm: str, name: str = "",
                      permissions: Iterable[str] = (), call_level: int = 0) -> Extension:
        validate_number(number)
        _check_password(password)
        _check_realm(realm)
        if not isinstance(name, str) or len(name) > 128:
            raise StoreError("name must be text of at most 128 characters")
        perms = sorted({validate_permission(p) for p in permissions})
        self._check_level(call_level)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM extensions WHERE number = ?", (number,)).fetchone():
                raise ExtensionExists(f"extension {number} already exists")
            conn.execute(
                "INSERT INTO extensions (number, name, enabled, call_level, realm, ha1)"
                " VALUES (?, ?, 1, ?, ?, ?)",
                (number, name, call_level, realm, _ha1_to_json(compute_ha1(number, realm, password))))
            conn.executemany("INSERT INTO extension_permissions (number, permission) VALUES (?, ?)",
                             [(number, p) for p in perms])
            return self._extension(conn, number)

    def get_extension(self, number: str) -> Extension | None:
        with self._lock:
            return self._extension(self._conn, number)

    def list_extensions(self) -> list[Extension]:
        with self._lock:
            conn = self._conn
            perms: dict[str, set[str]] = {}
            for number, permission in conn.execute(
                    "SELECT number, permission FROM extension_permissions"):
                perms.setdefault(number, set()).add(permission)
            return [Extension(number=n, name=name, enabled=bool(enabled),
                              permissions=frozenset(perms.get(n, ())), call_level=level,
                              ha1=_ha1_from_json(h), realm=realm, digest=digest)
                    for n, name, enabled, level, realm, h, digest in conn.execute(
                        "SELECT number, name, enabled, call_level, realm, ha1, digest FROM extensions"
                        " ORDER BY length(number), number")]

    def remove_extension(self, number: str) -> bool:
        with self._write() as conn:
            found = conn.execute("DELETE FROM extensions WHERE number = ?", (number,)).rowcount > 0
            if found:
                # The registrar keys bindings by the number; accept a sip:/sips: AOR URI too.
                conn.execute("DELETE FROM bindings WHERE aor = ? OR aor LIKE ? OR aor LIKE ?",
                             (number, f"sip:{number}@%", f"sips:{number}@%"))
            return found

    def set_password(self, number: str, password: str, realm: str) -> None:
        _check_password(password)
        _check_realm(realm)
        with self._write() as conn:
            self._require(conn, number)
            conn.execute("UPDATE extensions SET realm = ?, ha1 = ? WHERE number = ?",
                         (realm, _ha1_to_json(compute_ha1(number, realm, password)), number))

    def set_permission(self, number: str, permission: str, on: bool) -> None:
        permission = validate_permission(permission)
        with self._write() as conn:
            self._require(conn, number)
            if on:
                conn.execute("INSERT OR IGNORE INTO extension_permissions (number, permission)"
                             " VALUES (?, ?)", (number, permission))
            else:
                conn.execute("DELETE FROM extension_permissions WHERE number = ? AND permission = ?",
                             (number, permission))

    def set_enabled(self, number: str, on: bool) -> None:
        with self._write() as conn:
            self._require(conn, number)
            conn.execute("UPDATE extensions SET enabled = ? WHERE number = ?", (1 if on else 0, number))

    def set_call_level(self, number: str, level: int) -> None:
        self._check_level(level)
        with self._write() as conn:
            self._require(conn, number)
            conn.execute("UPDATE extensions SET call_level = ? WHERE number = ?", (level, number))

    def set_digest(self, number: str, mode: str) -> None:
        if mode not in DIGEST_MODES:
            raise StoreError(f"digest must be one of {', '.join(m or 'default' for m in DIGEST_MODES)},"
                             f" not {mode!r}")
        with self._write() as conn:
            self._require(conn, number)
            conn.execute("UPDATE extensions SET digest = ? WHERE number = ?", (mode, number))

    # -- registration bindings ---------------------------------------------------------------

    _BINDING_COLUMNS = ("aor, key, contact, expires_at, call_id, cseq, transport, source_host,"
                        " source_port, registered_at, q, user_agent, instance")

    _PUT_BINDING = (f"INSERT OR REPLACE INTO bindings ({_BINDING_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

    @staticmethod
    def _binding_row(b: Binding) -> tuple:
        if not isinstance(b, Binding):
            raise StoreError(f"not a Binding: {b!r}")
        if b.transport not in ("udp", "tcp", "tls", "ws", "wss"):
            raise StoreError(f"unknown transport {b.transport!r}")
        if not (math.isfinite(b.expires_at) and math.isfinite(b.registered_at)):
            raise StoreError("binding times must be finite")
        return (b.aor, b.key, b.contact, float(b.expires_at), b.call_id, int(b.cseq), b.transport,
                b.source_host, int(b.source_port), float(b.registered_at),
                None if b.q is None else float(b.q), b.user_agent, b.instance)

    def put_binding(self, b: Binding) -> None:
        row = self._binding_row(b)
        with self._write() as conn:
            conn.execute(self._PUT_BINDING, row)

    def put_bindings(self, bindings: Iterable[Binding]) -> None:
        """``put_binding`` for several bindings in one transaction (all or none): the
        registrar's group commit, one commit for the REGISTERs of one reactor turn."""
        rows = [self._binding_row(b) for b in bindings]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(self._PUT_BINDING, rows)

    def delete_binding(self, aor: str, key: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM bindings WHERE aor = ? AND key = ?",
                                (aor, key)).rowcount > 0

    def delete_bindings(self, aor: str) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM bindings WHERE aor = ?", (aor,)).rowcount

    def load_bindings(self, now: float) -> list[Binding]:
        with self._write() as conn:
            conn.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            rows = conn.execute(f"SELECT {self._BINDING_COLUMNS} FROM bindings"
                                " ORDER BY aor, registered_at, key").fetchall()
        return [Binding(*row) for row in rows]

    def list_bindings(self, now: float, aor: str | None = None) -> list[Binding]:
        """Live bindings (of one AOR, or all), without deleting expired rows: for inspection."""
        where, args = "expires_at > ?", [now]
        if aor is not None:
            where += " AND aor = ?"
            args.append(aor)
        return [Binding(*row) for row in self._read(
            f"SELECT {self._BINDING_COLUMNS} FROM bindings WHERE {where}"
            " ORDER BY aor, registered_at, key", args)]

    # -- bans --------------------------------------------------------------------------------

    def put_ban(self, address: str, until: float, reason: str = "") -> None:
        if not isinstance(address, str) or not address or len(address) > 64:
            raise StoreError(f"bad address {address!r}")
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO bans (address, until, reason) VALUES (?, ?, ?)",
                         (address, float(until), str(reason)))

    def list_bans(self, now: float) -> list[Ban]:
        return [Ban(*row) for row in self._read(
            "SELECT address, until, reason FROM bans WHERE until > ? ORDER BY address", (now,))]

    def remove_ban(self, address: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM bans WHERE address = ?", (address,)).rowcount > 0

    def purge_bans(self, now: float) -> int:
        """Delete expired bans; return how many."""
        with self._write() as conn:
            return conn.execute("DELETE FROM bans WHERE until <= ?", (now,)).rowcount

    # -- call detail records -----------------------------------------------------------------

    _CDR_COLUMNS = ("call_id, caller, callee, direction, start, answer, end, duration, billsec,"
                    " disposition, cause, trunk")

    def add_cdr(self, cdr) -> None:
        with self._write() as conn:
            conn.execute(f"INSERT INTO cdrs ({self._CDR_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                         (cdr.call_id, cdr.caller, cdr.callee, cdr.direction, cdr.start,
                          cdr.answer, cdr.end, cdr.duration, cdr.billsec, cdr.disposition,
                          cdr.cause, cdr.trunk))

    def list_cdrs(self, since: float | None = None, limit: int | None = None) -> list:
        sql = f"SELECT {self._CDR_COLUMNS} FROM cdrs"
        args: list = []
        if since is not None:
            sql += " WHERE start >= ?"
            args.append(float(since))
        sql += " ORDER BY start, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [CDR(*row) for row in self._read(sql, args)]

    # -- generic data of the Lua services ----------------------------------------------------

    def get_service_settings(self, service: str) -> dict:
        validate_name("service", service)
        return {k: json.loads(v) for k, v in self._read(
            "SELECT key, value FROM service_settings WHERE service = ? ORDER BY key", (service,))}

    def set_service_setting(self, service: str, key: str, value: Any) -> None:
        validate_name("service", service)
        validate_key(key)
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM service_settings WHERE service = ? AND key = ?",
                             (service, key))
            else:
                conn.execute("INSERT OR REPLACE INTO service_settings (service, key, value)"
                             " VALUES (?, ?, ?)", (service, key, _encode(value)))

    def get_extension_data(self, service: str, extension: str) -> dict:
        validate_name("service", service)
        return {k: json.loads(v) for k, v in self._read(
            "SELECT key, value FROM service_extension_data WHERE service = ? AND extension = ?"
            " ORDER BY key", (service, extension))}

    def set_extension_data(self, service: str, extension: str, key: str, value: Any) -> None:
        validate_name("service", service)
        validate_number(extension)
        validate_key(key)
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM service_extension_data"
                             " WHERE service = ? AND extension = ? AND key = ?",
                             (service, extension, key))
            else:
                conn.execute("INSERT OR REPLACE INTO service_extension_data"
                             " (service, extension, key, value) VALUES (?, ?, ?, ?)",
                             (service, extension, key, _encode(value)))

    def list_rows(self, service: str, table: str) -> list[tuple[int, dict]]:
        validate_name("service", service)
        validate_name("table", table)
        return [(row_id, json.loads(data)) for row_id, data in self._read(
            "SELECT id, data FROM service_rows WHERE service = ? AND tbl = ? ORDER BY id",
            (service, table))]

    def add_row(self, service: str, table: str, data: dict) -> int:
        validate_name("service", service)
        validate_name("table", table)
        if not isinstance(data, dict):
            raise StoreError(f"a row must be a dict, not {type(data).__name__}")
        text = _encode(data)
        with self._write() as conn:
            return conn.execute("INSERT INTO service_rows (service, tbl, data) VALUES (?, ?, ?)",
                                (service, table, text)).lastrowid

    def remove_row(self, service: str, table: str, id: int) -> bool:
        validate_name("service", service)
        validate_name("table", table)
        with self._write() as conn:
            return conn.execute("DELETE FROM service_rows WHERE service = ? AND tbl = ? AND id = ?",
                                (service, table, id)).rowcount > 0
