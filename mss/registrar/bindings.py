# -*- test-case-name: tests.registrar.test_bindings -*-
"""Registration bindings of extensions: the location service (RFC 3261 §10.3).

Bindings live in memory for routing and are written through to the store on every change,
so that a crash (even ``kill -9``) followed by a restart keeps every live registration.
Added and refreshed bindings are written by group commit: ``put`` changes memory at once and
queues the row; ``flush`` runs as the end-of-turn step of the core (``end_of_turn``, given
as ``SipCore.at_end_of_turn``: after every datagram read in this reactor turn, before the
output is sent), writes the queue in one store transaction and then calls back whoever waits
through ``when_stored``: the registrar sends its 200 OK only then, so a registration that was
answered 200 is committed. Removals are written at once (after
the queue, to keep the order of writes).
Each binding has one expiry timer on the core's heap. Devices are told apart by the RFC 5626
``+sip.instance`` when present, otherwise by the contact URI.

The multi-device rule: without the permission an extension has at most one binding and the
newest device wins; with it, up to ``max_devices`` bindings, the oldest dropped beyond that.
"""
from __future__ import annotations

import attrs
from twisted.logger import Logger

from mss.sip.address import Address
from mss.store.interface import Binding


class BindingTable:
    log = Logger()

    def __init__(self, store, timers, end_of_turn, max_devices: int = 5):
        self.store = store
        self.timers = timers
        self.end_of_turn = end_of_turn
        self.max_devices = max_devices
        self._by_aor: dict[str, dict[str, Binding]] = {}
        self._timers: dict[tuple[str, str], object] = {}
        self._connections: dict[tuple[str, str], object] = {}   # live TCP connection per binding
        self.listeners = []           # callables(aor) told when an AOR's bindings change
        self._unstored: list[Binding] = []      # put in memory, not yet committed
        self._waiters: list = []                # (len(_unstored) when asked, callback)

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

    def find(self, aor: str, key: str) -> Binding | None:
        """The binding of that device, or None."""
        current = self._by_aor.get(aor)
        return current.get(key) if current else None

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
        if old is not None and old.registered_at != binding.registered_at:
            binding = attrs.evolve(binding, registered_at=old.registered_at)
        current[binding.key] = binding
        if not self._unstored:
            self.end_of_turn(self.flush)
        self._unstored.append(binding)
        self._arm(binding)
        if connection is not None:
            self._connections[(aor, binding.key)] = connection
        else:
            self._connections.pop((aor, binding.key), None)
        dropped = self.enforce(aor, multi_device, keep=binding.key)
        self._changed(aor)
        return dropped

    def when_stored(self, callback) -> None:
        """Call ``callback()`` once every binding put so far is committed to the store: now
        if nothing is queued, else after the next ``flush``. It is not called if writing one
        of those bindings failed (the failure is logged)."""
        if not self._unstored:
            callback()
        else:
            self._waiters.append((len(self._unstored), callback))

    def flush(self) -> None:
        """Commit the queued bindings in one store transaction, then call the waiters."""
        batch, self._unstored = self._unstored, []
        waiters, self._waiters = self._waiters, []
        stored = self._write(batch) if batch else 0
        for upto, callback in waiters:
            if upto > stored:
                continue            # a binding it waited for is not in the store: no answer
            try:
                callback()
            except Exception:
                self.log.failure("binding store callback failed")

    def _write(self, batch: list) -> int:
        """Write ``batch``; return how many of its first bindings are committed."""
        put_many = getattr(self.store, "put_bindings", None)
        if put_many is not None:
            try:
                put_many(batch)
                return len(batch)
            except Exception:
                if len(batch) == 1:
                    self.log.failure("could not store binding {key} of {aor}",
                                     key=batch[0].key, aor=batch[0].aor)
                    return 0
                # one bad binding must not cost the others theirs: one by one
        stored = None
        for i, b in enumerate(batch):
            try:
                self.store.put_binding(b)
            except Exception:
                self.log.failure("could not store binding {key} of {aor}", key=b.key, aor=b.aor)
                if stored is None:
                    stored = i
        return len(batch) if stored is None else stored

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
        if self._unstored:
            self.flush()              # queued rows first: a removal must not be overwritten
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
