# -*- test-case-name: tests.call.test_media -*-
"""GatewayMedia (mss.call.media): the adapter's Deferreds always fire, with or without SDP."""
from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from mss.call.media import GatewayMedia


class FakeClient:
    def __init__(self, reply):
        self.reply = reply
        self.sent = []

    def _answer(self, *args, **kwargs):
        self.sent.append((args, kwargs))
        return defer.succeed(self.reply)

    offer = answer = room_join = _answer


class GatewayMediaTests(SynchronousTestCase):
    def media(self, reply):
        return GatewayMedia(FakeClient(reply))

    def test_offer_sdp(self):
        result = self.successResultOf(self.media({"result": "ok", "sdp": b"v=0\r\n"})
                                      .offer("c", "t", b"v=0\r\n"))
        self.assertEqual(result, b"v=0\r\n")

    def test_offer_without_sdp_fails(self):
        """An offer answered without SDP is an error, not a Deferred that never fires."""
        d = self.media({"result": "ok"}).offer("c", "t", b"v=0\r\n")
        self.failureResultOf(d, ValueError)

    def test_room_join_of_existing_leg(self):
        """Moving a leg that already has media into a room: the gateway's reply has no SDP
        (the relay and the worker front answer {"result": "ok", "room": ...}); it fires None.
        Before, the KeyError was lost and a break-in stayed in setup forever."""
        d = self.media({"result": "ok", "room": "r"}).room_join("r", "c", "t")
        self.assertIsNone(self.successResultOf(d))

    def test_room_join_new_leg_needs_sdp(self):
        media = self.media({"result": "ok", "room": "r", "sdp": b"v=0\r\n"})
        self.assertEqual(self.successResultOf(media.room_join("r", "c", "t", b"v=0\r\n")),
                         b"v=0\r\n")
        self.failureResultOf(self.media({"result": "ok", "room": "r"})
                             .room_join("r", "c", "t", b"v=0\r\n"), ValueError)
