# -*- test-case-name: tests.transport.test_shell -*-
"""SIP over UDP (RFC 3261 §18): one datagram, one message; bytes only, no decisions."""
from __future__ import annotations

from errno import ECONNREFUSED, EINTR, EMSGSIZE

from twisted.internet import error
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from mss.sip.address import Address


class SipDatagramProtocol(DatagramProtocol):
    log = Logger()
    noisy = False

    def __init__(self, shell):
        self.shell = shell
        # Hosts the port's write() has accepted (an IP address of the port's family): later
        # datagrams to them go straight to the socket, without write()'s per-call address
        # checks (three isIPAddress calls, a few microseconds a response).
        self._hosts: set[str] = set()

    def datagramReceived(self, data: bytes, addr) -> None:
        if len(data) < 4 or not data.strip(b"\r\n\x00 "):
            return                     # keep-alive (CRLF, RFC 5626 §4.4.1) or noise
        self.shell.data_received(data, Address("udp", addr[0], addr[1]))

    def send(self, data: bytes, dest: Address) -> None:
        host = dest.host
        try:
            if host in self._hosts:
                try:
                    self.transport.socket.sendto(data, (host, dest.port))
                    return
                except OSError as e:            # as udp.Port.write handles them
                    if e.errno == ECONNREFUSED:
                        return
                    if e.errno == EMSGSIZE:
                        raise error.MessageLengthError("message too long")
                    if e.errno != EINTR:
                        raise
            self.transport.write(data, (host, dest.port))
            if host not in self._hosts:
                if len(self._hosts) >= 4096:
                    self._hosts.clear()
                self._hosts.add(host)
        except (OSError, ValueError) as e:     # ValueError: a host name where an address belongs
            self.log.warn("UDP send to {peer} failed: {error}", peer=str(dest), error=e)
            self.shell.connection_failed(dest)
