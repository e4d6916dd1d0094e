# -*- test-case-name: tests.sip.test_message -*-
"""Requests and responses: parse, serialize, framing, limits, responses, request checks
(mss.sip.message)."""
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.errors import SIPParseError
from mss.sip.headers import CSeq
from mss.sip.message import (Headers, Incomplete, Rejection, Request, Response,
                             check_request, is_keepalive, make_response, merge_key, parse,
                             parse_datagram)
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


class FramingTests(SynchronousTestCase):
    def test_datagram_ignores_trailing_bytes(self):
        data = invite() + b"garbage after the body"
        req, consumed = parse(data)
        self.assertEqual(req.body, SDP)
        self.assertEqual(consumed, len(invite()))
        self.assertEqual(req.to_bytes(), invite())

    def test_datagram_body_shorter_than_content_length(self):
        error = self.assertRaises(SIPParseError, parse, invite(length=len(SDP) + 1))
        self.assertEqual(error.status, 400)
        self.assertIsNotNone(error.partial)

    def test_datagram_without_content_length_takes_the_rest(self):
        data = invite().replace(b"Content-Length: %d\r\n" % len(SDP), b"")
        req, consumed = parse(data)
        self.assertEqual((req.body, consumed), (SDP, len(data)))
        self.assertEqual(req.to_bytes(), invite())      # Content-Length added at the end

    def test_bad_content_length(self):
        for value in (b"-1", b"1.0", b"0x10", b"\xc2\xb2", b"\xd9\xa3", b"99999999999", b""):
            data = invite().replace(b"Content-Length: %d" % len(SDP), b"Content-Length: " + value)
            error = self.assertRaises(SIPParseError, parse, data)
            self.assertEqual(error.status, 400, value)
        data = invite(extra=b"l: %d\r\n" % len(SDP))
        self.assertIn("more than one", self.assertRaises(SIPParseError, parse, data).reason)

    def test_stream_several_messages_in_one_buffer(self):
        buffer = invite() + OK + options()
        seen = []
        while buffer:
            msg, used = parse(buffer, stream=True)
            seen.append(msg)
            buffer = buffer[used:]
        self.assertEqual([type(m).__name__ for m in seen], ["Request", "Response", "Request"])
        self.assertEqual(seen[0].body, SDP)

    def test_stream_in_random_chunks(self):
        """A transport's loop: append each chunk, parse until Incomplete, drop what was used
        (and the keep-alives Incomplete.skip reports). Any chunking gives the same messages."""
        import random
        stream = b"\r\n\r\n" + invite() + OK + b"\r\n\r\n" + options() + b"\r\n\r\n"
        expected = [invite(), OK, options()]
        rng = random.Random(3261)
        for _ in range(200):
            cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
            chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
            buffer, got = b"", []
            for chunk in chunks:
                buffer += chunk
                while buffer:
                    try:
                        msg, used = parse(buffer, stream=True)
                    except Incomplete as e:
                        buffer = buffer[e.skip:]
                        break
                    got.append(msg.to_bytes())
                    buffer = buffer[used:]
            self.assertEqual(got, expected)
            self.assertEqual(buffer, b"")

    def test_stream_incomplete(self):
        data = invite()
        for cut in (1, 40, data.index(b"\r\n\r\n") + 2, data.index(b"\r\n\r\n") + 4, len(data) - 1):
            self.assertRaises(Incomplete, parse, data[:cut], stream=True)
        self.assertEqual(parse(data, stream=True)[1], len(data))

    def test_stream_requires_content_length(self):
        data = invite().replace(b"Content-Length: %d\r\n" % len(SDP), b"")
        error = self.assertRaises(SIPParseError, parse, data, stream=True)
        self.assertEqual(error.status, 400)

    def test_keepalives(self):
        self.assertEqual(self.assertRaises(Incomplete, parse, b"\r\n\r\n", stream=True).skip, 4)
        self.assertEqual(self.assertRaises(Incomplete, parse, b"\r\n\r\nINV", stream=True).skip, 4)
        msg, used = parse(b"\r\n\r\n" + OK, stream=True)
        self.assertEqual((msg.status, used), (200, 4 + len(OK)))
        self.assertTrue(is_keepalive(b"\r\n\r\n"))
        self.assertTrue(is_keepalive(b"\r\n"))
        self.assertFalse(is_keepalive(b""))
        self.assertFalse(is_keepalive(OK))
        self.assertRaises(SIPParseError, parse, b"\r\n\r\n")

    def test_datagram_without_empty_line(self):
        data = options()[:-2]
        error = self.assertRaises(SIPParseError, parse, data)
        self.assertEqual(error.status, 400)
        self.assertIsNotNone(error.partial)
        self.assertRaises(SIPParseError, parse, b"garbage")
        self.assertRaises(SIPParseError, parse, b"")


class LimitTests(SynchronousTestCase):
    def test_max_size(self):
        data = invite(body=b"x" * 2000)
        error = self.assertRaises(SIPParseError, parse, data, max_size=1000)
        self.assertEqual(error.status, 513)
        self.assertIsNotNone(error.partial)
        self.assertEqual(parse(data, max_size=len(data))[1], len(data))
        error = self.assertRaises(SIPParseError, parse, data, stream=True, max_size=1000)
        self.assertEqual(error.status, 513)
        head_only = b"INVITE sip:a@b SIP/2.0\r\nX: " + b"y" * 2000
        error = self.assertRaises(SIPParseError, parse, head_only, stream=True, max_size=1000)
        self.assertEqual(error.status, 513)
        self.assertRaises(Incomplete, parse, head_only[:500], stream=True, max_size=1000)

    def test_max_headers(self):
        data = options(b"X: 1\r\n" * 20)
        self.assertEqual(parse(data, max_headers=30)[0].headers.count("x"), 20)
        self.assertEqual(self.assertRaises(SIPParseError, parse, data, max_headers=20).status, 400)

    def test_parse_datagram(self):
        self.assertEqual(parse_datagram(OK).status, 200)


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
