# -*- test-case-name: tests.e2e.test_services -*-
"""End-to-end tests of the Lua services (lua/services/*.lua) through the real switch
(``twistd -n mss``) with SIPp phones: the black and white lists (anonymous callers from
extensions and carriers, refusal rate with a seeded generator, longest prefix and caller-first
rules), call forwarding of every kind set by feature code from the phone (with the RFC 5806
Diversion header checked at the target), do not disturb, service settings, call levels,
reloading a services folder, and operator break-in with real RTP through the media gateway
child (the test's own UDP sockets are the phones' media; the gateway's ports come from an ng
``query``).

Every SIPp run is bounded (``-timeout``) on its own free port; outcomes are read from SIPp's
action log (``final <status>``, ``diversion <value>``) and from the CDRs (``mssctl cdr``).
After each mssctl change ``services reload --via-store`` waits until the switch has polled the
store, so no test depends on timing.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import struct

from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest

from mss.media.client import NgClient
from mss.media.mixer import audioop
from tests.e2e.harness import ROOT, SIPP, Switch, free_port, sipp

PASSWORD = "pw-{}-svc"


class ServiceTestCase(unittest.TestCase):
    timeout = 90
    settings: dict = {"calls": {"no_answer_timeout": 3}}
    extensions: dict = {"1001": (), "1002": ("forward",), "1003": ()}

    @defer.inlineCallbacks
    def setUp(self):
        if SIPP is None:
            raise unittest.SkipTest("sipp is not installed")
        self.switch = Switch(self, self.settings)
        yield self.switch.start()
        self.target = f"127.0.0.1:{self.switch.port}"
        self.runs = 0
        for number, permissions in self.extensions.items():
            args = ["extension", "add", number, "--password", PASSWORD.format(number)]
            for p in permissions:
                args += ["--permission", p]
            yield self.mssctl(*args)
        yield self.mssctl("services", "reload", "--via-store")   # the switch has seen them

    @defer.inlineCallbacks
    def mssctl(self, *args):
        out, err, code = yield self.switch.mssctl(*args)
        self.assertEqual(code, 0, f"mssctl {' '.join(args)}: {err.decode(errors='replace')}")
        return out.decode()

    @defer.inlineCallbacks
    def change(self, *args):
        """A provisioning change with mssctl, then a barrier: ``services reload --via-store``
        returns once the switch has polled the store (which drops the services' caches), so
        the next call sees the change."""
        out = yield self.mssctl(*args)
        yield self.mssctl("services", "reload", "--via-store")
        return out

    def bounded(self, d: defer.Deferred) -> defer.Deferred:
        """A SIPp run the test may not wait for when it fails early: cleanup waits for its
        end (bounded by its -timeout), so no process outlives the test."""
        ended = defer.Deferred()
        d.addBoth(lambda r: (ended.called or ended.callback(None), r)[1])
        self.addCleanup(lambda: ended)
        return d

    def _log(self) -> str:
        self.runs += 1
        return os.path.join(self.switch.dir, f"sipp-{self.runs}.log")

    def _check(self, name, result):
        out, err, code = result
        self.assertEqual(code, 0, f"{name}:\n" + (out + err).decode(errors="replace")[-3000:]
                         + "\nswitch:\n" + self.switch.output[-4000:])

    @staticmethod
    def _lines(path: str, word: str) -> list[str]:
        if not os.path.exists(path):
            return []
        with open(path, errors="replace") as f:
            return [line.split(word + " ", 1)[1].strip() for line in f if word + " " in line]

    @defer.inlineCallbacks
    def register(self, number: str, port: int):
        result = yield sipp("register.xml", self.target, "-m", "1", "-s", number, "-au", number,
                            "-ap", PASSWORD.format(number), "-set", "expires", "300",
                            "-set", "device", "A", local_port=port, timeout=10,
                            cwd=self.switch.dir)
        self._check(f"register {number}", result)

    @defer.inlineCallbacks
    def device(self, number: str, scenario: str, *args, calls: int = 1):
        """Register ``number`` on a fresh port and start its SIPp UAS there.

        Returns a function that waits for the device to finish and gives its logged
        ``diversion`` values."""
        port = free_port()
        yield self.register(number, port)
        log = self._log()
        d = self.bounded(sipp(scenario, self.target, "-m", str(calls), "-trace_logs",
                              "-log_file", log, *args, local_port=port, timeout=30,
                              cwd=self.switch.dir))

        @defer.inlineCallbacks
        def done():
            self._check(f"{number} {scenario}", (yield d))
            return self._lines(log, "diversion")
        return done

    @defer.inlineCallbacks
    def dial(self, caller: str, callee: str, *, privacy: str = "none", hold: int = 0,
             calls: int = 1, rate: int = 10, timeout: int = 30,
             from_user: str | None = None) -> list[str]:
        """``caller`` calls ``callee`` (``calls`` times): the final statuses, as strings.
        ``from_user`` replaces the caller's number in From (the digest user stays)."""
        log = self._log()
        result = yield sipp("svc_uac.xml", self.target, "-m", str(calls), "-r", str(rate),
                            "-s", callee, "-set", "caller", from_user or caller, "-au", caller,
                            "-ap", PASSWORD.format(caller), "-set", "hold", str(hold),
                            "-set", "privacy", privacy, "-trace_logs", "-log_file", log,
                            timeout=timeout, cwd=self.switch.dir)
        self._check(f"{caller} -> {callee}", result)
        return self._lines(log, "final")

    @defer.inlineCallbacks
    def cdrs(self) -> list[dict]:
        out = yield self.mssctl("cdr", "--csv")
        return list(csv.DictReader(io.StringIO(out)))


class BlacklistTests(ServiceTestCase):
    extensions = {"1001": (), "1002": (), "2001": (), "1234": (), "1299": ()}

    @defer.inlineCallbacks
    def test_anonymous_blocked(self):
        """Row anonymous / * / 100: a caller asking for privacy (Privacy: id) gets 403 and
        leaves a CDR; the same caller showing its number gets through (480: the callee has
        no device)."""
        yield self.change("blacklist", "add", "anonymous", "*", "100",
                          "--description", "no hidden numbers")
        self.assertEqual((yield self.dial("1001", "1002", privacy="id")), ["403"])
        self.assertEqual((yield self.dial("1001", "1002")), ["480"])
        rows = yield self.cdrs()
        self.assertEqual(len(rows), 2, rows)
        refused = [r for r in rows if r["cause"].startswith("403")]
        self.assertEqual(len(refused), 1, rows)
        self.assertIn("blacklist", refused[0]["cause"])
        self.assertEqual((refused[0]["caller"], refused[0]["callee"]), ("1001", "1002"))

    @defer.inlineCallbacks
    def test_anonymous_from(self):
        """A phone hiding its number (From sip:anonymous@..., digest user 1001) is an
        anonymous caller: refused by anonymous / 1002 / 100; its call to 1234 goes through
        and 1234 is shown "Anonymous" <sip:anonymous@anonymous.invalid>, not 1001; the CDR
        keeps the real caller."""
        yield self.change("blacklist", "add", "anonymous", "1002", "100")
        self.assertEqual((yield self.dial("1001", "1002", from_user="anonymous")), ["403"])
        callee = yield self.device("1234", "svc_uas_from.xml")
        self.assertEqual((yield self.dial("1001", "1234", from_user="anonymous", hold=100)),
                         ["200"])
        yield callee()
        shown = self._lines(os.path.join(self.switch.dir, f"sipp-{self.runs - 1}.log"), "from")
        self.assertEqual(len(shown), 1, shown)
        self.assertIn("<sip:anonymous@anonymous.invalid>", shown[0])
        self.assertNotIn("1001", shown[0])
        rows = yield self.cdrs()
        self.assertEqual(sorted((r["caller"], r["callee"], r["disposition"]) for r in rows),
                         [("1001", "1002", "failed"), ("1001", "1234", "answered")], rows)
        self.assertIn("blacklist", sorted(r["cause"] for r in rows)[0])

    @defer.inlineCallbacks
    def test_whitelist_exempts(self):
        """Everything is black-listed except what the white list exempts (1001 -> 12*)."""
        yield self.change("blacklist", "add", "*", "*", "100")
        yield self.change("whitelist", "add", "1001", "12", "--description", "lab")
        results = yield defer.gatherResults([
            self.dial("1001", "1234"), self.dial("1001", "1002"), self.dial("2001", "1234")])
        self.assertEqual(results, [["480"], ["403"], ["403"]])
        self.assertIn("lab", (yield self.mssctl("whitelist", "list")))

    @defer.inlineCallbacks
    def test_prefix_rules(self):
        """Longest called prefix wins (*/12 refuses, */1234 at rate 0 is the exception);
        the caller prefix goes first (100/* refuses 1001 even though */1002 is longer on the
        called side)."""
        yield self.change("blacklist", "add", "*", "12", "100")
        yield self.change("blacklist", "add", "*", "1234", "0")
        yield self.change("blacklist", "add", "100", "*", "100")
        yield self.change("blacklist", "add", "*", "1002", "0")
        results = yield defer.gatherResults([
            self.dial("2001", "1299"), self.dial("2001", "1234"),
            self.dial("1001", "1002"), self.dial("2001", "1002")])
        self.assertEqual(results, [["403"], ["480"], ["403"], ["480"]])


class BlacklistRateTests(ServiceTestCase):
    settings = {"calls": {"no_answer_timeout": 3}, "services": {"seed": 4242}}
    extensions = {"1001": (), "1002": ()}
    CALLS = 200

    @defer.inlineCallbacks
    def test_rate_refuses_about_half(self):
        """Row 1001 / 1002 / 50: of 200 calls about half get 403 (binomial(200, 0.5) is within
        70..130 with probability 1 - 1e-8), the others go on to the callee (480: no device).
        With [services] seed the count is the same after a restart of the switch."""
        yield self.change("blacklist", "add", "1001", "1002", "50")
        counts = []
        for run in range(2):
            if run:
                yield self.switch.stop()
                yield self.switch.start()
            finals = yield self.dial("1001", "1002", calls=self.CALLS, rate=100, timeout=60)
            self.assertEqual(len(finals), self.CALLS)
            self.assertEqual(set(finals) - {"403", "480"}, set(), finals)
            counts.append(finals.count("403"))
        self.assertTrue(70 <= counts[0] <= 130, counts)
        self.assertEqual(counts[0], counts[1])
        rows = yield self.cdrs()
        self.assertEqual(sum(r["cause"].startswith("403") for r in rows), 2 * counts[0])


class ForwardingTests(ServiceTestCase):
    """1002 (with the forward right) sets its forwarding to 1003 from its phone; 1001 calls
    1002 and reaches 1003, whose INVITE carries Diversion: <sip:1002@mss.test>;reason=R with
    the RFC 5806 reason of the kind (unconditional, user-busy, unavailable, no-answer)."""

    @defer.inlineCallbacks
    def feature(self, code: str):
        """1002 dials a feature code: the switch answers it (and 1002 hangs up)."""
        self.assertEqual((yield self.dial("1002", code)), ["200"])

    @defer.inlineCallbacks
    def forwarded(self, kind: str, code: str, callee_scenario: str | None):
        yield self.feature(f"*{code}*1003")
        listing = yield self.mssctl("forward", "list", "1002")
        self.assertIn("1003", listing)
        callee = None
        if callee_scenario is not None:
            callee = yield self.device("1002", callee_scenario)
        target = yield self.device("1003", "svc_uas_diverted.xml")
        self.assertEqual((yield self.dial("1001", "1002", hold=200)), ["200"])
        diversions = yield target()
        if callee is not None:
            yield callee()
        self.assertEqual(len(diversions), 1, diversions)
        self.assertIn("<sip:1002@mss.test>", diversions[0])
        self.assertIn(f"reason={kind}", diversions[0])
        rows = yield self.cdrs()
        answered = [r for r in rows if r["disposition"] == "answered" and r["caller"] == "1001"]
        self.assertEqual(len(answered), 1, rows)
        # cleared with *CODE# (the # escaped in the Request-URI): the forwarding is gone
        yield self.feature(f"*{code}%23")
        listing = yield self.mssctl("forward", "list", "1002")
        self.assertNotIn("1003", listing)
        return answered[0]

    @defer.inlineCallbacks
    def test_unconditional(self):
        yield self.forwarded("unconditional", "93", None)
        self.assertEqual((yield self.dial("1001", "1002")), ["480"])   # no device: not forwarded

    @defer.inlineCallbacks
    def test_busy(self):
        yield self.forwarded("user-busy", "90", "uas_busy.xml")

    @defer.inlineCallbacks
    def test_unreachable(self):
        yield self.forwarded("unavailable", "91", None)
        self.assertEqual((yield self.dial("1001", "1002")), ["480"])

    @defer.inlineCallbacks
    def test_no_answer(self):
        """*92*1003*1: 1002's phone rings one second (then gets CANCEL), then 1003 rings."""
        yield self.feature("*92*1003*1")
        self.assertIn("1003", (yield self.mssctl("forward", "list", "1002")))
        callee = yield self.device("1002", "uas_ring.xml")
        target = yield self.device("1003", "svc_uas_diverted.xml")
        self.assertEqual((yield self.dial("1001", "1002", hold=200)), ["200"])
        diversions = yield target()
        yield callee()
        self.assertEqual(len(diversions), 1, diversions)
        self.assertIn("<sip:1002@mss.test>;reason=no-answer", diversions[0])
        yield self.feature("*92%23")
        self.assertNotIn("1003", (yield self.mssctl("forward", "list", "1002")))

    @defer.inlineCallbacks
    def test_without_the_right(self):
        """1001 has no forward right: *93*1003 is refused 403 and nothing is stored."""
        self.assertEqual((yield self.dial("1001", "*93*1003")), ["403"])
        self.assertNotIn("1003", (yield self.mssctl("forward", "list")))


class DndTests(ServiceTestCase):
    @defer.inlineCallbacks
    def test_feature_codes(self):
        """*78 from 1002's phone: 1001 gets 486 Do Not Disturb (1002's phone never rings);
        *79: calls reach 1002 again."""
        self.assertEqual((yield self.dial("1002", "*78")), ["200"])
        self.assertIn("1002", (yield self.mssctl("dnd", "list")))
        self.assertEqual((yield self.dial("1001", "1002")), ["486"])
        self.assertEqual((yield self.dial("1002", "*79")), ["200"])
        callee = yield self.device("1002", "uas_answer.xml")
        self.assertEqual((yield self.dial("1001", "1002", hold=100)), ["200"])
        yield callee()
        rows = yield self.cdrs()
        refused = [r for r in rows if r["caller"] == "1001" and r["cause"].startswith("486")]
        self.assertEqual(len(refused), 1, rows)
        self.assertIn("dnd", refused[0]["cause"])

    @defer.inlineCallbacks
    def test_mssctl_and_unconditional_forward(self):
        """DND set with mssctl; an unconditional forward runs first and the call reaches
        1003; without the forward the caller gets 486."""
        yield self.change("dnd", "1002", "on")
        yield self.change("forward", "set", "1002", "unconditional", "1003")
        target = yield self.device("1003", "svc_uas_diverted.xml")
        self.assertEqual((yield self.dial("1001", "1002", hold=100)), ["200"])
        self.assertIn("reason=unconditional", (yield target())[0])
        yield self.change("forward", "clear", "1002", "all")
        self.assertEqual((yield self.dial("1001", "1002")), ["486"])
        yield self.change("dnd", "1002", "off")
        self.assertEqual((yield self.dial("1001", "1002")), ["480"])


    @defer.inlineCallbacks
    def test_settings(self):
        """mssctl services set dnd reject_code/reject_reason: the running switch uses them."""
        yield self.change("dnd", "1002", "on")
        yield self.change("services", "set", "dnd", "reject_code", "480")
        yield self.change("services", "set", "dnd", "reject_reason", "Quiet please")
        self.assertEqual((yield self.dial("1001", "1002")), ["480"])
        log = os.path.join(self.switch.dir, f"sipp-{self.runs}.log")
        self.assertEqual(self._lines(log, "reason"), ["Quiet please"])
        rows = yield self.cdrs()
        self.assertIn("service dnd", rows[0]["cause"])


class CallLevelTests(ServiceTestCase):
    extensions = {"1001": (), "2001": ()}

    @defer.inlineCallbacks
    def test_level_required(self):
        """Prefix 2 needs level 2: 1001 at level 1 gets 403; at level 2 the call is routed
        (480: 2001 has no device)."""
        yield self.change("level", "prefix", "add", "2", "2")
        yield self.change("level", "set", "1001", "1")
        self.assertEqual((yield self.dial("1001", "2001")), ["403"])
        yield self.change("level", "set", "1001", "2")
        self.assertEqual((yield self.dial("1001", "2001")), ["480"])
        rows = yield self.cdrs()
        self.assertEqual([r["cause"].split()[0] for r in rows], ["403", "480"], rows)
        self.assertIn("call_levels", rows[0]["cause"])


class BreakInRefusalTests(ServiceTestCase):
    """Refusals of *75*EXT need no media: no right, protected target, idle or unknown target."""
    extensions = {"1000": ("break_in",), "1001": (), "1002": (), "1003": ("overstep",)}

    @defer.inlineCallbacks
    def test_refusals(self):
        results = yield defer.gatherResults([
            self.dial("1001", "*75*1002"),          # no break_in right
            self.dial("1000", "*75*1003"),          # 1003 is protected (overstep)
            self.dial("1000", "*75*1002"),          # 1002 is idle: no conference
            self.dial("1000", "*75*1999"),          # no such extension
            self.dial("1000", "*75*1000")])         # oneself
        self.assertEqual(results, [["403"], ["403"], ["480"], ["404"], ["403"]])
        listing = yield self.mssctl("permissions", "1000")
        self.assertIn("break_in", listing)
        rows = yield self.cdrs()
        self.assertEqual(len(rows), 5, rows)
        self.assertTrue(all(r["answer"] == "" for r in rows), rows)


# -- RTP parties for the break-in test --------------------------------------------------------

def _frame(level: int) -> bytes:
    """20 ms of PCMU at a constant linear ``level``."""
    return audioop.lin2ulaw(struct.pack("<h", level) * 160, 2)


class RtpParty(protocol.DatagramProtocol):
    """One phone's RTP socket on loopback: sends 20 ms PCMU frames at a constant level to the
    gateway, and tells which level it hears (the mean of the decoded payload)."""

    def __init__(self, name: str, level: int):
        self.name = name
        self.level = level
        self.seq = 0
        self.ssrc = 0x10000 + level
        self.gateway = None
        self.packets = 0
        self._waiting: list[tuple[int, defer.Deferred]] = []
        self._talk = None

    def datagramReceived(self, data, addr):
        if len(data) < 12 + 160 or data[1] & 0x7F != 0:
            return
        self.packets += 1
        heard = audioop.avg(audioop.ulaw2lin(data[12 + 4 * (data[0] & 0x0F):], 2), 2)
        for item in list(self._waiting):
            level, d = item
            if abs(heard - level) <= level // 10:
                self._waiting.remove(item)
                d.callback(heard)

    def hears(self, other: "RtpParty", timeout: float = 5) -> defer.Deferred:
        """Fires when a packet carrying ``other``'s level arrives."""
        d = defer.Deferred()
        self._waiting.append((other.level, d))

        def late(failure):
            raise AssertionError(f"{self.name} did not hear {other.name} "
                                 f"({self.packets} packets received)")
        return d.addTimeout(timeout, reactor).addErrback(late)

    def talk(self):
        frame = _frame(self.level)

        def send():
            self.seq = (self.seq + 1) & 0xFFFF
            header = struct.pack("!BBHII", 0x80, 0, self.seq, self.seq * 160, self.ssrc)
            self.transport.write(header + frame, self.gateway)
        self._talk = task.LoopingCall(send)
        self._talk.start(0.02)

    def silent(self):
        if self._talk is not None and self._talk.running:
            self._talk.stop()


class BreakInTests(ServiceTestCase):
    """The operator 1000 breaks into the answered call 1001 -> 1002 with the media gateway
    child: each party's audio reaches the two others (a room of three in the gateway); after
    the operator hangs up the room is gone and 1001 and 1002 still hear each other, relayed."""
    extensions = {"1000": ("break_in",), "1001": (), "1002": ()}

    def setUp(self):
        base = free_port()
        while base > 60000 or base % 2:
            base = free_port()
        self.settings = {"calls": {"no_answer_timeout": 5},
                         "media": {"mode": "child", "control": f"127.0.0.1:{free_port()}",
                                   "rtp_ports": f"{base}-{base + 199}", "media_timeout": 30}}
        return super().setUp()

    def party(self, name: str, level: int) -> RtpParty:
        p = RtpParty(name, level)
        port = reactor.listenUDP(0, p, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(p.silent)
        p.port = port.getHost().port
        return p

    @defer.inlineCallbacks
    def gateway_ports(self, ng, call_id: str, parties) -> None:
        """Ask the gateway (ng query) which of its ports serves each party (by the address the
        party gave in its SDP); retried until the call's streams exist (bounded)."""
        for _ in range(100):
            try:
                reply = yield ng.query(call_id)
            except Exception:
                reply = {}
            found = {}
            for leg in _text(reply).get("tags", {}).values():
                for media in leg.get("medias", []):
                    for stream in media.get("streams", []):
                        advertised = stream.get("advertised endpoint", {}).get("port")
                        found[advertised] = stream.get("local port")
            if all(p.port in found for p in parties):
                for p in parties:
                    p.gateway = ("127.0.0.1", found[p.port])
                return
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail(f"the gateway has no streams for {call_id}: {reply}\nswitch:\n"
                  + self.switch.output[-6000:])

    @defer.inlineCallbacks
    def room_gone(self, ng, room: str):
        """Retried (bounded) until the gateway no longer knows the mixing room."""
        for _ in range(100):
            try:
                yield ng.room_query(room)
            except Exception as e:
                self.assertIn("Unknown room", str(e))
                return
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail(f"room {room} still exists")

    def trigger(self, sipp_port: int, call_id: str):
        """An INFO in the SIPp caller's dialog: the scenario answers it and hangs up."""
        sock = protocol.DatagramProtocol()
        port = reactor.listenUDP(0, sock, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        me = port.getHost().port
        port.write((f"INFO sip:x@127.0.0.1:{sipp_port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-trigger-{me}\r\n"
                    f"From: <sip:test@127.0.0.1>;tag=trigger\r\n"
                    f"To: <sip:x@127.0.0.1>;tag=x\r\nCall-ID: {call_id}\r\n"
                    f"CSeq: 1 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(),
                   ("127.0.0.1", sipp_port))

    def media_call(self, caller: str, callee: str, rtp: int, sipp_port: int, cid: str):
        return self.bounded(sipp(
            "svc_uac_media.xml", self.target, "-m", "1", "-s", callee, "-set", "caller", caller,
            "-au", caller, "-ap", PASSWORD.format(caller), "-set", "rtp", str(rtp),
            "-set", "privacy", "none", "-cid_str", cid + "%u", local_port=sipp_port,
            timeout=30, cwd=self.switch.dir))

    @defer.inlineCallbacks
    def test_break_in_conference(self):
        ng = NgClient(reactor, self.switch.settings["media"]["control"])
        ng.startService()
        self.addCleanup(ng.stopService)
        a, b, o = self.party("1001", 2000), self.party("1002", 6000), self.party("1000", 14000)
        callee = yield self.device("1002", "svc_uas_media.xml", "-set", "rtp", str(b.port))
        a_port, o_port = free_port(), free_port()
        a_call = self.media_call("1001", "1002", a.port, a_port, "victim-")
        yield self.gateway_ports(ng, "victim-1", [a, b])
        a.talk()
        yield defer.gatherResults([b.hears(a)])                    # relayed two-party call
        a.silent()
        b.talk()
        yield a.hears(b)
        b.silent()

        o_call = self.media_call("1000", "*75*1002", o.port, o_port, "operator-")
        yield self.gateway_ports(ng, "operator-1", [o])
        for speaker, listeners in ((a, (b, o)), (b, (a, o)), (o, (a, b))):
            speaker.talk()
            yield defer.gatherResults([p.hears(speaker) for p in listeners])
            speaker.silent()

        room = yield ng.room_query("barge-victim-1")
        self.assertEqual(len(_text(room)["participants"]), 3, room)

        self.trigger(o_port, "operator-1")                         # the operator hangs up
        self._check("operator", (yield o_call))
        yield self.room_gone(ng, "barge-victim-1")                 # back to plain relaying
        a.talk()
        yield b.hears(a)
        a.silent()
        b.talk()
        yield a.hears(b)
        b.silent()

        self.trigger(a_port, "victim-1")
        self._check("1001", (yield a_call))
        yield callee()
        rows = yield self.cdrs()
        self.assertEqual(sorted((r["caller"], r["callee"], r["disposition"]) for r in rows),
                         [("1000", "1002", "answered"), ("1001", "1002", "answered")], rows)

    @defer.inlineCallbacks
    def test_call_ends_under_the_operator(self):
        """1001 hangs up while the operator is in: the switch ends the operator's call (BYE)
        and the room is gone; a protected party (overstep) cannot be broken into even in a
        call."""
        ng = NgClient(reactor, self.switch.settings["media"]["control"])
        ng.startService()
        self.addCleanup(ng.stopService)
        a, b, o = self.party("1001", 2000), self.party("1002", 6000), self.party("1000", 14000)
        callee = yield self.device("1002", "svc_uas_media.xml", "-set", "rtp", str(b.port))
        a_port, o_port = free_port(), free_port()
        a_call = self.media_call("1001", "1002", a.port, a_port, "victim-")
        yield self.gateway_ports(ng, "victim-1", [a, b])
        yield self.change("extension", "permission", "1001", "overstep", "on")
        self.assertEqual((yield self.dial("1000", "*75*1001")), ["403"])
        o_call = self.media_call("1000", "*75*1002", o.port, o_port, "operator-")
        yield self.gateway_ports(ng, "operator-1", [o])
        o.talk()
        yield defer.gatherResults([a.hears(o), b.hears(o)])
        o.silent()
        self.trigger(a_port, "victim-1")                           # 1001 hangs up
        self._check("1001", (yield a_call))
        self._check("operator", (yield o_call))                    # got BYE from the switch
        yield callee()
        yield self.room_gone(ng, "barge-victim-1")
        rows = yield self.cdrs()
        op = [r for r in rows if r["caller"] == "1000" and r["disposition"] == "answered"]
        self.assertEqual(len(op), 1, rows)
        self.assertIn("broke into ended", op[0]["cause"])


def _text(value):
    """An ng reply with bytes keys and values made text (the gateway's bencode)."""
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


class InboundBlacklistTests(ServiceTestCase):
    """Calls from a carrier trunk (127.0.0.2) to a DID of 1001: the black list applies to
    callers from outside too (the common use of the anonymous row)."""
    extensions = {"1001": ()}
    DID = "+8675512345678"

    @defer.inlineCallbacks
    def carrier_call(self, caller: str, privacy: str = "none") -> list[str]:
        log = self._log()
        result = yield sipp("svc_carrier_uac.xml", self.target, "-m", "1", "-s", self.DID,
                            "-set", "from", caller, "-set", "privacy", privacy,
                            "-set", "hold", "0", "-trace_logs", "-log_file", log,
                            local_ip="127.0.0.2", local_port=free_port("127.0.0.2"),
                            timeout=20, cwd=self.switch.dir)
        self._check(f"carrier call from {caller}", result)
        return self._lines(log, "final")

    @defer.inlineCallbacks
    def test_anonymous_and_prefix_from_a_carrier(self):
        yield self.mssctl("trunk", "add", "ims", "--domain", "carrier.example",
                          "--proxy", "127.0.0.2:5999", "--account", "0755000",
                          "--auth-id", "0755000@carrier.example", "--password", "carrier-pw",
                          "--no-register", "--allow", "127.0.0.2")
        yield self.mssctl("did", "add", self.DID, "--extension", "1001")
        yield self.change("blacklist", "add", "anonymous", "*", "100")
        yield self.change("blacklist", "add", "+86900", "*", "100")
        results = yield defer.gatherResults([
            self.carrier_call("anonymous"), self.carrier_call("+8613800138000", privacy="id"),
            self.carrier_call("+8690012345"), self.carrier_call("+8613800138000")])
        self.assertEqual(results, [["403"], ["403"], ["403"], ["480"]])
        rows = yield self.cdrs()
        self.assertEqual(len(rows), 4, rows)
        self.assertEqual({r["direction"] for r in rows}, {"inbound"})
        self.assertEqual(sum("blacklist" in r["cause"] for r in rows), 3, rows)


class ReloadTests(ServiceTestCase):
    """[services] path is a folder of our own: a service added while the switch runs is used
    after ``mssctl services reload``; a broken edit keeps the running version."""
    extensions = {"1001": (), "1002": ()}

    def setUp(self):
        self.lua = os.path.abspath(self.mktemp())
        shutil.copytree(os.path.join(ROOT, "lua", "services"), self.lua)
        self.settings = {"calls": {"no_answer_timeout": 3}, "services": {"path": self.lua}}
        return super().setUp()

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.lua, name), "w") as f:
            f.write(text)

    @defer.inlineCallbacks
    def test_add_and_break_a_service(self):
        self.assertEqual((yield self.dial("1001", "1002")), ["480"])
        self.write("closed.lua", '''
return {priority = 5, originating = function(call)
  if call.callee == "1002" then return mss.reject(503, "Closed") end
end}
''')
        out = yield self.mssctl("services", "reload")
        self.assertIn("loaded: closed", out)
        self.assertEqual((yield self.dial("1001", "1002")), ["503"])
        self.write("closed.lua", "return {originating = ")          # a syntax error
        out, err, code = yield self.switch.mssctl("services", "reload")
        self.assertEqual(code, 1)
        self.assertIn("failed: closed:", out.decode())
        self.assertEqual((yield self.dial("1001", "1002")), ["503"])  # the old version runs
        os.remove(os.path.join(self.lua, "closed.lua"))
        self.assertIn("removed: closed", (yield self.mssctl("services", "reload")))
        self.assertEqual((yield self.dial("1001", "1002")), ["480"])
