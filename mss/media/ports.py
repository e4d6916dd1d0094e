# -*- test-case-name: tests.media.test_ports -*-
"""RTP/RTCP port pair allocation from the configured range (RFC 3550 11: RTP on an even port,
RTCP on the next odd one).

Pure bookkeeping: the allocator hands out candidate pairs, round-robin from where it last
stopped so that a freed pair is not reused at once (late packets of an old call must not reach
a new one). The caller binds the sockets and releases a pair the OS refuses (the round robin moves on).
When no pair is left ``PortsExhausted`` is raised; the control protocol answers it as an error.
"""
from __future__ import annotations


class PortsExhausted(Exception):
    """No free RTP/RTCP port pair is left in the range."""


def parse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high)


class PortAllocator:
    def __init__(self, low: int, high: int):
        if low % 2:
            low += 1
        if high - low < 1:
            raise ValueError(f"port range {low}-{high} holds no RTP/RTCP pair")
        self.low, self.high = low, high
        self._pairs = (high - low + 1) // 2
        self._next = 0
        self._used: set[int] = set()

    @property
    def capacity(self) -> int:
        return self._pairs

    @property
    def in_use(self) -> int:
        return len(self._used)

    def allocate(self) -> int:
        """The RTP port of a free pair (RTCP is RTP + 1); marks it used."""
        if len(self._used) >= self._pairs:
            raise PortsExhausted(f"all {self._pairs} port pairs of {self.low}-{self.high} are in use")
        for _ in range(self._pairs):
            port = self.low + 2 * self._next
            self._next = (self._next + 1) % self._pairs
            if port not in self._used:
                self._used.add(port)
                return port
        raise PortsExhausted("no free port pair")   # pragma: no cover (guarded above)

    def release(self, port: int) -> None:
        self._used.discard(port)

    def split(self, parts: int) -> list[tuple[int, int]]:
        """Cut the range into ``parts`` disjoint sub-ranges (one per worker process)."""
        per = self._pairs // parts
        if per < 1:
            raise ValueError(f"port range {self.low}-{self.high} is too small for {parts} workers")
        return [(self.low + 2 * per * i, self.low + 2 * per * (i + 1) - 1) for i in range(parts)]
