"""Test doubles for the media gateway: recording sockets and RTP packet building."""
import struct

from zope.interface import implementer

from mss.media.relay import ISocketFactory


class FakeSocket:
    def __init__(self, port):
        self.port = port
        self.sent = []

    def sendto(self, data, addr):
        self.sent.append((data, addr))


@implementer(ISocketFactory)
class FakeSockets:
    def __init__(self, refuse=()):
        self.open = {}
        self.refuse = set(refuse)

    def open_pair(self, port, rtp_handler, rtcp_handler):
        if port in self.refuse:
            raise OSError(98, "Address already in use")
        rtp, rtcp = FakeSocket(port), FakeSocket(port + 1)
        self.open[port] = (rtp, rtcp, rtp_handler, rtcp_handler)
        return rtp, rtcp

    def close_pair(self, rtp, rtcp):
        del self.open[rtp.port]

    def deliver(self, port, data, addr, now):
        self.open[port][2](data, addr, now)

    def deliver_rtcp(self, port, data, addr, now):
        self.open[port][3](data, addr, now)

    def sent(self, port):
        return self.open[port][0].sent


def rtp(seq, ts=None, pt=0, payload=b"\xff" * 160, ssrc=0x1234, marker=False):
    if ts is None:
        ts = seq * 160
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def offer_sdp(address, port, codecs="0 8 101", extra=""):
    return ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
            "m=audio %d RTP/AVP %s\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n%s"
            % (address, address, port, codecs, extra))
