# -*- test-case-name: tests.media.test_tap -*-
"""``twistd -n mss-media --config ...`` as a real child process, via MediaChildService."""
import os
import signal
import socket

from twisted.internet import defer, reactor, task
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from mss.media import tap
from mss.media.child import MediaChildService
from mss.media.client import NgClient


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class OptionsTests(SynchronousTestCase):
    def test_bad_config_is_a_usage_error(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[media]\nrtp_ports = "1-2"\n')
        with self.assertRaises(usage.UsageError) as e:
            tap.Options().parseOptions(["--config", path])
        self.assertIn("media.rtp_ports", str(e.exception))


def start_child(testcase, path, **kwargs):
    """A MediaChildService on ``path``; returns it, a queue of the control addresses it
    reports and a queue of its failure reasons."""
    ready, failed = defer.DeferredQueue(), defer.DeferredQueue()
    child = MediaChildService(reactor, path, kill_after=5, on_ready=ready.put,
                              on_failed=failed.put, **kwargs)
    child.startService()
    testcase.addCleanup(lambda: child.stopService() if child.running else None)
    return child, ready, failed


class ChildProcessTests(TestCase):
    timeout = 60

    def setUp(self):
        self.path = os.path.abspath(self.mktemp())
        with open(self.path, "w") as f:
            f.write('[media]\nrtp_ports = "46000-46099"\n'
                    'public_address = "127.0.0.1"\nworkers = 1\n')
        self.client = NgClient(reactor, None, timeout=0.5, first_retransmit=0.1,
                               interface="127.0.0.1")
        self.client.startService()
        self.addCleanup(self.client.stopService)

    @defer.inlineCallbacks
    def test_starts_on_a_free_port_answers_ping_restarts_and_stops(self):
        """No control port configured: the child binds a free one and reports it; after a
        crash the new child reports its own, and ping works at each."""
        child, ready, failed = start_child(self, self.path)
        self.client.address = yield ready.get().addTimeout(20, reactor)
        self.assertEqual(self.client.address[0], "127.0.0.1")
        self.assertNotEqual(self.client.address[1], 0)
        self.assertEqual((yield self.client.ping()), {"result": "pong"})
        os.kill(child.pid, signal.SIGKILL)            # a crash: restarted after 1 s
        self.assertEqual((yield failed.get().addTimeout(5, reactor)),
                         "mss-media process exited (signal 9)")
        self.client.address = yield ready.get().addTimeout(20, reactor)
        self.assertEqual((yield self.client.ping()), {"result": "pong"})
        self.assertEqual(child.restarts, 1)
        yield child.stopService()
        self.assertIsNone(child.process)
        with self.assertRaises(ProcessLookupError):
            os.kill(child.pid, 0)

    @defer.inlineCallbacks
    def test_cannot_start_is_one_reason_not_a_traceback(self):
        """The configured control port is taken: the child reports why in one line and
        exits 1; its output has no traceback."""
        busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        busy.bind(("127.0.0.1", 0))
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        lines = []
        child, ready, failed = start_child(self, self.path, control=f"127.0.0.1:{port}")
        child.output = lines.append
        reason = yield failed.get().addTimeout(20, reactor)
        self.assertTrue(reason.startswith(f"cannot listen on control 127.0.0.1:{port}: "),
                        reason)
        self.assertIn("in use", reason)
        while child.process is not None:            # it exits by itself (bounded by timeout)
            yield task.deferLater(reactor, 0.05, lambda: None)
        yield child.stopService()
        self.assertFalse([line for line in lines if "Traceback" in line], lines)


class WorkersProcessTests(TestCase):
    """``workers = 2``: the front process starts two worker processes and routes to them."""
    timeout = 60

    @defer.inlineCallbacks
    def start_front(self, ports):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('[media]\nrtp_ports = "%s"\npublic_address = "127.0.0.1"\nworkers = 2\n'
                    % ports)
        child, ready, _ = start_child(self, path)
        client = NgClient(reactor, None, timeout=0.5, first_retransmit=0.1,
                          interface="127.0.0.1")
        client.startService()
        self.addCleanup(client.stopService)
        # the front reports ready once both workers have reported theirs
        client.address = yield ready.get().addTimeout(30, reactor)
        self.assertEqual((yield client.ping()), {"result": "pong"})
        return child, client

    def phones(self, count):
        from tests.media.test_server import Phone
        phones = []
        for _ in range(count):
            p = Phone()
            listening = reactor.listenUDP(0, p, interface="127.0.0.1")
            self.addCleanup(listening.stopListening)
            phones.append((p, listening.getHost().port))
        return phones

    @defer.inlineCallbacks
    def test_front_and_workers(self):
        from mss.sip import sdp
        from tests.media.fakes import offer_sdp, rtp
        child, client = yield self.start_front("46200-46399")
        (a, a_port), (b, b_port) = self.phones(2)
        seen_ports = set()
        for i in range(6):                # calls land on both workers' port slices
            o = yield client.offer("w-%d" % i, "ta", offer_sdp("127.0.0.1", a_port))
            seen_ports.add(sdp.parse(o["sdp"]).endpoint(0).port < 46300)
        self.assertEqual(seen_ports, {True, False})
        ans = yield client.answer("w-0", "ta", "tb", offer_sdp("127.0.0.1", b_port))
        o = yield client.offer("w-0", "ta", offer_sdp("127.0.0.1", a_port), to_tag="tb")
        a.transport.write(rtp(1), ("127.0.0.1", sdp.parse(ans["sdp"]).endpoint(0).port))
        got = yield b.wait(1)
        self.assertEqual(got[0], (rtp(1), ("127.0.0.1", sdp.parse(o["sdp"]).endpoint(0).port)))
        listed = yield client.command({"command": "list", "limit": 100})
        self.assertEqual(sorted(listed["calls"]), ["w-%d" % i for i in range(6)])
        yield child.stopService()


    @defer.inlineCallbacks
    def test_barge_in_across_worker_processes(self):
        """A call on one worker, its room on the other: the legs are bridged between the
        worker processes and everybody hears the others, with real packets."""
        import audioop
        import struct
        from mss.media.workers import Router
        from mss.sip import sdp
        from tests.media.fakes import offer_sdp, rtp
        child, client = yield self.start_front("46400-46599")
        router = Router([None, None])
        room = "barge"
        call_id = next("x%d" % i for i in range(100)
                       if router.worker_of("x%d" % i) != router.room_worker(room))
        (a, a_port), (b, b_port), (o, o_port) = self.phones(3)
        off = yield client.offer(call_id, "ta", offer_sdp("127.0.0.1", a_port, codecs="0"))
        ans = yield client.answer(call_id, "ta", "tb", offer_sdp("127.0.0.1", b_port, codecs="0"))
        to_a = sdp.parse(ans["sdp"]).endpoint(0).port
        to_b = sdp.parse(off["sdp"]).endpoint(0).port
        # A and B talk first, so that the gateway has latched them
        a.transport.write(rtp(0), ("127.0.0.1", to_a))
        b.transport.write(rtp(0), ("127.0.0.1", to_b))
        yield a.wait(1)
        yield b.wait(1)
        for tag in ("ta", "tb"):
            yield client.room_join(room, call_id, tag)
        j = yield client.room_join(room, "operator", "op",
                                   sdp=offer_sdp("127.0.0.1", o_port, codecs="0"))
        to_o = sdp.parse(j["sdp"]).endpoint(0).port
        q = yield client.room_query(room)
        self.assertEqual(sorted((p["call-id"], p["tag"]) for p in q["participants"]),
                         [("operator", "op"), (call_id, "ta"), (call_id, "tb")])

        def tone(value):
            return audioop.lin2ulaw(struct.pack("<160h", *([value] * 160)), 2)
        heard = {v: audioop.ulaw2lin(tone(v), 2) for v in (1000, 2000, 4000)}
        want_o = audioop.lin2ulaw(audioop.add(heard[1000], heard[2000], 2), 2)
        want_a = audioop.lin2ulaw(audioop.add(heard[2000], heard[4000], 2), 2)
        deadline = reactor.seconds() + 10
        seq = 1
        got_o = got_a = False
        while not (got_o and got_a):
            self.assertLess(reactor.seconds(), deadline, "mixed audio did not arrive")
            for phone, target, value in ((a, to_a, 1000), (b, to_b, 2000), (o, to_o, 4000)):
                phone.transport.write(rtp(seq, pt=0, payload=tone(value)), ("127.0.0.1", target))
            seq += 1
            yield task.deferLater(reactor, 0.02, lambda: None)
            got_o = got_o or any(d[12:] == want_o for d, _ in o.received)
            got_a = got_a or any(d[12:] == want_a and src == ("127.0.0.1", to_a)
                                 for d, src in a.received)
        yield client.delete(call_id)
        yield client.delete("operator")
        self.assertEqual((yield client.command({"command": "room-list"}))["rooms"], [])
        yield child.stopService()
