# -*- test-case-name: tests.media.test_client -*-
"""Call control's side of the media gateway: the ``IMediaGateway`` seam and its implementations.

- ``NgClient`` talks the ``ng`` protocol over UDP to the built-in gateway, a remote one, or a
  real rtpengine. Each request gets a fresh cookie; it is resent unchanged (same cookie, so the
  gateway answers from its cache instead of executing twice) after 0.5, 1, 2 ... s until a reply
  arrives or ``timeout`` passes (``MediaTimeout``). An ``error`` reply fails the Deferred with
  ``MediaError(reason)``. Notifications the gateway sends (``media-timeout``) are acknowledged
  and handed to ``on_notify(message)``.
- The call core reaches it through ``mss.call.media.GatewayMedia`` (its ``IMediaAnchor``
  seam: SDP in, SDP out, fire-and-forget delete); ``[media] mode = "off"`` is
  ``mss.call.media.PassThroughMedia``.

All methods return Deferreds firing with the reply dictionary (``str`` values; ``sdp`` as bytes).
"""
from __future__ import annotations

import itertools
import os
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import Interface, implementer

from mss.media import ng
from mss.media.ng import MediaError, MediaTimeout


class IMediaGateway(Interface):
    def ping():
        """Fires with {"result": "pong"}."""

    def offer(call_id, from_tag, sdp, to_tag=None, flags=(), **extra):
        """SDP from the leg ``from_tag``; fires with the reply, ``sdp`` rewritten for the peer."""

    def answer(call_id, from_tag, to_tag, sdp, flags=(), **extra):
        """SDP answer from the leg ``to_tag``; fires with ``sdp`` rewritten for ``from_tag``."""

    def delete(call_id, from_tag=None, to_tag=None):
        """Free the call's ports; fires with its final statistics."""

    def query(call_id):
        """Fires with the call's statistics (tags, medias, totals, ``timed out``)."""

    def room_join(room, call_id, from_tag, sdp=None, codec=None):
        """Move a leg into a mixing room (``sdp``: create a leg that only talks to the room,
        the reply's ``sdp`` is for that leg's phone)."""

    def room_leave(call_id, from_tag):
        """Take a leg out of its room (back to plain relaying)."""

    def play_tone(call_id, from_tag, tone, duration_ms, sdp=None, codec=None):
        """Deferred[dict]: play a built-in tone (mss extension; see docs/media-protocol.md)."""

    def stop_tone(call_id, from_tag):
        """Deferred[dict]: stop the tone playing to that leg."""

    def room_query(room):
        """Fires with the room's participants."""


def _as_bytes(reply: dict) -> dict:
    if isinstance(reply.get("sdp"), str):
        reply["sdp"] = reply["sdp"].encode("utf-8", "surrogateescape")
    return reply


def _as_text(sdp) -> str:
    return sdp.decode("utf-8", "surrogateescape") if isinstance(sdp, bytes) else sdp


class _CommandsMixin:
    """The IMediaGateway methods as ng dictionaries; ``command(message)`` sends them."""

    def ping(self):
        return self.command({"command": "ping"})

    def offer(self, call_id, from_tag, sdp, to_tag=None, flags=(), **extra):
        msg = {"command": "offer", "call-id": call_id, "from-tag": from_tag, "sdp": _as_text(sdp)}
        if to_tag:
            msg["to-tag"] = to_tag
        if flags:
            msg["flags"] = list(flags)
        msg.update(extra)
        return self.command(msg).addCallback(_as_bytes)

    def answer(self, call_id, from_tag, to_tag, sdp, flags=(), **extra):
        msg = {"command": "answer", "call-id": call_id, "from-tag": from_tag, "to-tag": to_tag,
               "sdp": _as_text(sdp)}
        if flags:
            msg["flags"] = list(flags)
        msg.update(extra)
        return self.command(msg).addCallback(_as_bytes)

    def delete(self, call_id, from_tag=None, to_tag=None):
        msg = {"command": "delete", "call-id": call_id}
        if from_tag:
            msg["from-tag"] = from_tag
        if to_tag:
            msg["to-tag"] = to_tag
        return self.command(msg)

    def query(self, call_id):
        return self.command({"command": "query", "call-id": call_id})

    def room_join(self, room, call_id, from_tag, sdp=None, codec=None):
        msg = {"command": "room-join", "room": room, "call-id": call_id, "from-tag": from_tag}
        if sdp is not None:
            msg["sdp"] = _as_text(sdp)
        if codec:
            msg["codec"] = codec
        return self.command(msg).addCallback(_as_bytes)

    def room_leave(self, call_id, from_tag):
        return self.command({"command": "room-leave", "call-id": call_id, "from-tag": from_tag})

    def room_query(self, room):
        return self.command({"command": "room-query", "room": room})

    def play_tone(self, call_id, from_tag, tone, duration_ms, sdp=None, codec=None):
        """Play a built-in tone to the leg's phone; with ``sdp`` (a new call-id) create the
        leg first: the reply's ``sdp`` is the answer for that phone."""
        msg = {"command": "play-tone", "call-id": call_id, "from-tag": from_tag, "tone": tone,
               "duration": int(duration_ms)}
        if sdp is not None:
            msg["sdp"] = _as_text(sdp)
        if codec:
            msg["codec"] = codec
        return self.command(msg).addCallback(_as_bytes)

    def stop_tone(self, call_id, from_tag):
        return self.command({"command": "stop-tone", "call-id": call_id, "from-tag": from_tag})


class _ClientProtocol(DatagramProtocol):
    noisy = False

    def __init__(self, owner: "NgClient"):
        self.owner = owner

    def datagramReceived(self, data, addr):
        self.owner._received(data, addr)


@implementer(IMediaGateway)
class NgClient(_CommandsMixin, service.Service):
    """ng over UDP. ``NgClient(reactor, "127.0.0.1:22222")``; start it as a service (or
    ``startService()``) before use. ``address`` may be None until a child gateway reports
    the port it chose (commands fail with ``MediaError`` meanwhile); ``interface`` is where
    our own socket binds (default: loopback for a loopback gateway, else any)."""
    log = Logger()

    def __init__(self, reactor, control_address, *, timeout: float = 5.0,
                 first_retransmit: float = 0.5, on_notify: Callable[[dict], Any] | None = None,
                 interface: str | None = None):
        if isinstance(control_address, str):
            host, _, port = control_address.rpartition(":")
            control_address = (host.strip("[]"), int(port))
        self.reactor = reactor
        self.address = control_address
        self.interface = interface
        self.timeout = timeout
        self.first_retransmit = first_retransmit
        self.on_notify = on_notify
        self._ids = itertools.count(1)
        self._prefix = b"%x_" % os.getpid()
        self._pending: dict[bytes, list] = {}
        self._port = None
        self._protocol = _ClientProtocol(self)

    def startService(self):
        super().startService()
        interface = self.interface
        if interface is None:
            host = self.address[0] if self.address is not None else "127.0.0.1"
            interface = "::" if ":" in host else "0.0.0.0"
            if host.startswith("127."):
                interface = "127.0.0.1"
        self._port = self.reactor.listenUDP(0, self._protocol, interface=interface)

    def stopService(self):
        super().stopService()
        for cookie in list(self._pending):
            d, _, delayed = self._pending.pop(cookie)
            if delayed.active():
                delayed.cancel()
            d.errback(MediaTimeout("client stopped"))
        if self._port is not None:
            port, self._port = self._port, None
            return port.stopListening()

    def command(self, message: dict, timeout: float | None = None) -> defer.Deferred:
        """Send ``message``; ``timeout`` (default: the client's) bounds the retransmissions.
        Cancelling the Deferred stops them."""
        if self._port is None:
            return defer.fail(MediaError("media client is not started"))
        if self.address is None:
            return defer.fail(MediaError("media gateway is not ready"))
        timeout = self.timeout if timeout is None else timeout
        cookie = self._prefix + b"%d" % next(self._ids)
        datagram = ng.format(cookie, message)
        address = self.address

        def cancel(_):
            entry = self._pending.pop(cookie, None)
            if entry is not None and entry[2].active():
                entry[2].cancel()
        d = defer.Deferred(cancel)
        started = self.reactor.seconds()

        def send(interval: float) -> None:
            elapsed = self.reactor.seconds() - started
            if elapsed >= timeout:
                self._pending.pop(cookie, None)
                d.errback(MediaTimeout(f"no answer from media gateway {address[0]}:"
                                       f"{address[1]} to {message.get('command')} "
                                       f"after {elapsed:.1f} s"))
                return
            self._port.write(datagram, address)
            wait = min(interval, timeout - elapsed)
            self._pending[cookie] = [d, message, self.reactor.callLater(wait, send, interval * 2)]
        send(self.first_retransmit)
        return d

    def _received(self, data: bytes, addr) -> None:
        try:
            cookie, reply = ng.parse(data)
        except ng.NgError as e:
            self.log.warn("bad datagram from media gateway {peer}: {problem}", peer=addr,
                          problem=e.reason)
            return
        entry = self._pending.pop(cookie, None)
        if entry is not None:
            d, _, delayed = entry
            if delayed.active():
                delayed.cancel()
            if reply.get("result") == "error":
                d.errback(MediaError(str(reply.get("error-reason", "error"))))
            else:
                d.callback(reply)
            return
        if "notify" in reply:
            self._port.write(ng.format(cookie, {"result": "ok"}), addr)
            if self.on_notify is not None:
                try:
                    self.on_notify(reply)
                except Exception:
                    self.log.failure("media notification handler failed")
        # else: a late reply to a request we gave up on or already answered
