# -*- test-case-name: tests.trunk.test_calls -*-
"""Trunk hunting: a route's trunks tried in order for one call, and failover.

A trunk whose limit refuses one more outbound call is skipped (its refusal kept: when every
trunk refused, the caller gets 403 if each limit said so, else 503). The leg on a trunk fails
over to the next one on 5xx, 408 (our INVITE timed out), a transport error (taken as 503)
and silence: no response at all, not even 100 Trying, within ``TRUNK_NO_RESPONSE`` seconds
while another trunk is left. Each failover releases the failed trunk's outbound count; the
count of the trunk that carries the call is released when the call ends.

The hunt holds no reference to its call: the call asks it for the next trunk and places
the leg itself (SIP is the call's business, the order and the limits the hunt's).
"""
from __future__ import annotations

from twisted.logger import Logger

# a carrier that has not even sent 100 Trying this long after our INVITE is taken as down and
# the route's next trunk is tried (Timer B, 32 s, is longer than the usual ring time)
TRUNK_NO_RESPONSE = 5.0


def fails_over(status: int) -> bool:
    """A failure another trunk may not have: 5xx, 408 (timeout, transport, silence)."""
    return (status >= 500 or status == 408) and status < 600


class TrunkHunt:
    """The trunks still to try for one call, and the refusals of those that were full."""

    __slots__ = ("trunks", "plan", "refusals")
    log = Logger()

    def __init__(self, trunks):
        self.trunks = trunks              # TrunkDispatcher: limits and destinations
        self.plan: list = []              # remaining (Trunk, number to send)
        self.refusals: list[int] = []     # statuses of the limits that refused the call

    def start(self, plan) -> None:
        """Hunt through ``plan`` ((Trunk, number), ...), e.g. again after a diversion."""
        self.plan = list(plan)

    @property
    def more(self) -> bool:
        """Another trunk is left to try (silence on this one is worth a failover)."""
        return bool(self.plan)

    def next(self, call_id: str):
        """The next (Trunk, number) whose limit took the call (its outbound count is held),
        or None when none is left."""
        while self.plan:
            trunk, number = self.plan.pop(0)
            refused = self.trunks.acquire(trunk, "out")
            if refused:
                self.refusals.append(refused)
                self.log.info("call {call_id}: trunk {trunk} refused the call ({status})",
                              call_id=call_id, trunk=trunk.name, status=refused)
                continue
            return trunk, number
        return None

    def refusal(self) -> int:
        """The status for a call no trunk took: 403 when every limit said so, else 503."""
        refusals = self.refusals
        return 403 if refusals and all(r == 403 for r in refusals) else 503

    def release(self, trunk) -> None:
        """Give back the outbound count of a trunk given up on (failover)."""
        self.trunks.release(trunk.name, "out")
