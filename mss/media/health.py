# -*- test-case-name: tests.media.test_health -*-
"""Whether the switch's media gateway is up: what calls, ``mssctl status`` and metrics read.

``MediaHealth`` is the state (up or down, since when, why). ``MediaMonitor`` keeps it: it sends
an ng ``ping`` every ``interval`` seconds and marks the gateway down when a ping is not answered
within ``timeout`` (or is answered with an error), up again at the first ``pong``. In child mode
the child service also reports what only it knows: the gateway process could not start (its
one-line reason), exited, or is ready at a new control address (then a ping goes at once).
Each change of state is one log line naming the cause; nothing is logged while it holds.

While the gateway is down the call core refuses new calls that need media with 503 and
Retry-After (``mss.call.manager``) rather than connecting calls that would have no audio.
"""
from __future__ import annotations

import attrs
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from mss.media.ng import MediaError, MediaTimeout

PING_INTERVAL = 2.0
PING_TIMEOUT = 1.0


@attrs.define
class MediaHealth:
    """Up or down since ``since`` (clock seconds), with the reason it is down."""
    log = Logger()

    up: bool = False
    since: float | None = None
    reason: str = "not started yet"
    address: str = ""

    def mark_up(self, now: float, address: str = "") -> bool:
        """True when this changes the state."""
        if address:
            self.address = address
        if self.up:
            return False
        self.up, self.since, self.reason = True, now, ""
        self.log.info("media gateway up at {address}", address=self.address or "?")
        return True

    def mark_down(self, now: float, reason: str) -> bool:
        """True when this changes the state; the same reason again is not logged."""
        if not self.up and self.since is not None:
            if reason == self.reason:
                return False
            self.reason = reason
            self.log.error("media gateway down: {reason}", reason=reason)
            return False
        self.up, self.since, self.reason = False, now, reason
        self.log.error("media gateway down: {reason}", reason=reason)
        return True

    def describe(self) -> dict:
        return {"up": self.up, "since": self.since, "reason": self.reason,
                "address": self.address}


class MediaMonitor(service.Service):
    """Pings the gateway through ``client`` (an ``NgClient``) and keeps ``health``."""

    def __init__(self, clock, client, health: MediaHealth | None = None, *,
                 interval: float = PING_INTERVAL, timeout: float = PING_TIMEOUT):
        self.clock = clock
        self.client = client
        self.health = health if health is not None else MediaHealth()
        self.interval = interval
        self.timeout = timeout
        self.loop = task.LoopingCall(self.ping)
        self.loop.clock = clock
        self._pinging: defer.Deferred | None = None

    def startService(self):
        super().startService()
        self.loop.start(self.interval, now=True)

    def stopService(self):
        super().stopService()
        if self.loop.running:
            self.loop.stop()
        if self._pinging is not None:
            self._pinging.cancel()

    def ping(self) -> None:
        """One ping unless one is still out; without a control address (a child that is not
        ready) there is nothing to ask: the child's report is the state."""
        if self._pinging is not None or self.client.address is None:
            return
        host, port = self.client.address
        address = f"{host}:{port}"
        d = self._pinging = self.client.command({"command": "ping"}, timeout=self.timeout)

        def answered(reply):
            if isinstance(reply, dict) and reply.get("result") == "pong":
                self.health.mark_up(self.clock.seconds(), address)
            else:
                self.health.mark_down(self.clock.seconds(),
                                      f"unexpected answer to ping from {address}: {reply!r}")

        def failed(failure):
            if failure.check(defer.CancelledError):
                return
            if failure.check(MediaTimeout):
                reason = f"no answer to ping from {address} within {self.timeout:g} s"
            elif failure.check(MediaError):
                reason = f"ping to {address} answered with error: {failure.value.reason}"
            else:
                reason = f"ping to {address} failed: {failure.getErrorMessage()}"
            self.health.mark_down(self.clock.seconds(), reason)

        def done(_):
            self._pinging = None
        d.addCallbacks(answered, failed).addBoth(done)

    # -- what the child service reports ----------------------------------------------------------
    def gateway_ready(self, address: tuple[str, int]) -> None:
        """The child gateway listens at ``address``: use it and ping now."""
        self.client.address = address
        if self._pinging is not None:
            self._pinging.cancel()
        if self.running:
            self.ping()

    def gateway_failed(self, reason: str) -> None:
        """The child could not start or exited: down, and no pings until it is ready again."""
        self.client.address = None
        if self._pinging is not None:
            self._pinging.cancel()
        self.health.mark_down(self.clock.seconds(), reason)
