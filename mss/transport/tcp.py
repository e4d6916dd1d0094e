# -*- test-case-name: tests.transport.test_tcp -*-
"""SIP over TCP (RFC 3261 §18.3): framing by Content-Length, connection reuse.

Several messages in one segment and one message over many segments are both normal. CRLF
keep-alives between messages are skipped; a double-CRLF ping gets a single-CRLF pong (RFC 5626
§4.4.1). Messages go back on the connection a request came on (``Address.connection``);
otherwise on a connection to that address, opened on demand.
"""
from __future__ import annotations

from twisted.internet import endpoints
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from mss.sip.address import Address
from mss.sip.errors import SIPParseError
from mss.sip.parser import Incomplete, parse


class SipStreamProtocol(Protocol):
    log = Logger()

    def __init__(self, factory, peer_key=None):
        self.factory = factory
        self.buffer = b""
        self.address: Address | None = None
        self.peer_key = peer_key
        self._idle = None

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.address = Address("tcp", peer.host, peer.port, self)
        self.factory.connection_made(self)
        self._touch()

    def connectionLost(self, reason):
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self.factory.connection_lost(self)

    def _touch(self):
        reactor = self.factory.reactor
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.factory.idle_timeout)
        else:
            self._idle = reactor.callLater(self.factory.idle_timeout, self._idle_close)

    def _idle_close(self):
        self._idle = None
        self.transport.loseConnection()

    def dataReceived(self, data: bytes):
        self._touch()
        buf = self.buffer + data if self.buffer else data
        shell = self.factory.shell
        while buf:
            if buf[:1] in (b"\r", b"\n"):
                stripped = buf.lstrip(b"\r\n")
                if buf.startswith(b"\r\n\r\n"):
                    self.transport.write(b"\r\n")          # RFC 5626 pong
                buf = stripped
                continue
            try:
                msg, used = parse(buf, True, shell.core.max_size, shell.core.max_headers)
            except Incomplete:
                break
            except SIPParseError as e:
                # the framing is lost: answer if we can, then close the connection
                shell.parse_error(e, buf, self.address)
                self.buffer = b""
                self.transport.loseConnection()
                return
            buf = buf[used:]
            shell.message_received(msg, self.address)
        self.buffer = buf
        if len(self.buffer) > shell.core.max_size + 4096:
            self.log.info("closing TCP connection from {peer}: message too large",
                          peer=str(self.address))
            self.buffer = b""
            self.transport.loseConnection()


class SipStreamFactory(Factory):
    """Accepts connections, and opens connections for messages to a new destination."""

    log = Logger()
    noisy = False

    def __init__(self, shell, idle_timeout: float = 600):
        self.shell = shell
        self.reactor = shell.reactor
        self.idle_timeout = idle_timeout
        self.connections: set[SipStreamProtocol] = set()
        self.by_peer: dict[tuple[str, int], SipStreamProtocol] = {}
        self.pending: dict[tuple[str, int], list[bytes]] = {}

    def buildProtocol(self, addr):
        return SipStreamProtocol(self)

    def connection_made(self, proto: SipStreamProtocol):
        self.connections.add(proto)
        key = proto.peer_key or (proto.address.host, proto.address.port)
        self.by_peer[key] = proto
        for data in self.pending.pop(key, []):
            proto.transport.write(data)

    def connection_lost(self, proto: SipStreamProtocol):
        self.connections.discard(proto)
        for key, p in list(self.by_peer.items()):
            if p is proto:
                del self.by_peer[key]

    def send(self, data: bytes, dest: Address) -> None:
        conn = dest.connection
        if conn is not None and conn in self.connections:
            conn.transport.write(data)
            return
        key = (dest.host, dest.port)
        proto = self.by_peer.get(key)
        if proto is not None:
            proto.transport.write(data)
            return
        if key in self.pending:
            self.pending[key].append(data)
            return
        self.pending[key] = [data]
        endpoint = endpoints.TCP4ClientEndpoint(self.reactor, dest.host, dest.port, timeout=10) \
            if ":" not in dest.host else endpoints.TCP6ClientEndpoint(self.reactor, dest.host, dest.port)
        d = endpoints.connectProtocol(endpoint, SipStreamProtocol(self, peer_key=key))

        def failed(failure):
            self.pending.pop(key, None)
            self.log.info("TCP connection to {peer} failed: {error}", peer=str(dest),
                          error=failure.getErrorMessage())
            self.shell.connection_failed(dest)
        d.addErrback(failed)

    def close_all(self) -> None:
        for proto in list(self.connections):
            proto.transport.loseConnection()
