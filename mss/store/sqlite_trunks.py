# -*- test-case-name: tests.store.test_trunks -*-
"""Trunks, outbound routes, DIDs and trunk registration state in the SQLite store.

Mixed into ``SQLiteStore``. Trunk passwords are kept as given: a carrier's realm is only known
from its challenge, so no HA1 can be stored in advance (the file is mode 0600).
"""
from __future__ import annotations

import json

from mss.store.interface import StoreError
from mss.store.records import OutboundRoute, Trunk, TrunkError, check_digits

_TRUNK_COLUMNS = ("name, domain, account, password, proxy, auth_id, register, expires,"
                  " from_user, from_display, identity, allow, max_in, max_out, prack,"
                  " uri_format, enabled")


def _trunk(row) -> Trunk:
    (name, domain, account, password, proxy, auth_id, register, expires, from_user,
     from_display, identity, allow, max_in, max_out, prack, uri_format, enabled) = row
    return Trunk(name=name, domain=domain, account=account, password=password, proxy=proxy,
                 auth_id=auth_id, register=bool(register), expires=expires, from_user=from_user,
                 from_display=from_display, identity=identity, allow=tuple(json.loads(allow)),
                 max_in=max_in, max_out=max_out, prack=prack, uri_format=uri_format,
                 enabled=bool(enabled))


class TrunkStoreMixin:
    # -- trunks ----------------------------------------------------------------------------
    def put_trunk(self, trunk: Trunk, replace: bool = False) -> None:
        try:
            trunk.validate()
        except TrunkError as e:
            raise StoreError(str(e))
        with self._write() as conn:
            if not replace and conn.execute("SELECT 1 FROM trunks WHERE name = ?",
                                            (trunk.name,)).fetchone():
                raise StoreError(f"trunk {trunk.name} already exists")
            conn.execute(f"INSERT OR REPLACE INTO trunks ({_TRUNK_COLUMNS}) VALUES"
                         " (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (trunk.name, trunk.domain, trunk.account, trunk.password, trunk.proxy,
                          trunk.auth_id, int(trunk.register), trunk.expires, trunk.from_user,
                          trunk.from_display, trunk.identity, json.dumps(list(trunk.allow)),
                          trunk.max_in, trunk.max_out, trunk.prack, trunk.uri_format,
                          int(trunk.enabled)))

    def get_trunk(self, name: str) -> Trunk | None:
        rows = self._read(f"SELECT {_TRUNK_COLUMNS} FROM trunks WHERE name = ?", (name,))
        return _trunk(rows[0]) if rows else None

    def list_trunks(self) -> list[Trunk]:
        return [_trunk(r) for r in self._read(f"SELECT {_TRUNK_COLUMNS} FROM trunks ORDER BY name")]

    def remove_trunk(self, name: str) -> bool:
        """False when there is no such trunk; StoreError while an outbound route uses it (a
        route silently losing its trunk would change where calls go)."""
        with self._write() as conn:
            users = [str(rid) for rid, trunks in
                     conn.execute("SELECT id, trunks FROM routes ORDER BY id")
                     if name in json.loads(trunks)]
            if users:
                raise StoreError(f"trunk {name} is used by route {', '.join(users)}; "
                                 "remove or change the route first")
            conn.execute("DELETE FROM trunk_status WHERE name = ?", (name,))
            return conn.execute("DELETE FROM trunks WHERE name = ?", (name,)).rowcount > 0

    # -- registration state, written by the running switch ---------------------------------
    def put_trunk_status(self, name: str, state: str, last_status: int, last_reason: str,
                         next_refresh: float | None, updated: float) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO trunk_status (name, state, last_status,"
                         " last_reason, next_refresh, updated) VALUES (?,?,?,?,?,?)",
                         (name, state, last_status, last_reason, next_refresh, updated))

    def list_trunk_status(self) -> dict:
        return {r[0]: {"state": r[1], "last_status": r[2], "last_reason": r[3],
                       "next_refresh": r[4], "updated": r[5]}
                for r in self._read("SELECT name, state, last_status, last_reason, next_refresh,"
                                    " updated FROM trunk_status")}

    # -- outbound routes -------------------------------------------------------------------
    def add_route(self, prefix: str, trunks, length=None, strip: int = 0, prepend: str = "",
                  extensions=()) -> int:
        try:
            check_digits(prefix, "prefix")
            check_digits(prepend, "prepend")
        except TrunkError as e:
            raise StoreError(str(e))
        if not trunks:
            raise StoreError("a route needs at least one trunk")
        if strip < 0 or (length is not None and length <= 0):
            raise StoreError("strip must be 0 or more and length positive")
        with self._write() as conn:
            for name in trunks:
                if not conn.execute("SELECT 1 FROM trunks WHERE name = ?", (name,)).fetchone():
                    raise StoreError(f"no trunk named {name}")
            cur = conn.execute("INSERT INTO routes (prefix, length, strip, prepend, trunks,"
                               " extensions) VALUES (?,?,?,?,?,?)",
                               (prefix, length, strip, prepend, json.dumps(list(trunks)),
                                json.dumps(list(extensions))))
            return cur.lastrowid

    def list_routes(self) -> list[OutboundRoute]:
        """In match order: the longest prefix first, a route with a length before one without
        (the more specific rule), then the order they were added."""
        rows = self._read("SELECT id, prefix, length, strip, prepend, trunks, extensions"
                          " FROM routes ORDER BY length(prefix) DESC, length IS NULL, id")
        return [OutboundRoute(id=r[0], prefix=r[1], length=r[2], strip=r[3], prepend=r[4],
                              trunks=tuple(json.loads(r[5])), extensions=tuple(json.loads(r[6])))
                for r in rows]

    def remove_route(self, route_id: int) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM routes WHERE id = ?", (route_id,)).rowcount > 0

    # -- DIDs ------------------------------------------------------------------------------
    def add_did(self, number: str, extension: str) -> None:
        try:
            check_digits(number, "DID")
        except TrunkError as e:
            raise StoreError(str(e))
        if not number.lstrip("+"):
            raise StoreError("a DID needs at least one digit")
        with self._write() as conn:
            self._require(conn, extension)
            conn.execute("INSERT OR REPLACE INTO dids (number, extension) VALUES (?, ?)",
                         (number, extension))

    def list_dids(self) -> dict:
        return dict(self._read("SELECT number, extension FROM dids ORDER BY number"))

    def remove_did(self, number: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM dids WHERE number = ?", (number,)).rowcount > 0
