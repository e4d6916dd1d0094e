# -*- test-case-name: tests.transport.test_shell -*-
"""The thin Twisted shell around the sans-I/O SIP core.

``SipShell`` owns the core, the listening transports and one ``IDelayedCall``: after every
input (datagram, TCP message, timer) it drains the core's outgoing messages to the right
transport and re-arms the delayed call at the core's next deadline. Nothing here decides
anything about SIP.
"""
from __future__ import annotations

import socket

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from mss.sip.address import Address
from mss.transport.tcp import SipStreamFactory
from mss.transport.udp import SipDatagramProtocol


def route_source_address(peer_host: str, bind: str) -> str:
    """Our address on the route toward ``peer_host`` (what goes into Via and Contact)."""
    if bind not in ("0.0.0.0", "::"):
        return bind
    family = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((peer_host, 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class SipShell(service.Service):
    """Binds the core to UDP/TCP listeners and the reactor clock."""

    log = Logger()

    def __init__(self, core, reactor, bind: str = "0.0.0.0", port: int = 5060,
                 transports=("udp", "tcp"), advertise: str = "", tcp_idle_timeout: float = 600):
        self.core = core
        self.reactor = reactor
        self.bind = bind
        self.port = port
        self.transports = tuple(transports)
        self.advertise = advertise
        self.tcp_idle_timeout = tcp_idle_timeout
        self.udp = None
        self.udp_port = None
        self.tcp_factory = None
        self.tcp_port = None
        self._delayed = None
        self._deadline = None
        self._turn_end = None
        self._route_cache: dict[str, str] = {}
        core.local_host = self.local_host
        core.wake = self.wake

    # -- service -----------------------------------------------------------------------------
    def startService(self):
        super().startService()
        ports = {}
        if "udp" in self.transports:
            self.udp = SipDatagramProtocol(self)
            self.udp_port = self.reactor.listenUDP(self.port, self.udp, interface=self.bind,
                                                   maxPacketSize=65535)
            ports["udp"] = self.udp_port.getHost().port
        if "tcp" in self.transports:
            self.tcp_factory = SipStreamFactory(self, idle_timeout=self.tcp_idle_timeout)
            tcp_port_number = ports.get("udp", self.port)
            self.tcp_port = self.reactor.listenTCP(tcp_port_number, self.tcp_factory,
                                                   interface=self.bind)
            ports["tcp"] = self.tcp_port.getHost().port
        if "udp" not in ports:
            ports["udp"] = ports["tcp"]
        if "tcp" not in ports:
            ports["tcp"] = ports["udp"]
        self.core.ports = ports
        self.log.info("SIP listening on {bind} port {port} ({transports})", bind=self.bind,
                      port=ports["udp"], transports=",".join(self.transports))

    def stopService(self):
        super().stopService()
        if self._turn_end is not None and self._turn_end.active():
            self._turn_end.cancel()
            self._end_turn()            # what this turn queued still goes out
        if self._delayed is not None and self._delayed.active():
            self._delayed.cancel()
        self._delayed = None
        waits = []
        if self.udp_port is not None:
            waits.append(self.udp_port.stopListening())
        if self.tcp_port is not None:
            waits.append(self.tcp_port.stopListening())
            self.tcp_factory.close_all()
        return defer.gatherResults([w for w in waits if w is not None])

    @property
    def sip_port(self) -> int:
        return self.core.ports.get("udp") or self.core.ports.get("tcp")

    def local_host(self, peer_host: str) -> str:
        if self.advertise:
            return self.advertise
        host = self._route_cache.get(peer_host)
        if host is None:
            host = route_source_address(peer_host, self.bind)
            if len(self._route_cache) > 1024:
                self._route_cache.clear()
            self._route_cache[peer_host] = host
        return host

    # -- input from transports -----------------------------------------------------------------
    def data_received(self, data: bytes, source: Address) -> None:
        try:
            self.core.receive(data, source, self.reactor.seconds())
        except Exception:
            self.log.failure("SIP core failed on a message from {peer}", peer=str(source))
        self.wake()

    def message_received(self, msg, source: Address) -> None:
        """A message already parsed by the stream framer."""
        try:
            self.core.receive_message(msg, source, self.reactor.seconds())
        except Exception:
            self.log.failure("SIP core failed on a message from {peer}", peer=str(source))
        self.wake()

    def parse_error(self, error, data: bytes, source: Address) -> None:
        self.core._parse_error(error, data, source)
        self.wake()

    def connection_failed(self, destination: Address) -> None:
        self.core.transport_error(destination, self.reactor.seconds())
        self.wake()

    def _timer(self):
        self._delayed = None
        self._deadline = None
        try:
            self.core.handle_timer(self.reactor.seconds())
        except Exception:
            self.log.failure("SIP core failed in a timer")
        self.wake()

    # -- the end of the turn ---------------------------------------------------------------------
    def wake(self) -> None:
        """Something was queued: end this reactor turn with ``core.end_turn`` and a flush, once
        however many messages the turn read (a coalesced ``callLater(0)``)."""
        if self._turn_end is None:
            self._turn_end = self.reactor.callLater(0, self._end_turn)

    def _end_turn(self) -> None:
        self._turn_end = None
        try:
            self.core.end_turn(self.reactor.seconds())
        except Exception:
            self.log.failure("SIP core failed at the end of a turn")
        self.flush()

    # -- output --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Send what the core queued, then re-arm the timer at the core's next deadline (the
        last step of ``_end_turn``; called directly only where the reactor stops next)."""
        for data, dest in self.core.datagrams_to_send():
            if dest.transport == "udp":
                if self.udp is not None:
                    self.udp.send(data, dest)
            elif self.tcp_factory is not None:
                self.tcp_factory.send(data, dest)
        deadline = self.core.get_timer()
        if deadline is None:
            if self._delayed is not None and self._delayed.active():
                self._delayed.cancel()
            self._delayed = self._deadline = None
            return
        if self._deadline is not None and self._deadline <= deadline and self._delayed is not None:
            return                      # already armed earlier; it will re-arm when it fires
        if self._delayed is not None and self._delayed.active():
            self._delayed.cancel()
        self._deadline = deadline
        self._delayed = self.reactor.callLater(max(0.0, deadline - self.reactor.seconds()),
                                               self._timer)
