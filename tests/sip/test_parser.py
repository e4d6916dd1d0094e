# -*- test-case-name: tests.sip.test_parser -*-
"""Stream and datagram framing, keep-alives and size limits (mss.sip.parser); parsing of each
header and the start line is tested with the messages in test_message and test_torture."""
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.errors import SIPParseError
from mss.sip.parser import Incomplete, is_keepalive, parse, parse_datagram
from tests.sip.test_message import OK, SDP, invite, options


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
