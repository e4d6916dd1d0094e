# -*- test-case-name: tests.media.test_health -*-
"""The switch's view of its gateway: pings on a clock, up/down with a reason, one log line
per change (``mss.media.health``)."""
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from mss.media import ng
from mss.media.client import NgClient
from mss.media.health import MediaHealth, MediaMonitor
from tests.media.test_client import FakePort

GATEWAY = ("127.0.0.1", 40000)


class MonitorTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.client = NgClient(self.clock, GATEWAY, first_retransmit=0.2)
        self.port = self.client._port = FakePort()
        self.monitor = MediaMonitor(self.clock, self.client, interval=2.0, timeout=1.0)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.monitor.startService()
        self.addCleanup(self.monitor.stopService)

    def pings(self) -> list:
        return [ng.parse(data) for data, _ in self.port.written]

    def pong(self, index: int = -1, reply=None) -> None:
        cookie, message = self.pings()[index]
        self.assertEqual(message, {"command": "ping"})
        self.client._received(ng.format(cookie, reply or {"result": "pong"}), GATEWAY)

    def lines(self) -> list[str]:
        from twisted.logger import formatEvent
        return [formatEvent(e) for e in self.log if "media gateway" in formatEvent(e)]

    def test_starts_down_and_is_up_at_the_first_pong(self):
        health = self.monitor.health
        self.assertEqual((health.up, health.reason), (False, "not started yet"))
        self.assertEqual(len(self.pings()), 1)          # a ping at once
        self.clock.advance(0.1)
        self.pong()
        self.assertEqual(health.describe(), {"up": True, "since": 0.1, "reason": "",
                                             "address": "127.0.0.1:40000"})
        self.assertEqual(self.lines(), ["media gateway up at 127.0.0.1:40000"])

    def test_pings_every_interval_retransmitting_one_cookie(self):
        self.pong()
        self.clock.advance(2.0)
        self.assertEqual(len(self.pings()), 2)
        self.clock.pump([0.2] * 4)                      # unanswered: retransmitted
        self.clock.advance(0.1)
        retransmitted = len(self.pings())
        self.assertEqual(len({cookie for cookie, _ in self.pings()[1:]}), 1)
        self.assertGreater(retransmitted, 2)

    def test_no_answer_within_the_timeout_is_down_with_the_reason_logged_once(self):
        self.pong()
        for _ in range(20):                             # 20 s of silence: 10 pings lost
            self.clock.advance(0.5)
        health = self.monitor.health
        self.assertFalse(health.up)
        self.assertEqual(health.since, 3.0)             # the ping sent at 2 s gave up at 3 s
        self.assertEqual(health.reason, "no answer to ping from 127.0.0.1:40000 within 1 s")
        self.assertEqual(self.lines(), [
            "media gateway up at 127.0.0.1:40000",
            "media gateway down: no answer to ping from 127.0.0.1:40000 within 1 s"])
        # it answers again: up at once, since then
        self.clock.advance(2.0 - self.clock.seconds() % 2.0)
        self.pong()
        self.assertTrue(health.up)
        self.assertEqual(health.since, self.clock.seconds())
        self.assertEqual(len(self.lines()), 3)

    def test_error_answer_is_down(self):
        self.pong(reply={"result": "error", "error-reason": "media worker 1 is not running"})
        self.assertFalse(self.monitor.health.up)
        self.assertEqual(self.monitor.health.reason, "ping to 127.0.0.1:40000 answered with "
                                                     "error: media worker 1 is not running")

    def test_child_reports(self):
        """The child could not start: down with its reason, no pings until it reports an
        address; then a ping at once, and up at its pong."""
        self.pong()
        self.monitor.gateway_failed("cannot listen on control 127.0.0.1:22222: in use")
        health = self.monitor.health
        self.assertEqual((health.up, health.reason),
                         (False, "cannot listen on control 127.0.0.1:22222: in use"))
        sent = len(self.pings())
        for _ in range(5):
            self.clock.advance(2.0)
        self.assertEqual(len(self.pings()), sent)
        self.monitor.gateway_failed("cannot listen on control 127.0.0.1:22222: in use")
        self.assertEqual(len([l for l in self.lines() if "down" in l]), 1)
        self.monitor.gateway_ready(("127.0.0.1", 40002))
        self.assertEqual(self.port.written[-1][1], ("127.0.0.1", 40002))
        self.pong()
        self.assertEqual((health.up, health.address), (True, "127.0.0.1:40002"))

    def test_failure_cancels_the_ping_in_flight(self):
        self.monitor.gateway_failed("mss-media process exited (signal 9)")
        self.clock.advance(5)
        self.assertEqual(self.monitor.health.reason, "mss-media process exited (signal 9)")
        calls = self.clock.getDelayedCalls()            # only the loop's next turn
        self.assertEqual([c.getTime() for c in calls], [6.0])


class HealthTests(SynchronousTestCase):
    def test_new_reason_while_down_is_kept_and_logged_same_reason_is_not(self):
        log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        h = MediaHealth()
        self.assertTrue(h.mark_down(1.0, "a"))
        self.assertFalse(h.mark_down(2.0, "a"))
        self.assertFalse(h.mark_down(3.0, "b"))
        self.assertEqual((h.since, h.reason), (1.0, "b"))
        self.assertEqual(len(log), 2)
