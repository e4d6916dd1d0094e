# -*- test-case-name: tests.trunk.test_dispatcher -*-
"""The trunk dispatcher: which trunk a call uses or came from, and how many calls each carries.

- Outbound: the first outbound route matching the dialled number (longest prefix first, optional
  length, allowed callers) gives the trunks to try in order and the number to send.
- Inbound: a request is trunk traffic only when its source address is one of the trunk's
  (its allow list or its outbound proxy's resolved address); DIDs map the called number to
  an extension.
- Limits: active calls are counted per trunk and direction; ``acquire`` refuses with 403 when
  the direction's limit is 0 and 503 when it is reached; ``release`` is called on every end.
- Registrations: one ``TrunkRegistration`` per trunk with ``register`` on, kept in step with the
  store (added, removed, changed trunks) by ``reload``.
- Addresses: proxies (or domains) are located at ``reload`` without blocking the reactor
  (RFC 3263 NAPTR/SRV/A through ``mss.trunk.resolver``, cached for the records' TTL and
  located again when it expires). Until a trunk's first answer arrives its registration waits
  and outbound calls skip it (503: the route's next trunk is tried); a host that does not
  resolve leaves its trunk "unreachable" and is tried again with back-off until it does.
"""
from __future__ import annotations

import ipaddress
import math

from twisted.internet import defer
from twisted.logger import Logger

from mss.sip.address import Address
from mss.store.records import TrunkError, parse_proxy
from mss.trunk.model import destination
from mss.trunk.registration import TrunkRegistration
from mss.trunk.resolver import Resolution


_VISUAL = str.maketrans("", "", "-.()")


RESOLVE_RETRY_START = 5.0
RESOLVE_RETRY_CAP = 300.0


class HostTableResolver:
    """A ``ProxyResolver`` stand-in that maps a host to an address with a plain function
    (``host -> address``; a non-address means it does not resolve), answering at once: for
    tests of the dispatcher that are not about DNS."""

    def __init__(self, resolve):
        self.resolve_host = resolve

    def resolve(self, text: str) -> defer.Deferred:
        host, port, transport = parse_proxy(text)
        address = self.resolve_host(host)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return defer.succeed(Resolution((), 0.0))
        return defer.succeed(Resolution((Address(transport, address, port),), math.inf))


class TrunkDispatcher:
    log = Logger()

    def __init__(self, core, clock, store, resolve=None, wall=None, resolver=None):
        """``resolver``: a ``ProxyResolver`` (the switch's uses ``mss.transport.dns``);
        ``resolve``: a host -> address function instead (tests)."""
        self.core = core
        self.clock = clock
        self.store = store
        if resolver is None:
            if resolve is None:
                raise TypeError("TrunkDispatcher needs a resolver or a resolve function")
            resolver = HostTableResolver(resolve)
        self.resolver = resolver
        self.wall = wall or clock.seconds
        self.trunks: dict = {}
        self.routes: list = []
        self.dids: dict = {}
        self.registrations: dict[str, TrunkRegistration] = {}
        self.active: dict[tuple[str, str], int] = {}
        self._addresses: dict[str, str] = {}          # trunk name -> proxy's resolved address
        self._unresolved: dict[str, str] = {}         # trunk name -> host that did not resolve
        self._answers: dict[str, Resolution] = {}     # trunk name -> where its proxy is
        self._pending: set[str] = set()               # trunk names being located
        self._refresh: dict = {}                      # trunk name -> timer at the TTL's end
        self._generation = 0                          # answers to an older reload are dropped
        self._resolve_timer = None
        self._resolve_backoff = RESOLVE_RETRY_START

    # -- provisioning --------------------------------------------------------------------------
    def reload(self) -> None:
        """Follow the store: trunks, routes, DIDs; start, restart or stop registrations."""
        trunks = {}
        for t in self.store.list_trunks():
            if not t.enabled:
                continue
            try:
                t.validate()
            except TrunkError as e:             # a row no current mssctl would write
                self.log.error("trunk {trunk} ignored: {error}", trunk=t.name, error=str(e))
                continue
            trunks[t.name] = t
        old = self.trunks
        self.trunks = trunks
        self.routes = self.store.list_routes()
        self.dids = self.store.list_dids()
        self._generation += 1
        self._addresses, self._unresolved, self._answers, self._pending = {}, {}, {}, set()
        for timer in self._refresh.values():
            timer.cancel()
        self._refresh = {}
        for name, t in trunks.items():
            self._resolve(name, t)
        for name in list(self.registrations):
            if name not in trunks or old.get(name) != trunks[name] or not trunks[name].register:
                self.registrations.pop(name).stop()
        for name, t in trunks.items():
            if t.register and name not in self.registrations:
                reg = TrunkRegistration(self.core, self.clock, t, self.destination(t),
                                        store=self.store, wall=self.wall)
                self.registrations[name] = reg
                self._start_registration(name)
            elif name in self.registrations and self.registrations[name].waiting_for_address:
                self._start_registration(name)
        self._resolve_backoff = RESOLVE_RETRY_START
        self._schedule_resolve()

    def _resolve(self, name: str, trunk) -> None:
        """Locate the trunk's proxy (or domain); the answer may come now or later."""
        self._pending.add(name)
        generation = self._generation
        d = self.resolver.resolve(trunk.proxy or trunk.domain)
        d.addCallback(self._resolved, name, trunk, generation)
        d.addErrback(lambda f: self.log.failure("trunk {trunk}: locating {host} failed", f,
                                                trunk=name, host=trunk.proxy or trunk.domain))

    def _resolved(self, answer: Resolution, name: str, trunk, generation: int) -> None:
        if generation != self._generation or self.trunks.get(name) is not trunk:
            return                                        # reloaded or stopped meanwhile
        self._pending.discard(name)
        host = parse_proxy(trunk.proxy or trunk.domain)[0]
        reg = self.registrations.get(name)
        if not answer.targets:
            self._addresses.pop(name, None)
            self._answers.pop(name, None)
            self._unresolved[name] = host
            if reg is not None:
                reg.unresolved(host, self._resolve_backoff)
            if self._resolve_timer is None:
                self._schedule_resolve()
            return
        before = self._addresses.get(name)
        if name in self._unresolved:
            self.log.info("trunk {trunk}: {host} resolves to {address} now", trunk=name,
                          host=host, address=answer.targets[0].host)
        self._unresolved.pop(name, None)
        self._answers[name] = answer
        self._addresses[name] = answer.targets[0].host
        if math.isfinite(answer.expires):                 # locate again when the TTL ends
            old = self._refresh.pop(name, None)
            if old is not None:
                old.cancel()
            self._refresh[name] = self.core.timers.call_at(
                max(answer.expires, self.clock.seconds()), self._expired, name, trunk,
                generation)
        if reg is not None:
            if reg.waiting_for_address:
                self._start_registration(name)
            elif before != answer.targets[0].host:
                reg.destination = self.destination(trunk)

    def _expired(self, name: str, trunk, generation: int) -> None:
        """The answer's TTL ended: ask again; the old address serves until the new answer."""
        self._refresh.pop(name, None)
        if generation == self._generation and self.trunks.get(name) is trunk:
            self._resolve(name, trunk)

    def _start_registration(self, name: str) -> None:
        reg = self.registrations[name]
        if name in self._pending and name not in self._addresses:
            reg.waiting_for_address = True                # started when the answer comes
            return
        host = self._unresolved.get(name)
        if host is None:
            reg.destination = self.destination(self.trunks[name])
            reg.start()
        else:
            reg.unresolved(host, self._resolve_backoff)

    def _schedule_resolve(self) -> None:
        """Trunks whose host did not resolve are tried again with back-off (capped)."""
        if self._resolve_timer is not None:
            self._resolve_timer.cancel()
            self._resolve_timer = None
        if self._unresolved:
            self._resolve_timer = self.core.timers.call_at(
                self.clock.seconds() + self._resolve_backoff, self._resolve_again)

    def _resolve_again(self) -> None:
        self._resolve_timer = None
        self._resolve_backoff = min(self._resolve_backoff * 2, RESOLVE_RETRY_CAP)
        for name in list(self._unresolved):
            trunk = self.trunks.get(name)
            if trunk is None:
                self._unresolved.pop(name, None)
                continue
            self._resolve(name, trunk)            # the answer starts a waiting registration
        self._schedule_resolve()

    def stop(self) -> None:
        for reg in self.registrations.values():
            reg.stop()
        if self._resolve_timer is not None:
            self._resolve_timer.cancel()
            self._resolve_timer = None
        for timer in self._refresh.values():
            timer.cancel()
        self._refresh = {}
        self._generation += 1                     # answers still on their way are dropped

    def destination(self, trunk) -> Address:
        """Where requests to the trunk go: the first located address (with the transport and
        port NAPTR/SRV chose); the proxy as written while it is not located (no lookup)."""
        answer = self._answers.get(trunk.name)
        if answer is not None and answer.targets:
            return answer.targets[0]
        return destination(trunk)

    # -- inbound -------------------------------------------------------------------------------
    def inbound_trunk(self, host: str, called: str | None = None, to: str | None = None):
        """The trunk a request from ``host`` belongs to, or None (not trunk traffic).

        Several trunks may share the address (several accounts at one carrier). Trunks whose
        allow list names it are preferred to trunks that only have it as their proxy's
        address: the operator said so, while the proxy only suggests it. Among those left,
        the trunk whose number (account, auth ID user, presented number) is the called
        number, Request-URI user first (IMS delivers calls to the registered contact), then
        the To user (the DID), wins; else the first by name."""
        listed, inferred = [], []
        for name, t in self.trunks.items():
            if t.lists(host):
                listed.append(t)
            elif t.allows(host, self._addresses.get(name)):
                inferred.append(t)
        found = listed or inferred
        if len(found) > 1:
            for number in (called, to):
                want = (number or "").translate(_VISUAL).lstrip("+")
                if not want:
                    continue
                for trunk in found:
                    if want in trunk.numbers():
                        return trunk
        return found[0] if found else None

    def did(self, number: str | None) -> str | None:
        """The extension for a called number, as the carrier sent it: tel: visual separators
        (RFC 3966 §5.1.1) are ignored, and a DID matches with or without its leading +."""
        if not number:
            return None
        ext = self.dids.get(number)
        if ext is not None:
            return ext
        number = number.translate(_VISUAL)
        if number.startswith("+"):
            return self.dids.get(number) or self.dids.get(number[1:])
        return self.dids.get(number) or self.dids.get("+" + number)

    # -- outbound ------------------------------------------------------------------------------
    def outbound(self, number: str, caller_ext: str | None) -> list[tuple]:
        """[(trunk, number to send), ...] from the first matching route with a usable trunk
        (routes come from the store longest prefix first); [] when none matches."""
        for route in self.routes:
            if route.matches(number, caller_ext):
                out = []
                for name in route.trunks:
                    trunk = self.trunks.get(name)
                    if trunk is not None:
                        out.append((trunk, route.translate(number)))
                if out:
                    return out
                # every trunk of this route is disabled or gone: a later route may serve
        return []

    # -- limits --------------------------------------------------------------------------------
    def acquire(self, trunk, direction: str) -> int:
        """0 when the call may use the trunk in ``direction`` ("in"/"out"), else 403/503.
        An outbound call is refused (503: the next trunk is tried) while the trunk's host
        does not resolve: there is no address to send it to."""
        limit = trunk.max_in if direction == "in" else trunk.max_out
        key = (trunk.name, direction)
        if limit == 0:
            return 403
        if direction == "out" and trunk.name in self._unresolved:
            self.log.info("trunk {trunk}: {host} does not resolve; not used",
                          trunk=trunk.name, host=self._unresolved[trunk.name])
            return 503
        located = trunk.name in self._addresses
        if direction == "out" and trunk.name in self._pending and not located:
            self.log.info("trunk {trunk}: its proxy is not located yet; not used",
                          trunk=trunk.name)
            return 503
        count = self.active.get(key, 0)
        if limit is not None and count >= limit:
            return 503
        self.active[key] = count + 1
        return 0

    def release(self, trunk_name: str, direction: str) -> None:
        key = (trunk_name, direction)
        n = self.active.get(key, 0) - 1
        if n > 0:
            self.active[key] = n
        else:
            self.active.pop(key, None)

    def status(self) -> list[dict]:
        out = []
        for name, t in sorted(self.trunks.items()):
            reg = self.registrations.get(name)
            out.append({"name": name, "state": reg.state if reg else "no registration",
                        "last": f"{reg.last_status or ''} {reg.last_reason}".strip()
                        if reg else "",
                        "next_refresh": reg.next_refresh if reg else None,
                        "in": self.active.get((name, "in"), 0),
                        "out": self.active.get((name, "out"), 0)})
        return out
