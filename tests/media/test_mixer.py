# -*- test-case-name: tests.media.test_mixer -*-
import audioop
import struct

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from mss.media.mixer import FRAME_SAMPLES, PCMA, PCMU, Room
from mss.media.ports import PortAllocator
from mss.media.relay import Gateway
from mss.media.stream import MediaEndpoint
from mss.sip import sdp
from tests.media.fakes import FakeSocket, FakeSockets, offer_sdp, rtp


def tone(value, n=FRAME_SAMPLES):
    return struct.pack("<%dh" % n, *([value] * n))


def encode(pt, linear):
    return audioop.lin2ulaw(linear, 2) if pt == PCMU else audioop.lin2alaw(linear, 2)


def decode(pt, payload):
    return audioop.ulaw2lin(payload, 2) if pt == PCMU else audioop.alaw2lin(payload, 2)


class Leg:
    def __init__(self, name):
        self.call_id, self.tag = "c", name


def endpoint(name):
    ep = MediaEndpoint(Leg(name), 0, 0, FakeSocket(0), FakeSocket(1))
    ep.target = ("192.0.2.1", 4000)
    return ep


class RoomTests(SynchronousTestCase):
    def feed(self, room, ep, pt, value, seq):
        room.push(ep, rtp(seq, pt=pt, payload=encode(pt, tone(value))))

    def test_mix_minus_known_pcm(self):
        room = Room("r")
        eps = {n: endpoint(n) for n in "abc"}
        pts = {"a": PCMU, "b": PCMU, "c": PCMA}
        values = {"a": 1000, "b": 2000, "c": -500}
        for n, ep in eps.items():
            room.add(ep, pts[n])
        for seq in (1, 2):                          # fill past the 40 ms prefill
            for n, ep in eps.items():
                self.feed(room, ep, pts[n], values[n], seq)
        heard = {n: decode(pts[n], encode(pts[n], tone(values[n]))) for n in eps}
        out = dict((p.endpoint.leg.tag, payload) for p, payload in room.mix())
        for n in eps:
            others = [heard[m] for m in eps if m != n]
            expected = encode(pts[n], audioop.add(others[0], others[1], 2))
            self.assertEqual(out[n], expected, n)

    def test_saturation(self):
        room = Room("r")
        a, b, c = endpoint("a"), endpoint("b"), endpoint("c")
        for ep in (a, b, c):
            room.add(ep, PCMA)
        for seq in (1, 2):
            self.feed(room, a, PCMA, 30000, seq)
            self.feed(room, b, PCMA, 30000, seq)
        out = dict((p.endpoint.leg.tag, payload) for p, payload in room.mix())
        self.assertEqual(out["c"], encode(PCMA, tone(32767)))
        # a hears only b, without clipping
        self.assertEqual(out["a"], encode(PCMA, decode(PCMA, encode(PCMA, tone(30000)))))

    def test_silence_and_prefill(self):
        room = Room("r")
        a, b = endpoint("a"), endpoint("b")
        room.add(a, PCMU)
        room.add(b, PCMU)
        self.feed(room, a, PCMU, 1000, 1)
        out = dict((p.endpoint.leg.tag, payload) for p, payload in room.mix())
        self.assertEqual(out["b"], encode(PCMU, tone(0)))      # 20 ms is below the prefill
        self.feed(room, a, PCMU, 1000, 2)
        out = dict((p.endpoint.leg.tag, payload) for p, payload in room.mix())
        self.assertEqual(decode(PCMU, out["b"]), decode(PCMU, encode(PCMU, tone(1000))))
        self.assertEqual(out["a"], encode(PCMU, tone(0)))      # b sends nothing: silence

    def test_reordering_in_jitter_buffer(self):
        room = Room("r")
        a, b = endpoint("a"), endpoint("b")
        room.add(a, PCMU)
        room.add(b, PCMU)
        self.feed(room, a, PCMU, 1000, 10)
        self.feed(room, a, PCMU, 3000, 12)
        self.feed(room, a, PCMU, 2000, 11)
        got = [decode(PCMU, dict((p.endpoint.leg.tag, x) for p, x in room.mix())["b"])[:2]
               for _ in range(3)]
        expected = [decode(PCMU, encode(PCMU, tone(v)))[:2] for v in (1000, 2000, 3000)]
        self.assertEqual(got, expected)
        self.feed(room, a, PCMU, 5000, 11)                    # too late: dropped
        self.assertEqual(a.mix_state.dropped, 1)

    def test_tick_sends_rtp(self):
        room = Room("r")
        a, b = endpoint("a"), endpoint("b")
        room.add(a, PCMU)
        room.add(b, PCMA)
        room.tick()
        room.tick()
        (p1, to1), (p2, to2) = b.sock.sent
        self.assertEqual(to1, b.target)
        self.assertEqual(len(p1), 172)
        self.assertEqual(p1[1], 0x80 | PCMA)                   # marker on the first packet
        self.assertEqual(p2[1], PCMA)
        s1, t1, ssrc1 = struct.unpack("!HII", p1[2:12])
        s2, t2, ssrc2 = struct.unpack("!HII", p2[2:12])
        self.assertEqual(((s2 - s1) & 0xFFFF, (t2 - t1) & 0xFFFFFFFF, ssrc1), (1, 160, ssrc2))

    def test_non_g711_ignored(self):
        room = Room("r")
        a = endpoint("a")
        room.add(a, PCMU)
        room.push(a, rtp(1, pt=101, payload=b"\x01\x00\x00\xa0"))
        room.push(a, rtp(2, pt=18, payload=b"\x00" * 20))
        self.assertEqual(a.mix_state.frames_in, 0)
        with self.assertRaises(ValueError):
            room.add(endpoint("g"), 18)


class GatewayRoomTests(SynchronousTestCase):
    """Barge-in: the two legs of a running call move into a room, an operator joins."""

    def setUp(self):
        self.clock = Clock()
        self.sockets = FakeSockets()
        self.gw = Gateway(clock=self.clock, sockets=self.sockets,
                          ports=PortAllocator(30000, 30099), public_address="203.0.113.1")
        self.addCleanup(self.gw.stop)

    def handle(self, **msg):
        return self.gw.handle(msg, None)

    def test_barge_in(self):
        A, B, O = ("192.0.2.10", 4000), ("192.0.2.20", 5000), ("192.0.2.30", 6000)
        o = self.handle(command="offer", **{"call-id": "c1", "from-tag": "ta", "sdp": offer_sdp(*A)})
        a = self.handle(command="answer", **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb",
                                             "sdp": offer_sdp(*B, codecs="8 101")})
        port_b = sdp.parse(o["sdp"]).endpoint(0).port
        port_a = sdp.parse(a["sdp"]).endpoint(0).port
        self.assertEqual(self.handle(command="room-join", room="r1",
                                     **{"call-id": "c1", "from-tag": "ta"})["result"], "ok")
        self.assertEqual(self.handle(command="room-join", room="r1",
                                     **{"call-id": "c1", "from-tag": "tb"})["result"], "ok")
        j = self.handle(command="room-join", room="r1",
                        **{"call-id": "op", "from-tag": "to", "sdp": offer_sdp(*O, codecs="0")})
        self.assertEqual(j["result"], "ok", j)
        port_o = sdp.parse(j["sdp"]).endpoint(0).port
        q = self.handle(command="room-query", room="r1")
        self.assertEqual(sorted((p["call-id"], p["tag"], p["codec"]) for p in q["participants"]),
                         [("c1", "ta", "PCMU"), ("c1", "tb", "PCMA"), ("op", "to", "PCMU")])
        # A and B talk, the operator listens
        for seq in (1, 2):
            self.sockets.deliver(port_a, rtp(seq, pt=0, payload=encode(PCMU, tone(1000))), A, 0)
            self.sockets.deliver(port_b, rtp(seq, pt=8, payload=encode(PCMA, tone(2000))), B, 0)
        self.assertEqual(self.sockets.sent(port_b), [])        # no direct relaying any more
        self.clock.advance(0.02)
        (to_op, addr), = self.sockets.sent(port_o)
        self.assertEqual(addr, O)
        heard = audioop.add(decode(PCMU, encode(PCMU, tone(1000))),
                            decode(PCMA, encode(PCMA, tone(2000))), 2)
        self.assertEqual(to_op[12:], encode(PCMU, heard))
        (to_b, addr), = self.sockets.sent(port_b)
        self.assertEqual((to_b[1] & 0x7F, addr), (PCMA, B))
        # B leaves: A and B talk directly again? B's packets go to the room only while A is in it
        self.assertEqual(self.handle(command="room-leave", **{"call-id": "c1", "from-tag": "tb"}),
                         {"result": "ok"})
        self.assertEqual(self.handle(command="room-leave", **{"call-id": "c1", "from-tag": "ta"}),
                         {"result": "ok"})
        self.sockets.deliver(port_a, rtp(3), A, 0)
        self.assertEqual(self.sockets.sent(port_b)[-1], (rtp(3), B))
        self.assertEqual(self.handle(command="room-list")["rooms"], ["r1"])
        self.handle(command="delete", **{"call-id": "op"})
        self.assertEqual(self.handle(command="room-list")["rooms"], [])
        self.assertEqual(self.gw._mixing, None)

    def test_late_timer_catches_up(self):
        O = ("192.0.2.30", 6000)
        j = self.handle(command="room-join", room="r1",
                        **{"call-id": "op", "from-tag": "to", "sdp": offer_sdp(*O, codecs="0")})
        port = sdp.parse(j["sdp"]).endpoint(0).port
        self.clock.advance(0.02)
        self.assertEqual(len(self.sockets.sent(port)), 1)
        self.clock.advance(0.06)                  # the reactor was 40 ms late
        self.assertEqual(len(self.sockets.sent(port)), 4)
        self.clock.advance(1.0)                   # a long stall: at most 5 frames at once
        self.assertEqual(len(self.sockets.sent(port)), 9)

    def test_errors(self):
        self.assertIn("Unknown", self.handle(command="room-join", room="r",
                                             **{"call-id": "x", "from-tag": "y"})["error-reason"])
        self.assertEqual(self.handle(command="room-join", **{"call-id": "x"})["error-reason"],
                         "missing room")
        j = self.handle(command="room-join", room="r", **{
            "call-id": "g", "from-tag": "t", "sdp": offer_sdp("192.0.2.1", 4000, codecs="18")})
        self.assertIn("G.711", j["error-reason"])
        self.assertEqual((self.gw.calls, self.sockets.open), ({}, {}))
        self.assertEqual(self.handle(command="room-query", room="nope")["error-reason"], "Unknown room")
