# -*- test-case-name: tests.sip.test_uri -*-
"""SIP, SIPS, tel and opaque URIs (mss.sip.uri)."""
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.errors import SIPParseError
from mss.sip.uri import URI, parse_uri, split_host_port, valid_host


class SIPURITests(SynchronousTestCase):
    def test_parts(self):
        uri = parse_uri("sip:alice:secret@example.com:5070;transport=TCP;lr?Subject=hi&X=%20y")
        self.assertEqual(uri.scheme, "sip")
        self.assertEqual((uri.user, uri.password), ("alice", "secret"))
        self.assertEqual((uri.host, uri.port), ("example.com", 5070))
        self.assertEqual(uri.params, (("transport", "TCP"), ("lr", None)))
        self.assertEqual(uri.param("transport"), "TCP")
        self.assertEqual(uri.param("lr"), "")
        self.assertIsNone(uri.param("maddr"))
        self.assertTrue(uri.has_param("lr"))
        self.assertEqual(uri.headers, "Subject=hi&X=%20y")
        self.assertEqual(uri.hostport, "example.com:5070")
        self.assertTrue(uri.is_sip)

    def test_host_only_and_sips(self):
        uri = parse_uri("sips:registrar.example.com")
        self.assertEqual((uri.scheme, uri.user, uri.host, uri.port),
                         ("sips", None, "registrar.example.com", None))

    def test_scheme_is_case_insensitive_but_text_is_kept(self):
        uri = parse_uri("SIP:Bob@Example.COM;Transport=udp")
        self.assertEqual(uri.scheme, "sip")
        self.assertEqual(uri.params, (("transport", "udp"),))
        self.assertEqual(str(uri), "SIP:Bob@Example.COM;Transport=udp")
        self.assertEqual(uri.key(), parse_uri("sip:Bob@example.com;transport=UDP").key())
        self.assertNotEqual(uri.key(), parse_uri("sip:bob@example.com").key())

    def test_escapes(self):
        uri = parse_uri("sip:%61lice%20b@example.com")
        self.assertEqual(uri.user, "%61lice%20b")
        self.assertEqual(uri.number, "alice b")
        self.assertEqual(uri.key(), parse_uri("sip:alice%20b@example.com").key())
        for bad in ("sip:a%4@example.com", "sip:a%GG@example.com", "sip:h?X=%zz",
                    "sip:user@example.com;p=%4"):
            self.assertRaises(SIPParseError, parse_uri, bad)

    def test_user_with_telephone_subscriber_params(self):
        uri = parse_uri("sip:+15551234;phone-context=example.com@gw.example.com;user=phone")
        self.assertEqual(uri.user, "+15551234;phone-context=example.com")
        self.assertEqual(uri.number, "+15551234")
        self.assertEqual(uri.param("user"), "phone")

    def test_ipv6(self):
        uri = parse_uri("sip:alice@[2001:db8::10]:5061;transport=tls")
        self.assertEqual((uri.host, uri.port), ("[2001:db8::10]", 5061))
        self.assertEqual(parse_uri("sip:[::1]").host, "[::1]")
        self.assertEqual(parse_uri("sip:[2001:db8::10:5070]").port, None)   # RFC 5118 §4.3
        for bad in ("sip:2001:db8::10", "sip:[2001:db8:::1]", "sip:[fe80::1%25eth0]",
                    "sip:[fe80::1%eth0]", "sip:[::1", "sip:[::1]x", "sip:[192.0.2.1]"):
            self.assertRaises(SIPParseError, parse_uri, bad)

    def test_ports(self):
        self.assertEqual(parse_uri("sip:h:0").port, 0)
        self.assertEqual(parse_uri("sip:h:65535").port, 65535)
        for bad in ("sip:h:65536", "sip:h:", "sip:h:-1", "sip:h:5o60", "sip:h:\u0665060",
                    "sip:h:123456"):
            self.assertRaises(SIPParseError, parse_uri, bad)

    def test_bad_uris(self):
        for bad in ("", "sip", "sip:", "sip:user@", "sip:@example.com", "sip:ho st",
                    "sip:a@b@c", "sip:<a@b>", 'sip:"a"@b', "sip:a@b;", "sip:a@b;=x",
                    "sip:a@b;p=", "sip:a@b?", "sip:-bad-.example.com", "sip:256.1.1.1",
                    "sip:example..com", "1sip:x", "sip:a@b\r\n", "sip:a@ex\x00ample.com",
                    "sip:a@b;p=a b", "unknown:", "sip:exa_mple.com"):
            self.assertRaises(SIPParseError, parse_uri, bad)

    def test_hosts(self):
        for good in ("example.com", "example.com.", "a", "a-b.c", "192.0.2.1", "[::1]",
                     "x1.example.com", "[::ffff:192.0.2.1]"):
            self.assertTrue(valid_host(good), good)
        for bad in ("", "1.2.3", "1.2.3.4.5", "example.com-", "-a.com", "[::1", "a..b",
                    "ex ample.com", "999.1.1.1", "a.1com"):
            self.assertFalse(valid_host(bad), bad)

    def test_split_host_port(self):
        self.assertEqual(split_host_port("h:5060"), ("h", 5060))
        self.assertEqual(split_host_port("[::1]:5060"), ("[::1]", 5060))
        self.assertEqual(split_host_port("[::1]"), ("[::1]", None))
        for bad in ("h:x", "[::1]5060", "[::1", "h:99999"):
            self.assertRaises(ValueError, split_host_port, bad)

    def test_round_trip_keeps_text(self):
        for text in ("sip:alice@example.com", "sips:%61lice@EXAMPLE.com:05061;LR;foo=Bar?h=v",
                     "sip:[2001:db8::1]:5060;maddr=[2001:db8::2]", "tel:+1-201-555-0123",
                     "urn:service:sos", "sip:user:@host"):
            self.assertEqual(str(parse_uri(text)), text)

    def test_cached_values_are_shared(self):
        self.assertIs(parse_uri("sip:cache@example.com"), parse_uri("sip:cache@example.com"))


class BuildTests(SynchronousTestCase):
    def test_evolve_serializes_from_parts(self):
        uri = parse_uri("sip:alice@Example.com;transport=tcp")
        moved = uri.evolve(host="192.0.2.7", port=5080)
        self.assertEqual(str(moved), "sip:alice@192.0.2.7:5080;transport=tcp")
        self.assertEqual(str(uri.with_param("lr", None)), "sip:alice@Example.com;transport=tcp;lr")
        self.assertEqual(str(uri.with_param("transport", "udp")),
                         "sip:alice@Example.com;transport=udp")
        self.assertEqual(str(uri.without_param("transport")), "sip:alice@Example.com")
        self.assertEqual(str(uri), "sip:alice@Example.com;transport=tcp")   # unchanged

    def test_built_uris(self):
        self.assertEqual(str(URI("sip", user="bob", host="example.com")), "sip:bob@example.com")
        self.assertEqual(str(URI("sips", user="bob", password="pw", host="h", port=5061,
                                 params=(("transport", "tls"),), headers="a=b")),
                         "sips:bob:pw@h:5061;transport=tls?a=b")
        self.assertEqual(str(URI("sip", host="::1", port=5060)), "sip:[::1]:5060")
        self.assertEqual(str(URI("sip", host="[::1]")), "sip:[::1]")
        self.assertEqual(str(URI("tel", user="+15551234")), "tel:+15551234")
        built = URI("sip", user="alice", host="example.com")
        self.assertEqual(parse_uri(str(built)), built)

    def test_equality_ignores_raw(self):
        self.assertEqual(parse_uri("sip:a@b;lr"), URI("sip", user="a", host="b",
                                                      params=(("lr", None),)))


class OtherSchemeTests(SynchronousTestCase):
    def test_tel(self):
        uri = parse_uri("tel:+1-201-555-0123;ext=12")
        self.assertEqual((uri.scheme, uri.user), ("tel", "+1-201-555-0123"))
        self.assertEqual(uri.number, "+1-201-555-0123")
        self.assertEqual(uri.param("ext"), "12")
        self.assertFalse(uri.is_sip)
        local = parse_uri("tel:7042;phone-context=example.com")
        self.assertEqual(local.param("phone-context"), "example.com")
        for bad in ("tel:", "tel:+", "tel:abc@x", "tel:+1 555"):
            self.assertRaises(SIPParseError, parse_uri, bad)

    def test_opaque(self):
        uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
        self.assertEqual(uri.scheme, "nobodyknowsthisscheme")
        self.assertEqual(uri.opaque, "totallyopaquecontent")
        self.assertEqual(str(uri), "nobodyKnowsThisScheme:totallyopaquecontent")
        self.assertEqual(str(URI("urn", opaque="service:sos")), "urn:service:sos")
        self.assertEqual(parse_uri("soap.beep://192.0.2.103:3002").scheme, "soap.beep")
