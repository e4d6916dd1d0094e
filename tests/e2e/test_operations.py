# -*- test-case-name: tests.e2e.test_operations -*-
"""End-to-end operations on the real ``twistd -n mss``: graceful SIGTERM with live calls, the
SSH manhole and mssctl's control-socket commands on a live call, Prometheus metrics over HTTP,
and JSON log lines.

Callers and callees are SIPp devices (``uac_wait_bye.xml`` stays in the call until the switch
sends BYE; ``uas_answer.xml`` answers and waits for BYE). Every SIPp and ssh run is bounded.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import time

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.client import Agent, readBody

from mss.sip.parser import parse
from mss.store.sqlite import SQLiteStore
from tests.admin.test_manhole import SSH, _SSH, write_key
from tests.e2e.harness import SIPP, Switch, free_port, sipp, udp_client, until

PASSWORDS = {n: f"pw-{n}-e2e" for n in ("1001", "1002", "1003", "1004")}


class OperationsTestCase(unittest.TestCase):
    timeout = 90
    grace = 3

    @defer.inlineCallbacks
    def setUp(self):
        if SIPP is None:
            raise unittest.SkipTest("sipp is not installed")
        # a short directory: the control socket's path must fit in sun_path (108 bytes)
        self.dir = tempfile.mkdtemp(prefix="mss-ops-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.key = os.path.join(self.dir, "operator_key")
        public = write_key(self.key).public().toString("openssh")
        with open(os.path.join(self.dir, "authorized_keys"), "wb") as f:
            f.write(public + b" operator\n")
        self.manhole_port, self.metrics_port = free_port(), free_port()
        self.switch = Switch(self, {
            "shutdown": {"grace_period": self.grace},
            "manhole": {"enabled": True, "port": self.manhole_port,
                        "authorized_keys": "authorized_keys"},
            "metrics": {"enabled": True, "port": self.metrics_port},
            "log": {"json_file": "mss.jsonl"},
        }, directory=self.dir)
        yield self.switch.start()
        self.target = f"127.0.0.1:{self.switch.port}"
        for number, password in PASSWORDS.items():
            yield self.mssctl("extension", "add", number, "--password", password)

    @defer.inlineCallbacks
    def mssctl(self, *args, check: bool = True):
        out, err, code = yield self.switch.mssctl(*args)
        if check:
            self.assertEqual(code, 0, f"mssctl {' '.join(args)}: {err.decode(errors='replace')}")
        return out.decode()

    @defer.inlineCallbacks
    def start_call(self, caller: str, callee: str) -> defer.Deferred:
        """Register ``callee`` on a free port, start its answering device and the caller.

        Returns a Deferred for both SIPp results [(out, err, code), ...]."""
        port = free_port()
        out, err, code = yield sipp("register.xml", self.target, "-m", "1", "-s", callee,
                                    "-au", callee, "-ap", PASSWORDS[callee],
                                    "-set", "expires", "300", "-set", "device", "A",
                                    local_port=port, timeout=10, cwd=self.dir)
        self.assertEqual(code, 0, (out + err).decode(errors="replace"))
        device = sipp("uas_answer.xml", self.target, "-m", "1", local_port=port, timeout=40,
                      cwd=self.dir)
        phone = sipp("uac_wait_bye.xml", self.target, "-m", "1", "-s", callee,
                     "-set", "caller", caller, "-au", caller, "-ap", PASSWORDS[caller],
                     timeout=40, cwd=self.dir)
        return defer.gatherResults([phone, device])

    def until_answered(self, count: int, seconds: float = 15):
        """Poll ``mssctl status`` (no event tells us when SIPp's ACK arrived)."""
        def answered():
            return self.mssctl("status", check=False).addCallback(
                lambda out: f"calls: {count} ({count} answered)" in out)
        return until(self, answered, seconds, f"{count} answered calls",
                     lambda: self.switch.output[-3000:])

    def assert_sipp_ok(self, results):
        for out, err, code in results:
            self.assertEqual(code, 0, (out + err).decode(errors="replace")[-2000:]
                             + "\nswitch:\n" + self.switch.output[-3000:])

    def read_store(self):
        store = SQLiteStore(os.path.join(self.dir, "mss.sqlite"))
        self.addCleanup(store.close)
        return store


class GracefulShutdownTests(OperationsTestCase):
    @defer.inlineCallbacks
    def test_sigterm_during_calls(self):
        """SIGTERM: new INVITEs get 503, live calls end with BYE after the grace period, every
        CDR is written and every binding persisted before the process exits."""
        first = yield self.start_call("1001", "1002")
        second = yield self.start_call("1003", "1004")
        yield self.until_answered(2)
        started = time.monotonic()
        os.kill(self.switch.process.pid, signal.SIGTERM)

        # a new call during the grace period is refused
        client = udp_client(self)
        port = client.transport.getHost().port
        invite = (f"INVITE sip:1002@127.0.0.1:{self.switch.port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:1003@127.0.0.1>;tag=late\r\n"
                  "To: <sip:1002@127.0.0.1>\r\nCall-ID: late-" + secrets.token_hex(4) + "\r\n"
                  "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
        # the switch says it is draining (its log line) before the late INVITE goes out
        deadline = time.monotonic() + 10
        while "shutting down:" not in self.switch.output:
            if time.monotonic() > deadline:
                self.fail("no drain after SIGTERM:\n" + self.switch.output[-3000:])
            yield task.deferLater(reactor, 0.05, lambda: None)
        client.transport.write(invite, ("127.0.0.1", self.switch.port))
        answer = parse((yield client.next()))[0]
        while answer.status == 100:
            answer = parse((yield client.next()))[0]
        self.assertEqual(answer.status, 503)

        yield self.switch.proto.ended          # twistd re-raises SIGTERM when done: no exit code
        elapsed = time.monotonic() - started
        self.assertIn("all calls ended", self.switch.output)
        self.assertNotIn("Traceback", self.switch.output)
        self.assertGreaterEqual(elapsed, self.grace - 0.5)
        self.assert_sipp_ok((yield first))                   # both sides got BYE, said 200
        self.assert_sipp_ok((yield second))

        store = self.read_store()
        cdrs = [c for c in store.list_cdrs() if not c.call_id.startswith("late-")]
        self.assertEqual(len(cdrs), 2, cdrs)
        for cdr in cdrs:
            self.assertEqual((cdr.disposition, cdr.cause), ("answered", "hangup by shutdown"))
            self.assertGreaterEqual(cdr.billsec, self.grace - 1)
        bound = {b.aor for b in store.list_bindings(time.time())}
        self.assertEqual(bound, {"1002", "1004"})

    @defer.inlineCallbacks
    def test_sigterm_without_calls_is_quick(self):
        started = time.monotonic()
        yield self.switch.stop()
        self.assertLess(time.monotonic() - started, self.grace)
        self.assertIn("shutting down: no live calls", self.switch.output)


class SignalTests(OperationsTestCase):
    @defer.inlineCallbacks
    def test_sighup_reloads_services(self):
        os.kill(self.switch.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "SIGHUP: " not in self.switch.output:
            self.assertLess(time.monotonic(), deadline, self.switch.output[-2000:])
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertFalse(self.switch.proto.ended.called)               # still running
        out = yield self.mssctl("status")
        self.assertIn("accepting new calls: yes", out)


class LiveInspectionTests(OperationsTestCase):
    @defer.inlineCallbacks
    def metrics(self) -> str:
        url = b"http://127.0.0.1:%d/metrics" % self.metrics_port
        response = yield Agent(reactor).request(b"GET", url)
        self.assertEqual(response.code, 200)
        return (yield readBody(response)).decode()

    @defer.inlineCallbacks
    def test_manhole_mssctl_metrics_and_json_log(self):
        if SSH is None:
            raise unittest.SkipTest("ssh (openssh-client) is not installed")
        call = yield self.start_call("1001", "1002")
        yield self.until_answered(1)

        # mssctl through the control socket
        out = yield self.mssctl("calls")
        header, row = out.splitlines()
        self.assertEqual(row.split()[1:5], ["1001", "1002", "answered", "internal"])
        call_id = row.split()[0]
        out = yield self.mssctl("trace", "on", "--extension", "1002")
        self.assertEqual(out, "SIP trace on for extensions 1002\n")

        # Prometheus metrics over HTTP
        text = yield self.metrics()
        self.assertIn('mss_calls_active{state="answered"} 1\n', text)
        self.assertIn("mss_registrations 1\n", text)
        self.assertIn("mss_calls_started_total 1\n", text)

        # the SSH manhole: the helpers on the live call
        session = _SSH()
        args = [SSH, "-tt", "-i", self.key, "-p", str(self.manhole_port), "-F", "/dev/null",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
                "-o", "LogLevel=ERROR", "operator@127.0.0.1"]
        process = reactor.spawnProcess(session, SSH, args,
                                       env={"PATH": os.environ.get("PATH", ""), "HOME": self.dir})
        self.addCleanup(lambda: None if session.ended.called else
                        (process.signalProcess("KILL"), session.ended)[1])
        yield session.wait_for(b">>> ")
        process.write(b"calls()\r")
        text = yield session.wait_for(call_id.encode())
        self.assertRegex(text.decode(errors="replace"), r"CALL-ID\s+FROM\s+TO\s+STATE")
        process.write(b"registrations()\r")
        yield session.wait_for(b"SIPp A")
        process.write(b"hangup(%s)\r" % repr(call_id).encode())
        yield session.wait_for(b"call " + call_id.encode() + b" ended")
        process.write(b"trace(False)\r")
        yield session.wait_for(b"SIP trace off")
        process.write(b"\x04")
        yield session.ended.addTimeout(15, reactor)
        self.assert_sipp_ok((yield call))                    # BYE reached both devices

        out = yield self.mssctl("calls")
        self.assertEqual(out, "no live calls\n")
        text = yield self.metrics()
        self.assertIn('mss_calls_ended_total{outcome="answered"} 1\n', text)

        # JSON lines with fields for log shippers
        yield self.switch.stop()
        with open(os.path.join(self.dir, "mss.jsonl"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        ended = [e for e in events if "disposition" in e and "cause" in e
                 and e.get("log_namespace") == "mss.call.manager.CallManager"]
        self.assertEqual([(e["call_id"], e["disposition"], e["cause"]) for e in ended],
                         [(call_id, "answered", "hangup by manhole")])
        self.assertTrue(any(e.get("log_namespace", "").startswith("mss.") for e in events))
        traced = [e for e in events if str(e.get("log_format", "")).startswith(("SIP {direction}",
                                                                               "SIP out"))]
        self.assertTrue(traced, "the SIP trace for 1002 logged nothing")
        self.assertTrue(all(re.search(r"\b1002\b", e["text"]) for e in traced))

