"""Where a dialled number goes (the dial plan): a local extension today; trunks and Lua
services plug in here (``Router.route`` is the one seam the call manager asks).

A local extension resolves to every registered device (forking); an unknown number is 404,
a known extension with no live registration is 480.
"""
# -*- test-case-name: tests.call.test_routing -*-
from __future__ import annotations

import attrs


@attrs.frozen
class Route:
    status: int = 0                   # non-zero: refuse the call with this status
    reason: str | None = None
    extension: str | None = None      # the local callee
    targets: tuple = ()               # ((contact URI, Address, device label), ...)


class Router:
    def __init__(self, directory, bindings):
        self.directory = directory
        self.bindings = bindings

    def route(self, dialled: str, caller_ext: str | None) -> Route:
        ext = self.directory(dialled) if dialled else None
        if ext is None or not ext.enabled:
            return Route(404, None)
        return self.local(ext.number)

    def local(self, number: str) -> Route:
        bindings = self.bindings.get(number)
        if not bindings:
            return Route(480, None, extension=number)
        targets = tuple((b.contact, self.bindings.address_of(b), b.key) for b in bindings)
        return Route(extension=number, targets=targets)
