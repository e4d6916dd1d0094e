"""SIP over UDP (RFC 3261 §18): one datagram, one message; bytes only, no decisions."""
# -*- test-case-name: tests.transport.test_shell -*-
from __future__ import annotations

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from mss.sip.address import Address


class SipDatagramProtocol(DatagramProtocol):
    log = Logger()
    noisy = False

    def __init__(self, shell):
        self.shell = shell

    def datagramReceived(self, data: bytes, addr) -> None:
        if len(data) < 4 or not data.strip(b"\r\n\x00 "):
            return                     # keep-alive (CRLF, RFC 5626 §4.4.1) or noise
        self.shell.data_received(data, Address("udp", addr[0], addr[1]))

    def send(self, data: bytes, dest: Address) -> None:
        try:
            self.transport.write(data, (dest.host, dest.port))
        except (OSError, ValueError) as e:     # ValueError: a host name where an address belongs
            self.log.warn("UDP send to {peer} failed: {error}", peer=str(dest), error=e)
            self.shell.connection_failed(dest)
