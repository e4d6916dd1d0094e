# -*- test-case-name: tests.store.test_records -*-
"""Tests for mss.store.records: proxy parsing, trunk validation, routes' matching and translation."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.store.records import OutboundRoute, Trunk, TrunkError, check_digits, parse_proxy


def trunk(**changes) -> Trunk:
    values = dict(name="ims", domain="gd.ctcims.cn", account="+8675512345678", password="pw")
    values.update(changes)
    return Trunk(**values)


class ParseProxyTests(SynchronousTestCase):
    def test_forms(self):
        self.assertEqual(parse_proxy("10.0.0.1"), ("10.0.0.1", 5060, "udp"))
        self.assertEqual(parse_proxy("10.0.0.1:5070"), ("10.0.0.1", 5070, "udp"))
        self.assertEqual(parse_proxy("sbc.example:5080;transport=tcp"),
                         ("sbc.example", 5080, "tcp"))
        self.assertEqual(parse_proxy("sbc.example;transport=TCP"), ("sbc.example", 5060, "tcp"))
        self.assertEqual(parse_proxy("[2001:db8::1]:5062"), ("2001:db8::1", 5062, "udp"))
        self.assertEqual(parse_proxy("[2001:db8::1]"), ("2001:db8::1", 5060, "udp"))
        self.assertEqual(parse_proxy("2001:db8::1"), ("2001:db8::1", 5060, "udp"))

    def test_bad_values_are_trunk_errors(self):
        for text in ("", ":5060", "host:0", "host:65536", "host:abc", "host;transport=sctp",
                     "[2001:db8::1", "[]:5060", "[::1]x"):
            self.assertRaises(TrunkError, parse_proxy, text)


class TrunkTests(SynchronousTestCase):
    def test_username_is_the_auth_id_else_the_account(self):
        self.assertEqual(trunk(auth_id="+8675512345678@gd.ctcims.cn").username,
                         "+8675512345678@gd.ctcims.cn")
        self.assertEqual(trunk().username, "+8675512345678")

    def test_request_uri_forms(self):
        self.assertEqual(trunk().request_uri("0755123"), "sip:0755123@gd.ctcims.cn")
        self.assertEqual(trunk(uri_format="phone").request_uri("+86755"),
                         "sip:+86755@gd.ctcims.cn;user=phone")
        self.assertEqual(trunk(uri_format="tel").request_uri("+86755"), "tel:+86755")

    def test_allows_by_list_network_and_proxy_address(self):
        t = trunk(allow=("127.0.0.2", "10.9.0.0/16"))
        self.assertTrue(t.allows("127.0.0.2", None))
        self.assertTrue(t.allows("10.9.200.1", None))
        self.assertFalse(t.allows("10.10.0.1", None))
        self.assertFalse(t.allows("127.0.0.3", None))
        self.assertTrue(t.allows("127.0.0.3", "127.0.0.3"))
        self.assertFalse(t.allows("not-an-ip", None))
        self.assertFalse(trunk().allows("127.0.0.1", None))

    def test_validate_accepts_a_full_definition(self):
        t = trunk(proxy="127.0.0.2:5070;transport=tcp", auth_id="+86@gd", max_in=0, max_out=5,
                  allow=("127.0.0.2", "::1", "10.0.0.0/8"), prack="required",
                  uri_format="phone", identity="pai", expires=60)
        self.assertIs(t.validate(), t)

    def test_validate_refuses_bad_values(self):
        bad = [dict(name=""), dict(name="-x"), dict(name="a b"), dict(name="x" * 65),
               dict(domain=""), dict(domain="a b"), dict(domain="x@y"), dict(account=""),
               dict(proxy="host:99999"), dict(prack="always"), dict(uri_format="url"),
               dict(identity="rpid"), dict(max_in=-1), dict(max_out=-2), dict(expires=59),
               dict(expires=86401), dict(allow=("example.com",))]
        for changes in bad:
            self.assertRaises(TrunkError, trunk(**changes).validate)

    def test_password_not_in_repr(self):
        self.assertNotIn("s3cret", repr(trunk(password="s3cret")))


class RouteTests(SynchronousTestCase):
    def test_prefix_length_and_callers(self):
        r = OutboundRoute(id=1, prefix="00", trunks=("a",), length=12, extensions=("1001",))
        self.assertTrue(r.matches("008675512345", "1001"))
        self.assertFalse(r.matches("008675512345", "1002"))
        self.assertFalse(r.matches("00867551234", "1001"))
        self.assertFalse(r.matches("018675512345", "1001"))
        anyone = OutboundRoute(id=2, prefix="", trunks=("a",))
        self.assertTrue(anyone.matches("123", None))

    def test_strip_and_prepend(self):
        r = OutboundRoute(id=1, prefix="9", trunks=("a",), strip=1, prepend="+86")
        self.assertEqual(r.translate("90755123"), "+860755123")
        self.assertEqual(OutboundRoute(id=1, prefix="", trunks=()).translate("123"), "123")

    def test_check_digits(self):
        self.assertEqual(check_digits("+86755", "DID"), "+86755")
        self.assertEqual(check_digits("", "prefix"), "")
        for bad in ("12a", "++1", "1+2", "1" * 33, "1 2"):
            self.assertRaises(TrunkError, check_digits, bad, "DID")
