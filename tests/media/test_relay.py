# -*- test-case-name: tests.media.test_relay -*-
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from mss.media.ports import PortAllocator
from mss.media.relay import Gateway
from mss.sip import sdp
from tests.media.fakes import FakeSockets, offer_sdp, rtp

A = ("192.0.2.10", 4000)          # phone A as its SDP says
A_NAT = ("198.51.100.7", 61000)   # where A's packets really come from
B = ("192.0.2.20", 5000)


class Base(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.sockets = FakeSockets()
        self.notified = []
        self.gw = Gateway(clock=self.clock, sockets=self.sockets,
                          ports=PortAllocator(30000, 30019), public_address="203.0.113.1",
                          media_timeout=60, notify=lambda a, m: self.notified.append((a, m)))
        self.gw.start()
        self.addCleanup(self.gw.stop)

    def ok(self, **msg):
        reply = self.gw.handle(msg, ("127.0.0.1", 9999))
        self.assertIn(reply["result"], ("ok", "pong"), reply)
        return reply

    def error(self, **msg):
        reply = self.gw.handle(msg, ("127.0.0.1", 9999))
        self.assertEqual(reply["result"], "error")
        return reply["error-reason"]

    def setup_call(self, call_id="c1"):
        o = self.ok(command="offer", **{"call-id": call_id, "from-tag": "ta",
                                        "sdp": offer_sdp(*A)})
        a = self.ok(command="answer", **{"call-id": call_id, "from-tag": "ta", "to-tag": "tb",
                                         "sdp": offer_sdp(*B)})
        port_b = sdp.parse(o["sdp"]).endpoint(0).port     # where B sends
        port_a = sdp.parse(a["sdp"]).endpoint(0).port     # where A sends
        return port_a, port_b


class OfferAnswerTests(Base):
    def test_ping_and_unknown(self):
        self.assertEqual(self.ok(command="ping"), {"result": "pong"})
        self.assertIn("unknown command", self.error(command="fly"))
        self.assertIn("unknown command", self.error())

    def test_rewrites_each_side(self):
        o = self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "sdp": offer_sdp(*A)})
        d = sdp.parse(o["sdp"])
        self.assertEqual(d.connection(), ("IP4", "203.0.113.1"))
        self.assertEqual(d.media[0].formats, ["0", "8", "101"])
        self.assertIn("a=fmtp:101 0-15", o["sdp"].decode() if isinstance(o["sdp"], bytes) else o["sdp"])
        a = self.ok(command="answer", **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb",
                                         "sdp": offer_sdp(*B)})
        da = sdp.parse(a["sdp"])
        self.assertEqual(da.connection(), ("IP4", "203.0.113.1"))
        self.assertNotEqual(da.endpoint(0).port, d.endpoint(0).port)
        self.assertEqual(len(self.sockets.open), 2)

    def test_required_keys_and_bad_sdp(self):
        self.assertEqual(self.error(command="offer", **{"from-tag": "a", "sdp": offer_sdp(*A)}),
                         "missing call-id")
        self.assertEqual(self.error(command="offer", **{"call-id": "c", "from-tag": "a"}),
                         "missing sdp")
        self.assertIn("bad SDP", self.error(command="offer", **{"call-id": "c", "from-tag": "a",
                                                                 "sdp": "hello"}))
        self.assertIn("Unknown", self.error(command="answer", **{
            "call-id": "nope", "from-tag": "a", "to-tag": "b", "sdp": offer_sdp(*B)}))
        self.assertEqual(self.gw.calls, {})
        self.assertEqual(self.gw.ports.in_use, 0)

    def test_media_address_must_be_an_ip_of_our_family(self):
        for address, problem in [("phone.example.com", "is not an IP address"),
                                 ("2001:db8::1", "is not IP4")]:
            text = offer_sdp("192.0.2.1", 4000).replace("c=IN IP4 192.0.2.1",
                                                        "c=IN IP4 %s" % address)
            self.assertIn(problem, self.error(command="offer", **{
                "call-id": "c", "from-tag": "a", "sdp": text}))
        self.assertEqual((self.gw.calls, self.sockets.open), ({}, {}))

    def test_exhaustion_is_an_error_and_leaks_nothing(self):
        for i in range(5):
            self.setup_call("c%d" % i)                 # 10 pairs in the range
        self.assertEqual(self.error(command="offer", **{"call-id": "x", "from-tag": "a",
                                                         "sdp": offer_sdp(*A)}), "Ran out of ports")
        self.assertNotIn("x", self.gw.calls)
        self.ok(command="delete", **{"call-id": "c0"})
        self.setup_call("x")

    def test_bind_failure_tries_next_pair(self):
        self.sockets.refuse = {30000, 30002}
        port_a, port_b = self.setup_call()
        self.assertEqual({port_a, port_b}, {30004, 30006})
        self.assertEqual(self.gw.ports.in_use, 2)

    def test_reinvite_and_hold_keep_ports(self):
        port_a, port_b = self.setup_call()
        hold = offer_sdp("0.0.0.0", 4000, extra="a=sendonly\r\n")
        o = self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb",
                                        "sdp": hold})
        self.assertEqual(sdp.parse(o["sdp"]).endpoint(0).port, port_b)
        self.assertEqual(sdp.parse(o["sdp"]).direction(0), "sendonly")
        # re-INVITE from B's side
        o2 = self.ok(command="offer", **{"call-id": "c1", "from-tag": "tb", "to-tag": "ta",
                                         "sdp": offer_sdp(*B)})
        self.assertEqual(sdp.parse(o2["sdp"]).endpoint(0).port, port_a)
        a2 = self.ok(command="answer", **{"call-id": "c1", "from-tag": "tb", "to-tag": "ta",
                                          "sdp": offer_sdp(*A)})
        self.assertEqual(sdp.parse(a2["sdp"]).endpoint(0).port, port_b)
        self.assertEqual(len(self.sockets.open), 2)

    def test_delete_frees_everything(self):
        self.setup_call()
        reply = self.ok(command="delete", **{"call-id": "c1"})
        self.assertIn("tb", reply["tags"])
        self.assertEqual(self.sockets.open, {})
        self.assertEqual(self.gw.ports.in_use, 0)
        self.assertIn("Unknown", self.error(command="delete", **{"call-id": "c1"}))

    def test_offer_without_answer_deleted(self):
        self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "sdp": offer_sdp(*A)})
        self.ok(command="delete", **{"call-id": "c1"})
        self.assertEqual(self.sockets.open, {})

    def test_list(self):
        self.setup_call("c1")
        self.setup_call("c2")
        self.assertEqual(sorted(self.ok(command="list")["calls"]), ["c1", "c2"])
        self.assertEqual(len(self.ok(command="list", limit=1)["calls"]), 1)

    def test_ice_removed_on_request(self):
        text = offer_sdp(*A, extra="a=ice-ufrag:x\r\na=candidate:1 1 UDP 1 192.0.2.10 4000 typ host\r\n")
        o = self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "sdp": text, "ICE": "remove"})
        self.assertNotIn("candidate", o["sdp"].decode())
        self.assertNotIn("ice-ufrag", o["sdp"].decode())


class RelayTests(Base):
    def test_forwarding_before_and_after_latching(self):
        port_a, port_b = self.setup_call()
        # B sends first: nothing latched on A's side yet, so it goes to A's SDP address
        self.sockets.deliver(port_b, rtp(1), B, 1000)
        self.assertEqual(self.sockets.sent(port_a), [(rtp(1), A)])
        # A's packets come from behind NAT: latched, then B's packets go there
        self.sockets.deliver(port_a, rtp(7, pt=101, payload=b"\x01\x02\x03\x04"), A_NAT, 1000)
        self.assertEqual(self.sockets.sent(port_b)[-1], (rtp(7, pt=101, payload=b"\x01\x02\x03\x04"), B))
        self.sockets.deliver(port_b, rtp(2), B, 1000)
        self.assertEqual(self.sockets.sent(port_a)[-1], (rtp(2), A_NAT))

    def test_no_hijack_after_latching(self):
        port_a, port_b = self.setup_call()
        self.sockets.deliver(port_a, rtp(1), A_NAT, 1000)
        self.sockets.deliver(port_a, rtp(2), ("192.0.2.66", 6666), 1000)
        self.sockets.deliver(port_b, rtp(1), B, 1000)
        self.assertEqual(self.sockets.sent(port_b), [(rtp(1), B)])     # only A's packet relayed
        self.assertEqual(self.sockets.sent(port_a), [(rtp(1), A_NAT)])
        q = self.ok(command="query", **{"call-id": "c1"})
        stream = q["tags"]["ta"]["medias"][0]["streams"][0]
        self.assertEqual(stream["stats"]["errors"], 1)
        self.assertEqual(stream["stats"]["packets"], 1)

    def test_invalid_packet_does_not_latch(self):
        port_a, port_b = self.setup_call()
        self.sockets.deliver(port_a, b"garbage", ("192.0.2.66", 6666), 1000)
        self.sockets.deliver(port_a, rtp(1), A_NAT, 1000)
        self.assertEqual(self.sockets.sent(port_b), [(rtp(1), B)])

    def test_rearm_only_when_sdp_endpoint_changes(self):
        port_a, port_b = self.setup_call()
        self.sockets.deliver(port_a, rtp(1), A_NAT, 1000)
        # same SDP again (e.g. a session refresh): latch stays
        self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb",
                                    "sdp": offer_sdp(*A)})
        self.sockets.deliver(port_a, rtp(2), ("192.0.2.66", 6666), 1000)
        self.assertEqual(len(self.sockets.sent(port_b)), 1)
        # A moved (new address in SDP): re-armed, the first new source wins
        self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb",
                                    "sdp": offer_sdp("192.0.2.11", 4100)})
        self.sockets.deliver(port_a, rtp(3), ("192.0.2.11", 4100), 1000)
        self.sockets.deliver(port_a, rtp(4), A_NAT, 1000)
        self.assertEqual([d for d, _ in self.sockets.sent(port_b)], [rtp(1), rtp(3)])

    def test_asymmetric_sends_to_sdp_address(self):
        o = self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "sdp": offer_sdp(*A),
                                        "flags": ["asymmetric"]})
        a = self.ok(command="answer", **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb",
                                         "sdp": offer_sdp(*B)})
        port_b = sdp.parse(o["sdp"]).endpoint(0).port
        port_a = sdp.parse(a["sdp"]).endpoint(0).port
        self.sockets.deliver(port_a, rtp(1), A_NAT, 1000)
        self.sockets.deliver(port_b, rtp(1), B, 1000)
        self.assertEqual(self.sockets.sent(port_a), [(rtp(1), A)])

    def test_rtcp_relayed_and_latched(self):
        port_a, port_b = self.setup_call()
        report = b"\x80\xc8\x00\x06" + bytes(24)
        self.sockets.deliver_rtcp(port_b, report, (B[0], B[1] + 1), 1000)
        self.assertEqual(self.sockets.open[port_a][1].sent, [(report, (A[0], A[1] + 1))])
        self.sockets.deliver_rtcp(port_a, report, (A_NAT[0], 61001), 1000)
        self.sockets.deliver_rtcp(port_b, report, (B[0], B[1] + 1), 1000)
        self.assertEqual(self.sockets.open[port_a][1].sent[-1], (report, (A_NAT[0], 61001)))

    def test_counters_loss_and_jitter(self):
        port_a, port_b = self.setup_call()
        # 100 packets, 20 ms apart, every 10th lost; arrival jitter alternating +-2 ms
        for i in range(100):
            if i % 10 == 5:
                continue
            arrival = 1000 + i * 0.02 + (0.002 if i % 2 else 0)
            self.sockets.deliver(port_a, rtp(65500 + i, ts=i * 160), A_NAT, arrival)
        q = self.ok(command="query", **{"call-id": "c1"})
        stats = q["tags"]["ta"]["medias"][0]["streams"][0]["stats"]
        self.assertEqual(stats["packets"], 90)
        self.assertEqual(stats["bytes"], 90 * 172)
        self.assertEqual(stats["lost"], 10)             # across the sequence wrap
        # |D| is 16 timestamp units (2 ms) between most neighbours: J converges near 2 ms
        self.assertIn(stats["jitter-ms"], (1, 2))
        self.assertEqual(q["totals"]["RTP"]["packets"], 90)

    def test_dtmf_does_not_disturb_jitter(self):
        port_a, port_b = self.setup_call()
        for i in range(50):
            self.sockets.deliver(port_a, rtp(i, ts=i * 160), A_NAT, 1000 + i * 0.02)
        for i in range(50, 60):      # telephone-event: same timestamp for the whole event
            self.sockets.deliver(port_a, rtp(i, ts=8000, pt=101, payload=b"\x01\x00\x00\xa0"),
                                 A_NAT, 1000 + i * 0.02)
        ep = self.gw.calls["c1"].legs["ta"].endpoints[0]
        self.assertLess(ep.jitter_ms(), 0.5)


class TimeoutTests(Base):
    def test_media_timeout_reported_once(self):
        port_a, port_b = self.setup_call()
        self.clock.advance(30)
        self.sockets.deliver(port_a, rtp(1), A_NAT, self.clock.seconds())
        for _ in range(20):
            self.clock.advance(5)         # 100 s later
        self.assertEqual(self.notified, [(("127.0.0.1", 9999),
                                          {"notify": "media-timeout", "call-id": "c1", "idle": 60})])
        self.assertEqual(self.ok(command="query", **{"call-id": "c1"})["timed out"], 1)

    def test_traffic_prevents_timeout(self):
        port_a, port_b = self.setup_call()
        for i in range(100):
            self.clock.advance(1)
            self.sockets.deliver(port_b, rtp(i), B, self.clock.seconds())
        self.assertEqual(self.notified, [])
        self.assertEqual(self.ok(command="query", **{"call-id": "c1"})["timed out"], 0)

    def test_hold_uses_the_longer_timeout(self):
        port_a, port_b = self.setup_call()
        self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb",
                                    "sdp": offer_sdp(*A, extra="a=inactive\r\n")})
        for _ in range(100):
            self.clock.advance(5)               # 500 s of silence on hold
        self.assertEqual(self.notified, [])
        self.ok(command="offer", **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb",
                                    "sdp": offer_sdp(*A)})
        for _ in range(13):
            self.clock.advance(5)               # resumed: the normal timeout again
        self.assertEqual([m["call-id"] for _, m in self.notified], ["c1"])
