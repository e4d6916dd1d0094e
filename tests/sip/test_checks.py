# -*- test-case-name: tests.sip.test_checks -*-
"""The UAS request checks and the merged-request key (mss.sip.checks)."""
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.checks import Rejection, check_request, merge_key
from mss.sip.parser import parse
from tests.sip.test_message import invite, options


class CheckRequestTests(SynchronousTestCase):
    def check(self, data, **kwargs):
        req, _ = parse(data)
        return check_request(req, **kwargs)

    def test_plain_request_passes(self):
        self.assertIsNone(self.check(options()))
        self.assertIsNone(self.check(invite()))

    def test_methods(self):
        self.assertEqual(self.check(options(method=b"FOO")).status, 501)
        rejection = self.check(options(method=b"SUBSCRIBE"), allowed={"INVITE", "OPTIONS"})
        self.assertEqual(rejection, (405, "Method Not Allowed", (("Allow", "INVITE, OPTIONS"),)))
        self.assertIsNone(self.check(options(method=b"ACK")))       # never answered

    def test_max_forwards_zero(self):
        zero = b"Max-Forwards: 0\r\n"
        self.assertEqual(self.check(invite().replace(b"Max-Forwards: 70\r\n", zero)).status, 483)
        self.assertIsNone(self.check(invite().replace(b"Max-Forwards: 70\r\n", zero), local=True))
        for method in (b"OPTIONS", b"REGISTER"):
            self.assertIsNone(self.check(options(method=method).replace(
                b"Max-Forwards: 70\r\n", zero)))

    def test_schemes(self):
        self.assertEqual(self.check(options(uri=b"im:bob@example.com")).status, 416)
        self.assertEqual(self.check(options(uri=b"tel:+15551234")).status, 416)
        self.assertIsNone(self.check(options(uri=b"tel:+15551234"), schemes=("sip", "tel")))

    def test_require(self):
        rejection = self.check(options(b"Require: 100rel, foo\r\nProxy-Require: bar\r\n"),
                               supported={"100rel"})
        self.assertEqual(rejection.status, 420)
        self.assertEqual(rejection.headers, (("Unsupported", "foo, bar"),))
        self.assertIsNone(self.check(options(b"Require: 100REL\r\n"), supported={"100rel"}))
        self.assertIsNone(self.check(options(b"Require: foo\r\n", method=b"CANCEL")))
        self.assertEqual(self.check(options(b'Require: "open, x\r\n')).status, 400)

    def test_contact_and_branch(self):
        self.assertEqual(self.check(options(b"Contact: sip:a@b?x=y\r\n")).status, 400)
        self.assertIsNone(self.check(options(b"Contact: *\r\n", method=b"REGISTER")))
        data = options().replace(b"branch=z9hG4bKopt1", b"branch=z9hG4bK")
        self.assertEqual(self.check(data).status, 400)

    def test_bodies(self):
        no_type = invite().replace(b"Content-Type: application/sdp\r\n", b"")
        self.assertEqual(self.check(no_type).status, 400)
        other = invite().replace(b"application/sdp", b"application/x-thing")
        rejection = self.check(other)
        self.assertEqual(rejection.status, 415)
        self.assertIn("application/sdp", dict(rejection.headers)["Accept"])
        self.assertIsNone(self.check(invite().replace(b"application/sdp",
                                                      b"Application/SDP; charset=x")))
        gz = invite(extra=b"Content-Encoding: gzip\r\n")
        self.assertEqual(self.check(gz), (415, "Unsupported Media Type",
                                          (("Accept-Encoding", "identity"),)))
        self.assertIsNone(self.check(options(b"Content-Type: text/plain\r\n", method=b"MESSAGE",
                                             body=b"hello")))

    def test_accept(self):
        self.assertEqual(self.check(invite(extra=b"Accept: text/plain\r\n")).status, 406)
        for ok in (b"application/sdp", b"text/plain, application/sdp;q=0.5", b"*/*",
                   b"application/*"):
            self.assertIsNone(self.check(invite(extra=b"Accept: " + ok + b"\r\n")), ok)

    def test_rejection_responds(self):
        req, _ = parse(options(b"Require: foo\r\n"))
        rejection = check_request(req)
        self.assertIsInstance(rejection, Rejection)
        self.assertEqual((rejection.status, rejection.reason), (420, "Bad Extension"))
        resp, _ = parse(rejection.respond(req, to_tag="z").to_bytes())
        self.assertEqual((resp.status, resp.headers.get("unsupported"), resp.to.tag),
                         (420, "foo", "z"))


class MergeKeyTests(SynchronousTestCase):
    def test_key(self):
        req, _ = parse(invite())
        self.assertEqual(merge_key(req), ("9fxced76sl", "3848276298220188511@192.0.2.10", 1,
                                          "INVITE"))
        forked, _ = parse(invite().replace(b"branch=z9hG4bK74bf9", b"branch=z9hG4bKother"))
        self.assertEqual(merge_key(forked), merge_key(req))
        in_dialog, _ = parse(options().replace(b"To: <sip:bob@example.com>",
                                               b"To: <sip:bob@example.com>;tag=x"))
        self.assertIsNone(merge_key(in_dialog))
        self.assertIsNone(merge_key(parse(options(method=b"ACK"))[0]))
