"""Start the real ``twistd -n mss`` on loopback and drive it with real SIP clients (SIPp).

The switch runs as a child process from this checkout (``python -m twisted -n mss``) with a
config written to a temporary directory, on a free port of 127.0.0.1; it is stopped by PID
in cleanup. Readiness is the "SIP listening" log line, not a sleep.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.utils import getProcessOutputAndValue

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIPP_DIR = os.path.join(ROOT, "tests", "sipp")
SIPP = shutil.which("sipp")


@defer.inlineCallbacks
def until(testcase, check, seconds: float, what: str, context=lambda: ""):
    """Poll ``check`` (a Deferred-returning callable) every 0.1 s until it gives a true
    value, which is returned; fail ``testcase`` after ``seconds``. For states no event
    reports (a change made by mssctl being seen by the running switch, ...)."""
    deadline = time.monotonic() + seconds
    while True:
        result = yield check()
        if result:
            return result
        if time.monotonic() > deadline:
            testcase.fail(f"not within {seconds}s: {what}\n{context()}")
        yield task.deferLater(reactor, 0.1, lambda: None)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host``."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(directory: str, settings: dict) -> str:
    path = os.path.join(directory, "mss.toml")
    with open(path, "w") as f:
        for section, values in settings.items():
            f.write(f"[{section}]\n")
            for key, value in values.items():
                f.write(f"{key} = {toml_value(value)}\n")
    return path


class _SwitchProtocol(protocol.ProcessProtocol):
    def __init__(self, ready_marker: bytes):
        self.output = b""
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self.marker = ready_marker

    def outReceived(self, data):
        self.output += data
        if self.ready is not None and self.marker in self.output:
            d, self.ready = self.ready, None
            d.callback(None)

    errReceived = outReceived

    def processEnded(self, reason):
        if self.ready is not None:
            d, self.ready = self.ready, None
            d.errback(RuntimeError("switch exited early:\n" + self.output.decode(errors="replace")))
        self.ended.callback(reason.value.exitCode)


def _short_dir(testcase) -> str:
    """A short private directory (removed at cleanup) for the switch's control socket."""
    import tempfile
    path = tempfile.mkdtemp(prefix="mss")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


class Switch:
    """One running switch process."""

    def __init__(self, testcase, settings: dict | None = None, directory: str | None = None):
        self.testcase = testcase
        self.dir = os.path.abspath(directory or testcase.mktemp())
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        base = {
            "sip": {"domain": "mss.test", "bind": "127.0.0.1", "port": self.port, "trace": False},
            "log": {"level": "info"},
            "store": {"path": "mss.sqlite", "poll_interval": 0.2},
            "media": {"mode": "off"},
            # AF_UNIX paths are limited to 108 bytes: _trial_temp paths can be longer
            "admin": {"control_socket": os.path.join(_short_dir(testcase), "mss.ctl")},
        }
        for section, values in (settings or {}).items():
            base.setdefault(section, {}).update(values)
        self.settings = base
        self.config = write_config(self.dir, base)
        self.proto = None

    def env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def start(self, marker: bytes = b"SIP listening on") -> defer.Deferred:
        self.proto = _SwitchProtocol(marker)
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "--pidfile=", "-n", "mss", "--config", self.config]
        self.process = reactor.spawnProcess(self.proto, sys.executable, args, env=self.env(),
                                            path=self.dir)
        self.testcase.addCleanup(self.stop)
        return self.proto.ready

    @property
    def output(self) -> str:
        return self.proto.output.decode("utf-8", "replace") if self.proto else ""

    def stop(self, sig=signal.SIGTERM) -> defer.Deferred:
        if self.proto is None or self.proto.ended.called:
            return defer.succeed(None)
        try:
            os.kill(self.process.pid, sig)
        except (ProcessLookupError, TypeError):
            return defer.succeed(None)
        ended = defer.Deferred()
        self.proto.ended.addBoth(lambda r: (ended.callback(r), r)[1])
        killer = reactor.callLater(15, lambda: self.process.pid and os.kill(self.process.pid, signal.SIGKILL))
        ended.addBoth(lambda r: (killer.active() and killer.cancel(), r)[1])
        return ended

    def kill(self) -> defer.Deferred:
        return self.stop(signal.SIGKILL)

    def mssctl(self, *args) -> defer.Deferred:
        """Run ``mssctl --config <this config> ARGS``; fires with (out, err, code)."""
        return getProcessOutputAndValue(
            sys.executable, ["-m", "mss.admin.cli", "--config", self.config, *args],
            env=self.env(), path=self.dir)


def sipp(scenario: str, target: str, *args, timeout: int = 30, local_ip: str = "127.0.0.1",
         transport: str = "u1", cwd: str | None = None,
         local_port: int | None = None) -> defer.Deferred:
    """Run SIPp with a scenario from tests/sipp/; fires with (out, err, exit code).

    Always bounded: ``-timeout`` ends SIPp however the scenario goes. SIPp writes its files
    (error logs, stats) in ``cwd``: give it the test's temporary directory. ``local_port``
    (``-p``) defaults to a free port, so that SIPp never falls back to 5060 and two SIPp
    processes never share a port.
    """
    path = scenario if os.path.isabs(scenario) else os.path.join(SIPP_DIR, scenario)
    if local_port is None:
        local_port = free_port(local_ip)
    argv = ["-sf", path, target, "-i", local_ip, "-p", str(local_port), "-t", transport,
            "-timeout", f"{timeout}s", "-timeout_error", "-nostdin", *args]
    return getProcessOutputAndValue(SIPP, argv, env=dict(os.environ), path=cwd or ".")


# -- raw clients for malformed and hand-made messages --------------------------------------------

class UDPClient(protocol.DatagramProtocol):
    """A UDP socket on loopback; every datagram received lands in ``queue``."""

    def __init__(self):
        self.queue = defer.DeferredQueue()

    def datagramReceived(self, data, addr):
        self.queue.put(data)

    def next(self, timeout: float = 5) -> defer.Deferred:
        """The next datagram, or a TimeoutError after ``timeout`` seconds."""
        return self.queue.get().addTimeout(timeout, reactor)


def udp_client(testcase, host: str = "127.0.0.1") -> UDPClient:
    client = UDPClient()
    port = reactor.listenUDP(0, client, interface=host)
    testcase.addCleanup(port.stopListening)
    return client


def split_messages(data: bytes) -> tuple[list[bytes], bytes]:
    """Frame SIP messages from a stream by Content-Length: (messages, rest)."""
    out = []
    while True:
        data = data.lstrip(b"\r\n")
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return out, data
        length = 0
        for line in data[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value.strip())
        if len(data) < end + 4 + length:
            return out, data
        out.append(data[:end + 4 + length])
        data = data[end + 4 + length:]


class TCPClient(protocol.Protocol):
    """A TCP connection that collects whole SIP messages; ``wait(n)`` fires with the first n."""

    def __init__(self):
        self.buffer = b""
        self.messages: list[bytes] = []
        self.raw = b""
        self._waiting: list[tuple[int, defer.Deferred]] = []
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.raw += data
        messages, self.buffer = split_messages(self.buffer + data)
        self.messages.extend(messages)
        self._check()

    def connectionLost(self, reason):
        self.closed.callback(None)

    def _check(self):
        still = []
        for n, d in self._waiting:
            if len(self.messages) >= n:
                d.callback(self.messages[:n])
            else:
                still.append((n, d))
        self._waiting = still

    def wait(self, n: int, timeout: float = 5) -> defer.Deferred:
        d = defer.Deferred()
        self._waiting.append((n, d))
        self._check()
        return d.addTimeout(timeout, reactor)


def tcp_client(testcase, port: int, host: str = "127.0.0.1") -> defer.Deferred:
    """Connect to the switch over TCP (Nagle off, so that each write is its own segment)."""
    from twisted.internet import endpoints

    def connected(client):
        client.transport.setTcpNoDelay(True)
        testcase.addCleanup(client.transport.abortConnection)
        return client
    endpoint = endpoints.TCP4ClientEndpoint(reactor, host, port, timeout=5)
    return endpoints.connectProtocol(endpoint, TCPClient()).addCallback(connected)
