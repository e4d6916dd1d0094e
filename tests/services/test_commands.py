# -*- test-case-name: tests.services.test_commands -*-
"""mssctl service commands (mss.admin.cmd_lists, cmd_features, cmd_services) on a temp store,
checked against what the Lua services then decide."""
from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from mss.admin import cli, cmd_services
from mss.services.api import CalleeState, Decision
from mss.store.sqlite import SQLiteStore

from tests.services.fakes import facts, standard_engine, write_services

MODULES = ["mss.admin.cmd_lists", "mss.admin.cmd_features", "mss.admin.cmd_services"]


class CommandCase(SynchronousTestCase):

    def setUp(self):
        self.patch(cli, "COMMAND_MODULES",
                   cli.COMMAND_MODULES + [m for m in MODULES if m not in cli.COMMAND_MODULES])
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.services_dir = os.path.join(self.dir, "services")
        write_services(self.services_dir, {"a": "return {}"})
        self.config = os.path.join(self.dir, "mss.toml")
        with open(self.config, "w") as f:
            f.write('[store]\npath = "mss.sqlite"\n[services]\npath = "services"\n')
        self.store = SQLiteStore(os.path.join(self.dir, "mss.sqlite"))
        self.addCleanup(self.store.close)
        self.store.add_extension("1001", "pw", "mss.local", permissions=["forward"])
        self.store.add_extension("1002", "pw", "mss.local")
        self.now = [1_800_000_000.0]

    def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["--config", self.config] + list(argv), out=out, err=err,
                        stdin=io.StringIO(""), clock=lambda: self.now[0])
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv) -> str:
        code, out, err = self.run_cli(*argv)
        self.assertEqual((code, err), (0, ""), argv)
        return out

    def fails(self, expected, *argv) -> str:
        code, out, err = self.run_cli(*argv)
        self.assertEqual(code, expected, (argv, out, err))
        self.assertEqual(err.count("\n"), 1, err)
        return err


class ListCommandTests(CommandCase):

    def test_blacklist_round_trip(self):
        self.assertEqual(self.ok("blacklist", "add", "0900", "*", "100", "--description",
                                 "premium"), "blacklist row 1 added\n")
        self.ok("blacklist", "add", "anonymous", "*", "50")
        self.ok("whitelist", "add", "09001", "*", "--description", "friend")
        self.assertEqual(self.ok("blacklist", "list").splitlines(), [
            "ID  CALLER     CALLED  RATE  DESCRIPTION",
            "1   0900       *       100%  premium",
            "2   anonymous  *       50%   -"])
        self.assertIn("09001", self.ok("whitelist", "list"))
        engine = standard_engine(self.store)
        self.assertEqual(engine.originating(facts(caller="0900555")).code, 403)
        self.assertEqual(engine.originating(facts(caller="0900155")).code, 0)
        self.assertEqual(self.ok("blacklist", "remove", "1"), "blacklist row 1 removed\n")
        engine.poll_store()
        self.assertEqual(engine.originating(facts(caller="0900555")).code, 0)

    def test_refusals(self):
        self.assertIn("rate", self.fails(2, "blacklist", "add", "0900", "*", "150"))
        self.assertIn("caller prefix", self.fails(2, "blacklist", "add", "09x", "*", "1"))
        self.assertIn("called prefix", self.fails(2, "whitelist", "add", "*", "a"))
        self.ok("blacklist", "add", "0900", "*", "100")
        self.assertIn("remove it first", self.fails(1, "blacklist", "add", "0900", "*", "10"))
        self.assertIn("does not exist", self.fails(1, "blacklist", "remove", "99"))
        self.assertIn("must be a number", self.fails(2, "whitelist", "remove", "x"))
        self.assertEqual(self.ok("whitelist", "list"), "whitelist is empty\n")


class FeatureCommandTests(CommandCase):

    def test_forward(self):
        self.assertEqual(self.ok("forward", "set", "1001", "no-answer", "2000", "--ring-time",
                                 "12"),
                         "extension 1001: no-answer forwarding to 2000 after 12 s\n")
        self.ok("forward", "set", "1001", "busy", "2001")
        self.assertIn("1001  no-answer  2000    12", self.ok("forward", "list"))
        engine = standard_engine(self.store)
        state = engine.terminating(facts(caller="3", callee="1001"), CalleeState())
        self.assertEqual(state.ring_timeout, 12.0)
        self.assertEqual(engine.busy(facts(callee="1001")).target, "2001")
        self.ok("forward", "clear", "1001", "all")
        self.assertEqual(self.ok("forward", "list"), "no forwarding set\n")

    def test_forward_warnings_and_refusals(self):
        code, out, err = self.run_cli("forward", "set", "1002", "unconditional", "2000")
        self.assertEqual(code, 0)
        self.assertIn("lacks the forward permission", err)
        self.assertIn("kind", self.fails(2, "forward", "set", "1001", "sideways", "2000"))
        self.assertIn("ring-time", self.fails(2, "forward", "set", "1001", "busy", "2000",
                                              "--ring-time", "5"))
        self.assertIn("does not exist", self.fails(1, "forward", "set", "1009", "busy", "2"))
        self.assertIn("itself", self.fails(2, "forward", "set", "1001", "busy", "1001"))

    def test_dnd(self):
        self.assertEqual(self.ok("dnd", "1001", "on"), "extension 1001: do not disturb on\n")
        self.assertEqual(self.ok("dnd", "list"), "do not disturb: 1001\n")
        engine = standard_engine(self.store)
        self.assertEqual(engine.terminating(facts(callee="1001"), CalleeState()).code, 486)
        self.ok("dnd", "1001", "off")
        self.assertEqual(self.ok("dnd", "1001"), "extension 1001: do not disturb off\n")
        engine.poll_store()
        self.assertEqual(engine.terminating(facts(callee="1001"), CalleeState()), Decision())

    def test_levels(self):
        self.ok("level", "prefix", "add", "00", "3")
        self.ok("level", "prefix", "add", "00", "4")          # replaces
        self.ok("level", "set", "1001", "4")
        out = self.ok("level", "list")
        self.assertIn("00      4", out)
        self.assertIn("1001  4", out)
        engine = standard_engine(self.store)
        self.assertEqual(engine.originating(facts(caller="1002", callee="0044",
                                                  caller_is_extension=True)).code, 403)
        self.ok("level", "prefix", "remove", "00")
        self.assertIn("no call level", self.fails(1, "level", "prefix", "remove", "00"))
        self.assertIn("0-99", self.fails(2, "level", "set", "1001", "100"))

    def test_permissions(self):
        self.store.set_permission("1002", "overstep", True)
        self.ok("dnd", "1002", "on")
        out = self.ok("permissions").splitlines()
        self.assertEqual(out[1].split(), ["1001", "forward", "0", "-", "off"])
        self.assertEqual(out[2].split(), ["1002", "overstep", "0", "-", "on"])


class ServicesCommandTests(CommandCase):

    def test_check(self):
        self.assertIn("ok: a (priority 100; hooks )", self.ok("services", "check"))
        write_services(self.services_dir, {"b": "return {"})
        code, out, err = self.run_cli("services", "check")
        self.assertEqual(code, 1)
        self.assertIn("failed: b: b:1:", out)

    def test_check_bundled(self):
        from mss.services.engine import default_directory
        out = self.ok("services", "check", default_directory())
        for name in ("blacklist", "breakin", "call_levels", "dnd", "forwarding"):
            self.assertIn(f"ok: {name}", out)

    def test_reload_answered_by_switch(self):
        switch_store = SQLiteStore(os.path.join(self.dir, "mss.sqlite"))
        self.addCleanup(switch_store.close)
        from mss.services.engine import ServiceEngine
        engine = ServiceEngine(switch_store, self.services_dir)
        engine.reload()
        write_services(self.services_dir, {"b": "return {}"})

        def sleep(seconds):            # the switch polls while mssctl waits
            self.now[0] += seconds
            engine.poll_store()
        self.patch(cmd_services, "_sleep", sleep)
        out = self.ok("services", "reload")
        self.assertEqual(out, "reload request 1 queued\nloaded: b\nunchanged: a\n")
        self.assertIn("b        yes   active", self.ok("services", "list"))

    def test_reload_without_switch(self):
        def sleep(seconds):
            self.now[0] += seconds
        self.patch(cmd_services, "_sleep", sleep)
        self.assertIn("no running switch answered within 1 s",
                      self.fails(1, "services", "reload", "--timeout", "1"))
        self.assertEqual(self.ok("services", "reload", "--timeout", "0"),
                         "reload request 2 queued\n")

    def test_settings(self):
        self.assertEqual(self.ok("services", "set", "blacklist", "reject_code", "603"),
                         "blacklist: reject_code = 603\n")
        self.ok("services", "set", "blacklist", "reject_reason", "Decline")
        self.assertIn('reject_reason  "Decline"', self.ok("services", "show", "blacklist"))
        self.assertIn("400-699", self.fails(2, "services", "set", "dnd", "reject_code", "200"))
        self.assertIn("belongs to the engine",
                      self.fails(2, "services", "set", "_engine", "reload_request", "9"))
        self.ok("services", "unset", "blacklist", "reject_code")
        self.assertEqual(self.store.get_service_settings("blacklist"),
                         {"reject_reason": "Decline"})


class ControlSocketReloadTests(CommandCase):
    """services reload asks through the control socket when a switch listens there."""

    def serve_once(self, answer: dict) -> list:
        import json
        import socket
        import tempfile
        import threading
        directory = tempfile.mkdtemp(prefix="mssctl")
        self.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
        path = os.path.join(directory, "mss.ctl")
        with open(self.config, "a") as f:
            f.write(f'[admin]\ncontrol_socket = "{path}"\n')
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        server.settimeout(10)
        self.addCleanup(server.close)
        requests = []

        def serve():
            conn, _ = server.accept()
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    data += conn.recv(4096)
                requests.append(json.loads(data))
                conn.sendall(json.dumps(answer).encode() + b"\n")
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        return requests

    def test_reload_through_control_socket(self):
        requests = self.serve_once({"ok": True, "report": {
            "loaded": ["b"], "unchanged": ["a"], "removed": [], "failed": {"c": "c:1: oops"}}})
        code, out, err = self.run_cli("services", "reload")
        self.assertEqual(code, 1)
        self.assertEqual(out, "loaded: b\nunchanged: a\nfailed: c: c:1: oops\n")
        self.assertEqual(requests, [{"command": "services-reload"}])
        self.assertNotIn("reload_request", self.store.get_service_settings("_engine"))
