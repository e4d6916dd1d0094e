# -*- test-case-name: tests.registrar.test_auth -*-
"""Tests for mss.registrar.auth: digest challenges and verification for REGISTER, and the
abuse rules that live with them (no user enumeration, nc replay, brute-force bans, allow list).
Driven through the SIP core with the ``Rig`` of tests.registrar.test_registrar."""
from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from mss.registrar.auth import Authenticator, load_secret
from mss.sip.digest.client import authorization
from mss.sip.digest.headers import Challenge, parse_challenge
from mss.sip.digest.server import challenge
from tests.registrar.test_registrar import REALM, START, Phone, Rig


class AuthTestCase(SynchronousTestCase):
    rig_options: dict = {}

    def setUp(self):
        self.rig = Rig(**self.rig_options)
        self.addCleanup(self.rig.store.close)
        self.rig.add("1001", "right")
        self.rig.add("1002", "other")


class ChallengeTests(AuthTestCase):

    def test_default_is_one_md5_challenge(self):
        """As shipped: one challenge, so baresip 1.0 and SIPp 3.6.1 can answer it."""
        response = Phone(self.rig, "1001").send()
        self.assertEqual(response.status, 401)
        challenges = [parse_challenge(v)
                      for v in response.headers.get_lines("www-authenticate")]
        self.assertEqual([c.algorithm for c in challenges], ["MD5"])
        self.assertEqual((challenges[0].realm, challenges[0].qop), (REALM, ("auth",)))

    def test_sha256_refused_when_not_offered(self):
        self.assertEqual(Phone(self.rig, "1001", "right", algorithm="SHA-256").register().status,
                         403)

    def test_each_challenge_has_a_fresh_nonce(self):
        a = Phone(self.rig, "1001").send()
        b = Phone(self.rig, "1001").send()
        self.assertNotEqual(a.headers.get("www-authenticate"), b.headers.get("www-authenticate"))

    def test_md5_accepted(self):
        self.assertEqual(Phone(self.rig, "1001", "right").register().status, 200)

    def test_username_with_realm_accepted(self):
        phone = Phone(self.rig, "1001", "right")
        first = phone.send()
        auth = phone.authorization(first, username=f"1001@{REALM}")
        self.assertEqual(phone.send(auth=auth).status, 200)


class BothAlgorithmsTests(AuthTestCase):
    """``[auth] algorithms = ["MD5", "SHA-256"]``: both offered, MD5 first."""
    rig_options = {"algorithms": ("MD5", "SHA-256")}

    def test_md5_first_then_sha256(self):
        response = Phone(self.rig, "1001").send()
        self.assertEqual(response.status, 401)
        challenges = [parse_challenge(v)
                      for v in response.headers.get_lines("www-authenticate")]
        self.assertEqual([c.algorithm for c in challenges], ["MD5", "SHA-256"])
        for c in challenges:
            self.assertEqual(c.realm, REALM)
            self.assertEqual(c.qop, ("auth",))
            self.assertFalse(c.stale)
        self.assertEqual(challenges[0].nonce, challenges[1].nonce)

    def test_challenge_text_is_digest_challenge(self):
        """The prebuilt challenge text is what challenge writes, stale or not, with a
        realm that needs quoting."""
        auth = Authenticator(lambda number: None, self.rig.bans, realm='odd "realm"',
                             secret=b"s" * 32, algorithms=("SHA-256", "MD5"))
        for stale in (False, True):
            headers = auth.challenge_headers("Proxy-Authenticate", START, stale)
            nonce = parse_challenge(headers[0][1]).nonce
            self.assertEqual(headers, tuple(
                ("Proxy-Authenticate", challenge('odd "realm"', nonce, alg, stale=stale))
                for alg in ("MD5", "SHA-256")))

    def test_either_accepted(self):
        self.assertEqual(Phone(self.rig, "1001", "right").register().status, 200)
        self.assertEqual(Phone(self.rig, "1002", "other", algorithm="SHA-256").register().status,
                         200)

    def test_extension_limited_to_md5(self):
        self.rig.store.set_digest("1001", "md5")
        self.rig.directory.invalidate()
        challenges = Phone(self.rig, "1001").send().headers.get_lines("www-authenticate")
        self.assertEqual([parse_challenge(v).algorithm for v in challenges], ["MD5"])
        self.assertEqual(Phone(self.rig, "1001", "right", algorithm="SHA-256").register().status,
                         403)
        self.assertEqual(Phone(self.rig, "1001", "right").register().status, 200)


class PerExtensionDigestTests(AuthTestCase):
    """``mssctl extension digest EXT sha-256``: that extension alone is challenged with, and
    may only answer with, SHA-256; the others and unknown users keep the default."""

    def setUp(self):
        super().setUp()
        self.rig.store.set_digest("1001", "sha-256")
        self.rig.directory.invalidate()

    def algorithms(self, number):
        response = Phone(self.rig, number).send()
        return [parse_challenge(v).algorithm
                for v in response.headers.get_lines("www-authenticate")]

    def test_challenge_follows_the_extension(self):
        self.assertEqual(self.algorithms("1001"), ["SHA-256"])
        self.assertEqual(self.algorithms("1002"), ["MD5"])
        self.assertEqual(self.algorithms("1999"), ["MD5"])     # unknown: the default

    def test_sha256_accepted_md5_refused(self):
        self.assertEqual(Phone(self.rig, "1001", "right", algorithm="SHA-256").register().status,
                         200)
        self.assertEqual(Phone(self.rig, "1001", "right").register().status, 403)

    def test_both(self):
        self.rig.store.set_digest("1001", "both")
        self.rig.directory.invalidate()
        self.assertEqual(self.algorithms("1001"), ["MD5", "SHA-256"])
        self.assertEqual(Phone(self.rig, "1001", "right").register().status, 200)

    def test_back_to_default(self):
        self.rig.store.set_digest("1001", "")
        self.rig.directory.invalidate()
        self.assertEqual(self.algorithms("1001"), ["MD5"])


class RefusalTests(AuthTestCase):
    rig_options = {"threshold": 100}

    def test_wrong_password_and_unknown_user_look_the_same(self):
        wrong = Phone(self.rig, "1001", "wrong").register()
        unknown = Phone(self.rig, "1999", "wrong").register()
        self.assertEqual(wrong.status, 403)
        self.assertEqual((unknown.status, unknown.reason), (wrong.status, wrong.reason))
        self.assertEqual([n.lower() for n, _ in unknown.headers], [n.lower() for n, _ in wrong.headers])
        self.assertEqual(unknown.body, wrong.body)
        # the challenge for an unknown user is the same shape as for a real one
        a, b = Phone(self.rig, "1001").send(), Phone(self.rig, "1999").send()
        self.assertEqual([n for n, _ in a.headers], [n for n, _ in b.headers])

    def test_disabled_extension_refused_like_unknown(self):
        self.rig.store.set_enabled("1001", False)
        self.rig.directory.invalidate()
        self.assertEqual(Phone(self.rig, "1001", "right").register().status, 403)

    def test_credentials_of_another_user(self):
        phone = Phone(self.rig, "1002", "other")
        first = phone.send(to="1001")
        auth = phone.authorization(first)
        self.assertEqual(phone.send(auth=auth, to="1001").status, 403)
        self.assertEqual(self.rig.bindings.get("1001"), [])

    def test_digest_uri_must_match(self):
        phone = Phone(self.rig, "1001", "right")
        first = phone.send()
        auth = phone.authorization(first, uri="sip:elsewhere.example")
        self.assertEqual(phone.send(auth=auth).status, 403)

    def test_forged_nonce(self):
        phone = Phone(self.rig, "1001", "right")
        challenge = Challenge("Digest", REALM, "A" * 43, "MD5", ("auth",))
        auth = authorization(challenge, "1001", "right", "REGISTER", f"sip:{REALM}", "c1")
        self.assertEqual(phone.send(auth=auth).status, 403)

    def test_garbage_credentials(self):
        phone = Phone(self.rig, "1001", "right")
        self.assertEqual(phone.send(auth='Digest username="1001", realm=').status, 403)

    def test_other_realm_gets_a_challenge(self):
        phone = Phone(self.rig, "1001", "right")
        other = ('Digest username="1001", realm="elsewhere", nonce="x", uri="sip:mss.test", '
                 'response="00", qop=auth, nc=00000001, cnonce="c"')
        response = phone.send(auth=other)
        # RFC 3261 §22.4: credentials for another realm are ignored, so the request has none
        # for ours and is challenged; a phone moved from another server is not a failure
        self.assertEqual(response.status, 401)
        self.assertEqual(self.rig.auth.failures, 0)


class NonceTests(AuthTestCase):

    def test_stale_nonce(self):
        phone = Phone(self.rig, "1001", "right")
        first = phone.send()
        self.rig.advance(301)                       # nonce_lifetime is 300 s
        response = phone.send(auth=phone.authorization(first))
        self.assertEqual(response.status, 401)
        stale = [parse_challenge(v) for v in response.headers.get_lines("www-authenticate")]
        self.assertTrue(all(c.stale for c in stale))
        # the fresh nonce works
        self.assertEqual(phone.send(auth=phone.authorization(response)).status, 200)
        self.assertEqual(self.rig.auth.failures, 0)     # stale is not a failure

    def test_stale_with_wrong_password_is_a_failure(self):
        phone = Phone(self.rig, "1001", "wrong")
        first = phone.send()
        self.rig.advance(301)
        self.assertEqual(phone.send(auth=phone.authorization(first)).status, 403)

    def test_nc_replay(self):
        phone = Phone(self.rig, "1001", "right")
        self.assertEqual(phone.register().status, 200)
        replay = phone.send(auth=phone.last_auth)      # same nonce, same nc, new CSeq
        self.assertEqual(replay.status, 401)
        self.assertTrue(parse_challenge(replay.headers.get("www-authenticate")).stale)
        self.assertEqual(self.rig.registrar.counters["registered"], 1)

    def test_nonce_reuse_with_higher_nc(self):
        phone = Phone(self.rig, "1001", "right")
        first = phone.send()
        self.assertEqual(phone.send(auth=phone.authorization(first, nc=1)).status, 200)
        self.assertEqual(phone.send(auth=phone.authorization(first, nc=2)).status, 200)


class BanTests(AuthTestCase):
    rig_options = {"threshold": 3, "allow": ["198.51.100.0/24"]}

    def test_ban_after_threshold_then_silence(self):
        phone = Phone(self.rig, "1001", "wrong")
        for _ in range(3):
            self.assertEqual(phone.register().status, 403)
        self.assertEqual([b.address for b in self.rig.banned], ["192.0.2.10"])
        self.assertTrue(self.rig.bans.is_banned("192.0.2.10", self.rig.clock.seconds()))
        # silence, even with the right password and from another port
        self.assertIsNone(phone.send())
        self.assertIsNone(Phone(self.rig, "1001", "right", port=6000).register())
        # another address is served
        self.assertEqual(Phone(self.rig, "1001", "right", host="192.0.2.77").register().status, 200)

    def test_ban_expires(self):
        phone = Phone(self.rig, "1001", "wrong")
        for _ in range(3):
            phone.register()
        self.rig.advance(601)                       # ban_time 600 s
        phone.password = "right"
        self.assertEqual(phone.register().status, 200)

    def test_failures_outside_window_do_not_add_up(self):
        phone = Phone(self.rig, "1001", "wrong")
        phone.register()
        phone.register()
        self.rig.advance(61)                        # ban_window 60 s
        self.assertEqual(phone.register().status, 403)
        self.assertEqual(self.rig.banned, [])
        self.assertIsNotNone(phone.send())

    def test_unknown_users_count_too(self):
        for n in range(3):
            Phone(self.rig, f"19{n:02d}", "x").register()
        self.assertEqual(len(self.rig.banned), 1)

    def test_allow_list_exempt(self):
        phone = Phone(self.rig, "1001", "wrong", host="198.51.100.7")
        for _ in range(10):
            self.assertEqual(phone.register().status, 403)
        self.assertEqual(self.rig.banned, [])
        phone.password = "right"
        self.assertEqual(phone.register().status, 200)


class SecretTests(SynchronousTestCase):

    def test_secret_created_once_private(self):
        path = os.path.join(self.mktemp(), "secret.key")
        first = load_secret(path)
        self.assertEqual(len(first), 32)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(load_secret(path), first)

    def test_short_secret_replaced(self):
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"short")
        self.assertEqual(len(load_secret(path)), 32)

    def test_nonces_survive_restart(self):
        """A nonce issued before a restart still verifies after it (same secret file)."""
        rig = Rig()
        self.addCleanup(rig.store.close)
        rig.add("1001", "right")
        phone = Phone(rig, "1001", "right")
        first = phone.send()
        rig.auth = Authenticator(rig.directory, rig.bans, realm=REALM, secret=b"s" * 32)
        rig.registrar.auth = rig.auth
        self.assertEqual(phone.send(auth=phone.authorization(first)).status, 200)
        self.assertGreater(rig.clock.seconds(), START - 1)
