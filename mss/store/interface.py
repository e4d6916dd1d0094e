# -*- test-case-name: tests.store.test_sqlite -*-
"""What the store holds and the interface every store implements.

Provisioning (extensions, their permissions and digest secrets), live registration bindings,
address bans and the generic data of the Lua services live behind ``IStore``. ``SQLiteStore``
(mss.store.sqlite) is the embedded implementation; the interface stays narrow enough that a
PostgreSQL implementation can serve several call servers later.

All methods are synchronous and quick: the switch calls them on the reactor thread.
"""
from __future__ import annotations

import re
from typing import Any

import attrs
from zope.interface import Interface

__all__ = [
    "StoreError", "ExtensionExists", "NoSuchExtension", "Extension", "Binding", "Ban",
    "IStore", "validate_number", "validate_permission", "validate_name", "validate_key",
    "DIGEST_ALGORITHMS",
]

#: The digest algorithms whose HA1 the store keeps for every extension (RFC 8760).
DIGEST_ALGORITHMS = ("MD5", "SHA-256")
#: Per-extension digest choice (``mssctl extension digest``): the algorithms it is challenged
#: with and may answer with. "" follows ``[auth] algorithms``.
DIGEST_MODES = {"": None, "md5": ("MD5",), "sha-256": ("SHA-256",), "both": ("MD5", "SHA-256")}


class StoreError(Exception):
    """A request the store refuses; the message is meant for the operator."""


class ExtensionExists(StoreError):
    pass


class NoSuchExtension(StoreError):
    pass


_NUMBER = re.compile(r"\+?[0-9]+")
_PERMISSION = re.compile(r"[a-z][a-z0-9_]{0,31}")
_NAME_PART = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def validate_number(number: Any) -> str:
    """An extension number: digits with an optional leading ``+``, 1-32 characters in all."""
    if not isinstance(number, str):
        raise StoreError(f"extension number must be text, not {type(number).__name__}")
    if not number:
        raise StoreError("extension number is empty")
    if len(number) > 32:
        raise StoreError(f"extension number {number[:40]!r} is longer than 32 characters")
    if not _NUMBER.fullmatch(number):
        raise StoreError(f"extension number {number!r} must be digits, optionally with a leading +")
    return number


def validate_permission(permission: Any) -> str:
    """Permission names are lower-case identifiers such as ``multi_device`` (hyphens accepted)."""
    if not isinstance(permission, str):
        raise StoreError(f"permission must be text, not {type(permission).__name__}")
    name = permission.replace("-", "_")
    if not _PERMISSION.fullmatch(name):
        raise StoreError(f"permission {permission!r} must be a lower-case name like multi_device")
    return name


def validate_name(kind: str, value: Any) -> str:
    """Service, table and key names used by the Lua services."""
    if not isinstance(value, str) or not _NAME_PART.fullmatch(value):
        raise StoreError(f"{kind} {value!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return value


def validate_key(key: Any) -> str:
    """Keys of service settings and extension data: 1-128 characters of printable text."""
    if not isinstance(key, str) or not 0 < len(key) <= 128 or not key.isprintable():
        raise StoreError(f"key {key!r} must be 1-128 printable characters")
    return key


@attrs.frozen
class Extension:
    """A provisioned extension.

    ``ha1`` maps ``(algorithm, digest_username)`` to H(username:realm:password) for each algorithm
    in ``DIGEST_ALGORITHMS`` and for both usernames phones use: ``number`` and
    ``number@realm`` (4 values). ``realm`` is the realm the HA1 values were computed for:
    after a realm change every password has to be set again.
    """
    number: str
    name: str
    enabled: bool
    permissions: frozenset[str]
    call_level: int
    ha1: dict = attrs.field(hash=False, repr=False)     # compared, not hashed, never shown
    realm: str = ""
    digest: str = ""            # a key of DIGEST_MODES; "" follows [auth] algorithms

    def digest_algorithms(self, default: tuple[str, ...]) -> tuple[str, ...]:
        """The algorithms this extension is challenged with and may answer with."""
        return DIGEST_MODES.get(self.digest) or default

    def ha1_for(self, algorithm: str, username: str, realm: str) -> str | None:
        """The stored HA1 for this digest username and algorithm, or None (wrong realm/user)."""
        if realm != self.realm:
            return None
        base = algorithm[:-5] if algorithm.endswith("-sess") else algorithm
        return self.ha1.get((base, username))

    def has(self, permission: str) -> bool:
        return permission in self.permissions


@attrs.frozen
class Binding:
    """One registered contact of an address-of-record (RFC 3261 §10.3).

    ``key`` identifies the device: the ``+sip.instance`` value when present (RFC 5626), else
    the contact URI. Times are Unix timestamps.
    """
    aor: str
    key: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    transport: str
    source_host: str
    source_port: int
    registered_at: float
    q: float | None = None
    user_agent: str = ""
    instance: str = ""


@attrs.frozen
class Ban:
    """An address refused until ``until`` (Unix time)."""
    address: str
    until: float
    reason: str = ""


class IStore(Interface):
    """Persistent state of the switch. Methods raise ``StoreError`` for refused requests."""

    # -- extensions
    def add_extension(number, password, realm, name="", permissions=(), call_level=0):
        """Create an extension (``ExtensionExists`` if it exists); return the ``Extension``."""

    def get_extension(number):
        """The ``Extension`` or None."""

    def list_extensions():
        """Every ``Extension``, ordered by number."""

    def remove_extension(number):
        """Delete the extension and its bindings; False if there was none."""

    def set_password(number, password, realm):
        """Replace the four HA1 values (``NoSuchExtension`` if unknown)."""

    def set_permission(number, permission, on):
        """Grant (on=True) or revoke a permission."""

    def set_enabled(number, on):
        """Enable or disable an extension."""

    def set_call_level(number, level):
        """Set the call level (0-99)."""

    def set_digest(number, mode):
        """Set the extension's digest algorithms: a key of ``DIGEST_MODES``."""

    # -- registration bindings
    def put_binding(binding):
        """Insert or replace the binding with the same (aor, key)."""

    def put_bindings(bindings):
        """``put_binding`` for several, committed in one transaction (group commit)."""

    def delete_binding(aor, key):
        """Delete one binding; False if there was none."""

    def delete_bindings(aor):
        """Delete every binding of an AOR; return how many."""

    def load_bindings(now):
        """Delete expired bindings (expires_at <= now) and return the live ones."""

    def list_bindings(now, aor=None):
        """Live bindings (of one AOR or all), read only: for mssctl and the console."""

    # -- bans
    def put_ban(address, until, reason):
        """Insert or replace a ban."""

    def list_bans(now):
        """Live bans (until > now), ordered by address."""

    def remove_ban(address):
        """Lift a ban; False if there was none."""

    # -- generic data of the Lua services (values are anything JSON can encode)
    def get_service_settings(service):
        """``{key: value}`` of a service's settings."""

    def set_service_setting(service, key, value):
        """Set a setting; value None deletes it."""

    def get_extension_data(service, extension):
        """``{key: value}`` a service keeps for one extension."""

    def set_extension_data(service, extension, key, value):
        """Set a value a service keeps for an extension; None deletes it."""

    def list_rows(service, table):
        """``[(id, data)]`` of a service's table, ordered by id."""

    def add_row(service, table, data):
        """Append a row (a dict); return its id."""

    def remove_row(service, table, id):
        """Delete a row; False if there was none."""

    # -- change detection and life cycle
    # trunks (mss.store.records), outbound routes, DIDs, and the switch's trunk state
    def put_trunk(trunk, replace=False):
        """Add (or with ``replace`` overwrite) a trunk; StoreError names the bad value."""

    def get_trunk(name):
        """The Trunk or None."""

    def list_trunks():
        """Every trunk, by name."""

    def remove_trunk(name):
        """True if it existed (refused while a route uses it)."""

    def put_trunk_status(name, state, last_status, last_reason, next_refresh, updated):
        """Written by the running switch for ``mssctl trunk status``."""

    def list_trunk_status():
        """name -> {state, last_status, last_reason, next_refresh, updated}."""

    def add_route(prefix, trunks, length=None, strip=0, prepend="", extensions=()):
        """Add an outbound route; returns its id."""

    def list_routes():
        """Routes in match order (longest prefix first)."""

    def remove_route(route_id):
        """True if it existed."""

    def add_did(number, extension):
        """Map an inbound number to an extension."""

    def list_dids():
        """DID -> extension."""

    def remove_did(number):
        """True if it existed."""

    def add_cdr(cdr):
        """Write one call detail record (``mss.store.records.CDR``), committed on return."""

    def list_cdrs(since=None, limit=None):
        """CDRs (oldest first) whose start is at or after ``since``."""

    def data_version():
        """A number that changes when another connection (mssctl) committed a change."""

    def close():
        """Release the database."""
