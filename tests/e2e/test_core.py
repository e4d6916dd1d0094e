# -*- test-case-name: tests.e2e.test_core -*-
"""End-to-end tests of the SIP core: the real ``twistd -n mss`` process, real SIP clients.

SIPp sends OPTIONS over UDP and TCP; hand-made messages on raw sockets check the answers to
bad input (400 with a reason, 501, 483) and TCP framing (several messages in one segment, one
message over many segments). Also: a bad configuration stops ``twistd`` with one line, and
``twistd --help`` lists the ``mss`` plugin from this checkout.
"""
from __future__ import annotations

import os
import sys

from twisted.internet import defer, reactor, task
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.e2e.harness import ROOT, SIPP, Switch, sipp, tcp_client, udp_client

TIMEOUT = 30


def request(method: str, port: int, *, branch: str, call_id: str, extra: str = "",
            transport: str = "UDP", local_port: int = 5999, max_forwards: int = 70,
            cseq_method: str | None = None) -> bytes:
    lines = [
        f"{method} sip:service@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch=z9hG4bK{branch};rport",
        f"Max-Forwards: {max_forwards}",
        "From: <sip:tester@127.0.0.1>;tag=t1",
        f"To: <sip:service@127.0.0.1:{port}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {cseq_method or method}",
    ]
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(data: bytes) -> int:
    first = data.split(b"\r\n", 1)[0]
    assert first.startswith(b"SIP/2.0 "), first
    return int(first.split()[1])


def header(data: bytes, name: str) -> str | None:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode()
    return None


class SwitchTestCase(unittest.TestCase):
    """Starts one switch per test (a few hundred milliseconds) and stops it in cleanup."""

    timeout = TIMEOUT
    settings: dict = {}

    def setUp(self):
        if SIPP is None:
            raise unittest.SkipTest("sipp is not installed")
        self.switch = Switch(self, self.settings)
        return self.switch.start()


class OptionsTests(SwitchTestCase):
    """RFC 3261 §11: OPTIONS to the server answers 200 with its capabilities."""

    @defer.inlineCallbacks
    def _options(self, transport):
        out, err, code = yield sipp("options.xml", f"127.0.0.1:{self.switch.port}", "-m", "1",
                                    "-trace_err", transport=transport, timeout=10,
                                    cwd=self.switch.dir)
        self.assertEqual(code, 0, out.decode(errors="replace") + err.decode(errors="replace"))
        self.assertIn(b"Successful call", out)

    def test_options_udp(self):
        return self._options("u1")

    def test_options_tcp(self):
        return self._options("t1")

    @defer.inlineCallbacks
    def test_options_headers(self):
        """The 200 carries Allow (with INVITE and REGISTER), Accept and Supported."""
        client = udp_client(self)
        client.transport.write(request("OPTIONS", self.switch.port, branch="opt1", call_id="o1"),
                               ("127.0.0.1", self.switch.port))
        data = yield client.next()
        self.assertEqual(status_of(data), 200)
        allow = header(data, "Allow")
        for method in ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER"):
            self.assertIn(method, allow)
        self.assertIn("application/sdp", header(data, "Accept"))
        self.assertIsNotNone(header(data, "Supported"))


class BadInputTests(SwitchTestCase):
    """Bad input gets a clear answer and the switch keeps serving."""

    @defer.inlineCallbacks
    def test_malformed_then_served(self):
        client = udp_client(self)
        dest = ("127.0.0.1", self.switch.port)
        bad = request("OPTIONS", self.switch.port, branch="bad1", call_id="b1",
                      cseq_method="INVITE")
        client.transport.write(bad, dest)
        data = yield client.next()
        self.assertEqual(status_of(data), 400)
        reason = data.split(b"\r\n", 1)[0].decode()
        self.assertIn("CSeq", reason)            # the reason says what was wrong
        # garbage that cannot be answered is dropped, and the next request is still served
        client.transport.write(b"\x00\xffGARBAGE garbage\r\n\r\n", dest)
        client.transport.write(request("OPTIONS", self.switch.port, branch="ok1", call_id="b2"),
                               dest)
        data = yield client.next()
        self.assertEqual(status_of(data), 200)
        self.assertEqual(header(data, "Call-ID"), "b2")

    @defer.inlineCallbacks
    def test_missing_header_reason(self):
        client = udp_client(self)
        data = request("OPTIONS", self.switch.port, branch="nocid", call_id="x")
        data = data.replace(b"Call-ID: x\r\n", b"")
        client.transport.write(data, ("127.0.0.1", self.switch.port))
        answer = yield client.next()
        self.assertEqual(status_of(answer), 400)
        self.assertIn(b"Call-ID", answer.split(b"\r\n", 1)[0])

    @defer.inlineCallbacks
    def test_unknown_method_501(self):
        client = udp_client(self)
        client.transport.write(request("FROBNICATE", self.switch.port, branch="frob",
                                       call_id="f1"), ("127.0.0.1", self.switch.port))
        data = yield client.next()
        self.assertEqual(status_of(data), 501)
        self.assertIn("INVITE", header(data, "Allow"))

    @defer.inlineCallbacks
    def test_max_forwards_zero_483(self):
        client = udp_client(self)
        client.transport.write(request("OPTIONS", self.switch.port, branch="mf0", call_id="m1",
                                       max_forwards=0), ("127.0.0.1", self.switch.port))
        data = yield client.next()
        self.assertEqual(status_of(data), 483)

    @defer.inlineCallbacks
    def test_response_goes_to_rport(self):
        """RFC 3581: the answer goes to the source port, whatever the Via says."""
        client = udp_client(self)
        client.transport.write(request("OPTIONS", self.switch.port, branch="rp", call_id="r1",
                                       local_port=9), ("127.0.0.1", self.switch.port))
        data = yield client.next()
        via = header(data, "Via")
        self.assertIn(f"rport={client.transport.getHost().port}", via)
        self.assertIn("received=127.0.0.1", via)


class TCPFramingTests(SwitchTestCase):
    """RFC 3261 §18.3: Content-Length frames messages on a stream."""

    @defer.inlineCallbacks
    def test_several_messages_in_one_segment(self):
        client = yield tcp_client(self, self.switch.port)
        local = client.transport.getHost().port
        data = b"".join(request("OPTIONS", self.switch.port, branch=f"seg{i}", call_id=f"s{i}",
                                transport="TCP", local_port=local) for i in range(5))
        client.transport.write(b"\r\n\r\n" + data)      # a keep-alive ping first
        messages = yield client.wait(5)
        self.assertEqual([status_of(m) for m in messages], [200] * 5)
        self.assertEqual([header(m, "Call-ID") for m in messages], [f"s{i}" for i in range(5)])
        self.assertTrue(client.raw.startswith(b"\r\nSIP/2.0 200"), client.raw[:20])  # pong first

    @defer.inlineCallbacks
    def test_message_split_over_segments(self):
        client = yield tcp_client(self, self.switch.port)
        local = client.transport.getHost().port
        data = request("OPTIONS", self.switch.port, branch="split", call_id="split1",
                       transport="TCP", local_port=local)
        size = 7
        for start in range(0, len(data) - size, size):
            client.transport.write(data[start:start + size])
            # one reactor turn between writes: each chunk leaves as its own segment (no Nagle)
            yield task.deferLater(reactor, 0, lambda: None)
            self.assertEqual(client.messages, [])      # nothing before the message is whole
        client.transport.write(data[start + size:])
        messages = yield client.wait(1)
        self.assertEqual(status_of(messages[0]), 200)
        self.assertEqual(header(messages[0], "Call-ID"), "split1")

    @defer.inlineCallbacks
    def test_bad_framing_closes_connection(self):
        client = yield tcp_client(self, self.switch.port)
        local = client.transport.getHost().port
        data = request("OPTIONS", self.switch.port, branch="nocl", call_id="ncl",
                       transport="TCP", local_port=local).replace(b"Content-Length: 0\r\n", b"")
        client.transport.write(data)
        messages = yield client.wait(1)
        self.assertEqual(status_of(messages[0]), 400)
        yield client.closed.addTimeout(5, reactor)
        # the switch keeps serving new connections
        again = yield tcp_client(self, self.switch.port)
        again.transport.write(request("OPTIONS", self.switch.port, branch="after", call_id="a1",
                                      transport="TCP", local_port=again.transport.getHost().port))
        messages = yield again.wait(1)
        self.assertEqual(status_of(messages[0]), 200)


def twistd(*args, cwd=None) -> defer.Deferred:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    argv = ["-c", "from twisted.scripts.twistd import run; run()", *args]
    return getProcessOutputAndValue(sys.executable, argv, env=env, path=cwd or ROOT)


class CommandLineTests(unittest.TestCase):
    timeout = TIMEOUT

    @defer.inlineCallbacks
    def assert_one_line_error(self, content: str, key: str, problem: str):
        """twistd with this config file exits non-zero with one line naming file, key and
        problem, and no traceback."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        bad = os.path.join(directory, "bad.toml")
        with open(bad, "w") as f:
            f.write(content)
        out, err, code = yield twistd("--pidfile=", "-n", "mss", "--config", bad, cwd=directory)
        text = (out + err).decode(errors="replace")
        self.assertNotEqual(code, 0)
        self.assertNotIn("Traceback", text)
        lines = [line for line in text.splitlines() if bad in line]
        self.assertEqual(len(lines), 1, text)
        self.assertIn(key, lines[0])
        self.assertIn(problem, lines[0])

    def test_config_error_one_line(self):
        return self.assert_one_line_error('[sip]\nport = 70000\n[media]\nmode = "off"\n',
                                          "sip.port", "out of range")

    def test_store_that_cannot_be_created_one_line(self):
        """No 33-line traceback from twistd: the store's folder is a file."""
        return self.assert_one_line_error('[store]\npath = "/dev/null/mss.sqlite"\n'
                                          '[media]\nmode = "off"\n',
                                          "store.path", "/dev/null/mss.sqlite: cannot create")

    def test_unknown_key_one_line(self):
        return self.assert_one_line_error("[registrar]\nmax_devcies = 3\n",
                                          "registrar.max_devcies", "unknown key")

    @defer.inlineCallbacks
    def test_twistd_lists_mss(self):
        out, err, code = yield twistd("--help")
        self.assertEqual(code, 0, err)
        commands = out.decode().split("Commands:", 1)[1]
        self.assertRegex(commands, r"\n\s+mss\s")

