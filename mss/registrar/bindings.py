"""Registration bindings of extensions: the location service (RFC 3261 §10.3).

Bindings live in memory for routing and are written through to the store on every change,
so that a crash (even ``kill -9``) followed by a restart keeps every live registration.
Each binding has one expiry timer on the core's heap. Devices are told apart by the RFC 5626
``+sip.instance`` when present, otherwise by the contact URI.

The multi-device rule: without the permission an extension has at most one binding and the
newest device wins; with it, up to ``max_devices`` bindings, the oldest dropped beyond that.
"""
# -*- test-case-name: tests.registrar.test_bindings -*-
from __future__ import annotations

import attrs
from twisted.logger import Logger

from mss.sip.address import Address
from mss.store.interface import Binding


class BindingTable:
    log = Logger()

    def __init__(self, store, timers, max_devices: int = 5):
        self.store = store
        self.timers = timers
        self.max_devices = max_devices
        self._by_aor: dict[str, dict[str, Binding]] = {}
        self._timers: dict[tuple[str, str], object] = {}
        self._connections: dict[tuple[str, str], object] = {}   # live TCP connection per binding
        self.listeners = []           # callables(aor) told when an AOR's bindings change

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_aor.values())

    def load(self, now: float) -> int:
        """Load live bindings from the store at start-up (expired ones are pruned there)."""
        count = 0
        for b in self.store.load_bindings(now):
            self._by_aor.setdefault(b.aor, {})[b.key] = b
            self._arm(b)
            count += 1
        return count

    def get(self, aor: str) -> list[Binding]:
        return list(self._by_aor.get(aor, {}).values())

    def aors(self) -> list[str]:
        return list(self._by_aor)

    def address_of(self, binding: Binding) -> Address:
        """Where requests for this device go: the address it registered from (NAT-safe)."""
        conn = self._connections.get((binding.aor, binding.key))
        return Address(binding.transport, binding.source_host, binding.source_port, conn)

    def put(self, binding: Binding, connection=None, multi_device: bool = False) -> list[Binding]:
        """Add or refresh; apply the multi-device rule. Returns the bindings it dropped."""
        aor = binding.aor
        current = self._by_aor.setdefault(aor, {})
        old = current.get(binding.key)
        if old is not None:
            binding = attrs.evolve(binding, registered_at=old.registered_at)
        current[binding.key] = binding
        self.store.put_binding(binding)
        self._arm(binding)
        if connection is not None:
            self._connections[(aor, binding.key)] = connection
        else:
            self._connections.pop((aor, binding.key), None)
        dropped = self.enforce(aor, multi_device, keep=binding.key)
        self._changed(aor)
        return dropped

    def enforce(self, aor: str, multi_device: bool, keep: str | None = None) -> list[Binding]:
        """Apply the device limit for the AOR (also used when the permission changes)."""
        current = self._by_aor.get(aor, {})
        limit = self.max_devices if multi_device else 1
        if len(current) <= limit:
            return []
        # newest first by registration time; the one just registered always stays
        order = sorted(current.values(), key=lambda b: (b.key != keep, -b.registered_at))
        dropped = order[limit:]
        for b in dropped:
            self.remove(aor, b.key, notify=False)
            self.log.info("binding {contact} of {aor} replaced by a newer device",
                          contact=b.contact, aor=aor)
        return dropped

    def remove(self, aor: str, key: str, notify: bool = True) -> None:
        current = self._by_aor.get(aor)
        if not current or key not in current:
            return
        del current[key]
        if not current:
            del self._by_aor[aor]
        timer = self._timers.pop((aor, key), None)
        if timer is not None:
            timer.cancel()
        self._connections.pop((aor, key), None)
        self.store.delete_binding(aor, key)
        if notify:
            self._changed(aor)

    def remove_all(self, aor: str) -> None:
        for key in list(self._by_aor.get(aor, {})):
            self.remove(aor, key, notify=False)
        self._changed(aor)

    def _arm(self, b: Binding) -> None:
        old = self._timers.pop((b.aor, b.key), None)
        if old is not None:
            old.cancel()
        self._timers[(b.aor, b.key)] = self.timers.call_at(b.expires_at, self._expire, b.aor, b.key)

    def _expire(self, aor: str, key: str) -> None:
        self._timers.pop((aor, key), None)
        self.log.info("binding {key} of {aor} expired", key=key, aor=aor)
        self.remove(aor, key)

    def _changed(self, aor: str) -> None:
        for listener in self.listeners:
            listener(aor)
