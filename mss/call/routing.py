# -*- test-case-name: tests.call.test_routing -*-
"""Where a dialled number goes (the dial plan): ``Router.route`` is the one seam the call
manager asks; Lua services act around it (originating/terminating hooks).

A local extension resolves to every registered device (forking); a number matching an
outbound route goes to that route's trunks in order; anything else is 404. A known extension
with no live registration is 480.
"""
from __future__ import annotations

import attrs


@attrs.frozen
class Route:
    status: int = 0                   # non-zero: refuse the call with this status
    reason: str | None = None
    extension: str | None = None      # the local callee
    targets: tuple = ()               # ((contact URI, Address, device label), ...)
    trunk_plan: tuple = ()            # ((Trunk, number to send), ...) tried in order


class Router:
    def __init__(self, directory, bindings, trunks=None):
        self.directory = directory
        self.bindings = bindings
        self.trunks = trunks              # TrunkDispatcher, or None without trunks

    def route(self, dialled: str, caller_ext: str | None) -> Route:
        ext = self.directory(dialled) if dialled else None
        if ext is not None and ext.enabled:
            return self.local(ext.number)
        if ext is None and self.trunks is not None and dialled:
            plan = self.trunks.outbound(dialled, caller_ext)
            if plan:
                return Route(trunk_plan=tuple(plan))
        return Route(404, None)

    def local(self, number: str) -> Route:
        bindings = self.bindings.get(number)
        if not bindings:
            return Route(480, None, extension=number)
        targets = tuple((b.contact, self.bindings.address_of(b), b.key) for b in bindings)
        return Route(extension=number, targets=targets)
