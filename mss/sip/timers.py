# -*- test-case-name: tests.sip.test_timers -*-
"""One timer heap for the sans-I/O core and its transaction users.

Transaction users (registrar expiry, no-answer timeouts, trunk refreshes) schedule callbacks
here instead of on the reactor; the Twisted shell keeps a single ``IDelayedCall`` armed at
``next_deadline()`` and calls ``run_due(now)``. Cancelled timers are dropped lazily.
"""
from __future__ import annotations

import heapq
import itertools


class Timer:
    __slots__ = ("when", "fn", "args", "cancelled")

    def __init__(self, when: float, fn, args):
        self.when, self.fn, self.args, self.cancelled = when, fn, args, False

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def active(self) -> bool:
        return not self.cancelled


class TimerHeap:
    def __init__(self):
        self._heap: list = []
        self._seq = itertools.count()

    def call_at(self, when: float, fn, *args) -> Timer:
        timer = Timer(when, fn, args)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def run_due(self, now: float) -> int:
        """Run every timer due at ``now``; a callback may schedule more (run if due)."""
        heap, ran = self._heap, 0
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if not timer.cancelled:
                timer.cancelled = True
                timer.fn(*timer.args)
                ran += 1
        return ran

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)
