# -*- test-case-name: tests.media.test_ng -*-
from twisted.trial.unittest import SynchronousTestCase

from mss.media import ng


class FramingTests(SynchronousTestCase):
    def test_parse_request(self):
        cookie, msg = ng.parse(b"5323_1 d7:command4:ping5:flagsl3:fooee")
        self.assertEqual(cookie, b"5323_1")
        self.assertEqual(msg, {"command": "ping", "flags": ["foo"]})

    def test_format_round_trip_keeps_any_byte(self):
        data = ng.format(b"c1", {"result": "ok", "sdp": b"v=0\r\n\xff"})
        cookie, msg = ng.parse(data)
        self.assertEqual(ng.format(cookie, msg), data)

    def test_errors(self):
        for bad in [b"", b"nocookie", b" d1:ai1ee", b"c i1e", b"c d1:a", b"x" * 100 + b" de"]:
            with self.assertRaises(ng.NgError, msg=bad):
                ng.parse(bad)


class CookieCacheTests(SynchronousTestCase):
    def test_same_cookie_same_answer(self):
        cache = ng.CookieCache(max_entries=10, ttl=30)
        src = ("127.0.0.1", 5000)
        self.assertIsNone(cache.get(src, b"a", 0))
        cache.put(src, b"a", b"reply", 0)
        self.assertEqual(cache.get(src, b"a", 10), b"reply")
        self.assertIsNone(cache.get(("127.0.0.2", 5000), b"a", 10))

    def test_expiry(self):
        cache = ng.CookieCache(max_entries=10, ttl=30)
        cache.put("s", b"a", b"1", 0)
        cache.put("s", b"b", b"2", 20)
        self.assertIsNone(cache.get("s", b"a", 30.5))
        self.assertEqual(cache.get("s", b"b", 30.5), b"2")
        self.assertEqual(len(cache), 1)

    def test_bounded(self):
        cache = ng.CookieCache(max_entries=3, ttl=30)
        for i in range(10):
            cache.put("s", b"%d" % i, b"r", i)
        self.assertEqual(len(cache), 3)
        self.assertIsNone(cache.get("s", b"6", 9))
        self.assertEqual(cache.get("s", b"9", 9), b"r")
