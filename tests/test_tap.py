# -*- test-case-name: tests.test_tap -*-
"""Tests for mss.tap: ``twistd mss`` options and the assembly of the switch (without sockets;
tests/e2e starts the real process)."""
from __future__ import annotations

import os
import secrets

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from mss import tap
from mss.registrar.registrar import MULTI_DEVICE
from mss.sip.digest.client import authorization
from mss.sip.digest.headers import parse_challenge
from mss.sip.address import Address
from mss.sip.parser import parse


class OptionsTests(SynchronousTestCase):

    def write(self, text):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "mss.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_config_error_is_one_line_usage_error(self):
        path = self.write("[sip]\nport = 99999\n")
        e = self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--config", path])
        self.assertEqual(str(e), f"{path}: sip.port: port 99999 is out of range 0-65535")

    def test_missing_file_is_usage_error(self):
        path = os.path.abspath(self.mktemp())
        e = self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["-c", path])
        self.assertNotIn("\n", str(e))
        self.assertIn(path, str(e))

    def test_settings_loaded(self):
        path = self.write("[sip]\nport = 5070\n")
        options = tap.Options()
        options.parseOptions(["--config", path])
        self.assertEqual(options["settings"]["sip"]["port"], 5070)
        self.assertEqual(options["settings"].path, path)

    def test_store_that_cannot_be_created_is_one_line(self):
        """A store in a missing/unwritable place or a file that is not SQLite stops start-up
        with one line naming the configuration, the store file and the problem."""
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w") as f:
            f.write("a file, not a directory")
        not_sqlite = os.path.abspath(self.mktemp())
        with open(not_sqlite, "wb") as f:
            f.write(b"this is not an SQLite database, just some bytes" * 100)
        for store, problem in ((os.path.join(blocker, "x.sqlite"), "cannot create the database"),
                               (not_sqlite, "not a usable mss database")):
            path = self.write(f'[store]\npath = "{store}"\n')
            e = self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["-c", path])
            message = str(e)
            self.assertNotIn("\n", message)
            self.assertTrue(message.startswith(f"{path}: store.path: {store}: {problem}"),
                            message)

    def test_search_order_is_the_config_module_s(self):
        """twistd mss and mssctl locate the file with the same function."""
        directory = os.path.dirname(self.write("[sip]\nport = 5071\n"))
        self.patch(os, "environ", {"MSS_CONFIG": os.path.join(directory, "mss.toml")})
        options = tap.Options()
        options.parseOptions([])
        self.assertEqual(options["settings"]["sip"]["port"], 5071)
        self.assertIn("$MSS_CONFIG, ./etc/mss.toml, /etc/mss/mss.toml", str(options))

    def test_plugin_registered(self):
        from twisted.plugin import getPlugins
        from twisted.application.service import IServiceMaker
        import twisted.plugins
        names = {p.tapname: p for p in getPlugins(IServiceMaker, twisted.plugins)}
        self.assertIn("mss", names)
        self.assertIs(names["mss"].options, tap.Options)


def register(switch, number, password, host, port=5062, expires=600):
    """A full REGISTER exchange (401, authorised REGISTER) through the switch's core."""
    source = Address("udp", host, port)
    call_id = secrets.token_hex(6)

    def send(cseq, auth=None):
        lines = [f"REGISTER sip:mss.test SIP/2.0",
                 f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(5)}",
                 "Max-Forwards: 70", f"From: <sip:{number}@mss.test>;tag=1",
                 f"To: <sip:{number}@mss.test>", f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
                 f"Contact: <sip:{number}@{host}:{port}>", f"Expires: {expires}"]
        if auth:
            lines.append(f"Authorization: {auth}")
        data = ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
        switch.core.receive(data, source, switch.reactor.seconds())
        # the end of the turn, as the shell runs it (the registrar answers 200 once the
        # binding is committed, by group commit)
        switch.core.end_turn(switch.reactor.seconds())
        out = switch.core.datagrams_to_send()
        return parse(out[0][0])[0] if out else None

    first = send(1)
    if first is None or first.status != 401:
        return first
    challenge = parse_challenge(first.headers.get_lines("www-authenticate")[0])
    return send(2, authorization(challenge, number, password, "REGISTER",
                                 "sip:mss.test", "cn"))


class SwitchTests(SynchronousTestCase):
    """``makeService`` builds a switch whose parts are wired as the running process has them."""

    def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "mss.toml")
        with open(path, "w") as f:
            f.write('[sip]\ndomain = "mss.test"\nport = 0\nbind = "127.0.0.1"\n'
                    '[media]\nmode = "off"\n[security]\nban_threshold = 2\n'
                    '[registrar]\nmax_devices = 3\n')
        options = tap.Options()
        options.parseOptions(["--config", path])
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_700_000_000)
        self.switch = tap.makeService(options, self.reactor)
        self.addCleanup(self.switch.store.close)
        self.store = self.switch.store
        self.store.add_extension("1001", "pw", "mss.test", permissions=[MULTI_DEVICE])
        # mssctl's view: another connection to the same file (data_version sees its commits)
        from mss.store.sqlite import SQLiteStore
        self.mssctl = SQLiteStore(self.switch.settings["store"]["path"])
        self.addCleanup(self.mssctl.close)

    def test_parts(self):
        self.assertIsInstance(self.switch, tap.Switch)
        self.assertEqual(self.switch.auth.realm, "mss.test")
        self.assertEqual(self.switch.bindings.max_devices, 3)
        self.assertTrue(os.path.exists(self.switch.settings["auth"]["secret_file"]))
        self.assertIn(self.switch.shell, list(self.switch))
        self.assertIn(self.switch.poller, list(self.switch))

    def test_register_through_the_core(self):
        response = register(self.switch, "1001", "pw", "192.0.2.1")
        self.assertEqual(response.status, 200)
        self.assertEqual([b.aor for b in self.store.list_bindings(0)], ["1001"])

    def test_options_answered(self):
        data = (b"OPTIONS sip:mss.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKo\r\n"
                b"From: <sip:a@b>;tag=1\r\nTo: <sip:mss.test>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\n"
                b"Content-Length: 0\r\n\r\n")
        self.switch.core.receive(data, Address("udp", "192.0.2.1", 5060), 0)
        (out, _), = self.switch.core.datagrams_to_send()
        self.assertEqual(parse(out)[0].status, 200)

    def test_multi_device_off_applied_on_poll(self):
        for n in (1, 2, 3):
            self.assertEqual(register(self.switch, "1001", "pw", f"192.0.2.{n}").status, 200)
            self.reactor.advance(1)
        self.assertEqual(len(self.switch.bindings.get("1001")), 3)
        self.mssctl.set_permission("1001", MULTI_DEVICE, False)
        self.assertTrue(self.switch.directory.poll())
        (b,) = self.switch.bindings.get("1001")
        self.assertEqual(b.source_host, "192.0.2.3")

    def test_removed_extension_loses_bindings(self):
        register(self.switch, "1001", "pw", "192.0.2.1")
        self.mssctl.remove_extension("1001")
        self.assertTrue(self.switch.directory.poll())
        self.assertEqual(self.switch.bindings.get("1001"), [])
        self.assertEqual(register(self.switch, "1001", "pw", "192.0.2.9").status, 403)

    def test_bans_persisted_and_lifted(self):
        for _ in range(2):
            register(self.switch, "1001", "wrong", "192.0.2.66")
        now = self.reactor.seconds()
        self.assertEqual([b.address for b in self.store.list_bans(now)], ["192.0.2.66"])
        self.assertIsNone(register(self.switch, "1001", "pw", "192.0.2.66"))
        self.mssctl.remove_ban("192.0.2.66")           # what `mssctl bans remove` does
        self.assertTrue(self.switch.directory.poll())
        self.assertEqual(register(self.switch, "1001", "pw", "192.0.2.66").status, 200)

    def test_bans_from_store_loaded_at_start(self):
        self.store.put_ban("192.0.2.77", self.reactor.seconds() + 100, "operator")
        options = tap.Options()
        options.parseOptions(["--config", self.switch.settings.path])
        again = tap.makeService(options, self.reactor)
        self.addCleanup(again.store.close)
        self.assertTrue(again.bans.is_banned("192.0.2.77", self.reactor.seconds()))
