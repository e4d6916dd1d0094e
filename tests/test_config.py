# -*- test-case-name: tests.test_config -*-
"""Tests for mss.config: every problem in etc/mss.toml is one ``ConfigError`` naming the file,
the key and the problem; good files give complete, normalised settings."""
from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from mss import config


class ConfigTestCase(SynchronousTestCase):
    def write(self, text: str, name: str = "mss.toml") -> str:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def error(self, text: str) -> config.ConfigError:
        path = self.write(text)
        e = self.assertRaises(config.ConfigError, config.load, path)
        self.assertEqual(e.path, path)
        message = str(e)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(path + ": "), message)
        return e


class ErrorTests(ConfigTestCase):

    def test_unknown_key(self):
        e = self.error("[sip]\nprot = 5060\n")
        self.assertEqual(e.key, "sip.prot")
        self.assertIn("unknown key", str(e))

    def test_unknown_section(self):
        e = self.error("[sipp]\nport = 5060\n")
        self.assertEqual(e.key, "sipp")
        self.assertIn("unknown section", e.problem)

    def test_section_not_a_table(self):
        e = self.error('sip = "yes"\n')
        self.assertEqual(e.key, "sip")

    def test_wrong_type(self):
        e = self.error('[sip]\nport = "5060"\n')
        self.assertEqual(e.key, "sip.port")
        self.assertIn("expected int, got str", e.problem)

    def test_bool_is_not_an_int(self):
        e = self.error("[registrar]\nmax_devices = true\n")
        self.assertEqual(e.key, "registrar.max_devices")
        self.assertIn("expected int", e.problem)

    def test_int_is_not_a_bool(self):
        e = self.error("[sip]\ntrace = 1\n")
        self.assertEqual(e.key, "sip.trace")

    def test_float_or_int(self):
        path = self.write("[store]\npoll_interval = 2\n")
        self.assertEqual(config.load(path)["store"]["poll_interval"], 2)
        e = self.error('[store]\npoll_interval = "fast"\n')
        self.assertIn("expected int or float", e.problem)

    def test_port_out_of_range(self):
        e = self.error("[sip]\nport = 70000\n")
        self.assertEqual(e.key, "sip.port")
        self.assertIn("out of range", e.problem)
        self.assertEqual(self.error("[manhole]\nport = -1\n").key, "manhole.port")

    def test_bad_address(self):
        e = self.error('[sip]\nbind = "example.com"\n')
        self.assertIn("not an IP address", e.problem)

    def test_bad_choice(self):
        e = self.error('[log]\nlevel = "loud"\n')
        self.assertEqual(e.key, "log.level")
        self.assertIn("not one of", e.problem)

    def test_bad_transport(self):
        self.assertIn("unknown transport", self.error('[sip]\ntransports = ["sctp"]\n').problem)
        self.assertIn("at least one", self.error("[sip]\ntransports = []\n").problem)

    def test_bad_digest_algorithm(self):
        error = self.error('[auth]\nalgorithms = ["MD5", "SHA-512"]\n')
        self.assertEqual(error.key, "auth.algorithms")
        self.assertIn("unknown digest algorithm 'SHA-512'", error.problem)
        self.assertIn("at least one", self.error("[auth]\nalgorithms = []\n").problem)

    def test_bad_allow_network(self):
        e = self.error('[security]\nallow = ["10.0.0.0/33"]\n')
        self.assertEqual(e.key, "security.allow")

    def test_non_positive(self):
        e = self.error("[registrar]\nmin_expires = 0\n")
        self.assertIn("greater than 0", e.problem)

    def test_min_above_max_expires(self):
        e = self.error("[registrar]\nmin_expires = 4000\nmax_expires = 3600\n")
        self.assertEqual(e.key, "registrar.min_expires")

    def test_missing_file(self):
        path = os.path.join(os.path.abspath(self.mktemp()), "absent.toml")
        e = self.assertRaises(config.ConfigError, config.load, path)
        self.assertEqual(str(e), f"{path}: cannot read file: No such file or directory")

    def test_unreadable_file(self):
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)                                # a directory: unreadable as a file
        e = self.assertRaises(config.ConfigError, config.load, path)
        self.assertIn("cannot read file", str(e))
        self.assertTrue(str(e).startswith(path))

    def test_not_toml(self):
        e = self.error("[sip\nport = 1\n")
        self.assertIn("not valid TOML", e.problem)

    def test_problems_lists_all(self):
        path = self.write('[sip]\nport = 70000\nprot = 1\n[log]\nlevel = "loud"\n')
        found = config.problems(path)
        self.assertEqual(sorted(e.key for e in found), ["log.level", "sip.port", "sip.prot"])
        self.assertEqual(config.problems(self.write("")), [])
        self.assertEqual(len(config.problems(path + ".missing")), 1)


class GoodConfigTests(ConfigTestCase):

    def test_defaults(self):
        settings = config.load(self.write(""))
        for section, keys in config.SCHEMA.items():
            self.assertEqual(set(settings[section]), set(keys))
        self.assertEqual(settings["sip"]["port"], 5060)
        self.assertEqual(settings["auth"]["realm"], settings["sip"]["domain"])

    def test_realm_defaults_to_domain(self):
        settings = config.load(self.write('[sip]\ndomain = "pbx.example"\n'))
        self.assertEqual(settings["auth"]["realm"], "pbx.example")
        settings = config.load(self.write('[sip]\ndomain = "a"\n[auth]\nrealm = "b"\n'))
        self.assertEqual(settings["auth"]["realm"], "b")

    def test_paths_relative_to_file(self):
        path = self.write('[store]\npath = "../var/x.sqlite"\n')
        settings = config.load(path)
        expected = os.path.join(os.path.dirname(path), "../var/x.sqlite")
        self.assertEqual(settings["store"]["path"], expected)
        self.assertTrue(os.path.isabs(settings["auth"]["secret_file"]))
        self.assertEqual(settings["log"]["json_file"], "")           # empty stays empty

    def test_localhost_bind(self):
        settings = config.load(self.write('[sip]\nbind = "localhost"\n'))
        self.assertEqual(settings["sip"]["bind"], "127.0.0.1")

    def test_checkout_file_is_valid(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(root, "etc", "mss.toml")
        self.assertEqual(config.problems(path), [])
        settings = config.load(path)
        self.assertEqual(settings["store"]["path"], os.path.join(root, "etc", "../var/mss.sqlite"))
        self.assertEqual(settings["services"]["path"], os.path.join(root, "lua", "services"))

    def test_packaged_example_refused_as_is(self):
        """Its store would land inside the installed package (deleted by a reinstall)."""
        problems = config.problems(config.example_path())
        self.assertEqual(len(problems), 1, problems)
        self.assertEqual(problems[0].key, "store.path")
        self.assertIn("inside the installed mss package", str(problems[0]))
        self.assertIn(config.SYSTEM_PATH, str(problems[0]))

    def test_nothing_written_inside_package(self):
        inside = os.path.join(config.PACKAGE_DIR, "var")
        for section, key in config.WRITTEN:
            text = f'[{section}]\n{key} = "{inside}/x"\n'
            e = self.assertRaises(config.ConfigError, config.load, self.write(text))
            self.assertEqual(e.key, f"{section}.{key}")

    def test_services_beside_etc(self):
        """An install root with etc/ and lua/services/ uses its own services."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "etc"))
        os.makedirs(os.path.join(root, "lua", "services"))
        path = os.path.join(root, "etc", "mss.toml")
        with open(path, "w") as f:
            f.write("")
        self.assertEqual(config.load(path)["services"]["path"],
                         os.path.join(root, "lua", "services"))
        # elsewhere (e.g. /etc/mss): the packaged services
        other = self.write("")
        self.assertEqual(config.load(other)["services"]["path"],
                         os.path.join(config.PACKAGE_DIR, "lua", "services"))


    def test_from_dict(self):
        settings = config.from_dict({"sip": {"port": 5070}})
        self.assertEqual(settings["sip"]["port"], 5070)
        e = self.assertRaises(config.ConfigError, config.from_dict, {"sip": {"port": "x"}})
        self.assertEqual(str(e).split(": ")[0:2], ["<test>", "sip.port"])

class LocateTests(ConfigTestCase):
    """The switch and mssctl find the same file: --config, $MSS_CONFIG, ./etc/mss.toml,
    /etc/mss/mss.toml; never the packaged example."""

    def setUp(self):
        self.cwd = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.cwd, "etc"))
        self.local = os.path.join(self.cwd, "etc", "mss.toml")
        self.system = os.path.abspath(self.mktemp())
        self.patch(config, "SYSTEM_PATH", self.system)

    def touch(self, path):
        with open(path, "w") as f:
            f.write("")

    def test_order(self):
        env = {"MSS_CONFIG": "/from/env.toml"}
        self.touch(self.local)
        self.touch(self.system)
        self.assertEqual(config.locate("/given.toml", env, self.cwd), "/given.toml")
        self.assertEqual(config.locate(None, env, self.cwd), "/from/env.toml")
        self.assertEqual(config.locate(None, {}, self.cwd), self.local)
        os.remove(self.local)
        self.assertEqual(config.locate(None, {}, self.cwd), self.system)

    def test_empty_environment_variable_ignored(self):
        self.touch(self.local)
        self.assertEqual(config.locate(None, {"MSS_CONFIG": ""}, self.cwd), self.local)

    def test_missing_named_file_reported_by_name(self):
        """A --config or $MSS_CONFIG that does not exist is an error, not a fallback."""
        missing = os.path.join(self.cwd, "nope.toml")
        self.touch(self.local)
        self.assertEqual(config.locate(None, {"MSS_CONFIG": missing}, self.cwd), missing)
        self.patch(os, "environ", {"MSS_CONFIG": missing})
        e = self.assertRaises(config.ConfigError, config.load)
        self.assertTrue(str(e).startswith(missing + ": cannot read file"), str(e))

    def test_nothing_found_one_line(self):
        e = self.assertRaises(config.ConfigError, config.locate, None, {}, self.cwd)
        message = str(e)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith("no configuration file (looked for --config, "
                                           "$MSS_CONFIG, ./etc/mss.toml, "), message)
        self.assertIn(config.example_path(), message)

    def test_load_uses_cwd(self):
        self.touch(self.local)
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        os.chdir(self.cwd)
        self.patch(os, "environ", {})
        self.assertEqual(config.default_path(), self.local)
        self.assertEqual(config.load().path, self.local)
