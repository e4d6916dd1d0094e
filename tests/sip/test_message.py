# -*- test-case-name: tests.sip.test_message -*-
"""Requests and responses: parse and serialize, header edits, responses (mss.sip.message);
the message helpers here are shared with test_parser and test_checks."""
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.errors import SIPParseError
from mss.sip.headers import CSeq, Headers
from mss.sip.message import Request, Response, make_response
from mss.sip.parser import parse
from mss.sip.uri import parse_uri

SDP = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
       b"m=audio 49170 RTP/AVP 0\r\n")


def invite(body=SDP, extra=b"", length=None):
    length = len(body) if length is None else length
    return (b"INVITE sip:bob@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n"
            b"v: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK4b43c2ff8.1\r\n"
            b"Max-Forwards: 70\r\n"
            b'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\r\n'
            b"To: Bob <sip:bob@example.com>\r\n"
            b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
            b"CSeq: 1 INVITE\r\n"
            b"Contact: <sip:alice@192.0.2.10:5060>\r\n"
            b"Record-Route: <sip:proxy.example.com;lr>\r\n"
            b"X-Custom:   spaced value  \r\n"
            + extra +
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: " + str(length).encode() + b"\r\n\r\n" + body)


OK = (b"SIP/2.0 200 OK\r\n"
      b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;received=192.0.2.10;rport=5060\r\n"
      b'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\r\n'
      b"To: Bob <sip:bob@example.com>;tag=8321234356\r\n"
      b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
      b"CSeq: 1 INVITE\r\n"
      b"Content-Length: 0\r\n\r\n")


def options(extra=b"", method=b"OPTIONS", uri=b"sip:bob@example.com", body=b""):
    return (method + b" " + uri + b" SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKopt1\r\n"
            b"From: <sip:alice@example.com>;tag=1\r\n"
            b"To: <sip:bob@example.com>\r\n"
            b"Call-ID: opt1@192.0.2.10\r\n"
            b"CSeq: 7 " + method + b"\r\n"
            b"Max-Forwards: 70\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class RequestTests(SynchronousTestCase):
    def test_fields(self):
        req, consumed = parse(invite())
        self.assertIsInstance(req, Request)
        self.assertTrue(req.is_request)
        self.assertEqual(consumed, len(invite()))
        self.assertEqual((req.method, req.uri, req.version),
                         ("INVITE", parse_uri("sip:bob@example.com"), "SIP/2.0"))
        self.assertEqual([v.branch for v in req.vias], ["z9hG4bK74bf9", "z9hG4bK4b43c2ff8.1"])
        self.assertEqual(req.top_via.transport, "UDP")
        self.assertEqual(req.from_.display, "Alice")
        self.assertEqual(req.from_.tag, "9fxced76sl")
        self.assertIsNone(req.to.tag)
        self.assertEqual(req.call_id, "3848276298220188511@192.0.2.10")
        self.assertEqual(req.cseq, CSeq(1, "INVITE"))
        self.assertEqual(req.max_forwards, 70)
        self.assertEqual([str(c.uri) for c in req.contacts], ["sip:alice@192.0.2.10:5060"])
        self.assertEqual(req.headers.get("x-custom"), "spaced value")
        self.assertEqual(req.body, SDP)

    def test_serialization_is_lossless(self):
        data = invite()
        req, _ = parse(data)
        self.assertEqual(req.to_bytes(), data)
        self.assertEqual(bytes(req), data)
        self.assertEqual(parse(OK)[0].to_bytes(), OK)

    def test_order_and_spelling_survive_an_edit(self):
        req, _ = parse(invite())
        req.set_header("Max-Forwards", 69)
        out = req.to_bytes()
        self.assertIn(b"\r\nMax-Forwards: 69\r\n", out)
        self.assertIn(b"\r\nv: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK4b43c2ff8.1\r\n", out)
        names = [line.split(b":")[0] for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]]
        self.assertEqual(names, [b"Via", b"v", b"Max-Forwards", b"From", b"To", b"Call-ID",
                                 b"CSeq", b"Contact", b"Record-Route", b"X-Custom",
                                 b"Content-Type", b"Content-Length"])
        self.assertEqual(parse(out)[0].max_forwards, 69)

    def test_folding(self):
        data = (b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
                b"Via: SIP/2.0/UDP 192.0.2.10\r\n ;branch=z9hG4bKf1\r\n"
                b"From: <sip:alice@example.com>\r\n\t;tag=1\r\n"
                b"To: <sip:bob@example.com>\r\n"
                b"Subject: one\r\n  two\r\n\tthree\r\n"
                b"Call-ID: f1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        req, _ = parse(data)
        self.assertEqual(req.top_via.branch, "z9hG4bKf1")
        self.assertEqual(req.from_.tag, "1")
        self.assertEqual(req.headers.get("subject"), "one two three")
        self.assertEqual(req.to_bytes(), data)                 # untouched: folding kept
        req.set_header("Subject", "changed")
        self.assertNotIn(b"\r\n ", req.to_bytes())              # rebuilt: one line each

    def test_bare_lf_and_mixed_line_ends(self):
        crlf = options()
        lf = crlf.replace(b"\r\n", b"\n")
        req, consumed = parse(lf)
        self.assertEqual(consumed, len(lf))
        self.assertEqual(req.to_bytes(), crlf)
        mixed = crlf.replace(b"\r\nTo:", b"\nTo:", 1)
        self.assertEqual(parse(mixed)[0].to_bytes(), crlf)
        lf_blank_line = crlf.replace(b"\r\n\r\n", b"\r\n\n")
        self.assertEqual(parse(lf_blank_line)[0].to_bytes(), crlf)
        self.assertEqual(parse(lf_blank_line + b"xyz")[0].body, b"")
        folded_lf = lf.replace(b"\nTo: ", b"\nTo:\n ", 1)
        self.assertEqual(parse(folded_lf)[0].to.uri, parse_uri("sip:bob@example.com"))
        with self.assertRaises(SIPParseError) as caught:
            parse(crlf.replace(b"\r\nTo:", b"\rTo:", 1))
        self.assertEqual(caught.exception.status, 400)

    def test_header_names(self):
        req, _ = parse(options(b"Via : SIP/2.0/UDP h2;branch=z9hG4bK2\r\n"
                               b"X-Odd.name!%*_+`'~ : v\r\n"))
        self.assertEqual(len(req.vias), 2)
        self.assertEqual(req.headers.get("x-odd.name!%*_+`'~"), "v")
        for bad in (b"Bad Name: x\r\n", b"X(y): x\r\n", b": novalue\r\n", b"NoColon\r\n",
                    b"X\xc3\xa9: v\r\n"):
            with self.assertRaises(SIPParseError) as caught:
                parse(options(bad))
            self.assertEqual(caught.exception.status, 400)
            self.assertIsNotNone(caught.exception.partial, bad)

    def test_request_line(self):
        self.assertEqual(parse(options(method=b"sip.weird-METHOD"))[0].method, "sip.weird-METHOD")
        req, _ = parse(invite().replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))
        self.assertEqual(req.version, "SIP/2.0")
        for line, status in ((b"INVITE sip:bob@example.com SIP/3.0", 505),
                             (b"INVITE sip:bob@example.com", 400),
                             (b"INVITE <sip:bob@example.com> SIP/2.0", 400),
                             (b"INVITE sip:bob@example.com;x=a b SIP/2.0", 400),
                             (b"INV(TE sip:bob@example.com SIP/2.0", 400),
                             (b"INVITE sip:bob@example.com?Subject=x SIP/2.0", 400),
                             (b"INVITE sip:bob@example.com\tSIP/2.0", 400)):
            with self.assertRaises(SIPParseError) as caught:
                parse(invite().replace(b"INVITE sip:bob@example.com SIP/2.0", line, 1))
            self.assertEqual(caught.exception.status, status, line)
            self.assertIsNotNone(caught.exception.partial, line)

    def test_required_headers(self):
        for name in (b"Call-ID", b"From", b"To", b"CSeq"):
            data = b"\r\n".join(l for l in options().split(b"\r\n")
                                if not l.startswith(name + b":"))
            with self.assertRaises(SIPParseError) as caught:
                parse(data)
            self.assertIn(name.decode(), caught.exception.reason)
            self.assertIsNotNone(caught.exception.partial)
        no_via = b"\r\n".join(l for l in options().split(b"\r\n") if not l.startswith(b"Via:"))
        with self.assertRaises(SIPParseError) as caught:
            parse(no_via)
        self.assertIsNone(caught.exception.partial)            # nowhere to send an answer

    def test_empty_via_and_duplicate_matching_params(self):
        for old, new in ((b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKopt1", b"Via: "),
                         (b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKopt1", b"Via: ,"),
                         (b"branch=z9hG4bKopt1", b"branch=z9hG4bKopt1;branch=z9hG4bKopt2"),
                         (b"tag=1", b"tag=1;tag=2"),
                         (b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=a;TAG=b")):
            error = self.assertRaises(SIPParseError, parse, options().replace(old, new))
            self.assertEqual(error.status, 400, new)
        req, _ = parse(options().replace(b"Via: ", b"Via: ,"))     # an empty list element
        self.assertEqual(len(req.vias), 1)

    def test_single_valued_headers(self):
        for dup in (b"Call-ID: again\r\n", b"CSeq: 7 OPTIONS\r\n", b"Max-Forwards: 70\r\n",
                    b"t: <sip:x@example.com>\r\n", b"f: <sip:y@example.com>;tag=2\r\n"):
            self.assertRaises(SIPParseError, parse, options(dup))

    def test_bad_values(self):
        for bad in (b"Max-Forwards: 256\r\n", b"Max-Forwards: \xd9\xa5\r\n"):
            data = options().replace(b"Max-Forwards: 70\r\n", bad)
            self.assertEqual(self.assertRaises(SIPParseError, parse, data).status, 400)
        data = options().replace(b"Call-ID: opt1@192.0.2.10", b"Call-ID: a b")
        self.assertRaises(SIPParseError, parse, data)
        data = options().replace(b"CSeq: 7 OPTIONS", b"CSeq: 7 INVITE")
        self.assertIn("CSeq method", self.assertRaises(SIPParseError, parse, data).reason)

    def test_control_characters(self):
        self.assertRaises(SIPParseError, parse, options(b"X: a\x00b\r\n"))
        self.assertRaises(SIPParseError, parse, options(b"X: a\x1b[31mred\r\n"))
        req, _ = parse(options(b'X: "a\\\x07b"\r\n'))           # a quoted-pair is fine
        self.assertEqual(req.headers.get("x"), '"a\\\x07b"')

    def test_non_utf8_survives(self):
        data = options(b"Subject: caf\xe9 \xff\r\n")
        req, _ = parse(data)
        self.assertEqual(req.to_bytes(), data)
        req.set_header("X-New", "1")
        self.assertIn(b"Subject: caf\xe9 \xff\r\n", req.to_bytes())


class ResponseTests(SynchronousTestCase):
    def test_fields(self):
        resp, _ = parse(OK)
        self.assertIsInstance(resp, Response)
        self.assertFalse(resp.is_request)
        self.assertEqual((resp.status, resp.reason), (200, "OK"))
        self.assertEqual(resp.to.tag, "8321234356")
        self.assertEqual(resp.top_via.param("received"), "192.0.2.10")

    def test_status_line(self):
        self.assertEqual(parse(OK.replace(b"200 OK", b"180 Ringing Now"))[0].reason, "Ringing Now")
        self.assertEqual(parse(OK.replace(b"200 OK", b"299"))[0].reason, "")
        for line in (b"SIP/2.0 99 Low", b"SIP/2.0 700 High", b"SIP/2.0 2000 OK", b"SIP/2.0 2x0 OK",
                     b"SIP/2.0 \xd9\xa200 OK", b"SIP/2.0"):
            error = self.assertRaises(SIPParseError, parse, OK.replace(b"SIP/2.0 200 OK", line))
            self.assertIsNone(error.partial)                    # a response is never answered
        self.assertEqual(self.assertRaises(SIPParseError, parse,
                                           OK.replace(b"SIP/2.0 200", b"SIP/3.0 200")).status, 505)

    def test_response_errors_have_no_partial(self):
        error = self.assertRaises(SIPParseError, parse, OK.replace(b"CSeq: 1 INVITE", b"CSeq: x"))
        self.assertIsNone(error.partial)


class HeadersTests(SynchronousTestCase):
    def make(self):
        return Headers([["Via", "a"], ["To", "t"], ["v", "b, c"], ["Route", "<sip:r1>"],
                        ["X", "1"]])

    def test_lookup(self):
        h = self.make()
        self.assertEqual(h.get("VIA"), "a")
        self.assertEqual(h.get("to"), "t")
        self.assertEqual(h.get("to"), "t")          # the index survives the first lookup
        self.assertEqual(h.get("nope", "d"), "d")
        self.assertEqual(h.get_lines("via"), ["a", "b, c"])
        self.assertEqual(h.get_all("via"), ["a", "b", "c"])
        self.assertEqual(h.get_all("x"), ["1"])
        self.assertEqual(h.count("v"), 2)
        self.assertIn("t", h)
        self.assertNotIn("from", h)
        self.assertEqual(len(h), 5)
        self.assertEqual([name for name, _ in h], ["Via", "To", "v", "Route", "X"])

    def test_changes_keep_the_index_right(self):
        h = self.make()
        h.get("to")
        h.add("route", "<sip:r2>")
        self.assertEqual([n for n, _ in h][-1], "Route")
        self.assertEqual(h.get_all("route"), ["<sip:r1>", "<sip:r2>"])
        h.add("Via", "top", first=True)
        self.assertEqual(h.get("via"), "top")
        h.insert_before("Route", "<sip:r0>")
        self.assertEqual(h.get_all("route"), ["<sip:r0>", "<sip:r1>", "<sip:r2>"])
        h.set("via", "only")
        self.assertEqual(h.get_lines("via"), ["only"])
        self.assertEqual([n for n, _ in h][0], "Via")
        h.set("max-forwards", "70")
        self.assertEqual([n for n, _ in h][-1], "Max-Forwards")
        h.remove_first("route")
        self.assertEqual(h.get_all("route"), ["<sip:r1>", "<sip:r2>"])
        h.remove("ROUTE")
        self.assertNotIn("route", h)
        self.assertEqual(h.get("x"), "1")
        copy = h.copy()
        copy.set("x", "2")
        self.assertEqual((h.get("x"), copy.get("x")), ("1", "2"))

    def test_lines_are_tuples(self):
        """Parsed, built and edited lines are tuples (untracked by the garbage collector);
        an edit replaces the line."""
        msg, _ = parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKt\r\n"
                       b"From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
                       b"CSeq: 1 OPTIONS\r\nX-A: 1\r\n\r\n")
        msg.headers.set("X-A", "2")
        msg.headers.add("X-B", "3")
        self.assertTrue(all(type(line) is tuple for line in msg.headers))
        self.assertEqual(msg.headers.get("x-a"), "2")
        resp = make_response(msg, 200)
        self.assertTrue(all(type(line) is tuple for line in resp.headers))

    def test_no_injection_through_edits(self):
        h = Headers()
        h.add("X-From-Service", "a\r\nInjected: yes")
        h.set("Subject", "b\nc")
        h.insert_before("via", "SIP/2.0/UDP h\r\n;branch=z9hG4bKx")
        self.assertEqual(list(h), [("Via", "SIP/2.0/UDP h ;branch=z9hG4bKx"),
                                   ("X-From-Service", "a Injected: yes"), ("Subject", "b c")])
        for bad in ("Bad Name", "X:", "", "X\r\nY", "X\n"):
            self.assertRaises(ValueError, h.add, bad, "v")
        resp = Response(400, "two\r\nlines")
        self.assertEqual(resp.reason, "two lines")

    def test_parsed_message_edits(self):
        req, _ = parse(invite())
        req.headers.insert_before("via", "SIP/2.0/UDP b2bua.example.com;branch=z9hG4bKnew")
        req.invalidate()
        self.assertEqual([v.host for v in req.vias],
                         ["b2bua.example.com", "192.0.2.10", "proxy.example.com"])
        self.assertTrue(req.to_bytes().startswith(
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP b2bua.example.com"))

    def test_body_changes_fix_content_length(self):
        req, _ = parse(invite())
        req.set_body(b"", None)
        out = req.to_bytes()
        self.assertIn(b"\r\nContent-Length: 0\r\n\r\n", out)
        self.assertNotIn(b"Content-Type", out)
        req2, _ = parse(invite())
        req2.body = b"v=0\r\n"                          # changed behind our back
        self.assertTrue(req2.to_bytes().endswith(b"\r\nContent-Length: 5\r\n\r\nv=0\r\n"))
        self.assertEqual(parse(req2.to_bytes())[0].body, b"v=0\r\n")


class MakeResponseTests(SynchronousTestCase):
    def test_copies_and_tag(self):
        req, _ = parse(invite())
        resp = make_response(req, 180, to_tag="abc")
        out = resp.to_bytes()
        self.assertTrue(out.startswith(b"SIP/2.0 180 Ringing\r\n"))
        parsed, _ = parse(out)
        self.assertEqual([v.branch for v in parsed.vias], [v.branch for v in req.vias])
        self.assertIn(b"\r\nv: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK4b43c2ff8.1\r\n", out)
        self.assertEqual(parsed.to.tag, "abc")
        self.assertEqual(parsed.from_.tag, "9fxced76sl")
        self.assertEqual((parsed.call_id, parsed.cseq), (req.call_id, req.cseq))
        self.assertEqual(parsed.headers.get("record-route"), "<sip:proxy.example.com;lr>")
        self.assertNotIn("contact", parsed.headers)
        self.assertIn(b"\r\nContent-Length: 0\r\n\r\n", out)

    def test_trying_and_errors(self):
        req, _ = parse(invite())
        trying, _ = parse(make_response(req, 100, to_tag="abc").to_bytes())
        self.assertIsNone(trying.to.tag)
        self.assertNotIn("record-route", trying.headers)
        busy, _ = parse(make_response(req, 486, to_tag="abc").to_bytes())
        self.assertEqual((busy.status, busy.reason, busy.to.tag), (486, "Busy Here", "abc"))
        self.assertNotIn("record-route", busy.headers)
        odd = make_response(req, 499)
        self.assertEqual(odd.reason, "Unknown")
        self.assertEqual(make_response(req, 404, "Nobody Here").reason, "Nobody Here")

    def test_existing_tag_kept_and_extra_headers(self):
        req, _ = parse(options().replace(b"To: <sip:bob@example.com>",
                                         b"To: <sip:bob@example.com>;tag=have"))
        resp, _ = parse(make_response(req, 200, to_tag="new",
                                      headers=[("Allow", "INVITE, ACK")]).to_bytes())
        self.assertEqual(resp.to.tag, "have")
        self.assertEqual(resp.headers.get("allow"), "INVITE, ACK")

    def test_answers_a_partial_request(self):
        data = options().replace(b"To: <sip:bob@example.com>", b'To: "unterminated <sip:b@c>')
        error = self.assertRaises(SIPParseError, parse, data)
        resp = make_response(error.partial, error.status, error.phrase, to_tag="t9")
        out = resp.to_bytes()
        self.assertTrue(out.startswith(b"SIP/2.0 400 unterminated quoted string\r\n"))
        self.assertIn(b'\r\nTo: "unterminated <sip:b@c>;tag=t9\r\n', out)

    def test_phrase_is_safe(self):
        error = SIPParseError("bad\r\nInjected: yes \udcff" + "x" * 200)
        self.assertNotIn("\r", error.phrase)
        self.assertNotIn("\n", error.phrase)
        self.assertLessEqual(len(error.phrase), 100)
        self.assertEqual(SIPParseError("").phrase, "Bad Request")
