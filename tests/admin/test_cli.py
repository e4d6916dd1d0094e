# -*- test-case-name: tests.admin.test_cli -*-
"""Tests for mssctl (mss.admin.cli and the cmd_* modules): run ``main`` on a temp config."""
from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from mss.admin import cli
from mss.sip.digest.hashing import ha1
from mss.store.interface import Ban, Binding
from mss.store.sqlite import SQLiteStore

NOW = 1_800_000_000.0


class CLITestCase(SynchronousTestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.config = os.path.join(self.dir, "mss.toml")
        with open(self.config, "w") as f:
            f.write('[sip]\ndomain = "pbx.example"\n\n[store]\npath = "var/mss.sqlite"\n'
                    '\n[security]\nban_time = 900\n')
        self.db = os.path.join(self.dir, "var", "mss.sqlite")

    def run_cli(self, *argv, stdin: str = "", config: bool = True):
        out, err = io.StringIO(), io.StringIO()
        args = (["--config", self.config] if config else []) + list(argv)
        code = cli.main(args, out=out, err=err, stdin=io.StringIO(stdin), clock=lambda: NOW)
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv, stdin: str = "") -> str:
        code, out, err = self.run_cli(*argv, stdin=stdin)
        self.assertEqual((code, err), (0, ""), argv)
        return out

    def fails(self, code: int, *argv, stdin: str = "") -> str:
        got, out, err = self.run_cli(*argv, stdin=stdin)
        self.assertEqual(got, code, (argv, out, err))
        self.assertEqual(err.count("\n"), 1, err)          # one line
        return err

    def open_store(self) -> SQLiteStore:
        store = SQLiteStore(self.db)
        self.addCleanup(store.close)
        return store


class ExtensionCommandTests(CLITestCase):
    def test_add_and_list(self):
        self.assertEqual(self.ok("extension", "add", "1001", "--password", "pw1-alice", "--name", "Alice",
                                 "--multi-device"), "extension 1001 added\n")
        self.ok("extension", "add", "1002", "--password", "pw2-bobby")
        out = self.ok("extension", "list")
        self.assertEqual(out.splitlines(), [
            "NUMBER  NAME   ENABLED  LEVEL  PERMISSIONS",
            "1001    Alice  yes      0      multi_device",
            "1002    -      yes      0      -",
        ])
        ext = self.open_store().get_extension("1001")
        self.assertEqual(ext.realm, "pbx.example")          # realm defaults to sip.domain
        self.assertEqual(ext.ha1_for("SHA-256", "1001@pbx.example", "pbx.example"),
                         ha1("SHA-256", "1001@pbx.example", "pbx.example", "pw1-alice"))

    def test_store_created_relative_to_config(self):
        self.assertFalse(os.path.exists(self.db))
        self.assertEqual(self.ok("extension", "list"), "no extensions\n")
        self.assertTrue(os.path.exists(self.db))

    def test_add_options(self):
        self.ok("extension", "add", "+4930", "--password", "-", "--permission", "break_in",
                "--permission", "forward", "--call-level", "5", stdin="fromstdin\n")
        ext = self.open_store().get_extension("+4930")
        self.assertEqual(ext.permissions, frozenset({"break_in", "forward"}))
        self.assertEqual(ext.call_level, 5)
        self.assertEqual(ext.ha1[("MD5", "+4930")], ha1("MD5", "+4930", "pbx.example", "fromstdin"))

    def test_add_errors(self):
        self.ok("extension", "add", "1001", "--password", "pw-12345")
        err = self.fails(1, "extension", "add", "1001", "--password", "pw-12345")
        self.assertEqual(err, "mssctl: error: extension 1001 already exists\n")
        err = self.fails(2, "extension", "add", "10a1", "--password", "pw-12345")
        self.assertIn("must be digits", err)
        err = self.fails(2, "extension", "add", "1002")
        self.assertIn("--password", err)
        self.fails(2, "extension", "add", "1002", "--password", "-", stdin="")
        self.fails(2, "extension", "add", "1002", "--password", "x-longer-one", "--permission", "No Way")
        self.fails(1, "extension", "add", "1002", "--password", "x-longer-one", "--call-level", "500")
        self.fails(1, "extension", "add", "1002", "--password", "")
        self.assertEqual([e.number for e in self.open_store().list_extensions()], ["1001"])

    def test_remove(self):
        self.ok("extension", "add", "1001", "--password", "pw-12345")
        store = self.open_store()
        store.put_binding(Binding("1001", "k", "sip:1001@192.0.2.1", NOW + 60, "c", 1, "udp",
                                  "192.0.2.1", 5060, NOW))
        self.assertEqual(self.ok("extension", "remove", "1001"), "extension 1001 removed\n")
        self.assertIsNone(store.get_extension("1001"))
        self.assertEqual(store.load_bindings(NOW), [])
        err = self.fails(1, "extension", "remove", "1001")
        self.assertEqual(err, "mssctl: error: extension 1001 does not exist\n")

    def test_set_password(self):
        self.ok("extension", "add", "1001", "--password", "old-pass")
        self.ok("extension", "set-password", "1001", "new-pass")
        ext = self.open_store().get_extension("1001")
        self.assertEqual(ext.ha1[("MD5", "1001")], ha1("MD5", "1001", "pbx.example", "new-pass"))
        self.ok("extension", "set-password", "1001", "-", stdin="third-pass\n")
        self.assertEqual(self.open_store().get_extension("1001").ha1[("MD5", "1001")],
                         ha1("MD5", "1001", "pbx.example", "third-pass"))
        self.fails(1, "extension", "set-password", "1009", "x-longer-one")

    def test_short_passwords_refused(self):
        """Add and set-password refuse fewer than [security] min_password_length (8) characters,
        from the command line and from stdin alike; nothing is stored."""
        message = ("mssctl: error: the password is too short: at least 8 characters "
                   "([security] min_password_length)\n")
        self.assertEqual(self.fails(1, "extension", "add", "1001", "--password", "s3cret"), message)
        self.assertEqual(self.fails(1, "extension", "add", "1001", "--password", "-",
                                    stdin="1234567\n"), message)
        self.assertEqual(self.open_store().list_extensions(), [])
        self.ok("extension", "add", "1001", "--password", "12345678")
        before = self.open_store().get_extension("1001").ha1
        self.assertEqual(self.fails(1, "extension", "set-password", "1001", "a"), message)
        self.assertEqual(self.fails(1, "extension", "set-password", "1001", "-",
                                    stdin="short\n"), message)
        self.assertEqual(self.open_store().get_extension("1001").ha1, before)

    def test_min_password_length_is_configurable(self):
        with open(self.config, "a") as f:
            f.write("min_password_length = 12\n")
        err = self.fails(1, "extension", "add", "1001", "--password", "elevenchars")
        self.assertIn("at least 12 characters", err)
        self.ok("extension", "add", "1001", "--password", "twelve-chars")

    def test_password_prompted_without_echo_on_a_terminal(self):
        """``--password -`` on a terminal asks twice through getpass (no echo), never readline."""
        class Terminal(io.StringIO):
            def isatty(self):
                return True

        answers, prompts = [], []

        def getpass(prompt):
            prompts.append(prompt)
            return answers.pop(0)
        self.patch(cli.getpass, "getpass", getpass)

        def run(*argv):
            out, err = io.StringIO(), io.StringIO()
            code = cli.main(["--config", self.config, *argv], out=out, err=err,
                            stdin=Terminal("not-this-line\n"), clock=lambda: NOW)
            return code, err.getvalue()

        answers[:] = ["typed-secret", "typed-secret"]
        self.assertEqual(run("extension", "add", "1001", "--password", "-"), (0, ""))
        self.assertEqual(prompts, ["password: ", "password again: "])
        self.assertEqual(self.open_store().get_extension("1001").ha1[("MD5", "1001")],
                         ha1("MD5", "1001", "pbx.example", "typed-secret"))
        answers[:] = ["other-secret", "other-secreT"]
        self.assertEqual(run("extension", "set-password", "1001", "-"),
                         (1, "mssctl: error: the two passwords differ\n"))
        answers[:] = ["shorty", "shorty"]
        code, err = run("extension", "set-password", "1001", "-")
        self.assertEqual(code, 1)
        self.assertIn("too short", err)

    def test_multi_device(self):
        self.ok("extension", "add", "1001", "--password", "pw-12345")
        self.assertEqual(self.ok("extension", "multi-device", "1001", "on"),
                         "extension 1001: multi-device on\n")
        self.assertIn("multi_device", self.open_store().get_extension("1001").permissions)
        self.ok("extension", "multi-device", "1001", "off")
        self.assertNotIn("multi_device", self.open_store().get_extension("1001").permissions)
        self.fails(2, "extension", "multi-device", "1001", "maybe")
        self.fails(1, "extension", "multi-device", "1009", "on")

    def test_enable_disable(self):
        self.ok("extension", "add", "1001", "--password", "pw-12345")
        self.assertEqual(self.ok("extension", "disable", "1001"), "extension 1001 disabled\n")
        self.assertFalse(self.open_store().get_extension("1001").enabled)
        self.assertIn("1001    -     no", self.ok("extension", "list"))
        self.ok("extension", "enable", "1001")
        self.assertTrue(self.open_store().get_extension("1001").enabled)
        self.fails(1, "extension", "enable", "1009")

    def test_permission_and_level(self):
        self.ok("extension", "add", "1001", "--password", "pw-12345")
        self.ok("extension", "permission", "1001", "call_waiting_off", "on")
        self.ok("extension", "permission", "1001", "overstep", "on")
        self.ok("extension", "permission", "1001", "overstep", "off")
        self.ok("extension", "call-level", "1001", "3")
        ext = self.open_store().get_extension("1001")
        self.assertEqual((ext.permissions, ext.call_level), (frozenset({"call_waiting_off"}), 3))
        out = self.ok("extension", "show", "1001")
        self.assertIn("permissions: call_waiting_off\n", out)
        self.assertIn("realm:       pbx.example\n", out)
        self.fails(2, "extension", "permission", "1001", "Bad!", "on")
        self.fails(1, "extension", "show", "1009")

    def test_digest(self):
        """``extension digest EXT md5|sha-256|both|default`` is stored and shown."""
        self.ok("extension", "add", "1001", "--password", "pw-12345")
        self.assertIn("digest:      default\n", self.ok("extension", "show", "1001"))
        self.assertEqual(self.ok("extension", "digest", "1001", "sha-256"),
                         "extension 1001: digest sha-256\n")
        self.assertEqual(self.open_store().get_extension("1001").digest, "sha-256")
        self.assertIn("digest:      sha-256\n", self.ok("extension", "show", "1001"))
        self.ok("extension", "digest", "1001", "default")
        self.assertEqual(self.open_store().get_extension("1001").digest, "")
        self.fails(2, "extension", "digest", "1001", "sha-512")
        self.fails(1, "extension", "digest", "1009", "md5")


class BanCommandTests(CLITestCase):
    def test_list_and_remove(self):
        self.assertEqual(self.ok("bans"), "no bans\n")
        store = self.open_store()
        store.put_ban("192.0.2.9", NOW + 600, "authentication failures")
        store.put_ban("192.0.2.8", NOW - 1, "expired")
        out = self.ok("bans")
        self.assertEqual(out.splitlines(), [
            "ADDRESS    UNTIL                    LEFT    REASON",
            "192.0.2.9  2027-01-15 08:10:00 UTC  10m00s  authentication failures",
        ])
        self.assertEqual(self.ok("bans", "list"), out)
        self.assertEqual(self.ok("bans", "remove", "192.0.2.9"), "ban of 192.0.2.9 lifted\n")
        self.assertEqual(store.list_bans(NOW), [])
        self.assertEqual(self.fails(1, "bans", "remove", "192.0.2.9"),
                         "mssctl: error: 192.0.2.9 is not banned\n")
        self.fails(2, "bans", "remove", "nonsense")

    def test_add(self):
        self.ok("bans", "add", "::ffff:198.51.100.1")
        self.ok("bans", "add", "2001:db8::1", "--time", "60", "--reason", "test")
        self.assertEqual(self.open_store().list_bans(NOW), [
            Ban("198.51.100.1", NOW + 900, "operator"), Ban("2001:db8::1", NOW + 60, "test")])
        self.fails(2, "bans", "add", "198.51.100.2", "--time", "0")


class RegistrationCommandTests(CLITestCase):
    def test_list(self):
        self.assertEqual(self.ok("registrations"), "no registrations\n")
        store = self.open_store()
        store.put_binding(Binding("1001", "k", "sip:1001@192.0.2.1:5062", NOW + 60, "c", 1, "tcp",
                                  "192.0.2.1", 40000, NOW, user_agent="Phone"))
        store.put_binding(Binding("1002", "k", "sip:1002@192.0.2.2", NOW - 1, "c", 1, "udp",
                                  "192.0.2.2", 5060, NOW - 100))
        out = self.ok("registrations")
        self.assertEqual(out.splitlines()[1].split(),
                         ["1001", "sip:1001@192.0.2.1:5062", "tcp:192.0.2.1:40000", "60", "Phone"])
        self.assertEqual(len(out.splitlines()), 2)
        self.assertEqual(self.ok("registrations", "1002"), "no registrations\n")


class GeneralTests(CLITestCase):
    def test_check_config(self):
        code, out, err = self.run_cli("check-config", self.config, config=False)
        self.assertEqual((code, out, err), (0, f"{self.config}: ok\n", ""))
        bad = os.path.join(self.dir, "bad.toml")
        with open(bad, "w") as f:
            f.write('[sip]\nport = 70000\nbogus = 1\n[nonsense]\n')
        code, out, err = self.run_cli("check-config", bad, config=False)
        self.assertEqual(code, 1)
        lines = out.splitlines()
        self.assertEqual(len(lines), 3, out)
        self.assertTrue(all(line.startswith(bad + ": ") for line in lines))
        code, out, _ = self.run_cli("check-config", os.path.join(self.dir, "missing.toml"), config=False)
        self.assertEqual(code, 1)
        self.assertIn("cannot read file", out)

    def test_check_config_ignores_broken_default(self):
        with open(self.config, "w") as f:
            f.write("not toml [")
        code, out, err = self.run_cli("check-config", self.config)
        self.assertEqual(code, 1)
        self.assertIn("not valid TOML", out)

    def test_bad_config(self):
        with open(self.config, "w") as f:
            f.write("[sip]\nport = -1\n")
        err = self.fails(2, "extension", "list")
        self.assertTrue(err.startswith(f"mssctl: error: {self.config}: sip.port:"), err)
        err = self.fails(2, "--config", os.path.join(self.dir, "nope.toml"), "extension", "list")
        self.assertIn("cannot read file", err)

    def test_default_config_path(self):
        """Without --config mssctl finds the file as twistd mss does: $MSS_CONFIG first, then
        ./etc/mss.toml, then /etc/mss/mss.toml; never the packaged example."""
        self.patch(cli.mss_config, "SYSTEM_PATH", os.path.abspath(self.mktemp()))
        self.patch(os, "environ", {"MSS_CONFIG": self.config})
        self.ok("extension", "add", "1001", "--password", "long-enough-1001")
        code, out, err = self.run_cli("extension", "list", config=False)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("1001", out)
        # from a directory with etc/mss.toml and no $MSS_CONFIG: that file
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "etc"))
        with open(os.path.join(root, "etc", "mss.toml"), "w") as f:
            f.write('[store]\npath = "../var/mss.sqlite"\n')
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        os.chdir(root)
        self.patch(os, "environ", {})
        code, out, err = self.run_cli("extension", "list", config=False)
        self.assertEqual((code, out, err), (0, "no extensions\n", ""))
        self.assertTrue(os.path.exists(os.path.join(root, "var", "mss.sqlite")))
        # from anywhere else: one line saying where it looked, and no store is created
        os.chdir(os.path.dirname(root))
        code, out, err = self.run_cli("extension", "list", config=False)
        self.assertEqual(code, 2)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith("mssctl: error: no configuration file (looked for "
                                       "--config, $MSS_CONFIG, ./etc/mss.toml, "), err)

    def test_help_names_the_search_order(self):
        code, out, err = self.run_cli("--help")
        self.assertNotIn("default_path", out)
        self.assertIn("$MSS_CONFIG, ./etc/mss.toml, /etc/mss/mss.toml", " ".join(out.split()))

    def test_check_config_without_file_checks_the_one_in_use(self):
        code, out, err = self.run_cli("check-config")
        self.assertEqual((code, out, err), (0, f"{self.config}: ok\n", ""))
        self.patch(os, "environ", {"MSS_CONFIG": self.config})
        with open(self.config, "w") as f:
            f.write("[sip]\nport = 70000\n")
        code, out, err = self.run_cli("check-config", config=False)
        self.assertEqual(code, 1)
        self.assertTrue(out.startswith(f"{self.config}: sip.port: "), out)

    def test_usage_errors_one_line(self):
        for argv in ([], ["nonsense"], ["extension"], ["extension", "frobnicate"],
                     ["extension", "call-level", "1001", "x"]):
            err = self.fails(2, *argv)
            self.assertIn("error:", err)

    def test_help_goes_to_out(self):
        code, out, err = self.run_cli("--help")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("extension", out)

    def test_store_error_is_one_line(self):
        """A store that cannot be opened is a configuration error, as for the switch."""
        os.makedirs(self.db)                           # a directory where the file should be
        db = os.path.abspath(self.db)
        err = self.fails(2, "extension", "list")
        self.assertTrue(err.startswith(f"mssctl: error: {self.config}: store.path: {db}: "
                                       "cannot"), err)
        os.rmdir(self.db)
        with open(self.db, "wb") as f:
            f.write(b"not SQLite at all " * 200)
        err = self.fails(2, "extension", "list")
        self.assertTrue(err.startswith(f"mssctl: error: {self.config}: store.path: {db}: "
                                       "not a usable mss database"), err)

    def test_format_table(self):
        self.assertEqual(cli.format_table(("A", "BB"), [("xxx", 1), ("y", "")]),
                         "A    BB\nxxx  1\ny\n")

    def test_command_modules_importable(self):
        for name in cli.COMMAND_MODULES:
            module = __import__(name, fromlist=["add_parser"])
            self.assertTrue(callable(module.add_parser))
