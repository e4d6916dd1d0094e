# -*- test-case-name: tests.sip.test_headers -*-
"""Header names and structured values (mss.sip.headers)."""
from twisted.trial.unittest import SynchronousTestCase

from mss.sip import headers as H
from mss.sip.errors import SIPParseError
from mss.sip.uri import URI, parse_uri


class NameTests(SynchronousTestCase):
    def test_compact_forms(self):
        for short, full in (("v", "via"), ("f", "from"), ("t", "to"), ("i", "call-id"),
                            ("m", "contact"), ("l", "content-length"), ("c", "content-type"),
                            ("k", "supported"), ("s", "subject"), ("e", "content-encoding"),
                            ("o", "event"), ("r", "refer-to"), ("b", "referred-by"),
                            ("u", "allow-events"), ("x", "session-expires")):
            self.assertEqual(H.canonical(short), full)
            self.assertEqual(H.canonical(short.upper()), full)
        self.assertEqual(H.canonical("MaX-fOrWaRdS"), "max-forwards")

    def test_pretty(self):
        self.assertEqual(H.pretty("i"), "Call-ID")
        self.assertEqual(H.pretty("cseq"), "CSeq")
        self.assertEqual(H.pretty("www-authenticate"), "WWW-Authenticate")
        self.assertEqual(H.pretty("record-route"), "Record-Route")
        self.assertEqual(H.pretty("x-custom-thing"), "X-Custom-Thing")


class SplitTests(SynchronousTestCase):
    def test_plain(self):
        self.assertEqual(H.split_values("INVITE, ACK ,BYE"), ["INVITE", "ACK", "BYE"])
        self.assertEqual(H.split_values(" one "), ["one"])

    def test_not_inside_quotes_or_angle_brackets(self):
        value = ('"Doe, John" <sip:j@example.com;x=a,b>;tag=1, <sip:k@example.com?h=1,2>, '
                 '"say \\"hi, there\\"" <sip:l@example.com>')
        self.assertEqual(H.split_values(value), [
            '"Doe, John" <sip:j@example.com;x=a,b>;tag=1',
            "<sip:k@example.com?h=1,2>",
            '"say \\"hi, there\\"" <sip:l@example.com>'])

    def test_quoted_backslash_at_end(self):
        self.assertEqual(H.split_values('"a\\\\", b'), ['"a\\\\"', "b"])

    def test_unterminated_quote(self):
        self.assertRaises(SIPParseError, H.split_values, '"open, b')

    def test_token_list(self):
        self.assertEqual(H.parse_token_list("100rel, timer,,replaces "),
                         ["100rel", "timer", "replaces"])


class QuotedStringTests(SynchronousTestCase):
    def test_read_quoted(self):
        self.assertEqual(H.read_quoted('"abc" rest', 0), ("abc", 5))
        self.assertEqual(H.read_quoted('x"a\\"b\\\\c"', 1), ('a"b\\c', 10))
        self.assertEqual(H.read_quoted('"\\\x00"', 0), ("\x00", 4))
        for bad in ('"abc', '"abc\\"', '"abc\\'):
            self.assertRaises(SIPParseError, H.read_quoted, bad, 0)

    def test_quote_round_trip(self):
        for text in ('plain', 'with "quotes"', "back\\slash", ""):
            quoted = H.quote(text)
            self.assertEqual(H.read_quoted(quoted, 0), (text, len(quoted)))


class ParamTests(SynchronousTestCase):
    def test_simple(self):
        self.assertEqual(H.parse_params(";tag=abc;LR;Q=0.5"),
                         (("tag", "abc"), ("lr", None), ("q", "0.5")))

    def test_lws_and_quoted_values(self):
        self.assertEqual(H.parse_params(' ; tag = abc ;  lr ; x="a;b c"'),
                         (("tag", "abc"), ("lr", None), ("x", '"a;b c"')))
        self.assertEqual(H.parse_params(";received=[2001:db8::1]"),
                         (("received", "[2001:db8::1]"),))

    def test_bad(self):
        for bad in (";", ";;", "tag=1", ";=x", ";a b=1", ";a=", ';a="x', ";a=<x>", ";a=b c",
                    ";a=b,c"):
            self.assertRaises(SIPParseError, H.parse_params, bad)

    def test_format(self):
        self.assertEqual(H.format_params((("tag", "a"), ("lr", None))), ";tag=a;lr")


class NameAddrTests(SynchronousTestCase):
    def test_quoted_display(self):
        na = H.parse_name_addr('"Alice \\"A\\" Smith" <sip:alice@example.com>;tag=88sja8x')
        self.assertEqual(na.display, 'Alice "A" Smith')
        self.assertEqual(na.uri, parse_uri("sip:alice@example.com"))
        self.assertEqual(na.tag, "88sja8x")

    def test_token_display(self):
        na = H.parse_name_addr("Bob  Smith<sip:bob@example.com>")
        self.assertEqual(na.display, "Bob Smith")
        self.assertIsNone(na.tag)

    def test_no_display(self):
        na = H.parse_name_addr("<sip:bob@example.com;transport=tcp>;expires=60;q=0.7")
        self.assertIsNone(na.display)
        self.assertEqual(na.uri.param("transport"), "tcp")
        self.assertEqual(na.params, (("expires", "60"), ("q", "0.7")))
        self.assertEqual(na.param("q"), "0.7")

    def test_addr_spec_params_belong_to_the_header(self):
        na = H.parse_name_addr("sip:carol@example.com;tag=1234")
        self.assertEqual(na.uri, parse_uri("sip:carol@example.com"))
        self.assertEqual(na.tag, "1234")
        self.assertEqual(H.parse_name_addr("tel:+15551234").uri.scheme, "tel")

    def test_fast_and_general_paths_agree(self):
        pairs = [('"Alice" <sip:a@b>;tag=1', ' "Alice"   <sip:a@b> ; tag = 1 '),
                 ("Bob <sip:b@c>", "Bob\t<sip:b@c>"),
                 ("<sip:x@y;lr>;q=1;flag", "<sip:x@y;lr> ;q=1 ;flag")]
        for fast, slow in pairs:
            self.assertEqual(H.parse_name_addr(fast), H.parse_name_addr(slow))

    def test_bad(self):
        for bad in ('"open <sip:a@b>', '"Alice" sip:a@b', "<sip:a@b", "Bell, Alex <sip:a@b>",
                    "sip:a@b?x=1", "sip:a@b c", "", "<>", "< sip:a@b >", "<sip:a@b> junk",
                    "<sip:a@b>;", '<sip:a@b>;tag="x'):
            self.assertRaises(SIPParseError, H.parse_name_addr, bad)

    def test_serialization(self):
        text = '"Alice"   <sip:a@example.com> ;tag=1'
        na = H.parse_name_addr(text)
        self.assertEqual(str(na), text.strip())
        self.assertEqual(str(na.with_param("tag", "2")), "Alice <sip:a@example.com>;tag=2")
        self.assertEqual(str(H.NameAddr(URI("sip", user="a", host="b"), 'Doe, "J"')),
                         '"Doe, \\"J\\"" <sip:a@b>')
        self.assertEqual(str(H.NameAddr(URI("sip", host="b"))), "<sip:b>")
        built = H.NameAddr(URI("sip", user="a", host="b"), "A B", (("tag", "x"),))
        self.assertEqual(H.parse_name_addr(str(built)), built)


class ViaTests(SynchronousTestCase):
    def test_fields(self):
        via = H.parse_via("SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK776asdhds;rport;"
                          "received=192.0.2.1;maddr=224.2.0.1;ttl=16")
        self.assertEqual((via.transport, via.host, via.port), ("UDP", "pc33.example.com", 5066))
        self.assertEqual(via.branch, "z9hG4bK776asdhds")
        self.assertEqual(via.param("rport"), "")
        self.assertEqual(via.param("received"), "192.0.2.1")
        self.assertEqual(via.param("maddr"), "224.2.0.1")
        self.assertEqual(via.param("ttl"), "16")
        self.assertEqual(via.sent_by, "pc33.example.com:5066")
        self.assertEqual(via.version, "2.0")

    def test_lws_everywhere(self):
        via = H.parse_via("SIP / 2.0 / tcp  host.example.com : 5060 ; branch = z9hG4bKx")
        self.assertEqual((via.transport, via.host, via.port, via.branch),
                         ("TCP", "host.example.com", 5060, "z9hG4bKx"))

    def test_fast_and_general_paths_agree(self):
        self.assertEqual(H.parse_via("SIP/2.0/UDP h:5060;branch=z9hG4bKa;rport=5061"),
                         H.parse_via("SIP / 2.0 / UDP h:5060 ;branch=z9hG4bKa ;rport=5061"))

    def test_ipv6_and_received(self):
        via = H.parse_via("SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;branch=x")
        self.assertEqual((via.host, via.port), ("[2001:db8::9:1]", 6050))
        self.assertEqual(via.param("received"), "2001:db8::9:255")
        self.assertEqual(H.parse_via("SIP/2.0/UDP h;received=[2001:db8::9:255]")
                         .param("received"), "[2001:db8::9:255]")

    def test_other_protocol_version(self):
        via = H.parse_via("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")
        self.assertEqual(via.version, "7.0")

    def test_bad(self):
        for bad in ("SIP/2.0/UDP", "SIP/2.0 host", "HTTP/1.1/TCP h", "SIP/2.0/UDP h:99999",
                    "SIP/2.0/UDP h;rport=99999", "SIP/2.0/UDP h;rport=x",
                    "SIP/2.0/UDP h;rport=\u0665", "SIP/2.0/UDP h;ttl=256", "SIP/2.0/UDP h;ttl",
                    "SIP/2.0/UDP h;maddr", "SIP/2.0/UDP h;maddr=bad..host",
                    "SIP/2.0/UDP h;received=not_an_ip", "SIP/2.0/UDP [::1;branch=x",
                    "SIP/2.0/UDP h;;", "SIP/2.0/UDP 192.0.2.15;;,", "SIP/2.0/UDP h h"):
            self.assertRaises(SIPParseError, H.parse_via, bad)

    def test_with_params(self):
        via = H.parse_via("SIP/2.0/UDP h:5060;branch=z9hG4bKa;rport")
        changed = via.with_params(received="192.0.2.9", rport="5062")
        self.assertEqual(str(changed),
                         "SIP/2.0/UDP h:5060;branch=z9hG4bKa;rport=5062;received=192.0.2.9")
        self.assertEqual(str(via), "SIP/2.0/UDP h:5060;branch=z9hG4bKa;rport")
        self.assertEqual(H.parse_via(str(changed)), changed)


class ScalarTests(SynchronousTestCase):
    def test_cseq(self):
        self.assertEqual(H.parse_cseq("4711 INVITE"), H.CSeq(4711, "INVITE"))
        self.assertEqual(H.parse_cseq("0009\t INVITE"), H.CSeq(9, "INVITE"))
        self.assertEqual(str(H.CSeq(1, "BYE")), "1 BYE")
        self.assertEqual(H.parse_cseq("2147483647 ACK").number, 2 ** 31 - 1)
        for bad in ("2147483648 ACK", "INVITE", "1", "1 INVITE x", "-1 BYE", "1.5 BYE",
                    "\u0661 BYE", "36893488147419103232 REGISTER", "1 BY E", "1 <BYE>"):
            self.assertRaises(SIPParseError, H.parse_cseq, bad)

    def test_int(self):
        self.assertEqual(H.parse_int(" 70 ", "Max-Forwards", 255), 70)
        for bad in ("256", "-1", "", "7a", "\u0667\u0660", "99999999999"):
            self.assertRaises(SIPParseError, H.parse_int, bad, "Max-Forwards", 255)
