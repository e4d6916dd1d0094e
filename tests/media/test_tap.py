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
from mss.media.client import MediaTimeout, NgClient


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


class ChildProcessTests(TestCase):
    timeout = 60

    def setUp(self):
        self.port = free_udp_port()
        self.path = os.path.abspath(self.mktemp())
        with open(self.path, "w") as f:
            f.write('[media]\ncontrol = "127.0.0.1:%d"\nrtp_ports = "46000-46099"\n'
                    'public_address = "127.0.0.1"\nworkers = 1\n' % self.port)
        self.client = NgClient(reactor, ("127.0.0.1", self.port), timeout=0.5,
                               first_retransmit=0.1)
        self.client.startService()
        self.addCleanup(self.client.stopService)

    @defer.inlineCallbacks
    def wait_for_pong(self, seconds=20):
        deadline = reactor.seconds() + seconds
        while True:
            try:
                reply = yield self.client.ping()
                return reply
            except MediaTimeout:
                if reactor.seconds() > deadline:
                    raise

    @defer.inlineCallbacks
    def test_starts_answers_ping_restarts_and_stops(self):
        child = MediaChildService(reactor, self.path, kill_after=5)
        child.startService()
        self.addCleanup(lambda: child.stopService() if child.running else None)
        self.assertEqual((yield self.wait_for_pong()), {"result": "pong"})
        first = child.pid
        os.kill(first, signal.SIGKILL)            # a crash: restarted after 1 s
        while child.pid == first or child.process is None:
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual((yield self.wait_for_pong()), {"result": "pong"})
        self.assertEqual(child.restarts, 1)
        yield child.stopService()
        self.assertIsNone(child.process)
        with self.assertRaises(ProcessLookupError):
            os.kill(child.pid, 0)
