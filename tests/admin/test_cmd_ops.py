# -*- test-case-name: tests.admin.test_cmd_ops -*-
"""Tests for ``mssctl calls/hangup/trace/reload/status/manhole-password`` (mss.admin.cmd_ops):
mssctl's ``main`` runs in a thread and talks to a control socket served by the test reactor
for an in-process switch with a live call."""
from __future__ import annotations

import io
import os
import shutil
import tempfile

from twisted.internet import reactor, threads
from twisted.trial import unittest

from mss.admin import cli
from mss.admin.control import ControlService
from mss.admin.manhole import verify_password
from mss.admin.operations import Operations, control_socket_path
from tests.admin.phones import LiveSwitch, Phone, live_call, provision


def run(config: str, *argv, stdin: str = ""):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--config", config, *argv], out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


class FakeEngine:
    def reload(self):
        return {"loaded": ["blacklist"], "unchanged": ["dnd"], "removed": [],
                "failed": {"broken": "syntax error near 'end'"}}


class RunningSwitchTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mss-ops-")       # short: the socket path is limited
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.config = os.path.join(self.dir, "mss.toml")
        with open(self.config, "w") as f:
            f.write('[sip]\ndomain = "mss.test"\n[store]\npath = "mss.sqlite"\n')
        self.live = LiveSwitch(self.dir)
        self.addCleanup(self.live.close)
        provision(self.live, "1001", "1002")
        path = control_socket_path(self.live.settings)
        self.assertEqual(path, os.path.join(self.dir, "mss.ctl"))
        self.service = ControlService(Operations(self.live.switch), path, reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def mssctl(self, *argv, stdin: str = ""):
        return threads.deferToThread(run, self.config, *argv, stdin=stdin)

    async def test_calls_trace_hangup(self):
        code, out, err = await self.mssctl("calls")
        self.assertEqual((code, out, err), (0, "no live calls\n", ""))
        a = Phone(self.live, "1001", "pw-1001", 40001)
        b = Phone(self.live, "1002", "pw-1002", 40002)
        call_id = live_call(self.live, a, b)
        code, out, err = await self.mssctl("calls")
        self.assertEqual(code, 0, err)
        header, row = out.splitlines()
        self.assertEqual(header.split(), ["CALL-ID", "FROM", "TO", "STATE", "DIRECTION", "TRUNK",
                                          "AGE", "TALKING", "DEVICE"])
        self.assertEqual(row.split()[:5], [call_id, "1001", "1002", "answered", "internal"])

        code, out, err = await self.mssctl("trace", "on", "--extension", "1001")
        self.assertEqual((code, out), (0, "SIP trace on for extensions 1001\n"), err)
        self.assertTrue(self.live.switch.core.trace)
        code, out, err = await self.mssctl("trace", "off")
        self.assertEqual((code, out), (0, "SIP trace off\n"), err)
        self.assertFalse(self.live.switch.core.trace)
        code, out, err = await self.mssctl("trace", "on", "--trunk", "nope")
        self.assertEqual((code, err), (1, "mssctl: error: no trunk 'nope'\n"))
        code, out, err = await self.mssctl("trace", "on", "--extension", "9999")
        self.assertEqual((code, out, err), (1, "", "mssctl: error: no extension '9999'\n"))
        self.assertFalse(self.live.switch.core.trace)

        code, out, err = await self.mssctl("status")
        self.assertIn("calls: 1 (1 answered)", out)
        code, out, err = await self.mssctl("hangup", call_id)
        self.assertEqual((code, out), (0, f"call {call_id} ended\n"), err)
        self.assertEqual(a.answer_bye() + b.answer_bye(), 2)
        code, out, err = await self.mssctl("hangup", call_id)
        self.assertEqual(code, 1)
        self.assertIn("no live call", err)

    async def test_status_names_configuration_and_store(self):
        store = os.path.join(self.dir, "mss.sqlite")
        code, out, err = await self.mssctl("status")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines()[:3], [f"configuration: {self.config}",
                                                f"store: {store}", "calls: 0 (0 answered)"])
        # a switch started with another file (same control socket) is pointed out
        self.live.switch.settings.path = os.path.join(self.dir, "other.toml")
        code, out, err = await self.mssctl("status")
        self.assertEqual(out.splitlines()[2], "the running switch uses: configuration "
                                              f"{self.dir}/other.toml, store {store}")
        # and what mssctl uses is shown even when the switch is not running
        await self.service.stopService()
        code, out, err = await self.mssctl("status")
        self.assertEqual(code, 1)
        self.assertEqual(out, f"configuration: {self.config}\nstore: {store}\n")
        self.assertIn("not running", err)

    async def test_status_shows_the_media_gateway(self):
        """media: off without a gateway; up since when and where; down since when and why."""
        import time
        from mss.media.health import MediaHealth
        code, out, err = await self.mssctl("status")
        self.assertEqual(out.splitlines()[-1], "media: off")
        self.live.switch.settings["media"]["mode"] = "child"
        health = self.live.switch.media_health = MediaHealth()
        since = time.mktime((2031, 5, 6, 7, 8, 9, 0, 0, -1))
        health.mark_up(since, "127.0.0.1:40000")
        code, out, err = await self.mssctl("status")
        self.assertEqual(out.splitlines()[-1],
                         "media: up since 2031-05-06 07:08:09 (127.0.0.1:40000)")
        health.mark_down(since + 60, "no answer to ping from 127.0.0.1:40000 within 1 s")
        code, out, err = await self.mssctl("status")
        self.assertEqual((code, out.splitlines()[-1]), (0, (
            "media: down since 2031-05-06 07:09:09: no answer to ping from 127.0.0.1:40000 "
            "within 1 s")))

    async def test_reload_reports_failures(self):
        self.live.switch.service_engine = None
        code, out, err = await self.mssctl("reload")
        self.assertEqual(code, 1)
        self.assertIn("no service engine", err)
        self.live.switch.service_engine = FakeEngine()
        code, out, err = await self.mssctl("reload")
        self.assertEqual(code, 1)
        self.assertEqual(out.splitlines(), ["loaded: blacklist", "unchanged: dnd", "removed: -",
                                            "failed: broken: syntax error near 'end'"])

    async def test_not_running(self):
        await self.service.stopService()
        code, out, err = await self.mssctl("calls")
        self.assertEqual(code, 1)
        self.assertEqual(err, "mssctl: error: the switch is not running (no control socket at "
                              f"{os.path.join(self.dir, 'mss.ctl')})\n")


class PasswordCommandTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.config = os.path.join(self.mktemp(), "mss.toml")
        os.makedirs(os.path.dirname(self.config))
        with open(self.config, "w") as f:
            f.write("[sip]\n")

    def test_prints_a_verifiable_line(self):
        code, out, err = run(self.config, "manhole-password", "ops", "--scheme", "pbkdf2-sha256",
                             stdin="long enough pw\n")
        self.assertEqual(code, 0, err)
        name, _, stored = out.strip().partition(":")
        self.assertEqual(name, "ops")
        self.assertTrue(verify_password("long enough pw", stored))
        self.assertNotIn("long enough", out)

    def test_refuses_short_password_and_bad_name(self):
        self.assertEqual(run(self.config, "manhole-password", "ops", stdin="short\n")[0], 1)
        self.assertEqual(run(self.config, "manhole-password", "a:b", stdin="long enough\n")[0], 2)


class CheckConfigTests(unittest.SynchronousTestCase):
    """``mssctl check-config`` names every problem of a file in one run."""

    def test_every_problem_at_once(self):
        path = os.path.join(self.mktemp(), "mss.toml")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write('[sip]\nport = "5060"\n'
                    '[manhole]\nenabled = true\npasword_file = "x"\n'
                    '[metrics]\nbind = "example.org"\n'
                    '[shutdown]\ngrace_period = -1\n'
                    '[admin2]\n')
        code, out, err = run(path, "check-config", path)
        self.assertEqual(code, 1, err)
        lines = out.splitlines()
        keys = sorted(line[len(path) + 2:].split(":")[0] for line in lines)
        self.assertEqual(keys, ["admin2", "manhole.pasword_file", "metrics.bind",
                                "shutdown.grace_period", "sip.port"])
