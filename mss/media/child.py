# -*- test-case-name: tests.media.test_tap -*-
"""Run the media gateway (or a gateway worker) as a child process, restarted when it dies.

``MediaChildService(reactor, config_path)`` is what ``twistd -n mss`` uses for
``[media] mode = "child"``: it starts ``twistd -n --pidfile= mss-media --config <path>`` with the
same Python (``sys.executable``), so the switch and the gateway run on separate CPU cores. The
child's output is copied into our log line by line. If the child exits while the service is
running it is started again, after 1 s, doubling up to 30 s while it keeps dying within 10 s of
starting (each exit is logged). Stopping the service sends SIGTERM, then SIGKILL after
``kill_after`` seconds; ``stopService`` returns a Deferred that fires once the child is gone.

A *supervised* child (``--supervised``, see ``mss.media.supervision``) gets a pipe as stdin
whose write end only we hold, so it ends when we die however we die, and reports on fd 3 the
control address it bound (``on_ready``) or why it could not start (``on_failed``, which is
also told when it exits).
"""
from __future__ import annotations

import os
import sys

import mss
from twisted.application import service
from twisted.internet import defer, error
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from mss.media.supervision import REPORT_FD

TWISTD = "import sys; from twisted.scripts.twistd import run; run()"
MIN_DELAY, MAX_DELAY, STABLE_AFTER = 1.0, 30.0, 10.0


def twistd_argv(plugin: str, *args: str, python: str | None = None) -> list[str]:
    """argv for ``twistd -n --pidfile= <plugin> <args>`` with the given (or this) Python."""
    return [python or sys.executable, "-c", TWISTD, "-n", "--pidfile=", plugin, *args]


def child_env() -> dict:
    """Our environment, with the directory holding the ``mss`` package first on PYTHONPATH
    (so twistd finds the plugin whether mss is installed or run from a checkout)."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(mss.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
    return env


class _ChildProtocol(ProcessProtocol):
    def __init__(self, owner: "ChildProcessService"):
        self.owner = owner
        self._buffer = b""
        self._report = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != REPORT_FD:
            return super().childDataReceived(childFD, data)
        self._report += data
        *lines, self._report = self._report.split(b"\n")
        for line in lines:
            self.owner.reported(self, line.decode("utf-8", "replace").strip())

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self.owner.output(line.decode("utf-8", "replace").rstrip())

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        if self._buffer.strip():
            self.owner.output(self._buffer.decode("utf-8", "replace").rstrip())
        self.owner.ended(self, reason)


class ChildProcessService(service.Service):
    log = Logger()

    def __init__(self, reactor, argv: list[str], name: str, *, env: dict | None = None,
                 kill_after: float = 5.0, supervised: bool = False, on_ready=None,
                 on_failed=None):
        self.reactor = reactor
        self.argv = argv
        # supervised: the child's stdin is our pipe (EOF when we die) and it reports on fd 3;
        # on_ready((host, port)) when it listens, on_failed(reason) when it cannot start or ends
        self.supervised = supervised
        self.on_ready = on_ready
        self.on_failed = on_failed
        self._failure: str | None = None
        self.setName(name)
        self.env = env if env is not None else child_env()
        self.kill_after = kill_after
        self.process = None
        self.pid = None
        self.restarts = 0
        self._delay = MIN_DELAY
        self._started_at = 0.0
        self._restart = None
        self._stopped: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self._spawn()

    def _spawn(self) -> None:
        self._restart = None
        self._failure = None
        self._started_at = self.reactor.seconds()
        fds = {0: "w", 1: "r", 2: "r", REPORT_FD: "r"} if self.supervised else None
        self.process = self.reactor.spawnProcess(_ChildProtocol(self), self.argv[0], self.argv,
                                                 env=self.env, childFDs=fds)
        self.pid = self.process.pid
        self.log.info("{name} started (pid {pid})", name=self.name, pid=self.pid)

    def output(self, line: str) -> None:
        self.log.info("{name}[{pid}]: {line}", name=self.name, pid=self.pid, line=line)

    def reported(self, protocol, line: str) -> None:
        """A line on the child's report descriptor: ``ready HOST:PORT`` or ``error REASON``."""
        kind, _, text = line.partition(" ")
        if kind == "ready":
            host, _, port = text.rpartition(":")
            if not port.isdigit():
                self.log.warn("{name}: bad report {line!r}", name=self.name, line=line)
                return
            host = host.strip("[]")
            if host in ("0.0.0.0", ""):
                host = "127.0.0.1"
            elif host == "::":
                host = "::1"
            if self.on_ready is not None:
                self.on_ready((host, int(port)))
        elif kind == "error":
            self._failure = text
            if self.on_failed is not None:
                self.on_failed(text)

    def ended(self, protocol, reason) -> None:
        self.process = None
        status = reason.value
        if self._stopped is not None:
            d, self._stopped = self._stopped, None
            d.callback(None)
            return
        if not self.running:
            return
        if self.reactor.seconds() - self._started_at >= STABLE_AFTER:
            self._delay = MIN_DELAY
        if self._failure is None and self.on_failed is not None:
            self.on_failed(f"{self.name} process exited ({exit_text(status)})")
        self.log.warn("{name} (pid {pid}) exited ({status}); restarting in {delay:.0f} s",
                      name=self.name, pid=self.pid, status=self._failure or exit_text(status),
                      delay=self._delay)
        self.restarts += 1
        self._restart = self.reactor.callLater(self._delay, self._spawn)
        self._delay = min(self._delay * 2, MAX_DELAY)

    def stopService(self):
        super().stopService()
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
            self._restart = None
        if self.process is None:
            return defer.succeed(None)
        self._stopped = defer.Deferred()
        process = self.process
        try:
            process.signalProcess("TERM")
        except error.ProcessExitedAlready:
            pass
        killer = self.reactor.callLater(self.kill_after, self._kill, process)

        def done(result):
            if killer.active():
                killer.cancel()
            self.log.info("{name} (pid {pid}) stopped", name=self.name, pid=self.pid)
            return result
        return self._stopped.addBoth(done)

    def _kill(self, process) -> None:
        try:
            process.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass


def exit_text(status) -> str:
    """``code 1`` or ``signal 9`` from a ProcessDone/ProcessTerminated."""
    if getattr(status, "signal", None) is not None:
        return f"signal {status.signal}"
    return f"code {getattr(status, 'exitCode', '?')}"


class MediaChildService(ChildProcessService):
    """``[media] mode = "child"``: ``twistd -n mss-media --config <config_path> --control
    <control> --supervised``; ``control`` is usually ``127.0.0.1:0`` (the child picks a free
    port and reports it)."""

    def __init__(self, reactor, config_path: str, *, control: str = "127.0.0.1:0",
                 python: str | None = None, kill_after: float = 5.0, on_ready=None,
                 on_failed=None):
        super().__init__(reactor, twistd_argv("mss-media", "--config", config_path, "--control",
                                              control, "--supervised", python=python),
                         "mss-media", kill_after=kill_after, supervised=True, on_ready=on_ready,
                         on_failed=on_failed)
        self.config_path = config_path
