# -*- test-case-name: tests.call.test_routing -*-
"""The dial plan (mss.call.routing) for local extensions: every registered device is a target
(forking), an unknown or disabled number is 404, a known one without registration is 480."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.call.routing import Router
from tests.call.fakes import Switch


class LocalRouteTests(SynchronousTestCase):
    def setUp(self):
        self.sw = Switch(self)
        self.sw.extension("1002", "multi_device")
        self.sw.extension("1003")
        self.router = Router(self.sw.directory, self.sw.bindings)

    def test_every_device(self):
        self.sw.phone("1002", 5062)
        self.sw.phone("1002", 5063)
        route = self.router.route("1002", "1001")
        self.assertEqual(route.status, 0)
        self.assertEqual(route.extension, "1002")
        self.assertEqual(sorted(t[0] for t in route.targets),
                         ["sip:1002@127.0.0.1:5062", "sip:1002@127.0.0.1:5063"])
        self.assertEqual(sorted(t[1].port for t in route.targets), [5062, 5063])

    def test_unknown(self):
        self.assertEqual(self.router.route("4711", "1001").status, 404)
        self.assertEqual(self.router.route("", "1001").status, 404)

    def test_disabled(self):
        self.sw.phone("1003", 5064)
        self.sw.store.set_enabled("1003", False)
        self.sw.directory.invalidate()
        self.assertEqual(self.router.route("1003", "1001").status, 404)

    def test_not_registered(self):
        route = self.router.route("1003", "1001")
        self.assertEqual((route.status, route.extension), (480, "1003"))
