# -*- test-case-name: tests.media.test_client -*-
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from mss.media import ng
from mss.media.client import IMediaGateway, NgClient
from mss.media.ng import MediaError, MediaTimeout


class FakePort:
    def __init__(self):
        self.written = []

    def write(self, data, addr):
        self.written.append((data, addr))


class NgClientTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.notes = []
        self.client = NgClient(self.clock, "127.0.0.1:22222", timeout=5,
                               on_notify=self.notes.append)
        self.port = self.client._port = FakePort()

    def test_interface(self):
        verifyObject(IMediaGateway, self.client)

    def test_reply_matched_by_cookie(self):
        d = self.client.offer("c1", "ta", b"v=0\r\n", flags=["trust-address"])
        (datagram, addr), = self.port.written
        self.assertEqual(addr, ("127.0.0.1", 22222))
        cookie, msg = ng.parse(datagram)
        self.assertEqual(msg, {"command": "offer", "call-id": "c1", "from-tag": "ta",
                               "sdp": "v=0\r\n", "flags": ["trust-address"]})
        self.client._received(ng.format(b"other", {"result": "ok"}), addr)
        self.assertNoResult(d)
        self.client._received(ng.format(cookie, {"result": "ok", "sdp": "v=0\r\nx"}), addr)
        self.assertEqual(self.successResultOf(d), {"result": "ok", "sdp": b"v=0\r\nx"})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_retransmits_same_cookie_then_times_out(self):
        d = self.client.ping()
        for _ in range(10):
            self.clock.advance(0.5)
        # sent at 0, 0.5, 1.5, 3.5; gives up at 5
        self.assertEqual(len(self.port.written), 4)
        self.assertEqual(len(set(self.port.written)), 1)
        self.failureResultOf(d, MediaTimeout)

    def test_error_reply(self):
        d = self.client.query("nope")
        cookie, _ = ng.parse(self.port.written[0][0])
        self.client._received(ng.format(cookie, {"result": "error", "error-reason": "Unknown call-id"}),
                              None)
        self.assertEqual(self.failureResultOf(d, MediaError).value.reason, "Unknown call-id")

    def test_notification_acknowledged(self):
        self.client._received(ng.format(b"mssn1", {"notify": "media-timeout", "call-id": "c1"}),
                              ("127.0.0.1", 22222))
        self.assertEqual(self.notes, [{"notify": "media-timeout", "call-id": "c1"}])
        self.assertEqual(self.port.written, [(b"mssn1 d6:result2:oke", ("127.0.0.1", 22222))])

    def test_garbage_ignored(self):
        self.client._received(b"\x00\x01", None)
        self.assertEqual(self.port.written, [])

    def test_not_started(self):
        self.client._port = None
        self.failureResultOf(self.client.ping(), MediaError)


class PassThroughTests(SynchronousTestCase):
    def test_sdp_unchanged(self):
        from mss.call.media import PassThroughMedia
        m = PassThroughMedia()
        self.assertEqual(self.successResultOf(m.offer("c", "a", b"v=0\r\n")), b"v=0\r\n")
        self.assertEqual(self.successResultOf(m.answer("c", "a", "b", b"v=0\r\ny")), b"v=0\r\ny")
        self.assertIsNone(m.delete("c"))


class GatewayMediaTests(SynchronousTestCase):
    """The call core's media seam over the ng client (mss.call.media.GatewayMedia)."""

    def setUp(self):
        self.clock = Clock()
        self.client = NgClient(self.clock, "127.0.0.1:22222", timeout=5)
        self.port = self.client._port = FakePort()
        from mss.call.media import GatewayMedia
        self.anchor = GatewayMedia(self.client)

    def reply(self, message):
        cookie, sent = ng.parse(self.port.written[-1][0])
        self.client._received(ng.format(cookie, message), None)
        return sent

    def test_offer_answer_return_sdp(self):
        d = self.anchor.offer("c1", "ta", b"v=0\r\n", "A")
        sent = self.reply({"result": "ok", "sdp": "v=0\r\nrewritten"})
        self.assertEqual(sent, {"command": "offer", "call-id": "c1", "from-tag": "ta", "sdp": "v=0\r\n",
                                "ICE": "remove", "replace": ["origin"], "label": "A"})
        self.assertEqual(self.successResultOf(d), b"v=0\r\nrewritten")
        d = self.anchor.answer("c1", "ta", "tb", b"v=0\r\n", "B")
        self.reply({"result": "error", "error-reason": "Ran out of ports"})
        self.assertEqual(self.failureResultOf(d, MediaError).value.reason, "Ran out of ports")

    def test_delete_fire_and_forget(self):
        self.assertIsNone(self.anchor.delete("c1"))
        self.reply({"result": "error", "error-reason": "Unknown call-id"})
        self.assertIsNone(self.anchor.delete("c2"))
        for _ in range(12):
            self.clock.advance(0.5)         # timed out: logged, not raised
        self.flushLoggedErrors()

    def test_provides_the_call_cores_seam(self):
        from mss.call.media import IMediaAnchor
        verifyObject(IMediaAnchor, self.anchor)
