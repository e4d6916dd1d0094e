# -*- test-case-name: tests.registrar.test_registrar -*-
"""The running switch's view of provisioning: a cache of extensions that follows the store.

``mssctl`` writes to the same SQLite file from another process. Once per ``poll_interval`` the
switch asks the store whether anyone else committed (``data_version``); if so it reloads the
cache and tells its listeners (the registrar re-applies the multi-device rule, the call core
and services reload their rows). Lookups between polls cost one dict access.
"""
from __future__ import annotations

from twisted.logger import Logger

_MISSING = object()


class Directory:
    log = Logger()

    def __init__(self, store):
        self.store = store
        self._cache: dict[str, object] = {}
        self._version = store.data_version()
        self.listeners = []          # callables() told when provisioning changed
        self.load()

    def load(self) -> None:
        """Read every extension once: lookups then never touch SQLite (a phone's REGISTER
        or INVITE must not wait for a query, and a scanner's guesses cost nothing)."""
        try:
            extensions = self.store.list_extensions()
        except Exception:
            self.log.failure("could not load the extensions; looking them up one by one")
            self._cache.clear()
            return
        self._cache = {ext.number: ext for ext in extensions}

    def __call__(self, number: str):
        ext = self._cache.get(number, _MISSING)
        if ext is _MISSING:
            # not loaded: added by this process since the last load, or unknown (remembered)
            try:
                ext = self.store.get_extension(number)
            except Exception:
                ext = None            # an invalid number is simply unknown
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[number] = ext
        return ext

    def poll(self) -> bool:
        """Check for outside changes; True (and listeners told) when there were some."""
        version = self.store.data_version()
        if version == self._version:
            return False
        self._version = version
        self.load()
        self.log.info("provisioning changed in the store: reloaded")
        for listener in self.listeners:
            try:
                listener()
            except Exception:
                self.log.failure("provisioning listener failed")
        return True

    def invalidate(self) -> None:
        self.load()
