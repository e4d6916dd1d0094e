# -*- test-case-name: tests.media.test_tones -*-
"""Tones: the precomputed frames (frequency, cadence, level, both codecs) and ``play-tone`` /
``stop-tone`` in the gateway (on a new leg from an offer, on a running call's leg, timing,
muting of the peer, errors)."""
import struct

try:
    import audioop
except ImportError:
    import audioop_lts as audioop

from twisted.trial.unittest import SynchronousTestCase

from mss.media import tones
from mss.sip import sdp
from tests.media.fakes import offer_sdp, rtp
from tests.media.test_relay import A, B, Base


def zero_crossings(pcm: bytes) -> int:
    return audioop.cross(pcm, 2)


class FrameTests(SynchronousTestCase):
    def test_every_tone_and_codec(self):
        for name, cadence in tones.CADENCES.items():
            cycle_ms = sum(ms for _, ms in cadence)
            for pt, decode in ((0, audioop.ulaw2lin), (8, audioop.alaw2lin)):
                frames = tones.frames(name, pt)
                self.assertEqual(len(frames), cycle_ms // 20, name)
                self.assertTrue(all(len(f) == 160 for f in frames), name)
                self.assertIs(frames, tones.frames(name, pt))       # computed once
                linear = decode(b"".join(frames), 2)
                # the on-segments carry the tone's frequency at about -10 dBm0
                start = 0
                for freq, ms in cadence:
                    part = linear[start:start + 16 * ms]
                    start += 16 * ms
                    if not freq:
                        self.assertLess(audioop.max(part, 2), 16, (name, pt))
                        continue
                    measured = zero_crossings(part) * 1000 / (2 * ms)
                    self.assertTrue(abs(measured - freq) <= freq * 0.02 + 10, (name, measured))
                    peak = audioop.max(part, 2)
                    self.assertTrue(6800 < peak < 7600, (name, pt, peak))

    def test_busy_cadence(self):
        """busy: 25 frames of 425 Hz, 25 of silence."""
        frames = tones.frames("busy", 0)
        loud = [audioop.rms(audioop.ulaw2lin(f, 2), 2) > 1000 for f in frames]
        self.assertEqual(loud, [True] * 25 + [False] * 25)


class PlayToneTests(Base):
    def tone_leg(self, codecs="0 8 101", tone="confirm", duration=100, extra="", **more):
        reply = self.ok(command="play-tone", tone=tone, duration=duration,
                        sdp=offer_sdp(*A, codecs=codecs, extra=extra),
                        **{"call-id": "t1", "from-tag": "ta"}, **more)
        return reply, sdp.parse(reply["sdp"])

    def packets(self, port):
        return [data for data, addr in self.sockets.sent(port)]

    def test_new_leg_answer_and_frames(self):
        """An offer of PCMU, PCMA and DTMF: answered with PCMU alone, sendonly, at the
        gateway's address; 100 ms = 5 frames of the confirm tone reach A's SDP address,
        one every 20 ms, in one RTP stream."""
        reply, answer = self.tone_leg()
        self.assertEqual((reply["codec"], reply["playing"]), ("PCMU", 1))
        self.assertEqual(answer.connection(), ("IP4", "203.0.113.1"))
        self.assertEqual(answer.media[0].formats, ["0"])
        self.assertEqual(answer.direction(0), "sendonly")
        port = answer.endpoint(0).port
        self.assertEqual(len(self.packets(port)), 1)            # the first frame at once
        for _ in range(10):
            self.clock.advance(0.02)
        sent = self.sockets.sent(port)
        self.assertEqual(len(sent), 5)
        self.assertEqual({addr for _, addr in sent}, {A})
        headers = [struct.unpack("!BBHII", d[:12]) for d, _ in sent]
        self.assertEqual(headers[0][1], 0x80)                   # marker, PCMU
        self.assertEqual({h[1] for h in headers[1:]}, {0})
        self.assertEqual([(h[2] - headers[0][2]) & 0xFFFF for h in headers], [0, 1, 2, 3, 4])
        self.assertEqual([(h[3] - headers[0][3]) & 0xFFFFFFFF for h in headers],
                         [0, 160, 320, 480, 640])
        self.assertEqual(len({h[4] for h in headers}), 1)
        self.assertEqual([d[12:] for d, _ in sent], list(tones.frames("confirm", 0)[:5]))
        self.assertEqual(self.gw.players, {})                   # finished: the timer stops
        self.assertIsNone(self.gw._toning)

    def test_pcma_when_offered_first_or_asked(self):
        reply, answer = self.tone_leg(codecs="8 0")
        self.assertEqual((reply["codec"], answer.media[0].formats), ("PCMA", ["8"]))
        data = self.packets(answer.endpoint(0).port)[0]
        self.assertEqual(data[1] & 0x7F, 8)
        self.assertEqual(data[12:], tones.frames("confirm", 8)[0])
        self.ok(command="delete", **{"call-id": "t1"})
        reply, answer = self.tone_leg(codec="PCMA")
        self.assertEqual(reply["codec"], "PCMA")

    def test_latches_like_a_relay_leg(self):
        """The phone's first packet (from behind NAT) redirects the tone there."""
        _, answer = self.tone_leg(duration=1000)
        port = answer.endpoint(0).port
        nat = ("198.51.100.7", 61000)
        self.sockets.deliver(port, rtp(1), nat, self.clock.seconds())
        for _ in range(3):
            self.clock.advance(0.02)
        self.assertEqual(self.sockets.sent(port)[-1][1], nat)

    def test_offer_that_does_not_receive_gets_inactive(self):
        reply, answer = self.tone_leg(extra="a=sendonly\r\n")
        self.assertEqual((reply["playing"], answer.direction(0)), (0, "inactive"))
        self.clock.advance(0.1)
        self.assertEqual(self.packets(answer.endpoint(0).port), [])

    def test_other_streams_rejected(self):
        offer = offer_sdp(*A) + "m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        reply = self.ok(command="play-tone", tone="dial", duration=40, sdp=offer,
                        **{"call-id": "t1", "from-tag": "ta"})
        answer = sdp.parse(reply["sdp"])
        self.assertEqual(answer.media[1].port, 0)
        self.assertEqual(answer.media[0].formats, ["0"])

    def test_running_call_peer_muted_while_playing(self):
        """busy to B's phone in a relayed call: A's audio is not forwarded to B meanwhile,
        and is again once the tone ended; stop-tone ends it early."""
        port_a, port_b = self.setup_call()
        reply = self.ok(command="play-tone", tone="busy", duration=60,
                        **{"call-id": "c1", "from-tag": "tb"})
        self.assertEqual(reply["codec"], "PCMU")
        now = self.clock.seconds()
        self.sockets.deliver(port_a, rtp(1, payload=b"\x11" * 160), A, now)
        to_b = [d for d, addr in self.sockets.sent(port_b) if addr == B]
        self.assertEqual([d[12:] for d in to_b], [tones.frames("busy", 0)[0]])
        for _ in range(5):
            self.clock.advance(0.02)
        self.assertEqual(self.gw.players, {})
        to_b = [d for d, addr in self.sockets.sent(port_b) if addr == B]
        self.assertEqual([d[12:] for d in to_b], list(tones.frames("busy", 0)[:3]))
        self.sockets.deliver(port_a, rtp(2, payload=b"\x22" * 160), A, self.clock.seconds())
        self.assertEqual(self.sockets.sent(port_b)[-1][0][12:], b"\x22" * 160)
        self.ok(command="play-tone", tone="ringback", duration=60000,
                **{"call-id": "c1", "from-tag": "tb"})
        stopped = self.ok(command="stop-tone", **{"call-id": "c1", "from-tag": "tb"})
        self.assertEqual((stopped["tone"], stopped["sent"]), ("ringback", 1))
        self.assertIn("no tone", self.error(command="stop-tone",
                                            **{"call-id": "c1", "from-tag": "tb"}))

    def test_delete_stops_the_tone(self):
        _, answer = self.tone_leg(duration=60000)
        self.ok(command="delete", **{"call-id": "t1"})
        self.assertEqual(self.gw.players, {})
        self.assertIsNone(self.gw._toning)
        self.assertEqual(self.sockets.open, {})

    def test_tone_keeps_a_silent_call_alive(self):
        """No RTP from the phone, but we are playing: no media-timeout notification."""
        self.tone_leg(duration=120000)
        self.clock.pump([1.0] * 100)
        self.assertEqual(self.notified, [])

    def test_bad_requests(self):
        ids = {"call-id": "t1", "from-tag": "ta"}
        self.assertIn("unknown tone", self.error(command="play-tone", tone="siren", duration=100,
                                                  sdp=offer_sdp(*A), **ids))
        for bad in (0, 10, -5, "100", 3600001, True):
            self.assertIn("duration", self.error(command="play-tone", tone="busy", duration=bad,
                                                 sdp=offer_sdp(*A), **ids))
        self.assertIn("duration", self.error(command="play-tone", tone="busy",
                                             sdp=offer_sdp(*A), **ids))
        self.assertIn("codec", self.error(command="play-tone", tone="busy", duration=100,
                                          codec="G729", sdp=offer_sdp(*A), **ids))
        self.assertIn("PCMU or PCMA", self.error(command="play-tone", tone="busy", duration=100,
                                                 sdp=offer_sdp(*A, codecs="18"), **ids))
        self.assertIn("Unknown call-id", self.error(command="play-tone", tone="busy",
                                                    duration=100, **ids))
        self.assertIn("bad SDP", self.error(command="play-tone", tone="busy", duration=100,
                                            sdp="nonsense", **ids))
        self.assertIn("missing tone", self.error(command="play-tone", duration=100, **ids))
        self.assertEqual(self.gw.calls, {})                     # nothing left behind
        self.assertEqual(self.sockets.open, {})


class ClientTests(SynchronousTestCase):
    def test_play_tone_message(self):
        from mss.media.client import _CommandsMixin
        sent = []

        class Recorder(_CommandsMixin):
            def command(self, message):
                from twisted.internet import defer
                sent.append(message)
                return defer.succeed({"result": "ok", "sdp": "v=0\r\n"})
        r = Recorder()
        reply = self.successResultOf(r.play_tone("c", "t", "busy", 2000.0, sdp=b"v=0\r\n",
                                                 codec="PCMA"))
        self.assertEqual(reply["sdp"], b"v=0\r\n")
        self.assertEqual(sent[0], {"command": "play-tone", "call-id": "c", "from-tag": "t",
                                   "tone": "busy", "duration": 2000, "sdp": "v=0\r\n",
                                   "codec": "PCMA"})
        r.stop_tone("c", "t")
        self.assertEqual(sent[1], {"command": "stop-tone", "call-id": "c", "from-tag": "t"})
