# -*- test-case-name: tests.sip.test_timers -*-
"""The one timer heap of the sans-I/O core: transactions and their users share it.

The transaction layer (timers A-M), the registrar (binding expiry), calls (no-answer, maximum
duration) and trunks (refreshes) all schedule here, so everything time-driven runs from one
clock and one heap; the Twisted shell keeps a single ``IDelayedCall`` armed at
``next_deadline()`` and calls ``run_due(now)``. During a callback ``now`` is the time of the
turn that runs it. Cancelled timers are dropped lazily, and the heap is compacted when they
outnumber the live ones (transactions cancel most of their timers), so it stays bounded by the
live timers. ``on_schedule`` (set by the core) is told when a timer is added, so that the shell
re-arms its delayed call at the end of the turn.
"""
from __future__ import annotations

import heapq
import itertools


class Timer:
    __slots__ = ("when", "fn", "args", "cancelled", "heap")

    def __init__(self, when: float, fn, args, heap):
        self.when, self.fn, self.args, self.cancelled, self.heap = when, fn, args, False, heap

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.heap._cancelled += 1

    @property
    def active(self) -> bool:
        return not self.cancelled


class TimerHeap:
    def __init__(self):
        self._heap: list = []
        self._seq = itertools.count()
        self._cancelled = 0             # cancelled timers still in the heap
        self.now = 0.0                  # the time of the turn running the due timers
        self.on_schedule = None         # callable(): a timer was added

    def call_at(self, when: float, fn, *args) -> Timer:
        timer = Timer(when, fn, args, self)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        if self.on_schedule is not None:
            self.on_schedule()
        return timer

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled -= 1
        return heap[0][0] if heap else None

    def run_due(self, now: float) -> int:
        """Run every timer due at ``now``; a callback may schedule more (run if due)."""
        heap, ran, pop = self._heap, 0, heapq.heappop
        self.now = now
        while heap and heap[0][0] <= now:
            timer = pop(heap)[2]
            if timer.cancelled:
                self._cancelled -= 1
                continue
            timer.cancelled = True      # fired: cancel() after this is a no-op
            timer.fn(*timer.args)
            ran += 1
        if self._cancelled > 512 and self._cancelled * 2 > len(heap):
            self._heap = [e for e in heap if not e[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0
        return ran

    def __len__(self) -> int:
        """Live (scheduled, not cancelled) timers."""
        return len(self._heap) - self._cancelled
