# -*- test-case-name: tests.sip.test_sdp -*-
from twisted.trial.unittest import SynchronousTestCase

from mss.sip import sdp

OFFER = (b"v=0\r\n"
         b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
         b"s=-\r\n"
         b"c=IN IP4 192.0.2.10\r\n"
         b"t=0 0\r\n"
         b"a=tool:x\r\n"
         b"m=audio 49170 RTP/AVP 0 8 101\r\n"
         b"a=rtpmap:0 PCMU/8000\r\n"
         b"a=rtpmap:8 PCMA/8000\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\n"
         b"a=fmtp:101 0-15\r\n"
         b"a=ptime:20\r\n"
         b"a=x-unknown:keep me\r\n"
         b"a=sendrecv\r\n"
         b"m=video 0 RTP/AVP 31\r\n")


class ParseTests(SynchronousTestCase):
    def test_sections_and_endpoint(self):
        d = sdp.parse(OFFER)
        self.assertEqual(len(d.media), 2)
        self.assertEqual(d.media[0].media, "audio")
        self.assertEqual(d.media[0].formats, ["0", "8", "101"])
        self.assertEqual(d.endpoint(0), sdp.Endpoint("192.0.2.10", 49170, "192.0.2.10", 49171, "IP4"))
        self.assertEqual(d.direction(0), "sendrecv")
        self.assertEqual(bytes(d), OFFER)

    def test_lf_only_and_media_level_connection_and_rtcp(self):
        text = ("v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n"
                "c=IN IP6 2001:db8::2\na=rtcp:4005 IN IP6 2001:db8::3\na=recvonly\n")
        d = sdp.parse(text.encode())
        self.assertEqual(d.endpoint(0), sdp.Endpoint("2001:db8::2", 4000, "2001:db8::3", 4005, "IP6"))
        self.assertEqual(d.direction(0), "recvonly")

    def test_session_direction_and_hold(self):
        d = sdp.parse(b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                      b"a=inactive\r\nm=audio 4000 RTP/AVP 0\r\n")
        self.assertEqual(d.direction(0), "inactive")
        self.assertTrue(d.endpoint(0).on_hold_address)

    def test_errors(self):
        for bad in [b"", b"o=x\r\n", b"v=0\r\nm=audio x RTP/AVP 0\r\n", b"v=0\r\nm=audio 1\r\n",
                    b"v=0\r\ngarbage\r\n", b"v=0\r\nc=IN IPX 1.2.3.4\r\n",
                    b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n", b"v=0\r\n" + b"a=x\r\n" * 3000]:
            with self.assertRaises(sdp.SdpError, msg=bad):
                sdp.parse(bad)


class RewriteTests(SynchronousTestCase):
    def test_rewrite_ipv4(self):
        d = sdp.parse(OFFER)
        out = sdp.rewrite_media(d, "203.0.113.5", [(30000, 30001), (30002, 30003)])
        text = bytes(out).decode()
        self.assertIn("o=alice 2890844526 2890844526 IN IP4 203.0.113.5\r\n", text)
        self.assertIn("c=IN IP4 203.0.113.5\r\n", text)
        self.assertIn("m=audio 30000 RTP/AVP 0 8 101\r\n", text)
        self.assertIn("m=video 0 RTP/AVP 31\r\n", text)     # rejected stays rejected
        for keep in ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
                     "a=x-unknown:keep me", "a=tool:x", "a=ptime:20"]:
            self.assertIn(keep + "\r\n", text)
        self.assertNotIn("192.0.2.10", text)
        self.assertEqual(bytes(d), OFFER)                   # input unchanged

    def test_rewrite_rtcp_attribute_and_ipv6(self):
        d = sdp.parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"
                      b"m=audio 4000 RTP/AVP 8\r\nc=IN IP4 192.0.2.1\r\na=rtcp:4001\r\n")
        out = sdp.rewrite_media(d, "2001:db8::9", [(20000, 20001)])
        text = bytes(out).decode()
        self.assertIn("c=IN IP6 2001:db8::9\r\n", text)
        self.assertEqual(text.count("c=IN IP6 2001:db8::9"), 2)
        self.assertIn("a=rtcp:20001 IN IP6 2001:db8::9\r\n", text)
        self.assertEqual(sdp.parse(bytes(out)).endpoint(0),
                         sdp.Endpoint("2001:db8::9", 20000, "2001:db8::9", 20001, "IP6"))

    def test_session_connection_added_and_direction(self):
        d = sdp.parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"
                      b"m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\na=sendrecv\r\n")
        out = sdp.rewrite_media(d, "198.51.100.1", [(20000, 20001)], origin=False,
                                directions=["sendonly"])
        text = bytes(out).decode()
        self.assertTrue(text.startswith("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
                                        "c=IN IP4 198.51.100.1\r\nt=0 0\r\n"))
        self.assertEqual(out.direction(0), "sendonly")
        self.assertEqual(text.count("sendonly"), 1)
        self.assertNotIn("sendrecv", text)

    def test_nonstandard_rtcp_port_is_announced(self):
        d = sdp.parse(OFFER)
        out = sdp.rewrite_media(d, "203.0.113.5", [(30000, 30009), None])
        self.assertIn("a=rtcp:30009\r\n", bytes(out).decode())
        self.assertEqual(out.endpoint(0).rtcp_port, 30009)

    def test_rtcp_mux_keeps_rtcp_on_the_rtp_port(self):
        d = sdp.parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                      b"m=audio 4000 RTP/AVP 0\r\na=rtcp:4000\r\na=rtcp-mux\r\n")
        out = sdp.rewrite_media(d, "198.51.100.1", [(20000, 20001)])
        self.assertIn("a=rtcp:20000 IN IP4 198.51.100.1\r\n", bytes(out).decode())
        self.assertEqual(out.endpoint(0).rtcp_port, 20000)
