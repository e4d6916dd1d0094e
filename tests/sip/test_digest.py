# -*- test-case-name: tests.sip.test_digest -*-
"""Tests for the mss.sip.digest package: RFC 7616/2617 vectors (hashing), nonces and replay
(nonces), parsing (headers), challenge and verify (server), answering (client)."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.sip.digest import hashing
from mss.sip.digest.client import authorization, choose_challenge
from mss.sip.digest.hashing import DigestError
from mss.sip.digest.headers import (Challenge, DigestParseError, parse_challenge, parse_challenges,
                                    parse_credentials)
from mss.sip.digest.nonces import NonceCounter, NonceFactory
from mss.sip.digest.server import challenge, verify

# RFC 7616 §3.9.1
REALM = "http-auth@example.org"
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
URI = "/dir/index.html"
PASSWORD = "Circle of Life"
MD5_RESPONSE = "8ca523f5e9506fed4657c9700eebdbec"
SHA256_RESPONSE = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"

SECRET = b"0123456789abcdef0123456789abcdef"


def _rfc7616_authorization(algorithm: str, resp: str) -> str:
    return (f'Digest username="Mufasa",\r\n realm="{REALM}",\r\n uri="{URI}",\r\n'
            f' algorithm={algorithm},\r\n nonce="{NONCE}",\r\n nc=00000001,\r\n'
            f' cnonce="{CNONCE}",\r\n qop=auth,\r\n response="{resp}",\r\n opaque="{OPAQUE}"')


class HashTests(SynchronousTestCase):
    def test_rfc7616_md5(self):
        h = hashing.ha1("MD5", "Mufasa", REALM, PASSWORD)
        self.assertEqual(
            hashing.response("MD5", h, "GET", URI, NONCE, "00000001", CNONCE, "auth"), MD5_RESPONSE)

    def test_rfc7616_sha256(self):
        h = hashing.ha1("SHA-256", "Mufasa", REALM, PASSWORD)
        self.assertEqual(
            hashing.response("SHA-256", h, "GET", URI, NONCE, "00000001", CNONCE, "auth"),
            SHA256_RESPONSE)

    def test_rfc2617_example(self):
        """RFC 2617 §3.5: MD5 with qop=auth."""
        h = hashing.ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
        self.assertEqual(
            hashing.response("MD5", h, "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                             "00000001", "0a4f113b", "auth"),
            "6629fae49393a05397450978507c4ef1")

    def test_no_qop_form(self):
        """RFC 2069 form: H(HA1:nonce:HA2)."""
        h = hashing.ha1("MD5", "u", "r", "p")
        ha2 = hashing._h("MD5", "REGISTER:sip:r")
        self.assertEqual(hashing.response("MD5", h, "REGISTER", "sip:r", "n"),
                         hashing._h("MD5", f"{h}:n:{ha2}"))

    def test_sess_derived_from_base_ha1(self):
        h = hashing.ha1("MD5-sess", "u", "r", "p")
        self.assertEqual(h, hashing.ha1("MD5", "u", "r", "p"))
        sess = hashing.session_ha1("MD5-sess", h, "n", "c")
        self.assertEqual(
            hashing.response("MD5-sess", h, "INVITE", "sip:x", "n", "00000001", "c", "auth"),
            hashing.response("MD5", sess, "INVITE", "sip:x", "n", "00000001", "c", "auth"))

    def test_auth_int_uses_body(self):
        h = hashing.ha1("SHA-256", "u", "r", "p")
        a = hashing.response("SHA-256", h, "INVITE", "sip:x", "n", "00000001", "c", "auth-int", b"v=0")
        b = hashing.response("SHA-256", h, "INVITE", "sip:x", "n", "00000001", "c", "auth-int", b"v=1")
        self.assertNotEqual(a, b)

    def test_unsupported(self):
        self.assertRaises(DigestError, hashing.ha1, "SHA-1", "u", "r", "p")
        h = hashing.ha1("MD5", "u", "r", "p")
        self.assertRaises(DigestError, hashing.response, "MD5", h, "GET", "/", "n", "1", "c", "x")
        self.assertRaises(DigestError, hashing.response, "MD5", h, "GET", "/", "n", None, None, "auth")

    def test_canonical_algorithm(self):
        self.assertEqual(hashing.canonical_algorithm("md5"), "MD5")
        self.assertEqual(hashing.canonical_algorithm("sha-256-SESS"), "SHA-256-sess")
        self.assertEqual(hashing.canonical_algorithm(None), "MD5")
        self.assertIsNone(hashing.canonical_algorithm("SHA-1"))


class VerifyTests(SynchronousTestCase):
    def test_rfc7616_headers_verify(self):
        for algorithm, resp in (("MD5", MD5_RESPONSE), ("SHA-256", SHA256_RESPONSE)):
            creds = parse_credentials(_rfc7616_authorization(algorithm, resp))
            self.assertEqual(creds.algorithm, algorithm)
            self.assertEqual(creds.username, "Mufasa")
            self.assertEqual(creds.nc, "00000001")
            self.assertEqual(creds.nc_value, 1)
            self.assertEqual(creds.opaque, OPAQUE)
            h = hashing.ha1(algorithm, "Mufasa", REALM, PASSWORD)
            self.assertTrue(verify(creds, h, "GET"))
            self.assertFalse(verify(creds, h, "POST"))
            self.assertFalse(verify(creds, hashing.ha1(algorithm, "Mufasa", REALM, "wrong"), "GET"))

    def test_uppercase_response_accepted(self):
        creds = parse_credentials(_rfc7616_authorization("MD5", MD5_RESPONSE.upper()))
        self.assertTrue(verify(creds, hashing.ha1("MD5", "Mufasa", REALM, PASSWORD), "GET"))

    def test_unknown_algorithm_does_not_verify(self):
        creds = parse_credentials(_rfc7616_authorization("SHA-1", MD5_RESPONSE))
        self.assertEqual(creds.algorithm, "SHA-1")
        self.assertFalse(verify(creds, hashing.ha1("MD5", "Mufasa", REALM, PASSWORD), "GET"))

    def test_unknown_qop_does_not_verify(self):
        text = _rfc7616_authorization("MD5", MD5_RESPONSE).replace("qop=auth", "qop=bogus")
        self.assertFalse(verify(parse_credentials(text), hashing.ha1("MD5", "Mufasa", REALM, PASSWORD), "GET"))


class RoundTripTests(SynchronousTestCase):
    def _round_trip(self, algorithm, qop_header):
        nonces = NonceFactory(SECRET)
        nonce = nonces.make(1000.0)
        value = challenge("mss.local", nonce, algorithm, opaque="xyz")
        if qop_header is None:
            value = value.replace(', qop="auth"', "")
        chal = parse_challenge(value)
        self.assertEqual((chal.realm, chal.nonce, chal.opaque), ("mss.local", nonce, "xyz"))
        header = authorization(chal, "1001", "s3cr\"et", "REGISTER", "sip:mss.local", "abc", 1)
        creds = parse_credentials(header)
        self.assertEqual(creds.algorithm, algorithm)
        self.assertEqual(creds.qop, qop_header)
        self.assertEqual(creds.opaque, "xyz")
        self.assertEqual(nonces.check(creds.nonce, 1001.0, 300), "ok")
        h = hashing.ha1(algorithm, "1001", "mss.local", "s3cr\"et")
        self.assertTrue(verify(creds, h, "REGISTER"))
        self.assertFalse(verify(creds, h, "INVITE"))

    def test_round_trips(self):
        for algorithm in hashing.ALGORITHMS:
            self._round_trip(algorithm, "auth")
            self._round_trip(algorithm, None)

    def test_challenge_text(self):
        self.assertEqual(
            challenge('a"b', "N", "md5", stale=True),
            'Digest realm="a\\"b", nonce="N", algorithm=MD5, qop="auth", stale=true')
        self.assertRaises(DigestError, challenge, "r", "N", "SHA-1")

    def test_plain_form_without_qop(self):
        chal = parse_challenge('Digest realm="r", nonce="n"')
        header = authorization(chal, "u", "p", "REGISTER", "sip:r", "c")
        creds = parse_credentials(header)
        self.assertIsNone(creds.qop)
        self.assertIsNone(creds.cnonce)
        self.assertNotIn("algorithm", creds.params)      # not echoed when not challenged with
        self.assertEqual(creds.response,
                         hashing.response("MD5", hashing.ha1("MD5", "u", "r", "p"), "REGISTER", "sip:r", "n"))

    def test_auth_int_only(self):
        chal = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
        creds = parse_credentials(authorization(chal, "u", "p", "INVITE", "sip:r", "c", 2, b"body"))
        self.assertEqual((creds.qop, creds.nc), ("auth-int", "00000002"))
        self.assertTrue(verify(creds, hashing.ha1("MD5", "u", "r", "p"), "INVITE", b"body"))
        self.assertFalse(verify(creds, hashing.ha1("MD5", "u", "r", "p"), "INVITE", b"other"))

    def test_client_refuses_unsupported(self):
        chal = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-1')
        self.assertRaises(DigestError, authorization, chal, "u", "p", "REGISTER", "sip:r", "c")
        chal = parse_challenge('Digest realm="r", nonce="n", qop="x-other"')
        self.assertRaises(DigestError, authorization, chal, "u", "p", "REGISTER", "sip:r", "c")
        chal = parse_challenge('Digest realm="r", nonce="n"')
        self.assertRaises(DigestError, authorization, chal, "u", "p", "REGISTER", "sip:r", "c", 0)

    def test_choose_challenge_prefers_sha256(self):
        md5 = parse_challenge('Digest realm="r", nonce="n", algorithm=MD5, qop="auth"')
        sha = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"')
        other = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-1')
        self.assertIs(choose_challenge([md5, sha, other]), sha)
        self.assertIs(choose_challenge([other, md5]), md5)
        self.assertIsNone(choose_challenge([other]))


class NonceTests(SynchronousTestCase):
    def test_fresh_nonce_ok(self):
        f = NonceFactory(SECRET)
        n = f.make(1000.0)
        self.assertEqual(len(n), 43)
        for bad in '",; \\':
            self.assertNotIn(bad, n)
        self.assertEqual(f.check(n, 1000.0, 300), "ok")
        self.assertEqual(f.check(n, 1300.0, 300), "ok")
        self.assertEqual(NonceFactory.issued_at(n), 1000.0)

    def test_distinct(self):
        f = NonceFactory(SECRET)
        self.assertNotEqual(f.make(1000.0), f.make(1000.0))

    def test_stale(self):
        f = NonceFactory(SECRET)
        self.assertEqual(f.check(f.make(1000.0), 1300.5, 300), "stale")

    def test_invalid(self):
        f = NonceFactory(SECRET)
        n = f.make(1000.0)
        other = NonceFactory(b"x" * 32)
        self.assertEqual(other.check(n, 1000.0, 300), "invalid")
        flipped = ("A" if n[0] != "A" else "B") + n[1:]
        self.assertEqual(f.check(flipped, 1000.0, 300), "invalid")
        for junk in ("", "abc", "!" * 43, n + "A", None, "é" * 43):
            self.assertEqual(f.check(junk, 1000.0, 300), "invalid")
        self.assertIsNone(NonceFactory.issued_at("abc"))

    def test_future_nonce_invalid(self):
        f = NonceFactory(SECRET)
        self.assertEqual(f.check(f.make(2000.0), 1000.0, 300), "invalid")

    def test_context_binds_nonce(self):
        f = NonceFactory(SECRET)
        n = f.make(1000.0, context=b"192.0.2.1")
        self.assertEqual(f.check(n, 1000.0, 300, context=b"192.0.2.1"), "ok")
        self.assertEqual(f.check(n, 1000.0, 300, context=b"192.0.2.2"), "invalid")

    def test_deterministic_with_injected_random(self):
        f = NonceFactory(SECRET, random=lambda n: b"\x00" * n)
        self.assertEqual(f.make(1.0), f.make(1.0))

    def test_short_secret_refused(self):
        self.assertRaises(ValueError, NonceFactory, b"short")


class NonceCounterTests(SynchronousTestCase):
    def test_increasing(self):
        c = NonceCounter(lifetime=300)
        self.assertTrue(c.accept("n", "00000001", 0))
        self.assertTrue(c.accept("n", "00000002", 1))
        self.assertTrue(c.accept("n", 5, 1))
        self.assertTrue(c.accept("other", 1, 1))

    def test_replay_refused(self):
        c = NonceCounter(lifetime=300)
        self.assertTrue(c.accept("n", "00000002", 0))
        self.assertFalse(c.accept("n", "00000002", 1))
        self.assertFalse(c.accept("n", "00000001", 1))
        self.assertFalse(c.accept("n", "zz", 1))
        self.assertFalse(c.accept("n", "000000000", 1))
        self.assertFalse(c.accept("m", 0, 1))
        self.assertFalse(c.accept("m", None, 1))      # no qop: no nc to check

    def test_forgotten_after_lifetime(self):
        c = NonceCounter(lifetime=300)
        c.accept("n", 3, 0)
        self.assertEqual(len(c), 1)
        c.accept("m", 1, 301)
        self.assertEqual(len(c), 1)
        self.assertTrue(c.accept("n", 1, 302))

    def test_bounded(self):
        c = NonceCounter(lifetime=300, max_entries=100)
        for i in range(1000):
            c.accept(f"n{i}", 1, 0)
        self.assertEqual(len(c), 100)
        self.assertFalse(c.accept("n999", 1, 0))


class ParseTests(SynchronousTestCase):
    def test_escapes_and_commas_in_quotes(self):
        creds = parse_credentials(
            'Digest username="a\\"b,c", realm="r=1, x", nonce="n", uri="sip:x;a=b", '
            'response="00ff"')
        self.assertEqual(creds.username, 'a"b,c')
        self.assertEqual(creds.realm, "r=1, x")
        self.assertEqual(creds.uri, "sip:x;a=b")
        self.assertEqual(creds.algorithm, "MD5")

    def test_case_and_whitespace(self):
        creds = parse_credentials(
            'digest  USERNAME = "u" ,realm="r",,nonce="n"\t, uri="sip:r",response="ab",'
            'Algorithm=sha-256, QOP="auth", nc=0000000a, cnonce="c"')
        self.assertEqual((creds.scheme, creds.username, creds.algorithm, creds.qop, creds.nc_value),
                         ("Digest", "u", "SHA-256", "auth", 10))

    def test_malformed(self):
        cases = {
            "": "empty",
            "Digest": "missing parameter 'username'",
            'Basic dXNlcjpwYXNz': "expected '='",
            'Basic realm="x"': "unsupported auth scheme",
            'Digest username="u': "unterminated",
            'Digest username="u", username="v", realm="r", nonce="n", uri="u", response="a"': "duplicate",
            'Digest username="u" realm="r"': "expected ','",
            'Digest username=, realm="r"': "missing value",
            'Digest =x': "expected a parameter name",
            'Digest username="u", realm="r", nonce="n", uri="u", response="zz"': "hexadecimal",
            'Digest username="u", realm="r", nonce="n", uri="u", response="a", qop=auth': "cnonce",
            'Digest username="u", realm="r", nonce="n", uri="u", response="a", qop=auth, '
            'cnonce="c", nc=1': "nc",
            "Digest " + ", ".join(f"p{i}=b" for i in range(100)): "too many",
            "Digest " + "x" * 9000: "longer than",
            '"Digest" username="u"': "expected an auth scheme",
            'Digest username="u", realm="r", nonce="n", uri="u", response="a", Basic realm="x"':
                "more than one",
        }
        for text, message in cases.items():
            e = self.assertRaises(DigestParseError, parse_credentials, text)
            self.assertIn(message, str(e), text)
            self.assertIsInstance(e, ValueError)
        self.assertRaises(DigestParseError, parse_credentials, None)

    def test_parse_challenge(self):
        c = parse_challenge('Digest realm="mss.local", nonce="abc", opaque="o", algorithm=SHA-256, '
                            'qop="auth,auth-int", stale=TRUE, domain="sip:mss.local"')
        self.assertEqual(c, Challenge(scheme="Digest", realm="mss.local", nonce="abc",
                                      algorithm="SHA-256", qop=("auth", "auth-int"), opaque="o",
                                      stale=True, domain="sip:mss.local"))

    def test_several_challenges_in_one_value(self):
        cs = parse_challenges('Basic realm="x", Digest realm="r", nonce="n", algorithm=MD5')
        self.assertEqual([c.scheme for c in cs], ["Basic", "Digest"])
        self.assertEqual(parse_challenge('Basic realm="x", Digest realm="r", nonce="n"').realm, "r")
        self.assertRaises(DigestParseError, parse_challenge, 'Basic realm="x"')
        self.assertRaises(DigestParseError, parse_challenge, 'Digest realm="x"')
