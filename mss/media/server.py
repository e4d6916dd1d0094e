# -*- test-case-name: tests.media.test_server -*-
"""The gateway's Twisted shell: RTP sockets multiplexed on one epoll, and the control port.

``EpollSockets`` (an ``ISocketFactory``) binds the RTP/RTCP socket pairs and registers them
with a private ``select.epoll`` object; only that epoll descriptor is registered with the
reactor. When it becomes readable, ``doRead`` takes every ready socket from one ``poll(0)``,
reads one datagram from each (level-triggered: sockets with more queued are reported again)
and calls the endpoint's handler with a single timestamp for the batch. This keeps the
reactor's per-event overhead (logging context, selectable bookkeeping) off the per-packet path;
sends go straight to ``socket.sendto``. Linux only (epoll).

``ControlProtocol`` speaks the ``ng`` framing on the control port: a retransmitted request
(same cookie from the same source) gets the cached reply bytes; anything malformed gets an error
reply (or nothing when there is no cookie to answer with). It also sends the gateway's
notifications (``media-timeout``) to the controlling address, resending them until the
controller acknowledges (a datagram with the same cookie and a ``result``).

``MediaGatewayService`` assembles both around a ``Gateway``.
"""
from __future__ import annotations

import itertools
import select
import socket

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer
from twisted.internet.interfaces import IReadDescriptor

from mss.media import ng
from mss.media.ports import PortAllocator
from mss.media.relay import Gateway, ISocketFactory
from mss.media.supervision import Reporter

RECV_SIZE = 4096
MAX_ROUNDS = 16
NOTIFY_RETRIES = 3
NOTIFY_INTERVAL = 2.0


@implementer(ISocketFactory, IReadDescriptor)
class EpollSockets:
    log = Logger()

    def __init__(self, reactor, bind: str = "0.0.0.0", rcvbuf: int = 0):
        self.reactor = reactor
        self.bind = bind
        self.family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.rcvbuf = rcvbuf
        self._epoll = select.epoll()
        self._handlers: dict[int, tuple] = {}
        self._seconds = reactor.seconds
        self.errors = 0
        self._reading = False

    # IReadDescriptor
    def fileno(self) -> int:
        return self._epoll.fileno()

    def logPrefix(self) -> str:
        return "rtp"

    def connectionLost(self, reason) -> None:
        self._reading = False

    def doRead(self) -> None:
        handlers = self._handlers
        poll = self._epoll.poll
        # Keep polling while packets keep coming (bounded), so that one reactor wake-up
        # serves many packets under load: the reactor's per-wake-up cost is the larger part.
        for _ in range(MAX_ROUNDS):
            ready = poll(0, 1024)
            if not ready:
                return
            now = self._seconds()
            for fd, _ in ready:
                entry = handlers.get(fd)
                if entry is None:
                    continue
                recvfrom, handler = entry
                try:
                    data, addr = recvfrom(RECV_SIZE)
                except OSError:
                    continue            # spurious wake-up, or an error queued on the socket
                try:
                    handler(data, addr, now)
                except OSError:
                    self.errors += 1    # sendto failed (e.g. a full send buffer): packet lost
                except Exception:
                    self.errors += 1
                    self.log.failure("RTP handler failed")

    def start(self) -> None:
        if not self._reading:
            self.reactor.addReader(self)
            self._reading = True

    def stop(self) -> None:
        if self._reading:
            self.reactor.removeReader(self)
            self._reading = False
        for recvfrom, _ in list(self._handlers.values()):
            recvfrom.__self__.close()
        self._handlers.clear()

    # ISocketFactory
    def _socket(self, port: int):
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            if self.rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.setblocking(False)
            sock.bind((self.bind, port))
        except OSError:
            sock.close()
            raise
        return sock

    def open_pair(self, port: int, rtp_handler, rtcp_handler) -> tuple:
        rtp = self._socket(port)
        try:
            rtcp = self._socket(port + 1)
        except OSError:
            rtp.close()
            raise
        for sock, handler in ((rtp, rtp_handler), (rtcp, rtcp_handler)):
            self._handlers[sock.fileno()] = (sock.recvfrom, handler)
            self._epoll.register(sock.fileno(), select.EPOLLIN)
        return rtp, rtcp

    def close_pair(self, rtp_sock, rtcp_sock) -> None:
        for sock in (rtp_sock, rtcp_sock):
            fd = sock.fileno()
            if fd >= 0:
                self._handlers.pop(fd, None)
                try:
                    self._epoll.unregister(fd)
                except (OSError, ValueError):
                    pass
            sock.close()


class ControlProtocol(DatagramProtocol):
    """The ng control port of one gateway (or of the front process, see mss.media.workers)."""
    log = Logger()
    noisy = False

    def __init__(self, handler, clock, cache: ng.CookieCache | None = None):
        self.handler = handler          # handler(message, source) -> reply dict
        self.clock = clock
        self.cache = cache or ng.CookieCache()
        self._notify_ids = itertools.count(1)
        self._unacked: dict[bytes, object] = {}

    def datagramReceived(self, data: bytes, addr) -> None:
        now = self.clock.seconds()
        try:
            cookie, payload = ng.split_cookie(data)
        except ng.NgError:
            return                      # nothing to answer with
        cached = self.cache.get(addr, cookie, now)
        if cached is not None:
            if cached is not ng.CookieCache.PENDING:
                self.transport.write(cached, addr)
            return
        try:
            _, message = ng.parse(data)
        except ng.NgError as e:
            reply = ng.error(e.reason)
        else:
            if "command" not in message and cookie in self._unacked:
                self._unacked.pop(cookie).cancel()
                return
            try:
                reply = self.handler(message, addr)
            except Exception:
                self.log.failure("ng command failed: {command}", command=message.get("command"))
                reply = ng.error("internal error")
            if isinstance(reply, Deferred):
                # answered later (the front waits for a worker): drop retransmissions meanwhile
                self.cache.put(addr, cookie, ng.CookieCache.PENDING, now)
                reply.addErrback(self._failed, message)
                reply.addCallback(self._reply, addr, cookie)
                return
        self._reply(reply, addr, cookie)

    def _failed(self, failure, message) -> dict:
        self.log.failure("ng command failed: {command}", failure, command=message.get("command"))
        return ng.error("internal error")

    def _reply(self, reply: dict, addr, cookie: bytes) -> None:
        datagram = ng.format(cookie, reply)
        self.cache.put(addr, cookie, datagram, self.clock.seconds())
        if self.transport is not None:
            self.transport.write(datagram, addr)

    def notify(self, address, message: dict) -> None:
        cookie = b"mssn%d" % next(self._notify_ids)
        datagram = ng.format(cookie, message)

        def send(attempt: int) -> None:
            if self.transport is None:
                self._unacked.pop(cookie, None)
                return
            self.transport.write(datagram, address)
            if attempt < NOTIFY_RETRIES:
                self._unacked[cookie] = self.clock.callLater(NOTIFY_INTERVAL, send, attempt + 1)
            else:
                self._unacked.pop(cookie, None)
        send(1)

    def stopProtocol(self) -> None:
        for delayed in self._unacked.values():
            if delayed.active():
                delayed.cancel()
        self._unacked.clear()


def raise_file_limit() -> None:
    """Two descriptors per RTP/RTCP pair: allow as many as the hard limit permits."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class MediaGatewayService(service.Service):
    """One gateway process: control port + RTP sockets + Gateway (``workers = 1``)."""
    log = Logger()

    def __init__(self, reactor, *, control: str, rtp_ports: tuple[int, int],
                 public_address: str, bind: str = "0.0.0.0", media_timeout: float = 60.0,
                 reporter=None):
        self.reactor = reactor
        self.reporter = reporter if reporter is not None else Reporter()
        self.control = split_address(control)
        self.sockets = EpollSockets(reactor, bind)
        self.gateway = Gateway(clock=reactor, sockets=self.sockets,
                               ports=PortAllocator(*rtp_ports), public_address=public_address,
                               media_timeout=media_timeout)
        self.protocol = ControlProtocol(self.gateway.handle, reactor)
        self.gateway.notify = self.protocol.notify
        self.port = None

    def startService(self) -> None:
        super().startService()
        raise_file_limit()
        host, port = self.control
        try:
            self.port = self.reactor.listenUDP(port, self.protocol, interface=host)
        except CannotListenError as e:
            self.reporter.failed(f"cannot listen on control {host}:{port}: {e.socketError}")
            return
        self.sockets.start()
        self.gateway.start()
        bound = self.port.getHost().port
        self.log.info("media gateway: control {host}:{port}, RTP {low}-{high}, address {address}",
                      host=host, port=bound, low=self.gateway.ports.low,
                      high=self.gateway.ports.high, address=self.gateway.public_address)
        self.reporter.ready(f"{host}:{bound}")

    def stopService(self):
        super().stopService()
        self.gateway.stop()
        self.sockets.stop()
        if self.port is not None:
            d = self.port.stopListening()
            self.port = None
            return d
