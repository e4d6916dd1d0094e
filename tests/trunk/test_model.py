# -*- test-case-name: tests.trunk.test_model -*-
"""Tests for mss.trunk.model: where a trunk's requests go."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.sip.address import Address
from mss.store.records import Trunk
from mss.trunk.model import destination


def trunk(**changes) -> Trunk:
    values = dict(name="ims", domain="gd.ctcims.cn", account="+8675512345678", password="pw")
    values.update(changes)
    return Trunk(**values)


class DestinationTests(SynchronousTestCase):
    def test_destination_is_the_proxy_else_the_domain(self):
        self.assertEqual(destination(trunk(proxy="127.0.0.2:5070")),
                         Address("udp", "127.0.0.2", 5070))
        self.assertEqual(destination(trunk(proxy="sbc:5080;transport=tcp"), lambda h: "10.1.1.1"),
                         Address("tcp", "10.1.1.1", 5080))
        self.assertEqual(destination(trunk(domain="carrier.example")),
                         Address("udp", "carrier.example", 5060))
