# -*- test-case-name: tests.e2e.test_media -*-
"""End-to-end media through the real switch: ``[media] mode = "child"`` (the gateway runs as
the switch's child process) and ``"off"`` (SDP passes untouched).

SIPp does the signalling (tests/sipp/media_*.xml); the RTP comes from the test's own UDP
sockets, whose ports the scenarios put in their SDP (``-set rtp N``). At every SDP a SIPp
receives, its scenario sends the test a datagram naming the ``c=`` address, ``m=`` port and
direction it saw, so that the test knows where each phone must send and checks that the SDP
points at the gateway (its public address here is 127.0.0.2, the phones are on 127.0.0.1, so
a rewritten ``c=`` is visible), that hold and resume keep the same gateway ports, and that
every packet arrives byte for byte from the port the phone sends to. A silent call is ended
by the media timeout. A feature code answered by a service (``*78``) gets the gateway's SDP
and the confirm tone's frames (one and two gateway workers). A call through a real rtpengine
(``[media] mode = "remote"``) proves the switch drives it in place of the built-in gateway.
Each test has its own RTP port range; the gateway's control port is one it picks at start-up.
The gateway dies with its switch (``kill -9`` included) and a restarted switch carries RTP
again; two switches with default media settings run side by side; a gateway that cannot start
is reported (log, ``mssctl status``, ``mss_media_up``) and calls get 503 with Retry-After.
"""
from __future__ import annotations

import csv
import io
import os
import random
import struct
import sys
import time

from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest

from tests.e2e.harness import SIPP, Switch, free_port, sipp, until

PASSWORDS = {"1001": "pw-1001-m", "1002": "pw-1002-m"}
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G729": 18}
GATEWAY = "127.0.0.2"
PHONE = "127.0.0.1"


def rtp_range() -> tuple[int, int]:
    """A private range of 10 RTP/RTCP pairs, below the default 20000-29999 and the kernel's
    ephemeral ports."""
    base = random.randrange(12000, 19980, 20)
    return base, base + 19


class Notes(protocol.DatagramProtocol):
    """What the SIPp scenarios report: ``(who, event) -> (c address, m port, direction)``."""

    def __init__(self):
        self.seen: dict[tuple[str, str], tuple[str, int, str]] = {}
        self.when: dict[tuple[str, str], float] = {}
        self.waiting: dict[tuple[str, str], list[defer.Deferred]] = {}

    def datagramReceived(self, data, addr):
        words = data.decode("utf-8", "replace").split()
        if len(words) < 4 or not words[3].isdigit():
            return
        key = (words[0], words[1])
        self.seen[key] = (words[2], int(words[3]), words[4] if len(words) > 4 else "")
        self.when[key] = time.monotonic()
        for d in self.waiting.pop(key, []):
            d.callback(self.seen[key])

    def wait(self, who: str, event: str, timeout: float = 15) -> defer.Deferred:
        key = (who, event)
        if key in self.seen:
            return defer.succeed(self.seen[key])
        d = defer.Deferred()
        self.waiting.setdefault(key, []).append(d)
        return d.addTimeout(timeout, reactor)


class Phone(protocol.DatagramProtocol):
    """A phone's RTP socket: sends a numbered PCMU packet with random payload every 20 ms
    to ``dest`` and records what it sent and what it got (with the phase it arrived in)."""

    def __init__(self, pt: int = 0):
        self.pt = pt
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.sent: dict[int, bytes] = {}
        self.sent_in: dict[int, str] = {}         # seq -> phase it was sent in
        self.limits: dict[str, int] = {}          # phase -> packets to send in it at most
        self.received: list[tuple[bytes, tuple, str]] = []
        self.phase = "setup"
        self.loop: task.LoopingCall | None = None
        self.port = None
        self.got_one = defer.Deferred()

    def listen(self, testcase) -> int:
        self.port = reactor.listenUDP(0, self, interface=PHONE)
        testcase.addCleanup(self.stop)
        testcase.addCleanup(self.port.stopListening)
        return self.port.getHost().port

    def start(self, dest: tuple[str, int]) -> None:
        self.dest = dest
        self.loop = task.LoopingCall(self.send)
        self.loop.start(0.02)

    def send(self) -> None:
        limit = self.limits.get(self.phase)
        if limit is not None:
            if limit <= 0:
                return
            self.limits[self.phase] = limit - 1
        header = struct.pack("!BBHII", 0x80, self.pt, self.seq, self.ts, self.ssrc)
        packet = header + os.urandom(160)
        self.sent[self.seq] = packet
        self.sent_in[self.seq] = self.phase
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF
        self.transport.write(packet, self.dest)

    def stop(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()

    def datagramReceived(self, data, addr):
        self.received.append((data, addr, self.phase))
        if not self.got_one.called:
            self.got_one.callback(None)


def media_up_since(switch: Switch, start: int = 0) -> bool:
    """The switch logged its gateway up after ``start`` (an offset in its output)."""
    return "media gateway up at" in switch.output[start:]


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process, from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            out[int(entry)] = (int(fields[1]), fields[0])
    return out


def descendants(pid: int) -> list[int]:
    table = processes()
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _) in table.items():
            if ppid == parent:
                found.append(child)
                todo.append(child)
    return found


def living(pids) -> list[int]:
    """Those of ``pids`` that still run (a zombie nobody reaped has ended)."""
    table = processes()
    return [p for p in pids if p in table and table[p][1] not in ("Z", "X")]


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class MediaTestCase(unittest.TestCase):
    timeout = 60
    media: dict = {}

    @defer.inlineCallbacks
    def setUp(self):
        if SIPP is None:
            raise unittest.SkipTest("sipp is not installed")
        self.switch = yield self.start_switch(self.settings())
        self.target = f"127.0.0.1:{self.switch.port}"
        for number, password in PASSWORDS.items():
            yield self.mssctl("extension", "add", number, "--password", password)
        self.notes = Notes()
        port = reactor.listenUDP(0, self.notes, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.note_port = port.getHost().port

    def settings(self) -> dict:
        settings = {"calls": {"no_answer_timeout": 5}, "media": dict(self.media)}
        if settings["media"].get("mode") == "child":
            self.ports = rtp_range()
            settings["media"] = {"rtp_ports": "%d-%d" % self.ports, "public_address": GATEWAY,
                                 "workers": 1, **self.media}
        return settings

    @defer.inlineCallbacks
    def start_switch(self, settings: dict, switch: Switch | None = None):
        """Start a switch; in child mode wait until it sees its gateway up (calls before
        that get 503)."""
        switch = switch or Switch(self, settings)
        yield switch.start()
        if switch.settings["media"].get("mode") == "child":
            yield until(self, lambda: defer.succeed(media_up_since(switch)), 20,
                        "media gateway up", lambda: switch.output[-3000:])
        return switch

    def note(self, who: str, event: str, timeout: float = 15) -> defer.Deferred:
        """The SDP the ``who`` SIPp saw at ``event``; on a timeout the switch's log explains."""
        def late(f):
            f.trap(defer.TimeoutError)
            self.fail(f"no {who} {event} SDP within {timeout} s; notes {self.notes.seen}\n"
                      f"switch:\n{self.switch.output[-4000:]}")
        return self.notes.wait(who, event, timeout).addErrback(late)

    @defer.inlineCallbacks
    def mssctl(self, *args):
        out, err, code = yield self.switch.mssctl(*args)
        self.assertEqual(code, 0, f"mssctl {' '.join(args)}: {err.decode(errors='replace')}")
        return out.decode()

    def media_args(self, phone_port: int, codec: str = "PCMU") -> list[str]:
        return ["-set", "rtp", str(phone_port), "-set", "note", str(self.note_port),
                "-set", "py", sys.executable, "-set", "pt", str(PAYLOAD_TYPES[codec]),
                "-set", "codec", codec]

    @defer.inlineCallbacks
    def callee(self, scenario: str, phone_port: int) -> defer.Deferred:
        """Register 1002 on a fresh SIP port and start its SIPp device there."""
        sip_port = free_port()
        result = yield sipp("register.xml", self.target, "-m", "1", "-s", "1002", "-au", "1002",
                            "-ap", PASSWORDS["1002"], "-set", "expires", "300",
                            "-set", "device", "A", local_port=sip_port, timeout=10,
                            cwd=self.switch.dir)
        self.check("register 1002", result)
        return sipp(scenario, self.target, "-m", "1", *self.media_args(phone_port),
                    local_port=sip_port, timeout=30, cwd=self.switch.dir)

    def caller(self, scenario: str, phone_port: int, callee: str = "1002", *args,
               codec: str = "PCMU") -> defer.Deferred:
        return sipp(scenario, self.target, "-m", "1", "-s", callee, "-set", "caller", "1001",
                    "-au", "1001", "-ap", PASSWORDS["1001"],
                    *self.media_args(phone_port, codec), *args, timeout=30,
                    cwd=self.switch.dir)

    def check(self, name, result):
        out, err, code = result
        self.assertEqual(code, 0, f"{name}:\n" + (out + err).decode(errors="replace")[-3000:]
                         + "\nswitch:\n" + self.switch.output[-4000:])

    @defer.inlineCallbacks
    def cdr(self) -> dict:
        out = yield self.mssctl("cdr", "--csv")
        rows = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(len(rows), 1, out)
        return rows[0]

    def assertIntact(self, receiver: Phone, sender: Phone, source: tuple) -> dict:
        """Every packet ``receiver`` got is one ``sender`` sent, unchanged, from ``source``;
        returns the count received per phase and ``lost``: packets sent while talking
        (before the hold, after the resume) that never arrived."""
        phases: dict[str, int] = {}
        got = set()
        for data, addr, phase in receiver.received:
            self.assertEqual(addr, source)
            seq = struct.unpack("!H", data[2:4])[0]
            self.assertEqual(data, sender.sent.get(seq), f"packet {seq} changed or unknown")
            phases[phase] = phases.get(phase, 0) + 1
            got.add(seq)
        phases["lost"] = sum(1 for seq, phase in sender.sent_in.items()
                             if phase in ("talk", "resumed") and seq not in got)
        return phases

    @defer.inlineCallbacks
    def talk_with_hold(self):
        """1001 calls 1002, both talk, 1001 holds and resumes, 1001 hangs up. Returns the
        two phones and the notes of each side."""
        a, b = Phone(), Phone()
        a_port, b_port = a.listen(self), b.listen(self)
        device = yield self.callee("media_uas_hold.xml", b_port)
        calling = self.caller("media_uac.xml", a_port, "1002", "-set", "talk", "800")
        seen_b = yield self.note("uas", "invite")
        seen_a = yield self.note("uac", "answer")
        a.phase = b.phase = "talk"
        a.start((seen_a[0], seen_a[1]))
        b.start((seen_b[0], seen_b[1]))
        for who, event in (("uas", "hold"), ("uac", "hold")):
            yield self.note(who, event)
        a.phase = b.phase = "held"
        for who, event in (("uas", "resume"), ("uac", "resume")):
            yield self.note(who, event)
        a.phase = b.phase = "resumed"
        a.limits["resumed"] = b.limits["resumed"] = 25   # 0.5 s, well before the BYE
        results = [("caller", (yield calling)), ("callee", (yield device))]
        a.stop()
        b.stop()
        for name, result in results:
            self.check(name, result)
        return a, b, {k: v for k, v in self.notes.seen.items()}


class GatewayTests(MediaTestCase):
    media = {"mode": "child"}

    @defer.inlineCallbacks
    def test_call_through_gateway(self):
        """Both SIPps see the gateway in the SDP (c=127.0.0.2, an m= port of the test's
        range), RTP crosses both ways unchanged, and hold/resume keep the ports."""
        a, b, notes = yield self.talk_with_hold()
        low, high = self.ports
        c_a, port_a, _ = notes[("uac", "answer")]
        c_b, port_b, _ = notes[("uas", "invite")]
        self.assertEqual((c_a, c_b), (GATEWAY, GATEWAY))
        self.assertTrue(low <= port_a <= high and low <= port_b <= high, (port_a, port_b))
        self.assertNotEqual(port_a, port_b)
        self.assertEqual(port_a % 2, 0)
        # hold and resume: the same gateway address and ports; the directions pass through
        self.assertEqual(notes[("uas", "hold")], (GATEWAY, port_b, "sendonly"))
        self.assertEqual(notes[("uac", "hold")], (GATEWAY, port_a, "recvonly"))
        self.assertEqual(notes[("uas", "resume")], (GATEWAY, port_b, "sendrecv"))
        self.assertEqual(notes[("uac", "resume")], (GATEWAY, port_a, "sendrecv"))
        # every packet unchanged, from the port each phone sends to (symmetric RTP)
        to_b = self.assertIntact(b, a, (GATEWAY, port_b))
        to_a = self.assertIntact(a, b, (GATEWAY, port_a))
        for counts in (to_b, to_a):
            self.assertGreaterEqual(counts.get("talk", 0), 20, counts)
            self.assertGreaterEqual(counts.get("resumed", 0), 20, counts)
            self.assertLessEqual(counts["lost"], 2, counts)
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")


class MediaTimeoutTests(MediaTestCase):
    media = {"mode": "child", "media_timeout": 3}

    @defer.inlineCallbacks
    def test_silent_call_is_ended(self):
        """No RTP at all: after [media] media_timeout (3 s) the switch sends BYE to both
        phones (their scenarios end only on it) and the CDR says why."""
        a, b = Phone(), Phone()
        a_port, b_port = a.listen(self), b.listen(self)
        device = yield self.callee("media_uas.xml", b_port)
        calling = self.caller("media_uac_wait_bye.xml", a_port)
        yield self.note("uac", "answer")
        answered = time.monotonic()
        self.check("caller", (yield calling))
        self.check("callee", (yield device))
        silent = time.monotonic() - answered
        self.assertGreaterEqual(silent, 2.5)      # the gateway's clock started at the offer
        self.assertLess(silent, 12)
        self.assertEqual((a.received, b.received), ([], []))
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")
        self.assertIn("media timeout", cdr["cause"])


class PassThroughTests(MediaTestCase):
    media = {"mode": "off"}

    @defer.inlineCallbacks
    def test_sdp_untouched(self):
        """[media] mode off: each phone sees the other's own address and port, also on
        hold and resume, and RTP goes phone to phone."""
        a, b, notes = yield self.talk_with_hold()
        a_port, b_port = a.port.getHost().port, b.port.getHost().port
        self.assertEqual(notes[("uas", "invite")], (PHONE, a_port, "sendrecv"))
        self.assertEqual(notes[("uac", "answer")], (PHONE, b_port, "sendrecv"))
        self.assertEqual(notes[("uas", "hold")], (PHONE, a_port, "sendonly"))
        self.assertEqual(notes[("uac", "hold")], (PHONE, b_port, "recvonly"))
        self.assertEqual(notes[("uac", "resume")], (PHONE, b_port, "sendrecv"))
        counts = self.assertIntact(b, a, (PHONE, a_port))
        self.assertGreaterEqual(counts.get("resumed", 0), 20, counts)
        self.assertLessEqual(counts["lost"], 2, counts)


class ToneMixin:
    """A feature code (*78, do not disturb, answered by the dnd service with the confirm
    tone): the caller gets the gateway's SDP and 2 s of the tone in its codec, then BYE."""

    @defer.inlineCallbacks
    def feature_call(self, codec: str):
        yield self.mssctl("services", "reload", "--via-store")    # the switch knows 1001
        a = Phone()
        a_port = a.listen(self)
        calling = self.caller("media_uac_wait_bye.xml", a_port, "*78", codec=codec)
        c, port, direction = yield self.note("uac", "answer")
        self.check("caller", (yield calling))
        self.assertEqual((c, direction), (GATEWAY, "sendonly"))
        low, high = self.ports
        self.assertTrue(low <= port <= high, port)
        self.assertIn("1001", (yield self.mssctl("dnd", "list")))
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")
        self.assertIn("confirm", cdr["cause"])
        return a, port

    def assertTone(self, a: Phone, port: int, pt: int):
        """The frames of one confirm cycle (2 s), in order, one RTP stream, from the port
        the caller's SDP names."""
        from mss.media import tones
        self.assertEqual({addr for _, addr, _ in a.received}, {(GATEWAY, port)})
        headers = [struct.unpack("!BBHII", d[:12]) for d, _, _ in a.received]
        self.assertEqual({h[1] & 0x7F for h in headers}, {pt})
        self.assertEqual(len({h[4] for h in headers}), 1)
        first_seq = headers[0][2]
        frames = tones.frames("confirm", pt)
        for (data, _, _), h in zip(a.received, headers):
            i = (h[2] - first_seq) & 0xFFFF
            self.assertEqual(data[12:], frames[i % len(frames)])
        # 2 s = 100 frames; UDP on loopback loses none, but allow a couple
        self.assertTrue(95 <= len(a.received) <= 100, len(a.received))


class ToneTests(ToneMixin, MediaTestCase):
    media = {"mode": "child"}

    @defer.inlineCallbacks
    def test_feature_code_plays_confirm_tone_pcmu(self):
        a, port = yield self.feature_call("PCMU")
        self.assertTone(a, port, 0)

    @defer.inlineCallbacks
    def test_feature_code_plays_confirm_tone_pcma(self):
        a, port = yield self.feature_call("PCMA")
        self.assertTone(a, port, 8)

    @defer.inlineCallbacks
    def test_no_g711_offered_answers_inactive(self):
        """The caller offers only G.729: the gateway cannot play, the switch still answers
        the feature code (inactive streams, its own address) and releases the call."""
        yield self.mssctl("services", "reload", "--via-store")
        a = Phone()
        calling = self.caller("media_uac_wait_bye.xml", a.listen(self), "*78", codec="G729")
        c, port, direction = yield self.note("uac", "answer")
        self.check("caller", (yield calling))
        self.assertEqual((c, port, direction), (PHONE, 9, "inactive"))
        self.assertEqual(a.received, [])
        self.assertIn("1001", (yield self.mssctl("dnd", "list")))


class ToneWorkersTests(ToneMixin, MediaTestCase):
    """The tone through a gateway with two worker processes: the front process routes
    play-tone to the call's worker (each worker on a control port it chose)."""

    media = {"mode": "child", "workers": 2}

    @defer.inlineCallbacks
    def test_feature_code_plays_confirm_tone(self):
        a, port = yield self.feature_call("PCMU")
        self.assertTone(a, port, 0)


class RtpengineCallTests(MediaTestCase):
    """``[media] mode = "remote"`` pointed at a real rtpengine (Debian ``rtpengine-daemon``,
    user-space forwarding) in place of the built-in gateway: a SIPp call whose RTP crosses
    rtpengine both ways, byte for byte. Skipped when rtpengine is not installed."""

    ENGINE = "127.0.0.3"          # rtpengine's media interface: visible in the rewritten SDP

    @defer.inlineCallbacks
    def setUp(self):
        from tests.media.test_rtpengine import RTPENGINE, _Output
        from mss.media.client import MediaTimeout, NgClient
        if RTPENGINE is None:
            raise unittest.SkipTest("rtpengine is not installed (Debian package rtpengine-daemon)")
        ng_port = free_port()
        self.ports = rtp_range()
        self.output = _Output()
        argv = [RTPENGINE, "--config-file=none", "--foreground", "--log-stderr", "--table=-1",
                f"--interface={self.ENGINE}", f"--listen-ng=127.0.0.1:{ng_port}",
                "--port-min=%d" % self.ports[0], "--port-max=%d" % self.ports[1],
                "--log-level=5", f"--pidfile={os.path.abspath(self.mktemp())}"]
        self.process = reactor.spawnProcess(self.output, RTPENGINE, argv, env=os.environ)
        self.addCleanup(self._stop_engine)
        # rtpengine is ready when it answers ping (bounded)
        client = NgClient(reactor, ("127.0.0.1", ng_port), timeout=0.5, first_retransmit=0.1)
        client.startService()
        deadline = reactor.seconds() + 10
        while True:
            try:
                yield client.ping()
                break
            except MediaTimeout:
                if reactor.seconds() > deadline or self.output.ended.called:
                    self.fail("rtpengine did not start: %r" % b"".join(self.output.lines)[-2000:])
                yield task.deferLater(reactor, 0.1, lambda: None)
        yield client.stopService()
        self.media = {"mode": "remote", "control": f"127.0.0.1:{ng_port}"}
        yield super().setUp()

    def _stop_engine(self):
        if self.output.ended.called:
            return None
        self.process.signalProcess("TERM")        # by PID: the process we started
        return self.output.ended

    @defer.inlineCallbacks
    def test_call_through_rtpengine(self):
        """Both SIPps see rtpengine in the SDP, RTP crosses both ways unchanged, and hold and
        resume (re-INVITEs offered and answered through rtpengine) keep its ports."""
        a, b, notes = yield self.talk_with_hold()
        low, high = self.ports
        c_a, port_a, _ = notes[("uac", "answer")]
        c_b, port_b, _ = notes[("uas", "invite")]
        self.assertEqual((c_a, c_b), (self.ENGINE, self.ENGINE))
        self.assertTrue(low <= port_a <= high and low <= port_b <= high, (port_a, port_b))
        self.assertNotEqual(port_a, port_b)
        for who, port in (("uas", port_b), ("uac", port_a)):
            for event in ("hold", "resume"):
                self.assertEqual(notes[(who, event)][:2], (self.ENGINE, port), (who, event))
        to_b = self.assertIntact(b, a, (self.ENGINE, port_b))
        to_a = self.assertIntact(a, b, (self.ENGINE, port_a))
        for counts in (to_b, to_a):
            self.assertGreaterEqual(counts.get("talk", 0), 20, counts)
            self.assertGreaterEqual(counts.get("resumed", 0), 20, counts)
        cdr = yield self.cdr()
        self.assertEqual(cdr["disposition"], "answered")


class SupervisionTests(MediaTestCase):
    """The gateway (front and two workers) dies with its switch, ``kill -9`` included, and
    the restarted switch's new gateway carries RTP again."""

    media = {"mode": "child", "workers": 2}

    def kill_leftovers(self, pids) -> None:
        for pid in living(pids):                  # only the gateway processes of this test
            os.kill(pid, 9)

    @defer.inlineCallbacks
    def test_kill_9_leaves_no_gateway_and_restart_carries_rtp(self):
        gateway = descendants(self.switch.process.pid)
        self.addCleanup(self.kill_leftovers, gateway)
        self.assertEqual(len(gateway), 3, [cmdline(p) for p in gateway])
        self.assertTrue(all("mss-media" in cmdline(p) for p in gateway),
                        [cmdline(p) for p in gateway])
        yield self.switch.kill()
        killed = time.monotonic()
        while living(gateway) and time.monotonic() - killed < 2.0:
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(living(gateway), [], "gateway processes outlived the switch by 2 s: "
                         + "; ".join(cmdline(p) for p in living(gateway)))
        yield self.start_switch(None, self.switch)
        self.assertEqual(len(descendants(self.switch.process.pid)), 3)
        a, b, notes = yield self.talk_with_hold()
        port_a, port_b = notes[("uac", "answer")][1], notes[("uas", "invite")][1]
        for counts in (self.assertIntact(b, a, (GATEWAY, port_b)),
                       self.assertIntact(a, b, (GATEWAY, port_a))):
            self.assertGreaterEqual(counts.get("talk", 0), 20, counts)
        self.assertNotIn("Traceback", self.switch.output)


class TwoSwitchesTests(MediaTestCase):
    """Two switches on one host with the default [media] settings (child mode, no control
    port, the default RTP range and workers): both gateways start and both relay RTP."""

    media = {"mode": "child"}

    def settings(self) -> dict:
        return {"calls": {"no_answer_timeout": 5},
                "media": {"mode": "child", "public_address": GATEWAY}}

    @defer.inlineCallbacks
    def test_both_relay_rtp(self):
        first = self.switch
        second = yield self.start_switch(self.settings())
        for switch in (first, second):
            self.switch, self.target = switch, f"127.0.0.1:{switch.port}"
            if switch is second:
                for number, password in PASSWORDS.items():
                    yield self.mssctl("extension", "add", number, "--password", password)
            self.notes.seen.clear()
            a, b, notes = yield self.talk_with_hold()
            port_a, port_b = notes[("uac", "answer")][1], notes[("uas", "invite")][1]
            self.assertEqual((notes[("uac", "answer")][0], notes[("uas", "invite")][0]),
                             (GATEWAY, GATEWAY))
            for counts in (self.assertIntact(b, a, (GATEWAY, port_b)),
                           self.assertIntact(a, b, (GATEWAY, port_a))):
                self.assertGreaterEqual(counts.get("talk", 0), 20, counts)
                self.assertGreaterEqual(counts.get("resumed", 0), 20, counts)
            self.assertNotIn("Traceback", switch.output)
            self.assertNotIn("media gateway down", switch.output)


class GatewayDownTests(MediaTestCase):
    """The gateway cannot start (its configured control port is taken): one log line names
    the cause, ``mssctl status`` and ``mss_media_up`` say it is down, and an INVITE gets
    503 with Retry-After and a Reason, never a call without audio."""

    media = {"mode": "child"}

    def settings(self) -> dict:
        import socket
        self.busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.busy.bind(("127.0.0.1", 0))
        self.addCleanup(self.busy.close)
        self.metrics_port = free_port()
        settings = super().settings()
        settings["media"]["control"] = "127.0.0.1:%d" % self.busy.getsockname()[1]
        settings["metrics"] = {"enabled": True, "port": self.metrics_port}
        settings["calls"]["retry_after"] = 7
        return settings

    @defer.inlineCallbacks
    def start_switch(self, settings, switch=None):
        switch = switch or Switch(self, settings)
        yield switch.start()
        return switch

    @defer.inlineCallbacks
    def test_reported_and_calls_refused(self):
        import secrets
        from twisted.web.client import Agent, readBody
        from mss.sip.parser import parse
        from tests.e2e.harness import udp_client
        port = self.busy.getsockname()[1]
        cause = f"media gateway down: cannot listen on control 127.0.0.1:{port}: "
        yield until(self, lambda: defer.succeed(cause in self.switch.output), 20,
                    "the gateway's failure logged", lambda: self.switch.output[-3000:])
        self.assertEqual(self.switch.output.count("media gateway down:"), 1,
                         self.switch.output[-3000:])
        self.assertNotIn("Traceback", self.switch.output)

        out = yield self.mssctl("status")
        line = next(l for l in out.splitlines() if l.startswith("media:"))
        self.assertTrue(line.startswith("media: down since "), line)
        self.assertIn(f"cannot listen on control 127.0.0.1:{port}", line)

        response = yield Agent(reactor).request(
            b"GET", b"http://127.0.0.1:%d/metrics" % self.metrics_port)
        metrics = (yield readBody(response)).decode()
        self.assertIn("\nmss_media_up 0\n", metrics)

        client = udp_client(self)
        local = client.transport.getHost().port
        invite = (f"INVITE sip:1002@127.0.0.1:{self.switch.port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=down\r\n"
                  "To: <sip:1002@127.0.0.1>\r\nCall-ID: down-" + secrets.token_hex(4) + "\r\n"
                  "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
        client.transport.write(invite, ("127.0.0.1", self.switch.port))
        answer = parse((yield client.next()))[0]
        while answer.status == 100:
            answer = parse((yield client.next()))[0]
        self.assertEqual((answer.status, answer.reason), (503, "Media Gateway Unavailable"))
        self.assertEqual(answer.headers.get("retry-after"), "7")
        self.assertEqual(answer.headers.get("reason"),
                         'SIP;cause=503;text="media gateway unavailable"')
