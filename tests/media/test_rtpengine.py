# -*- test-case-name: tests.media.test_rtpengine -*-
"""Compatibility: our NgClient drives a real rtpengine (Debian ``rtpengine-daemon``) in
user-space forwarding mode on loopback; RTP from two UDP sockets arrives at the other side.

Skipped when the ``rtpengine`` binary is not installed."""
import os
import random
import shutil

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import SkipTest, TestCase

from mss.media.client import MediaTimeout, NgClient
from mss.sip import sdp
from tests.media.fakes import offer_sdp, rtp
from tests.media.test_server import Phone
from tests.media.test_tap import free_udp_port

RTPENGINE = shutil.which("rtpengine") or (
    "/usr/bin/rtpengine" if os.path.exists("/usr/bin/rtpengine") else None)


class _Output(ProcessProtocol):
    def __init__(self):
        self.lines = []
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.lines.append(data)

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)


class RtpengineTests(TestCase):
    timeout = 30

    def setUp(self):
        if RTPENGINE is None:
            raise SkipTest("rtpengine is not installed (Debian package rtpengine-daemon)")
        self.ng_port = free_udp_port()
        low = random.randrange(47000, 57000, 100)
        self.output = _Output()
        argv = [RTPENGINE, "--config-file=none", "--foreground", "--log-stderr", "--table=-1",
                "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{self.ng_port}",
                f"--port-min={low}", f"--port-max={low + 99}", "--log-level=5",
                f"--pidfile={os.path.abspath(self.mktemp())}"]
        self.process = reactor.spawnProcess(self.output, RTPENGINE, argv, env=os.environ)
        self.addCleanup(self.stop)
        self.client = NgClient(reactor, ("127.0.0.1", self.ng_port), timeout=0.5,
                               first_retransmit=0.1)
        self.client.startService()
        self.addCleanup(self.client.stopService)

    def stop(self):
        if self.output.ended.called:
            return None
        self.process.signalProcess("TERM")      # by PID: the process we started
        return self.output.ended

    def phone(self):
        p = Phone()
        port = reactor.listenUDP(0, p, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return p, port.getHost().port

    @defer.inlineCallbacks
    def ping(self):
        deadline = reactor.seconds() + 10
        while True:
            try:
                return (yield self.client.ping())
            except MediaTimeout:
                if reactor.seconds() > deadline or self.output.ended.called:
                    self.fail("rtpengine did not answer ping: %r" % b"".join(self.output.lines)[-2000:])
                yield task.deferLater(reactor, 0.1, lambda: None)

    @defer.inlineCallbacks
    def test_offer_answer_and_rtp(self):
        self.assertEqual((yield self.ping()), {"result": "pong"})
        a, a_port = self.phone()
        b, b_port = self.phone()
        o = yield self.client.offer("rtpe-call", "ta", offer_sdp("127.0.0.1", a_port),
                                    flags=["trust-address"])
        ans = yield self.client.answer("rtpe-call", "ta", "tb", offer_sdp("127.0.0.1", b_port),
                                       flags=["trust-address"])
        to_b = sdp.parse(o["sdp"]).endpoint(0)
        to_a = sdp.parse(ans["sdp"]).endpoint(0)
        self.assertEqual(to_b.address, "127.0.0.1")
        self.assertNotIn(to_b.port, (a_port, b_port))
        for seq in range(3):
            a.transport.write(rtp(seq), ("127.0.0.1", to_a.port))
        got = yield b.wait(1)
        self.assertEqual(got[0], (rtp(0), ("127.0.0.1", to_b.port)))
        for seq in range(3):
            b.transport.write(rtp(100 + seq), ("127.0.0.1", to_b.port))
        got = yield a.wait(1)
        self.assertEqual(got[0], (rtp(100), ("127.0.0.1", to_a.port)))
        q = yield self.client.query("rtpe-call")
        self.assertIn("ta", q["tags"])
        yield self.client.delete("rtpe-call")
