# -*- test-case-name: tests.admin.test_metrics -*-
"""Tests for mss.admin.metrics: the exposition format, and real HTTP scrapes on loopback of an
in-process switch with a live call, a registration, a ban, a parse error and a failing service."""
from __future__ import annotations

import re

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import Agent, readBody

from mss.admin.metrics import Exposition, MetricsService
from mss.sip.address import Address
from tests.admin.phones import LiveSwitch, Phone, live_call, provision

_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})?'
                     r' -?[0-9.e+Infa]+$')


def parse_exposition(text: str) -> dict:
    """{(name, frozenset(labels)): value}; checks the format while reading it."""
    out = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        assert _SAMPLE.match(line), f"bad sample line {line!r}"
        name = re.match(r"[^{ ]+", line).group(0)
        assert name in typed, f"{name} has no TYPE before its samples"
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', line))
        out[(name, labels)] = float(line.rsplit(" ", 1)[1])
    return out


class ExpositionTests(unittest.SynchronousTestCase):
    def test_escaping_and_types(self):
        e = Exposition()
        e.add("x_total", "counter", "Things.", 3, {"name": 'a"b\\c\nd'})
        e.add("y", "gauge", "Level.", 0.5)
        e.declare("z", "gauge", "Nothing yet.")
        text = e.render().decode()
        self.assertIn('x_total{name="a\\"b\\\\c\\nd"} 3\n', text)
        self.assertIn("# TYPE y gauge\ny 0.5\n", text)
        self.assertIn("# HELP z Nothing yet.\n# TYPE z gauge\n", text)
        parse_exposition(text)


class FakeEngine:
    def reload(self):
        return {}

    def status(self):
        return [{"name": "blacklist", "state": "active", "faults": 2},
                {"name": "broken", "state": "disabled", "faults": 5}]


class FakeMedia:
    def command(self, message):
        assert message["command"] == "list"
        return defer.succeed({"result": "ok", "calls": ["a", "b", "c"]})


class ScrapeTests(unittest.TestCase):
    def setUp(self):
        self.live = LiveSwitch(self.mktemp(), {"metrics": {"enabled": True, "port": 0}})
        self.addCleanup(self.live.close)
        provision(self.live, "1001", "1002")
        self.switch = self.live.switch
        self.service = MetricsService(self.switch, self.live.settings["metrics"], reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        return self.service.listening

    @defer.inlineCallbacks
    def get(self, path=b"/metrics"):
        port = self.service.port.getHost().port
        response = yield Agent(reactor).request(b"GET", b"http://127.0.0.1:%d%s" % (port, path))
        body = yield readBody(response)
        return response, body.decode()

    @defer.inlineCallbacks
    def scrape(self):
        response, body = yield self.get()
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"),
                         [b"text/plain; version=0.0.4; charset=utf-8"])
        return parse_exposition(body)

    @defer.inlineCallbacks
    def test_live_switch_figures(self):
        a = Phone(self.live, "1001", "pw-1001", 40001)
        b = Phone(self.live, "1002", "pw-1002", 40002)
        call_id = live_call(self.live, a, b)
        self.live.deliver(b"GARBAGE\r\n\r\n", Address("udp", "127.0.0.9", 5999))
        self.switch.bans.ban("192.0.2.7", reactor.seconds(), "test")
        self.switch.service_engine = FakeEngine()
        self.switch.media = FakeMedia()
        m = yield self.scrape()
        self.assertEqual(m[("mss_calls_active", frozenset({("state", "answered")}))], 1)
        self.assertEqual(m[("mss_calls_active", frozenset({("state", "setup")}))], 0)
        self.assertEqual(m[("mss_calls_started_total", frozenset())], 1)
        self.assertEqual(m[("mss_registrations", frozenset())], 1)
        self.assertEqual(m[("mss_registered_extensions", frozenset())], 1)
        self.assertEqual(m[("mss_registrar_requests_total", frozenset({("result", "registered")}))], 1)
        self.assertEqual(m[("mss_sip_parse_errors_total", frozenset())], 1)
        self.assertEqual(m[("mss_bans_active", frozenset())], 1)
        self.assertEqual(m[("mss_service_hook_failures_total", frozenset({("service", "broken")}))], 5)
        self.assertEqual(m[("mss_service_enabled", frozenset({("service", "broken")}))], 0)
        self.assertEqual(m[("mss_media_sessions", frozenset())], 3)
        self.assertEqual(m[("mss_media_up", frozenset())], 1)
        self.assertEqual(m[("mss_calls_accepting", frozenset())], 1)
        self.assertGreaterEqual(m[("mss_sip_messages_total", frozenset({("kind", "request")}))], 6)

        # the call ends: the outcome is counted, the gauge drops
        self.switch.calls.calls[call_id].hangup("test")
        m = yield self.scrape()
        self.assertEqual(m[("mss_calls_active", frozenset({("state", "answered")}))], 0)
        self.assertEqual(m[("mss_calls_ended_total", frozenset({("outcome", "answered")}))], 1)
        self.assertEqual(m[("mss_calls_ended_total", frozenset({("outcome", "busy")}))], 0)

    @defer.inlineCallbacks
    def test_trunk_states_and_calls_per_direction(self):
        a = Phone(self.live, "1001", "pw-1001", 40001)
        b = Phone(self.live, "1002", "pw-1002", 40002)
        live_call(self.live, a, b)
        call = next(iter(self.switch.calls.calls.values()))
        call.trunk, call.direction = "carrier", "outbound"

        class Trunks:
            def status(self):
                return [{"name": "carrier", "state": "registered"},
                        {"name": "backup", "state": "failed"}]
        self.switch.trunks = Trunks()
        m = yield self.scrape()
        self.assertEqual(m[("mss_trunk_up", frozenset({("trunk", "carrier"),
                                                       ("state", "registered")}))], 1)
        self.assertEqual(m[("mss_trunk_up", frozenset({("trunk", "backup"),
                                                       ("state", "failed")}))], 0)
        self.assertEqual(m[("mss_trunk_calls_active", frozenset({("trunk", "carrier"),
                                                                 ("direction", "outbound")}))], 1)

    @defer.inlineCallbacks
    def test_media_gateway_down_is_reported(self):
        class Silent:
            def command(self, message):
                return defer.Deferred()            # never answers
        self.switch.media = Silent()
        self.service.resource.media_timeout = 0.05
        m = yield self.scrape()
        self.assertEqual(m[("mss_media_up", frozenset())], 0)
        self.assertNotIn(("mss_media_sessions", frozenset()), m)

    @defer.inlineCallbacks
    def test_media_down_by_the_monitor_is_0_without_asking(self):
        """The switch's monitor says down: mss_media_up is 0 at once (no scrape-time wait on
        a dead gateway); up again when it says up."""
        from mss.media.health import MediaHealth
        asked = []

        class Media:
            def command(self, message):
                asked.append(message)
                return defer.succeed({"result": "ok", "calls": ["c1"]})
        self.switch.media = Media()
        health = self.switch.media_health = MediaHealth()
        health.mark_down(1.0, "cannot listen on control 127.0.0.1:22222: in use")
        m = yield self.scrape()
        self.assertEqual((m[("mss_media_up", frozenset())], asked), (0, []))
        self.assertEqual(m[("mss_calls_refused_total", frozenset({("reason", "media_down")}))], 0)
        health.mark_up(2.0, "127.0.0.1:40000")
        m = yield self.scrape()
        self.assertEqual((m[("mss_media_up", frozenset())], len(asked)), (1, 1))
        self.assertEqual(m[("mss_media_sessions", frozenset())], 1)

    @defer.inlineCallbacks
    def test_other_paths(self):
        response, body = yield self.get(b"/nope")
        self.assertEqual(response.code, 404)
