# -*- test-case-name: tests.admin.test_cmd_trunk -*-
"""Tests for ``mssctl trunk|route|did`` (mss.admin.cmd_trunk): the forms scripts rely on,
their output, and one-line errors for bad input."""
from __future__ import annotations

from tests.admin.test_cli import NOW, CLITestCase

IMS = ["trunk", "add", "ims", "--domain", "gd.ctcims.cn", "--proxy", "127.0.0.2:5070",
       "--account", "+8675512345678", "--auth-id", "+8675512345678@gd.ctcims.cn",
       "--password", "pw"]


class TrunkCommandTests(CLITestCase):
    def test_add_with_every_documented_option(self):
        out = self.ok(*IMS, "--register", "--expires", "600", "--max-in", "0", "--max-out", "4",
                      "--allow", "127.0.0.2", "10.1.0.0/16", "--prack", "required",
                      "--from-user", "+8675512345678", "--from-display", "ACME",
                      "--identity", "pai", "--uri", "phone")
        self.assertEqual(out, "trunk ims added\n")
        t = self.open_store().get_trunk("ims")
        self.assertEqual((t.domain, t.proxy, t.account, t.auth_id, t.password, t.register,
                          t.expires, t.max_in, t.max_out, t.allow, t.prack, t.from_user,
                          t.from_display, t.identity, t.uri_format),
                         ("gd.ctcims.cn", "127.0.0.2:5070", "+8675512345678",
                          "+8675512345678@gd.ctcims.cn", "pw", True, 600, 0, 4,
                          ("127.0.0.2", "10.1.0.0/16"), "required", "+8675512345678", "ACME",
                          "pai", "phone"))

    def test_defaults(self):
        self.ok("trunk", "add", "plain", "--domain", "sip.carrier.example", "--account", "acme",
                "--password", "pw", "--no-register")
        t = self.open_store().get_trunk("plain")
        self.assertEqual((t.proxy, t.auth_id, t.register, t.expires, t.max_in, t.max_out,
                          t.prack, t.uri_format, t.allow),
                         ("", "", False, 3600, None, None, "supported", "sip", ()))

    def test_password_from_stdin(self):
        self.ok(*IMS[:-1], "-", stdin="s3cret from stdin\n")
        self.assertEqual(self.open_store().get_trunk("ims").password, "s3cret from stdin")
        self.assertIn("no trunk password", self.fails(2, *IMS[:-1], "-", stdin=""))

    def test_list(self):
        self.ok(*IMS, "--max-in", "0", "--allow", "127.0.0.2")
        self.ok("trunk", "add", "b", "--domain", "c.example", "--account", "x", "--password",
                "pw", "--no-register")
        lines = self.ok("trunk", "list").splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "DOMAIN", "PROXY", "ACCOUNT", "AUTH-ID",
                                            "REGISTER", "MAX-IN", "MAX-OUT", "PRACK", "ALLOW"])
        self.assertEqual(lines[1].split(), ["b", "c.example", "-", "x", "-", "no", "-", "-",
                                            "supported", "-"])
        self.assertEqual(lines[2].split(), ["ims", "gd.ctcims.cn", "127.0.0.2:5070",
                                            "+8675512345678", "+8675512345678@gd.ctcims.cn",
                                            "yes", "0", "-", "supported", "127.0.0.2"])
        self.assertNotIn("pw", "".join(lines[1:]).replace("prack", ""))

    def test_empty_lists(self):
        self.assertEqual(self.ok("trunk", "list"), "no trunks\n")
        self.assertEqual(self.ok("trunk", "status"), "no trunks\n")
        self.assertEqual(self.ok("route", "list"), "no routes\n")
        self.assertEqual(self.ok("did", "list"), "no DIDs\n")

    def test_status_shows_what_the_switch_recorded(self):
        self.ok(*IMS, "--max-out", "2")
        self.ok("trunk", "add", "bare", "--domain", "gd.ctcims.cn", "--account", "+86755",
                "--password", "pw")
        self.ok("trunk", "add", "quiet", "--domain", "q.example", "--account", "q",
                "--password", "pw", "--no-register")
        out = self.ok("trunk", "status")
        self.assertIn("unknown (switch not running)", out)
        store = self.open_store()
        store.put_trunk_status("ims", "registered", 200, "OK", NOW + 540.4, NOW - 60)
        store.put_trunk_status("bare", "rejected", 403, "Forbidden", NOW + 600, NOW)
        store.put_trunk_status("quiet", "unreachable", 0, "cannot resolve q.example", None, NOW)
        lines = self.ok("trunk", "status").splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "STATE", "LAST", "RESPONSE", "NEXT",
                                            "REFRESH", "MAX-IN", "MAX-OUT", "CALLS", "IN/OUT"])
        rows = {line.split()[0]: line.split("  ") for line in lines[1:]}
        cells = {name: [c.strip() for c in row if c.strip()] for name, row in rows.items()}
        # no switch runs: no live call counts ("-")
        self.assertEqual(cells["ims"], ["ims", "registered", "200 OK", "540s", "-", "2", "-"])
        self.assertEqual(cells["bare"], ["bare", "rejected", "403 Forbidden", "600s", "-", "-",
                                         "-"])
        self.assertEqual(cells["quiet"], ["quiet", "no registration", "-", "-", "-", "-", "-"])
        # a REGISTER awaiting its answer has no next attempt yet: "in progress", never "0s"
        store.put_trunk_status("bare", "registering", 0, "", None, NOW)
        out = self.ok("trunk", "status")
        self.assertIn("registering      -              in progress", out)

    def test_replace_and_duplicate(self):
        self.ok(*IMS)
        err = self.fails(1, *IMS)
        self.assertIn("already exists", err)
        self.assertEqual(self.ok(*IMS, "--max-out", "1", "--replace"), "trunk ims replaced\n")
        self.assertEqual(self.open_store().get_trunk("ims").max_out, 1)

    def test_bad_values_one_line_errors(self):
        self.assertIn("prack", self.fails(2, *IMS, "--prack", "always"))
        self.assertIn("max-in", self.fails(2, *IMS, "--max-in", "many"))
        self.assertIn("call limits", self.fails(1, *IMS, "--max-out", "-1"))
        self.assertIn("expires", self.fails(1, *IMS, "--expires", "10"))
        self.assertIn("allow", self.fails(1, *IMS, "--allow", "carrier.example"))
        self.assertIn("proxy", self.fails(1, *IMS[:6], "127.0.0.2:99999", *IMS[7:]))
        self.assertIn("trunk name", self.fails(1, "trunk", "add", "bad name", *IMS[3:]))
        self.assertIn("--account", self.fails(2, "trunk", "add", "x", "--domain", "d",
                                              "--password", "p"))
        self.assertEqual(self.open_store().list_trunks(), [])

    def test_add_warns_when_two_trunks_share_an_address(self):
        """Two accounts at one carrier: added (exit 0) with a one-line warning that says how
        inbound calls are told apart; trunks at other addresses add silently."""
        self.ok(*IMS)                                          # proxy 127.0.0.2:5070
        code, out, err = self.run_cli("trunk", "add", "ims2", "--domain", "gd.ctcims.cn",
                                      "--account", "+8675500000002", "--password", "pw",
                                      "--no-register", "--allow", "127.0.0.0/24")
        self.assertEqual((code, out), (0, "trunk ims2 added\n"))
        self.assertEqual(err, "mssctl: warning: trunks ims2 and ims share 127.0.0.2: a call "
                              "from there belongs to the trunk whose --allow lists the "
                              "address, then to the one whose account is the called number\n")
        code, out, err = self.run_cli("trunk", "add", "ims3", "--domain", "gd.ctcims.cn",
                                      "--account", "+8675500000003", "--password", "pw",
                                      "--no-register")          # sent to the domain
        self.assertEqual(code, 0)
        self.assertEqual(err.count("\n"), 1, err)             # ims sends to its proxy only
        self.assertIn("trunks ims3 and ims2 share gd.ctcims.cn:", err)
        self.assertEqual(len(self.open_store().list_trunks()), 3)
        self.ok("trunk", "add", "other", "--domain", "sip.other.example", "--proxy",
                "192.0.2.7", "--account", "x", "--password", "pw", "--no-register")

    def test_remove(self):
        self.ok(*IMS)
        self.assertEqual(self.ok("trunk", "remove", "ims"), "trunk ims removed\n")
        self.assertIn("no trunk named ims", self.fails(1, "trunk", "remove", "ims"))

    def test_remove_refused_while_routed(self):
        self.ok(*IMS)
        self.ok("route", "add", "0", "--trunk", "ims")
        self.assertIn("used by route 1", self.fails(1, "trunk", "remove", "ims"))
        self.ok("route", "remove", "1")
        self.ok("trunk", "remove", "ims")


class RouteCommandTests(CLITestCase):
    def setUp(self):
        super().setUp()
        self.ok(*IMS)
        self.ok("trunk", "add", "backup", "--domain", "b.example", "--account", "b",
                "--password", "pw", "--no-register")

    def test_add_list_remove(self):
        self.assertEqual(self.ok("route", "add", "0", "--trunk", "ims", "--trunk", "backup",
                                 "--strip", "1", "--prepend", "+86"), "route 1 added\n")
        self.assertEqual(self.ok("route", "add", "00", "--trunk", "backup", "--length", "13",
                                 "--extension", "1001", "--extension", "1002"),
                         "route 2 added\n")
        self.assertEqual(self.ok("route", "add", "--default", "--trunk", "backup"),
                         "route 3 added\n")
        lines = self.ok("route", "list").splitlines()
        self.assertEqual(lines[0].split(), ["ID", "PREFIX", "LENGTH", "STRIP", "PREPEND",
                                            "TRUNKS", "CALLERS"])
        self.assertEqual([line.split() for line in lines[1:]], [
            ["2", "00", "13", "0", "-", "backup", "1001,1002"],
            ["1", "0", "-", "1", "+86", "ims,backup", "all"],
            ["3", "(default)", "-", "0", "-", "backup", "all"]])
        self.assertEqual(self.ok("route", "remove", "2"), "route 2 removed\n")
        self.assertIn("no route 2", self.fails(1, "route", "remove", "2"))

    def test_bad_routes(self):
        self.assertIn("no trunk named nope", self.fails(1, "route", "add", "0", "--trunk", "nope"))
        self.assertIn("prefix", self.fails(1, "route", "add", "0a", "--trunk", "ims"))
        self.assertIn("prepend", self.fails(1, "route", "add", "0", "--trunk", "ims",
                                            "--prepend", "x"))
        self.assertIn("strip", self.fails(1, "route", "add", "0", "--trunk", "ims",
                                          "--strip", "-1"))
        self.assertIn("--trunk", self.fails(2, "route", "add", "0"))
        self.assertEqual(self.ok("route", "list"), "no routes\n")

    def test_catch_all_needs_default(self):
        """An empty (or missing) prefix is refused: a catch-all route must be asked for."""
        for argv in (("route", "add", "", "--trunk", "ims"), ("route", "add", "--trunk", "ims")):
            self.assertEqual(self.fails(2, *argv),
                             "mssctl: error: an empty prefix would match every number; use "
                             "--default for a catch-all route\n")
        self.assertIn("not both", self.fails(2, "route", "add", "0", "--default", "--trunk",
                                              "ims"))
        self.assertEqual(self.ok("route", "list"), "no routes\n")
        self.ok("route", "add", "--default", "--trunk", "ims")
        [route] = self.open_store().list_routes()
        self.assertEqual((route.prefix, route.trunks), ("", ("ims",)))


class DIDCommandTests(CLITestCase):
    def test_add_list_remove(self):
        self.ok("extension", "add", "1001", "--password", "pw-1001-did")
        self.assertEqual(self.ok("did", "add", "+8675512345678", "--extension", "1001"),
                         "DID +8675512345678 -> 1001\n")
        self.ok("did", "add", "2000", "--extension", "1001")
        self.assertEqual([line.split() for line in self.ok("did", "list").splitlines()],
                         [["DID", "EXTENSION"], ["+8675512345678", "1001"], ["2000", "1001"]])
        self.assertEqual(self.ok("did", "remove", "2000"), "DID 2000 removed\n")
        self.assertIn("no DID 2000", self.fails(1, "did", "remove", "2000"))

    def test_bad_dids(self):
        self.assertIn("1999", self.fails(1, "did", "add", "2000", "--extension", "1999"))
        self.ok("extension", "add", "1001", "--password", "pw-1001-did")
        self.assertIn("DID", self.fails(1, "did", "add", "20x0", "--extension", "1001"))
        self.assertIn("--extension", self.fails(2, "did", "add", "2000"))
