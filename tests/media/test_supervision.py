# -*- test-case-name: tests.media.test_supervision -*-
"""A supervised gateway ends when its parent's pipe closes and reports readiness or the
reason it cannot start in one line (``mss.media.supervision``)."""
import io
import os
import sys

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from mss.media.supervision import ParentLink, Reporter, set_parent_death_signal


class ParentLinkTests(SynchronousTestCase):
    def setUp(self):
        self.read_end, self.write_end = os.pipe()
        self.addCleanup(os.close, self.read_end)
        self.reactor = MemoryReactorClock()
        self.reactor.running = True
        self.stopped = []
        self.reactor.stop = lambda: self.stopped.append(True)
        self.exits = []
        self.link = ParentLink(self.reactor, self.read_end, exit=self.exits.append)
        self.link.startService()

    def test_eof_stops_then_exits_within_the_deadline(self):
        self.assertIn(self.link, self.reactor.getReaders())
        os.write(self.write_end, b"x")          # data is no reason to stop
        self.link.doRead()
        self.link.doRead()                      # nothing more to read: still waiting
        self.assertEqual((self.stopped, self.link.gone), ([], False))
        os.close(self.write_end)                # the parent died
        self.link.doRead()
        self.assertEqual(self.stopped, [True])
        self.assertNotIn(self.link, self.reactor.getReaders())
        self.reactor.advance(0.9)
        self.assertEqual(self.exits, [])
        self.reactor.advance(0.1)               # a clean stop that hangs is cut short
        self.assertEqual(self.exits, [0])

    def test_hang_up_reported_by_the_reactor_counts_too(self):
        os.close(self.write_end)
        self.link.connectionLost(None)
        self.link.connectionLost(None)
        self.assertEqual(self.stopped, [True])


class ReporterTests(SynchronousTestCase):
    def test_supervised_lines_on_the_report_descriptor(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        exits = []
        reporter = Reporter(w, exit=exits.append)
        reporter.ready("127.0.0.1:40000")
        reporter.failed("cannot listen on control 127.0.0.1:22222:\n  Address in use")
        self.assertEqual(os.read(r, 1000), b"ready 127.0.0.1:40000\n"
                         b"error cannot listen on control 127.0.0.1:22222: Address in use\n")
        self.assertEqual(exits, [1])

    def test_stand_alone_failure_is_one_line_on_stderr(self):
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        exits = []
        Reporter(exit=exits.append).failed("cannot listen on control 127.0.0.1:22222: in use")
        self.assertEqual(err.getvalue(),
                         "mss-media: cannot listen on control 127.0.0.1:22222: in use\n")
        self.assertEqual(exits, [1])


class ParentDeathSignalTests(SynchronousTestCase):
    def test_linux_kernel_kills_the_orphan(self):
        """A grandchild that asked for SIGKILL on its parent's death is gone when its
        parent exits (bounded: 5 s)."""
        if not sys.platform.startswith("linux"):
            self.assertFalse(set_parent_death_signal())
            return
        import subprocess
        import time
        code = ("import os, sys, time, subprocess\n"
                "child = subprocess.Popen([sys.executable, '-c', 'import time; "
                "from mss.media.supervision import set_parent_death_signal as s; "
                "print(s(), flush=True); time.sleep(30)'], stdout=subprocess.PIPE)\n"
                "line = child.stdout.readline().strip().decode()\n"
                "print(child.pid, line, flush=True)\n")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=root)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20,
                             env=env).stdout.decode().split()
        pid, asked = int(out[0]), out[1]
        self.assertEqual(asked, "True")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rpartition(")")[2].split()[0] == "Z":
                        break
            except FileNotFoundError:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, 9)
            self.fail("the orphan outlived its parent")
