# -*- test-case-name: tests.sip.test_timers -*-
"""Tests for mss.sip.timers: the one timer heap shared by the core and its transaction users."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.sip.timers import TimerHeap


class TimerHeapTests(SynchronousTestCase):
    def setUp(self):
        self.heap = TimerHeap()
        self.fired = []

    def test_empty(self):
        self.assertIsNone(self.heap.next_deadline())
        self.assertEqual(self.heap.run_due(1e9), 0)
        self.assertEqual(len(self.heap), 0)

    def test_order_and_due_only(self):
        self.heap.call_at(30, self.fired.append, "c")
        self.heap.call_at(10, self.fired.append, "a")
        self.heap.call_at(20, self.fired.append, "b")
        self.assertEqual(self.heap.next_deadline(), 10)
        self.assertEqual(self.heap.run_due(20), 2)
        self.assertEqual(self.fired, ["a", "b"])
        self.assertEqual(self.heap.next_deadline(), 30)
        self.assertEqual(len(self.heap), 1)

    def test_same_deadline_in_scheduling_order(self):
        for name in "xyz":
            self.heap.call_at(5, self.fired.append, name)
        self.heap.run_due(5)
        self.assertEqual(self.fired, ["x", "y", "z"])

    def test_cancel(self):
        timer = self.heap.call_at(10, self.fired.append, "gone")
        self.heap.call_at(20, self.fired.append, "kept")
        self.assertTrue(timer.active)
        timer.cancel()
        self.assertFalse(timer.active)
        self.assertEqual(self.heap.next_deadline(), 20)     # cancelled entries are skipped
        self.heap.run_due(100)
        self.assertEqual(self.fired, ["kept"])

    def test_fired_timer_is_inactive(self):
        timer = self.heap.call_at(1, self.fired.append, 1)
        self.heap.run_due(1)
        self.assertFalse(timer.active)
        timer.cancel()                                        # harmless after firing
        self.assertEqual(self.fired, [1])

    def test_callback_schedules_due_timer(self):
        """A callback may schedule another timer; if already due it runs in the same pass."""
        def first():
            self.fired.append("first")
            self.heap.call_at(3, self.fired.append, "chained")
            self.heap.call_at(50, self.fired.append, "later")
        self.heap.call_at(2, first)
        self.assertEqual(self.heap.run_due(10), 2)
        self.assertEqual(self.fired, ["first", "chained"])
        self.assertEqual(self.heap.next_deadline(), 50)

    def test_arguments(self):
        self.heap.call_at(1, lambda a, b: self.fired.append(a + b), 2, 3)
        self.heap.run_due(1)
        self.assertEqual(self.fired, [5])
