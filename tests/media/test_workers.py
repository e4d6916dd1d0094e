# -*- test-case-name: tests.media.test_workers -*-
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from mss.media.ng import MediaError
from mss.media.ports import PortAllocator
from mss.media.relay import Gateway
from mss.media.workers import Router
from mss.sip import sdp
from tests.media.fakes import FakeSockets, offer_sdp, rtp


class InProcessWorker:
    """A worker gateway answering like NgClient does (errors as MediaError)."""

    def __init__(self, index):
        self.sockets = FakeSockets()
        self.gateway = Gateway(clock=Clock(), sockets=self.sockets,
                               ports=PortAllocator(30000 + 1000 * index, 30999 + 1000 * index),
                               public_address="203.0.113.1")

    def command(self, msg):
        reply = self.gateway.handle(msg, ("127.0.0.1", 1))
        if reply["result"] == "error":
            return defer.fail(MediaError(reply["error-reason"]))
        return defer.succeed(reply)


class RouterTests(SynchronousTestCase):
    def setUp(self):
        self.workers = [InProcessWorker(i) for i in range(3)]
        self.notes = []
        self.router = Router(self.workers, "127.0.0.1", notify=lambda c, m: self.notes.append((c, m)))

    def call(self, method, **msg):
        msg["command"] = method
        return self.successResultOf(defer.maybeDeferred(self.router.handle, msg, ("10.0.0.1", 5060)))

    def call_on(self, worker, avoid=None):
        i = 0
        while True:
            cid = "call-%d" % i
            if self.router.worker_of(cid) == worker:
                return cid
            i += 1

    def test_calls_spread_and_stay(self):
        for i in range(30):
            self.call("offer", **{"call-id": "c%d" % i, "from-tag": "a", "sdp": offer_sdp("192.0.2.1", 4000)})
        counts = [len(w.gateway.calls) for w in self.workers]
        self.assertEqual(sum(counts), 30)
        self.assertTrue(all(c > 0 for c in counts), counts)
        cid = "c7"
        w = self.workers[self.router.worker_of(cid)]
        self.call("answer", **{"call-id": cid, "from-tag": "a", "to-tag": "b", "sdp": offer_sdp("192.0.2.2", 5000)})
        self.assertIn("b", w.gateway.calls[cid].legs)
        self.assertEqual(len(self.call("list", limit=100)["calls"]), 30)
        self.assertEqual(self.call("delete", **{"call-id": cid})["result"], "ok")
        self.assertNotIn(cid, w.gateway.calls)
        self.assertEqual(self.call("ping"), {"result": "pong"})
        self.assertEqual(self.call("query", **{"call-id": "nope"})["result"], "error")

    def test_barge_in_across_workers(self):
        room = "r1"
        r = self.router.room_worker(room)
        other = (r + 1) % 3
        cid = self.call_on(other)
        phone_a, phone_b = ("192.0.2.10", 4000), ("192.0.2.20", 5000)
        o = self.call("offer", **{"call-id": cid, "from-tag": "ta", "sdp": offer_sdp(*phone_a)})
        a = self.call("answer", **{"call-id": cid, "from-tag": "ta", "to-tag": "tb",
                                   "sdp": offer_sdp(*phone_b, codecs="8")})
        port_a = sdp.parse(a["sdp"]).endpoint(0).port
        for tag in ("ta", "tb"):
            self.assertEqual(self.call("room-join", room=room, **{"call-id": cid, "from-tag": tag}),
                             {"result": "ok", "room": room})
        j = self.call("room-join", room=room, **{"call-id": "operator", "from-tag": "op",
                                                 "sdp": offer_sdp("192.0.2.30", 6000, codecs="0")})
        self.assertEqual(j["result"], "ok", j)
        self.assertIn("operator", self.workers[r].gateway.calls)       # created where the room is
        q = self.call("room-query", room=room)
        self.assertEqual(sorted((p["call-id"], p["tag"], p["codec"]) for p in q["participants"]),
                         [(cid, "ta", "PCMU"), (cid, "tb", "PCMA"), ("operator", "op", "PCMU")])
        # the leg's worker forwards the phone's audio to the room worker's bridge port, and
        # the room's audio coming back from that port to the phone
        leg_worker = self.workers[other]
        ep = leg_worker.gateway.calls[cid].legs["ta"].endpoints[0]
        bridge_port = ep.bridge[1]
        self.assertIn(bridge_port, self.workers[r].sockets.open)
        leg_worker.sockets.deliver(port_a, rtp(1), phone_a, 0)
        sent = [s for p in leg_worker.sockets.open for s in leg_worker.sockets.sent(p)]
        self.assertEqual(sent, [(rtp(1), ("127.0.0.1", bridge_port))])   # not to phone B
        self.assertEqual(leg_worker.sockets.sent(port_a), sent)          # from the leg's port
        leg_worker.sockets.deliver(port_a, rtp(5), ("127.0.0.1", bridge_port), 0)
        self.assertEqual(leg_worker.sockets.sent(port_a)[-1], (rtp(5), phone_a))
        # leaving undoes the bridge; deleting the call removes what is left
        self.assertEqual(self.call("room-leave", **{"call-id": cid, "from-tag": "ta"}), {"result": "ok"})
        self.assertIsNone(ep.bridge)
        self.assertNotIn(bridge_port, self.workers[r].sockets.open)
        self.call("delete", **{"call-id": cid})
        self.assertEqual([c for c in self.workers[r].gateway.calls], ["operator"])
        self.assertEqual(self.router.bridges, {})
        self.call("delete", **{"call-id": "operator"})
        self.assertEqual(self.call("room-list")["rooms"], [])

    def test_notifications_go_to_the_calls_controller(self):
        self.call("offer", **{"call-id": "c1", "from-tag": "a", "sdp": offer_sdp("192.0.2.1", 4000)})
        self.router.notified({"notify": "media-timeout", "call-id": "c1"})
        self.router.notified({"notify": "media-timeout", "call-id": "bridge/x/y"})
        self.assertEqual(self.notes, [(("10.0.0.1", 5060), {"notify": "media-timeout", "call-id": "c1"})])
