# -*- test-case-name: tests.media.test_bencode -*-
from twisted.trial.unittest import SynchronousTestCase

from mss.media.bencode import BencodeError, decode, encode


class BencodeTests(SynchronousTestCase):
    def test_round_trip(self):
        value = {b"command": b"offer", b"flags": [b"trust-address", b"symmetric"],
                 b"n": -12, b"nested": {b"a": [1, 2, {b"b": b""}]}}
        self.assertEqual(decode(encode(value)), value)

    def test_known_encoding_sorted_keys(self):
        self.assertEqual(encode({"b": 1, "a": "xy", "c": [True, False]}),
                         b"d1:a2:xy1:bi1e1:cli1ei0eee")

    def test_str_is_utf8(self):
        self.assertEqual(encode("é"), b"2:\xc3\xa9")

    def test_rejects_malformed(self):
        for bad in [b"", b"i12", b"ie", b"i1x2e", b"5:abc", b"l", b"d1:a", b"di1ei2ee",
                    b"x", b"3:abcd", b"-1:a", b"d1:ai1e", b"99999999999999:a",
                    b"l" * 100 + b"e" * 100]:
            with self.assertRaises(BencodeError, msg=bad):
                decode(bad)

    def test_rejects_unencodable(self):
        with self.assertRaises(BencodeError):
            encode({"a": object()})
        with self.assertRaises(BencodeError):
            encode({1: 2})
