# -*- test-case-name: tests.admin.test_control -*-
"""Tests for mss.admin.control: the JSON-lines control protocol and the UNIX socket."""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile

from twisted.internet import reactor, threads
from twisted.trial import unittest

from mss.admin.control import ControlService, handle
from mss.admin.control_client import ControlClient, ControlError
from mss.admin.operations import Operations
from tests.admin.phones import LiveSwitch, Phone, live_call, provision


def _live(testcase):
    live = LiveSwitch(testcase.mktemp())
    testcase.addCleanup(live.close)
    provision(live, "1001", "1002")
    return live


class HandleTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.live = _live(self)
        self.ops = Operations(self.live.switch, wall=self.live.reactor.seconds)

    def ask(self, request) -> dict:
        line = request if isinstance(request, bytes) else json.dumps(request).encode()
        answer = handle(self.ops, line)
        json.dumps(answer, default=str)            # always serialisable
        return answer

    def test_bad_requests_get_clear_errors(self):
        cases = {
            b"not json": "not a JSON request",
            b"\xff\xfe": "not a JSON request",
            b"[1, 2]": "JSON object",
            b'{"cmd": "calls"}': "JSON object",
            b'{"command": "format-disk"}': "unknown command",
            b'{"command": "hangup"}': "call_id",
            b'{"command": "hangup", "call_id": 7}': "call_id",
            b'{"command": "trace", "on": "yes"}': "on must be true or false",
            b'{"command": "trace", "on": true, "extension": ""}': "extension",
            b'{"command": "trace", "on": true, "trunk": "nope"}': "no trunk",
            b'{"command": "services-reload"}': "no service engine",
        }
        self.live.switch.service_engine = None      # for the services-reload case
        for line, words in cases.items():
            answer = self.ask(line)
            self.assertFalse(answer["ok"], line)
            self.assertIn(words, answer["error"], line)

    def test_calls_hangup_registrations(self):
        a = Phone(self.live, "1001", "pw-1001", 40001)
        b = Phone(self.live, "1002", "pw-1002", 40002)
        call_id = live_call(self.live, a, b)
        answer = self.ask({"command": "calls"})
        self.assertTrue(answer["ok"])
        self.assertEqual([c["call_id"] for c in answer["calls"]], [call_id])
        regs = self.ask({"command": "registrations"})["registrations"]
        self.assertEqual([r["extension"] for r in regs], ["1002"])
        status = self.ask({"command": "status"})
        self.assertEqual((status["calls"], status["registrations"]), (1, 1))
        self.assertEqual(self.ask({"command": "hangup", "call_id": call_id}),
                         {"ok": True, "call_id": call_id, "state": "ended"})
        self.assertEqual(self.ask({"command": "calls"})["calls"], [])
        self.assertIn("no live call", self.ask({"command": "hangup", "call_id": call_id})["error"])

    def test_trace(self):
        answer = self.ask({"command": "trace", "on": True, "extension": "1001"})
        self.assertEqual(answer["trace"]["extensions"], ["1001"])
        self.assertTrue(self.live.switch.core.trace)
        answer = self.ask({"command": "trace", "on": False})
        self.assertFalse(answer["trace"]["on"])
        self.assertFalse(self.live.switch.core.trace)


class SocketTests(unittest.TestCase):
    """The real UNIX socket on the running reactor, with the blocking client in a thread."""

    def setUp(self):
        self.live = _live(self)
        directory = tempfile.mkdtemp(prefix="mss-ctl-")      # short path: sun_path is small
        self.addCleanup(shutil.rmtree, directory, True)
        self.path = os.path.join(directory, "mss.ctl")
        self.service = ControlService(Operations(self.live.switch), self.path, reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def request(self, command, **args):
        return threads.deferToThread(ControlClient(self.path, timeout=5).request, command, **args)

    async def test_round_trip_and_owner_only(self):
        answer = await self.request("status")
        self.assertTrue(answer["ok"])
        self.assertEqual(answer["calls"], 0)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        answer = await self.request("trace", on=True, extension="1002")
        self.assertEqual(answer["trace"]["extensions"], ["1002"])
        answer = await self.request("no-such-thing")
        self.assertFalse(answer["ok"])

    async def test_overlong_line_is_refused(self):
        def send():
            import socket
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(self.path)
                s.sendall(b"x" * (70 * 1024))
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        return data
                    data += chunk
        data = await threads.deferToThread(send)
        self.assertEqual(json.loads(data.splitlines()[0]),
                         {"ok": False, "error": "request too long"})

    async def test_not_running(self):
        await self.service.stopService()
        error = None
        try:
            await self.request("calls")
        except ControlError as e:
            error = e
        self.assertIsNotNone(error)
        self.assertIn("not running", str(error))
