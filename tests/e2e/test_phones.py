# -*- test-case-name: tests.e2e.test_phones -*-
"""Real SIP clients against the real switch on its shipped settings: sipsak registers, and two
baresip 1.0 phones (the Debian 12 package)
register with digest on the shipped settings, one calls the other, the callee answers by
itself, and a tone sent by each phone arrives at the other through the media gateway.

This is the project's real-phone regression test. baresip reads its audio from a WAV file
(``aufile``) and its ``sndfile`` filter writes what it decodes to ``dump-...-dec.wav``; the
test checks the frequency of that recording with a Goertzel filter, and that the RTP came
from the gateway's port range (not straight from the other phone).
"""
from __future__ import annotations

import glob
import math
import os
import shutil
import socket
import struct
import tempfile
import tomllib
import wave

from twisted.internet import defer, protocol, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.e2e.harness import ROOT, Switch, until

BARESIP = shutil.which("baresip")
SIPSAK = shutil.which("sipsak")
MODULES = "/usr/lib/baresip/modules"
RATE = 8000
TONE_SECONDS = 4
PASSWORDS = {"1001": "s3cret-1001", "1002": "s3cret-1002"}
TONES = {"1001": 700.0, "1002": 1100.0}     # what each phone sends


def write_tone(path: str, frequency: float, seconds: float) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(
            struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * i / RATE)))
            for i in range(int(RATE * seconds))))


def read_samples(path: str) -> list[int]:
    with wave.open(path, "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2), path
        data = w.readframes(w.getnframes())
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def goertzel_power(samples: list[int], frequency: float, rate: int = RATE) -> float:
    """Power of ``samples`` at ``frequency`` (one Goertzel bin), normalised by length."""
    coeff = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / max(len(samples), 1) ** 2


def sip_port_pair(host: str = "127.0.0.1") -> int:
    """A port free with the next one (baresip listens on port and port+1 for TLS)."""
    for _ in range(100):
        with socket.socket() as a:
            a.bind((host, 0))
            port = a.getsockname()[1]
        if port > 65000:
            continue
        try:
            for p in (port, port + 1):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((host, p))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def shipped_settings() -> dict:
    """``etc/mss.toml`` as shipped: the sections that decide registration and media."""
    with open(os.path.join(ROOT, "etc", "mss.toml"), "rb") as f:
        shipped = tomllib.load(f)
    return {section: dict(shipped.get(section, {})) for section in ("auth", "media")}


class _Baresip(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)


class BaresipPhone:
    """One baresip process with its own config directory, SIP port and RTP ports."""

    def __init__(self, testcase, switch: Switch, number: str, rtp_ports: str):
        self.testcase, self.number = testcase, number
        # baresip truncates long paths in its config: a short directory of its own
        self.dir = tempfile.mkdtemp(prefix=f"baresip{number}-")
        testcase.addCleanup(shutil.rmtree, self.dir, True)
        self.tone = os.path.join(self.dir, "tone.wav")
        write_tone(self.tone, TONES[number], TONE_SECONDS)
        sip = sip_port_pair()
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(f"poll_method epoll\nsip_listen 127.0.0.1:{sip}\n"
                    f"audio_source aufile,{self.tone}\naudio_player aufile,{self.dir}/play.wav\n"
                    f"audio_alert aufile,{self.dir}/alert.wav\n"
                    f"ausrc_srate {RATE}\nauplay_srate {RATE}\naudio_channels 1\n"
                    f"rtp_ports {rtp_ports}\nmodule_path {MODULES}\n"
                    "module g711.so\nmodule aufile.so\nmodule sndfile.so\n"
                    "module_app account.so\nmodule_app menu.so\n"
                    f"snd_path {self.dir}\n")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(f"<sip:{number}@127.0.0.1:{switch.port};transport=udp>;"
                    f"auth_pass={PASSWORDS[number]};answermode=auto;audio_codecs=PCMU;"
                    "regint=600\n")
        self.proto = _Baresip()
        self.process = None

    def start(self, *commands: str, seconds: int = 40) -> None:
        args = [BARESIP, "-f", self.dir, "-t", str(seconds)]
        for command in commands:
            args += ["-e", command]
        self.process = reactor.spawnProcess(self.proto, BARESIP, args, env=dict(os.environ),
                                            path=self.dir, childFDs={0: "w", 1: "r", 2: "r"})
        self.testcase.addCleanup(self.stop)

    def stop(self) -> defer.Deferred:
        if self.proto.ended.called:
            return defer.succeed(None)
        self.process.signalProcess("KILL")
        return self.proto.ended

    @property
    def log(self) -> str:
        return self.proto.output.decode("utf-8", "replace")

    def decoded(self) -> list[int]:
        """What the phone decoded from the RTP it received."""
        files = glob.glob(os.path.join(self.dir, "dump-*-dec.wav"))
        self.testcase.assertEqual(len(files), 1, f"{self.number} recorded {files}\n{self.log}")
        return read_samples(files[0])


class SipsakTests(unittest.TestCase):
    """sipsak 0.9.8 (Debian 12) registers on the shipped digest settings."""
    timeout = 30

    @defer.inlineCallbacks
    def test_sipsak_registers(self):
        if SIPSAK is None:
            raise unittest.SkipTest("sipsak is not installed")
        settings = shipped_settings()
        settings["media"] = {"mode": "off"}
        switch = Switch(self, settings)
        yield switch.start()
        out, err, code = yield switch.mssctl("extension", "add", "1001", "--password",
                                             PASSWORDS["1001"])
        self.assertEqual(code, 0, err)
        # usrloc mode: register (answering the 401), check the binding, remove it. sipsak
        # mangles a port in -s, so the switch is named as the outbound proxy (-p).
        out, err, code = yield getProcessOutputAndValue(SIPSAK, [
            "-U", "-s", "sip:1001@127.0.0.1", "-p", f"127.0.0.1:{switch.port}",
            "-u", "1001", "-a", PASSWORDS["1001"], "-l", str(sip_port_pair()),
            "-H", "127.0.0.1", "-i", "-x", "120", "-v"], env=dict(os.environ))
        text = (out + err).decode(errors="replace")
        self.assertEqual(code, 0, text + switch.output[-2000:])
        self.assertIn("usrloc tests completed successful", text)


class BaresipCallTests(unittest.TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def setUp(self):
        if BARESIP is None or not os.path.isdir(MODULES):
            raise unittest.SkipTest("baresip is not installed (Debian package baresip)")
        settings = shipped_settings()
        # only what a test must change: its own ports, so that tests never collide
        low = 32000 + (os.getpid() % 200) * 100
        self.gateway_ports = (low, low + 49)
        settings["media"].update(rtp_ports=f"{low}-{low + 49}", workers=1)
        self.switch = Switch(self, settings)
        yield self.switch.start()
        for number, password in PASSWORDS.items():
            out, err, code = yield self.switch.mssctl("extension", "add", number,
                                                      "--password", password)
            self.assertEqual(code, 0, err)
        self.phones = {number: BaresipPhone(self, self.switch, number,
                                            f"{low + 50 + 20 * i}-{low + 69 + 20 * i}")
                       for i, number in enumerate(PASSWORDS)}

    @defer.inlineCallbacks
    def registered(self, number: str):
        out, err, code = yield self.switch.mssctl("registrations", number)
        return code == 0 and "baresip" in out.decode()

    @defer.inlineCallbacks
    def test_two_phones_register_call_and_hear_each_other(self):
        callee, caller = self.phones["1002"], self.phones["1001"]
        callee.start()
        yield until(self, lambda: self.registered("1002"), 15, "baresip 1002 registered",
                    lambda: callee.log + self.switch.output[-3000:])
        caller.start(f"/dial sip:1002@127.0.0.1:{self.switch.port}")
        yield until(self, lambda: self.registered("1001"), 15, "baresip 1001 registered",
                    lambda: caller.log)
        # the call ends when the caller's tone file ends; each phone then quits on its own
        yield until(self, lambda: defer.succeed("terminated" in caller.log), 30,
                    "the call established and ended", lambda: caller.log + callee.log)
        self.assertIn("Call established", caller.log)
        self.assertIn("Call established", callee.log)
        for phone in (caller, callee):
            yield phone.stop()
            # the RTP each phone received came from the gateway, not from the other phone
            port = int(phone.log.split("receiving from 127.0.0.1:")[1].split()[0])
            self.assertTrue(self.gateway_ports[0] <= port <= self.gateway_ports[1],
                            (port, self.gateway_ports))
        for phone, heard, other in ((callee, TONES["1001"], TONES["1002"]),
                                    (caller, TONES["1002"], TONES["1001"])):
            samples = phone.decoded()
            self.assertGreater(len(samples), RATE, "less than a second of audio decoded")
            middle = samples[len(samples) // 4: 3 * len(samples) // 4]
            # a pure tone of mean square E has a Goertzel power of E/2 at its frequency
            energy = sum(x * x for x in middle) / len(middle)
            wanted, unwanted = goertzel_power(middle, heard), goertzel_power(middle, other)
            self.assertGreater(wanted, 0.3 * energy, f"{phone.number}: the tone is not there")
            self.assertGreater(wanted, 100 * unwanted, f"{phone.number}: heard its own tone")
        out, err, code = yield self.switch.mssctl("cdr", "--csv")
        self.assertIn("answered", out.decode())
