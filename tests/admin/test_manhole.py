# -*- test-case-name: tests.admin.test_manhole -*-
"""Tests for mss.admin.manhole: password hashes, authorized keys, the host key, and a real SSH
login (OpenSSH's ``ssh`` with a key, on 127.0.0.1) running the helpers against an in-process
switch that has a live call."""
from __future__ import annotations

import os
import re
import shutil
import stat

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import keys
from twisted.cred import credentials, error
from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from mss.admin import manhole as M
from mss.admin.operations import Operations
from tests.admin.phones import LiveSwitch, Phone, live_call, provision

SSH = shutil.which("ssh")
_ANSI = re.compile(rb"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|[=>78DEHM])")


def write_key(path: str) -> keys.Key:
    """A fresh Ed25519 key pair: private key at ``path`` (0600), public line returned."""
    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.toString("openssh"))
    return key


class PasswordTests(unittest.SynchronousTestCase):
    def test_hash_and_verify(self):
        for scheme in ("scrypt", "pbkdf2-sha256"):
            stored = M.hash_password("correct horse", scheme)
            self.assertTrue(stored.startswith(f"${scheme}$"))
            self.assertNotIn("correct horse", stored)
            self.assertTrue(M.verify_password("correct horse", stored))
            self.assertFalse(M.verify_password("correct horsE", stored))
        self.assertNotEqual(M.hash_password("x"), M.hash_password("x"))     # salted

    def test_malformed_hashes_never_match(self):
        for stored in ("", "plain", "$scrypt$n=16384$AAAA", "$md5$1$AAAA$AAAA",
                       "$scrypt$n=3,r=8,p=1$AAAA$AAAA", "$scrypt$n=2097152,r=8,p=1$AAAA$AAAA",
                       "$pbkdf2-sha256$10$AAAA$AAAA", "$pbkdf2-sha256$x$AAAA$AAAA",
                       "$scrypt$n=16384,r=8,p=1$!!$AAAA"):
            self.assertFalse(M.verify_password("x", stored), stored)

    def test_checker_reads_file(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("# operators\n\nops:" + M.hash_password("pw", "pbkdf2-sha256") + "\nbroken\n")
        checker = M.HashedPasswordChecker(path)
        ok = checker.requestAvatarId(credentials.UsernamePassword(b"ops", b"pw"))
        self.assertEqual(self.successResultOf(ok), b"ops")
        for user, password in ((b"ops", b"nope"), (b"nobody", b"pw"), (b"broken", b"")):
            d = checker.requestAvatarId(credentials.UsernamePassword(user, password))
            self.failureResultOf(d, error.UnauthorizedLogin)
        os.remove(path)
        d = checker.requestAvatarId(credentials.UsernamePassword(b"ops", b"pw"))
        self.failureResultOf(d, error.UnauthorizedLogin)


class KeyTests(unittest.SynchronousTestCase):
    def test_host_key_generated_once_and_private(self):
        path = os.path.join(self.mktemp(), "host_key")
        first = M.load_or_create_host_key(path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        second = M.load_or_create_host_key(path)
        self.assertEqual(first.fingerprint(), second.fingerprint())
        self.assertFalse(second.isPublic())

    def test_authorized_keys_file_reread(self):
        path = self.mktemp()
        key = keys.Key(ed25519.Ed25519PrivateKey.generate())
        with open(path, "wb") as f:
            f.write(b"# comment\n\nnot a key\n" + key.public().toString("openssh") + b" me@host\n")
        db = M.AuthorizedKeysFile(path)
        self.assertEqual([k.fingerprint() for k in db.getAuthorizedKeys(b"anyone")],
                         [key.fingerprint()])
        with open(path, "wb") as f:
            f.write(b"")
        self.assertEqual(list(db.getAuthorizedKeys(b"anyone")), [])

    def test_no_credentials_configured_means_no_manhole(self):
        live = LiveSwitch(self.mktemp())
        self.addCleanup(live.close)
        settings = dict(live.settings["manhole"], authorized_keys="", password_file="")
        service = M.ManholeService({}, settings, live.reactor)
        self.assertIsNone(service.build_factory())
        service.startService()
        self.assertEqual(live.reactor.tcpServers, [])


class _SSH(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()
        self._waits: list[tuple[bytes, defer.Deferred]] = []

    def outReceived(self, data):
        self.output += data
        text = self.text
        for item in list(self._waits):
            if item[0] in text:
                self._waits.remove(item)
                item[1].callback(text)

    errReceived = outReceived

    @property
    def text(self) -> bytes:
        return _ANSI.sub(b"", self.output)

    def wait_for(self, marker: bytes, timeout: float = 15) -> defer.Deferred:
        d = defer.Deferred()
        if marker in self.text:
            d.callback(self.text)
            return d
        self._waits.append((marker, d))
        return d.addTimeout(timeout, reactor)

    def processEnded(self, reason):
        self.ended.callback(reason.value.exitCode)


class ManholeCase(unittest.TestCase):
    """A manhole on 127.0.0.1 (port 0) for a live switch; ``ssh`` logs in with a key."""
    timeout = 60

    def setUp(self):
        if SSH is None:
            raise unittest.SkipTest("ssh (openssh-client) is not installed")
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.key_path = os.path.join(self.dir, "id_ed25519")
        key = write_key(self.key_path)
        authorized = os.path.join(self.dir, "authorized_keys")
        with open(authorized, "wb") as f:
            f.write(key.public().toString("openssh") + b" operator\n")
        self.live = LiveSwitch(os.path.join(self.dir, "switch"), {"manhole": {
            "enabled": True, "port": 0, "authorized_keys": authorized,
            "host_key": os.path.join(self.dir, "manhole_host_key")}})
        self.addCleanup(self.live.close)
        provision(self.live, "1001", "1002")
        ops = Operations(self.live.switch, wall=self.live.reactor.seconds)
        self.service = M.ManholeService(M.namespace(self.live.switch, ops),
                                        self.live.settings["manhole"], reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        return self.service.listening

    def ssh(self, key_path: str) -> _SSH:
        port = self.service.port.getHost().port
        proto = _SSH()
        args = [SSH, "-tt", "-i", key_path, "-p", str(port), "-F", "/dev/null",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
                "-o", "LogLevel=ERROR", "operator@127.0.0.1"]
        process = reactor.spawnProcess(proto, SSH, args, env={"PATH": os.environ.get("PATH", ""),
                                                                "HOME": self.dir})

        def cleanup():
            if not proto.ended.called:
                process.signalProcess("KILL")
                return proto.ended
        self.addCleanup(cleanup)
        self.process = process
        return proto


class LoginTests(ManholeCase):
    @defer.inlineCallbacks
    def test_helpers_over_ssh_with_a_live_call(self):
        a = Phone(self.live, "1001", "pw-1001", 40001)
        b = Phone(self.live, "1002", "pw-1002", 40002)
        call_id = live_call(self.live, a, b)
        session = self.ssh(self.key_path)
        yield session.wait_for(b">>> ")
        self.process.write(b"calls()\r")
        text = yield session.wait_for(b"answered")
        self.assertIn(call_id.encode(), text)
        self.assertRegex(text.decode(errors="replace"), r"CALL-ID\s+FROM\s+TO\s+STATE")
        self.process.write(b"registrations()\r")
        yield session.wait_for(b"sip:1002@127.0.0.1:40002")
        self.process.write(b"trace(True, extension='1002')\r")
        yield session.wait_for(b"SIP trace on for extensions 1002")
        self.assertTrue(self.live.switch.core.trace)
        self.process.write(b"len(calls.calls), type(bindings).__name__\r")
        yield session.wait_for(b"(1, 'BindingTable')")
        self.process.write(b"services()\r")
        yield session.wait_for(b"forwarding")          # the services table lists the engine
        self.process.write(b"hangup(%r)\r" % call_id.encode().decode())
        yield session.wait_for(b"call " + call_id.encode() + b" ended")
        self.assertEqual(self.live.switch.calls.calls, {})
        self.assertEqual(a.answer_bye() + b.answer_bye(), 2)
        self.process.write(b"\x04")              # Ctrl-D on an empty line closes the session
        yield session.ended.addTimeout(15, reactor)

    @defer.inlineCallbacks
    def test_unknown_key_refused(self):
        other = os.path.join(self.dir, "other_key")
        write_key(other)
        session = self.ssh(other)
        code = yield session.ended
        self.assertNotEqual(code, 0)
        self.assertIn(b"Permission denied", session.output)


class EndOfInputTests(ManholeCase):
    """A session whose input ends (``ssh ... < /dev/null``, Ctrl-D) closes cleanly: no
    ``Unhandled Error`` in the log (trial fails a test that logs one)."""

    def ssh_no_input(self, *options: str) -> _SSH:
        port = self.service.port.getHost().port
        proto = _SSH()
        args = [SSH, *options, "-i", self.key_path, "-p", str(port), "-F", "/dev/null",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
                "-o", "LogLevel=ERROR", "operator@127.0.0.1"]
        process = reactor.spawnProcess(proto, SSH, args, childFDs={0: "w", 1: "r", 2: "r"},
                                       env={"PATH": os.environ.get("PATH", ""), "HOME": self.dir})
        process.closeStdin()                     # like < /dev/null: EOF at once

        def cleanup():
            if not proto.ended.called:
                process.signalProcess("KILL")
                return proto.ended
        self.addCleanup(cleanup)
        return proto

    @defer.inlineCallbacks
    def settle(self):
        """Let the server side see the close (bounded: at most 2 s)."""
        for _ in range(20):
            d = defer.Deferred()
            reactor.callLater(0.1, d.callback, None)
            yield d

    @defer.inlineCallbacks
    def test_eof_without_terminal(self):
        session = self.ssh_no_input("-T")
        yield session.ended.addTimeout(15, reactor)
        yield self.settle()

    @defer.inlineCallbacks
    def test_eof_with_terminal(self):
        session = self.ssh_no_input("-tt")
        yield session.ended.addTimeout(15, reactor)
        yield self.settle()

    def test_window_change_and_eof_on_the_session(self):
        """The session object itself: a resize reaches the terminal, EOF closes the channel,
        and the shell's protocol is told the connection is gone (once)."""
        events = []

        class Terminal:
            def terminalSize(self, width, height):
                events.append(("size", width, height))

        class Chained:
            terminalProtocol = Terminal()

            def connectionLost(self, reason):
                events.append(("lost",))

        class Proto:
            def loseConnection(self):
                events.append(("close",))

        class Transport:
            def __init__(self, proto, chained, avatar, width, height):
                self.proto, self.chainedProtocol = proto, chained
                events.append(("open", width, height))

        from twisted.python import components
        from twisted.conch.interfaces import IConchUser
        original = components.Componentized()
        original.setComponent(IConchUser, object())
        session = M.ManholeSession(original)
        session.transportFactory, session.chainedProtocolFactory = Transport, Chained
        session.openShell(Proto())                  # no pty requested: 80x24
        session.windowChanged((40, 120, 0, 0))
        session.eofReceived()
        session.closed()
        session.closed()
        self.assertEqual(events, [("open", 80, 24), ("size", 120, 40), ("close",), ("lost",)])
