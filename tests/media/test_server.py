# -*- test-case-name: tests.media.test_server -*-
"""Loopback tests: the real gateway service, real UDP sockets, driven by NgClient."""
import audioop
import random
import struct

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import TestCase

from mss.media import ng
from mss.media.client import NgClient
from mss.media.server import MediaGatewayService
from mss.sip import sdp
from tests.media.fakes import offer_sdp, rtp


class Phone(DatagramProtocol):
    def __init__(self):
        self.received = []
        self.waiting = []

    def datagramReceived(self, data, addr):
        self.received.append((data, addr))
        waiting, self.waiting = self.waiting, []
        for count, d in waiting:
            if len(self.received) >= count:
                d.callback(self.received)
            else:
                self.waiting.append((count, d))

    def wait(self, count, seconds=5):
        d = defer.Deferred()
        if len(self.received) >= count:
            d.callback(self.received)
        else:
            self.waiting.append((count, d))
        return d.addTimeout(seconds, reactor)


def rtp_range():
    low = random.randrange(41000, 59000, 100)
    return low, low + 99


class GatewayLoopbackTests(TestCase):
    timeout = 20

    def setUp(self):
        self.service = MediaGatewayService(reactor, control="127.0.0.1:0", rtp_ports=rtp_range(),
                                           public_address="127.0.0.1", bind="127.0.0.1")
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.control = ("127.0.0.1", self.service.port.getHost().port)
        self.client = NgClient(reactor, self.control, timeout=5)
        self.client.startService()
        self.addCleanup(self.client.stopService)

    def phone(self):
        p = Phone()
        port = reactor.listenUDP(0, p, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return p, port.getHost().port

    @defer.inlineCallbacks
    def test_relay_both_ways(self):
        self.assertEqual((yield self.client.ping()), {"result": "pong"})
        a, a_port = self.phone()
        b, b_port = self.phone()
        o = yield self.client.offer("call1", "ta", offer_sdp("127.0.0.1", a_port))
        ans = yield self.client.answer("call1", "ta", "tb", offer_sdp("127.0.0.1", b_port))
        to_b = sdp.parse(o["sdp"]).endpoint(0).port        # B sends here
        to_a = sdp.parse(ans["sdp"]).endpoint(0).port      # A sends here
        dtmf = rtp(2, pt=101, payload=b"\x05\x0a\x00\xa0")
        for packet in (rtp(1), dtmf):
            a.transport.write(packet, ("127.0.0.1", to_a))
        got = yield b.wait(2)
        self.assertEqual(got, [(rtp(1), ("127.0.0.1", to_b)), (dtmf, ("127.0.0.1", to_b))])
        b.transport.write(rtp(9), ("127.0.0.1", to_b))
        got = yield a.wait(1)
        self.assertEqual(got, [(rtp(9), ("127.0.0.1", to_a))])   # symmetric: same port
        q = yield self.client.query("call1")
        self.assertEqual(q["tags"]["ta"]["medias"][0]["streams"][0]["stats"]["packets"], 2)
        d = yield self.client.delete("call1")
        self.assertEqual(d["totals"]["RTP"]["packets"], 3)
        self.assertEqual(self.service.gateway.ports.in_use, 0)

    @defer.inlineCallbacks
    def test_three_party_mix(self):
        phones = [self.phone() for _ in range(3)]
        values = [1000, 2000, 4000]
        targets = []
        for i, (phone, port) in enumerate(phones):
            r = yield self.client.room_join("conf", "c%d" % i, "t%d" % i,
                                            sdp=offer_sdp("127.0.0.1", port, codecs="0"))
            targets.append(sdp.parse(r["sdp"]).endpoint(0).port)
        for seq in range(3):
            for (phone, _), value, target in zip(phones, values, targets):
                pcm = struct.pack("<160h", *([value] * 160))
                phone.transport.write(rtp(seq, pt=0, payload=audioop.lin2ulaw(pcm, 2)),
                                      ("127.0.0.1", target))
        heard = [audioop.ulaw2lin(audioop.lin2ulaw(struct.pack("<160h", *([v] * 160)), 2), 2)
                 for v in values]
        for i, (phone, _) in enumerate(phones):
            others = [heard[j] for j in range(3) if j != i]
            want = audioop.lin2ulaw(audioop.add(others[0], others[1], 2), 2)
            deadline = reactor.seconds() + 5
            # the first frames may be silence while the jitter buffer fills
            while True:
                got = yield phone.wait(len(phone.received) + 1)
                if got[-1][0][12:] == want:
                    break
                self.assertLess(reactor.seconds(), deadline, "mixed frame never arrived")
            self.assertEqual(got[-1][1], ("127.0.0.1", targets[i]))
        q = yield self.client.room_query("conf")
        self.assertEqual(len(q["participants"]), 3)

    @defer.inlineCallbacks
    def test_retransmitted_offer_is_answered_from_cache(self):
        replies = Phone()
        port = reactor.listenUDP(0, replies, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        datagram = ng.format(b"abc1", {"command": "offer", "call-id": "x", "from-tag": "t",
                                       "sdp": offer_sdp("127.0.0.1", 4000)})
        replies.transport.write(datagram, self.control)
        replies.transport.write(datagram, self.control)
        got = yield replies.wait(2)
        self.assertEqual(got[0][0], got[1][0])
        self.assertEqual(self.service.gateway.ports.in_use, 2)
        replies.transport.write(b"abc2 d7:command", self.control)
        replies.transport.write(b"no-cookie-here", self.control)
        got = yield replies.wait(3)
        self.assertEqual(ng.parse(got[2][0])[1]["result"], "error")


class ControlProtocolTests(TestCase):
    """Notifications: resent until acknowledged (Clock-driven, no sockets)."""

    def test_notify_resent_until_ack(self):
        from twisted.internet.task import Clock
        from mss.media.server import ControlProtocol

        class T:
            def __init__(self):
                self.written = []

            def write(self, data, addr):
                self.written.append((data, addr))
        clock = Clock()
        proto = ControlProtocol(lambda m, s: {"result": "pong"}, clock)
        proto.transport = T()
        proto.notify(("127.0.0.1", 5), {"notify": "media-timeout", "call-id": "c"})
        clock.advance(2)
        self.assertEqual(len(proto.transport.written), 2)
        cookie = proto.transport.written[0][0].split(b" ")[0]
        proto.datagramReceived(cookie + b" d6:result2:oke", ("127.0.0.1", 5))
        for _ in range(5):
            clock.advance(2)
        self.assertEqual(len(proto.transport.written), 2)
        self.assertEqual(clock.getDelayedCalls(), [])
        # an unacknowledged one stops after three sends
        proto.notify(("127.0.0.1", 5), {"notify": "media-timeout", "call-id": "d"})
        for _ in range(5):
            clock.advance(2)
        self.assertEqual(len(proto.transport.written), 5)
        self.assertEqual(clock.getDelayedCalls(), [])


class IPv6LoopbackTests(TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def test_relay_over_ipv6(self):
        service = MediaGatewayService(reactor, control="127.0.0.1:0", rtp_ports=rtp_range(),
                                      public_address="::1", bind="::1")
        service.startService()
        self.addCleanup(service.stopService)
        client = NgClient(reactor, ("127.0.0.1", service.port.getHost().port))
        client.startService()
        self.addCleanup(client.stopService)
        phones = []
        for _ in range(2):
            p = Phone()
            port = reactor.listenUDP(0, p, interface="::1")
            self.addCleanup(port.stopListening)
            phones.append((p, port.getHost().port))
        (a, a_port), (b, b_port) = phones
        v6 = ("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n"
              "m=audio %d RTP/AVP 0\r\n")
        o = yield client.offer("c6", "ta", v6 % a_port)
        ans = yield client.answer("c6", "ta", "tb", v6 % b_port)
        self.assertEqual(sdp.parse(o["sdp"]).connection(), ("IP6", "::1"))
        to_a = sdp.parse(ans["sdp"]).endpoint(0).port
        to_b = sdp.parse(o["sdp"]).endpoint(0).port
        a.transport.write(rtp(1), ("::1", to_a))
        got = yield b.wait(1)
        self.assertEqual((got[0][0], got[0][1][:2]), (rtp(1), ("::1", to_b)))
        b.transport.write(rtp(2), ("::1", to_b))
        got = yield a.wait(1)
        self.assertEqual((got[0][0], got[0][1][:2]), (rtp(2), ("::1", to_a)))
