# -*- test-case-name: tests.media.test_relay -*-
"""The media gateway's command logic: calls, legs, port pairs, SDP rewriting, rooms, timeouts.

``Gateway.handle(message, source)`` executes one ``ng`` command dictionary and returns the
reply dictionary (see docs/media-protocol.md). It owns:

- calls by ``call-id``; each call has legs by tag (``from-tag`` / ``to-tag``); an offer creates
  the offerer's leg and a pending peer leg that gets its tag from the answer's ``to-tag``;
- per leg and media section a ``MediaEndpoint`` with an RTP/RTCP port pair from the
  ``PortAllocator``, opened through the injected socket factory and kept for the life of the
  call (re-INVITEs and hold/resume reuse them; ``delete`` frees them);
- SDP rewriting: the SDP of leg X goes to X's peer, so it is rewritten with the *peer's* port
  pairs (where the peer's phone must send) and the gateway's public address;
- mixing rooms (``mss.media.mixer.Room``) that legs join and leave, ticked every 20 ms;
- tones (``mss.media.tones``): ``play-tone`` sends a built-in tone to one leg's phone, frame
  by frame every 20 ms, for a given duration, on an existing leg or on a leg created for it
  (a call that a service answers itself);
- the media timeout: every few seconds calls without RTP for ``media_timeout`` seconds (and
  without signalling for as long) are marked ``timed out`` in ``query`` and reported once to the
  address that last sent a command for the call, through ``notify(address, message)``. A call
  on hold (a stream's SDP is sendonly/recvonly/inactive or c=0.0.0.0) may be silent for
  ``hold_timeout`` seconds instead (phones often send nothing while held).

Timers use the injected ``clock`` (an ``IReactorTime``); sockets come from ``sockets``
(``ISocketFactory``), so tests run with ``task.Clock`` and recording sockets.
"""
from __future__ import annotations

import ipaddress
import time
from typing import Any, Callable

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import Interface

from mss.media.mixer import PCMA, PCMU, Room
from mss.media.ng import NgError
from mss.media.ports import PortAllocator, PortsExhausted
from mss.media.stream import MediaEndpoint
from mss.media.tones import TONES, TonePlayer
from mss.sip import sdp as sdplib

BIND_ATTEMPTS = 8
MAX_CATCH_UP = 5
MAX_TONE_MS = 3_600_000
ICE_ATTRIBUTES = ("ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "candidate",
                  "end-of-candidates", "remote-candidates", "ice-mismatch")


class ISocketFactory(Interface):
    def open_pair(port: int, rtp_handler: Callable, rtcp_handler: Callable) -> tuple:
        """Bind RTP on ``port`` and RTCP on ``port + 1``; deliver datagrams to the handlers as
        ``handler(data, addr, now)``. Returns (rtp_sock, rtcp_sock) with ``sendto``; raises
        OSError when the OS refuses."""

    def close_pair(rtp_sock: Any, rtcp_sock: Any) -> None:
        """Stop reading and close both sockets."""


class Leg:
    __slots__ = ("call_id", "tag", "endpoints", "peer", "created")

    def __init__(self, call_id: str, tag: str, now: float):
        self.call_id = call_id
        self.tag = tag
        self.endpoints: list[MediaEndpoint | None] = []
        self.peer: Leg | None = None
        self.created = now


class Call:
    __slots__ = ("call_id", "legs", "created", "last_signal", "controller", "timed_out")

    def __init__(self, call_id: str, now: float):
        self.call_id = call_id
        self.legs: dict[str, Leg] = {}
        self.created = now
        self.last_signal = now
        self.controller = None
        self.timed_out = False

    def endpoints(self):
        for leg in self.legs.values():
            for ep in leg.endpoints:
                if ep is not None:
                    yield ep


def _text(msg: dict, key: str, required: bool = True) -> str | None:
    value = msg.get(key)
    if value is None or value == "":
        if required:
            raise NgError(f"missing {key}")
        return None
    if not isinstance(value, str):
        raise NgError(f"{key} must be a string")
    return value


def _list(msg: dict, key: str) -> list[str]:
    value = msg.get(key, [])
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise NgError(f"{key} must be a list")
    return [v for v in value if isinstance(v, str)]


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise NgError(f"bad address {text!r}, expected ip:port")
    if not 0 < number < 65536:
        raise NgError(f"bad port in {text!r}")
    return host, number


class Gateway:
    log = Logger()

    def __init__(self, *, clock, sockets, ports: PortAllocator, public_address: str,
                 media_timeout: float = 60.0, hold_timeout: float = 3600.0,
                 notify: Callable | None = None,
                 wallclock: Callable[[], float] = time.time):
        self.clock = clock
        self.sockets = sockets
        self.ports = ports
        self.public_address = public_address
        self.family = sdplib.family_of(public_address)
        self.media_timeout = media_timeout
        self.hold_timeout = max(hold_timeout, media_timeout)
        self.notify = notify
        self.wallclock = wallclock
        self.calls: dict[str, Call] = {}
        self.rooms: dict[str, Room] = {}
        self._mixing: LoopingCall | None = None
        self.players: dict[MediaEndpoint, TonePlayer] = {}
        self._toning: LoopingCall | None = None
        self._checking: LoopingCall | None = None
        self.check_interval = max(0.5, min(5.0, media_timeout / 4))
        self.started = clock.seconds()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._checking = LoopingCall(self.check_timeouts)
        self._checking.clock = self.clock
        self._checking.start(self.check_interval, now=False)

    def stop(self) -> None:
        for call_id in list(self.calls):
            self._delete_call(self.calls[call_id])
        if self._checking is not None and self._checking.running:
            self._checking.stop()
        self._stop_mixing()
        self._stop_toning()

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, msg: dict, source: Any = None) -> dict:
        command = msg.get("command")
        handler = self.COMMANDS.get(command) if isinstance(command, str) else None
        if handler is None:
            return {"result": "error", "error-reason": f"unknown command {command!r}"}
        try:
            return handler(self, msg, source)
        except NgError as e:
            return {"result": "error", "error-reason": e.reason}
        except sdplib.SdpError as e:
            return {"result": "error", "error-reason": f"bad SDP: {e.reason}"}

    def ping(self, msg, source):
        return {"result": "pong"}

    # -- offer / answer -------------------------------------------------------------------------

    def offer(self, msg, source):
        call_id = _text(msg, "call-id")
        from_tag = _text(msg, "from-tag")
        to_tag = _text(msg, "to-tag", required=False)
        desc = self._parse_sdp(msg)
        now = self.clock.seconds()
        call = self.calls.get(call_id)
        new_call = call is None
        if new_call:
            call = Call(call_id, now)
            self.calls[call_id] = call
        author = call.legs.get(from_tag)
        if author is None:
            author = call.legs[from_tag] = Leg(call_id, from_tag, now)
        if to_tag and to_tag in call.legs and to_tag != from_tag:
            peer = call.legs[to_tag]
        elif author.peer is not None:
            peer = author.peer
        else:
            peer = Leg(call_id, to_tag or "", now)
            if to_tag:
                call.legs[to_tag] = peer
        author.peer, peer.peer = peer, author
        try:
            out = self._apply(author, peer, desc, msg)
        except NgError:
            if new_call:
                self._delete_call(call)
            raise
        self._signal(call, source, now)
        return {"result": "ok", "sdp": bytes(out)}

    def answer(self, msg, source):
        call_id = _text(msg, "call-id")
        from_tag = _text(msg, "from-tag")
        to_tag = _text(msg, "to-tag")
        desc = self._parse_sdp(msg)
        call = self.calls.get(call_id)
        if call is None or from_tag not in call.legs:
            raise NgError("Unknown call-id or from-tag")
        offerer = call.legs[from_tag]
        author = call.legs.get(to_tag)
        if author is None:
            author = offerer.peer
            if author is None:
                raise NgError("no offer for this answer")
            if author.tag and author.tag in call.legs and call.legs[author.tag] is author:
                del call.legs[author.tag]        # a later forked answer takes the leg over
            author.tag = to_tag
            call.legs[to_tag] = author
        author.peer, offerer.peer = offerer, author
        out = self._apply(author, offerer, desc, msg)
        self._signal(call, source, self.clock.seconds())
        return {"result": "ok", "sdp": bytes(out)}

    def _parse_sdp(self, msg) -> sdplib.SessionDescription:
        text = msg.get("sdp")
        if not isinstance(text, str) or not text:
            raise NgError("missing sdp")
        return sdplib.parse(text)

    def _signal(self, call: Call, source, now: float) -> None:
        call.last_signal = now
        if source is not None:
            call.controller = source
        call.timed_out = False

    def _apply(self, author: Leg, peer: Leg, desc: sdplib.SessionDescription, msg) -> Any:
        """Take ``author``'s SDP, make sure both legs have endpoints, return the SDP for peer."""
        flags = set(_list(msg, "flags"))
        replace = set(_list(msg, "replace"))
        symmetric = "asymmetric" not in flags
        ports: list[tuple[int, int] | None] = []
        for i, section in enumerate(desc.media):
            if section.port == 0:
                ports.append(None)
                self._set_remote(author, i, None, symmetric)
                continue
            ep_author = self._endpoint(author, i)
            ep_peer = self._endpoint(peer, i)
            ep_author.peer, ep_peer.peer = ep_peer, ep_author
            endpoint = self._checked_endpoint(desc, i)
            ep_author.set_remote((endpoint.address, endpoint.port),
                                 (endpoint.rtcp_address, endpoint.rtcp_port), symmetric)
            ep_author.on_hold = endpoint.on_hold_address or desc.direction(i) != "sendrecv"
            rates, dtmf = {}, set()
            for value in section.attributes("rtpmap"):
                pt, _, codec = value.partition(" ")
                name, _, rate = codec.partition("/")
                if pt.isdigit() and rate.split("/")[0].isdigit():
                    rates[int(pt)] = int(rate.split("/")[0])
                    if name.lower() == "telephone-event":
                        dtmf.add(int(pt))
            ep_author.clock_rates = rates
            ep_author.no_jitter_pts = frozenset(dtmf)
            ep_author.formats = [int(f) for f in section.formats if f.isdigit()]
            ports.append((ep_peer.port, ep_peer.port + 1))
        if "ICE" in msg and msg.get("ICE") == "remove":
            for section in desc.media:
                section.lines = [l for l in section.lines if not (
                    l.kind == "a" and l.value.split(":")[0] in ICE_ATTRIBUTES)]
            desc.session = [l for l in desc.session if not (
                l.kind == "a" and l.value.split(":")[0] in ICE_ATTRIBUTES)]
        return sdplib.rewrite_media(desc, self.public_address, ports,
                                    origin="origin" in replace)

    def _checked_endpoint(self, desc: sdplib.SessionDescription, index: int) -> sdplib.Endpoint:
        """The stream's endpoint; only IP literals of our family (a host name would make every
        sendto a DNS lookup)."""
        endpoint = desc.endpoint(index)
        if endpoint is None:
            raise NgError(f"media {index + 1} has no connection address")
        for address in (endpoint.address, endpoint.rtcp_address):
            try:
                family = sdplib.family_of(address)
            except ValueError:
                raise NgError(f"media {index + 1}: {address!r} is not an IP address")
            if family != self.family:
                raise NgError(f"media {index + 1}: {address} is not {self.family} like the "
                              f"gateway's address {self.public_address}")
        return endpoint

    def _set_remote(self, leg: Leg, index: int, rtp, symmetric: bool) -> None:
        if index < len(leg.endpoints) and leg.endpoints[index] is not None:
            leg.endpoints[index].set_remote(rtp, None, symmetric)

    def _endpoint(self, leg: Leg, index: int) -> MediaEndpoint:
        while len(leg.endpoints) <= index:
            leg.endpoints.append(None)
        ep = leg.endpoints[index]
        if ep is None:
            ep = leg.endpoints[index] = self._open(leg, index)
        return ep

    def _open(self, leg: Leg, index: int) -> MediaEndpoint:
        for _ in range(BIND_ATTEMPTS):
            try:
                port = self.ports.allocate()
            except PortsExhausted as e:
                self.log.warn("RTP ports exhausted for {call_id}: {problem}",
                              call_id=leg.call_id, problem=str(e))
                raise NgError("Ran out of ports")
            ep = MediaEndpoint(leg, index, port, None, None)
            try:
                ep.sock, ep.rtcp_sock = self.sockets.open_pair(port, ep.rtp_received,
                                                               ep.rtcp_received)
            except OSError as e:
                self.ports.release(port)
                self.log.warn("cannot bind RTP port pair {port}: {problem}", port=port,
                              problem=str(e))
                continue
            return ep
        raise NgError("cannot bind RTP ports")

    # -- delete / query / list --------------------------------------------------------------------

    def delete(self, msg, source):
        call_id = _text(msg, "call-id")
        call = self.calls.get(call_id)
        if call is None:
            raise NgError("Unknown call-id")
        reply = self._describe(call)
        self._delete_call(call)
        return reply

    def _delete_call(self, call: Call) -> None:
        for ep in list(call.endpoints()):
            self._close(ep)
        for leg in call.legs.values():
            if leg.peer is not None:
                for ep in leg.peer.endpoints:
                    if ep is not None and ep.sock is not None:
                        self._close(ep)
        self.calls.pop(call.call_id, None)

    def _close(self, ep: MediaEndpoint) -> None:
        if ep.room is not None:
            self._leave(ep)
        if ep.tone is not None:
            self._stop_tone(ep)
        if ep.sock is not None:
            self.sockets.close_pair(ep.sock, ep.rtcp_sock)
            ep.sock = ep.rtcp_sock = None
            self.ports.release(ep.port)
        if ep.peer is not None:
            ep.peer.peer = None
            ep.peer = None

    def query(self, msg, source):
        call_id = _text(msg, "call-id")
        call = self.calls.get(call_id)
        if call is None:
            raise NgError("Unknown call-id")
        return self._describe(call)

    def _describe(self, call: Call) -> dict:
        now = self.clock.seconds()
        wall = self.wallclock() - now
        tags = {}
        totals = {"RTP": {"packets": 0, "bytes": 0, "errors": 0, "lost": 0},
                  "RTCP": {"packets": 0, "bytes": 0, "errors": 0}}
        legs = list(call.legs.values())
        for leg in legs:
            if leg.peer is not None and leg.peer not in legs:
                legs.append(leg.peer)
        for leg in legs:
            medias = []
            for ep in leg.endpoints:
                if ep is None:
                    continue
                stats = ep.stats(now)
                medias.append({"index": ep.index + 1, "streams": [stats],
                               "room": ep.room.name if ep.room is not None else ""})
                for key in ("packets", "bytes", "errors", "lost"):
                    totals["RTP"][key] += stats["stats"][key]
                for key in ("packets", "bytes", "errors"):
                    totals["RTCP"][key] += stats["rtcp"][key]
            tags[leg.tag] = {"tag": leg.tag, "created": int(leg.created + wall), "medias": medias}
        return {"result": "ok", "call-id": call.call_id, "created": int(call.created + wall),
                "last signal": int(call.last_signal + wall),
                "timed out": 1 if call.timed_out else 0, "tags": tags, "totals": totals}

    def list_calls(self, msg, source):
        limit = msg.get("limit", 32)
        if not isinstance(limit, int) or limit < 0:
            raise NgError("limit must be a non-negative integer")
        return {"result": "ok", "calls": list(self.calls)[:limit]}

    # -- rooms ------------------------------------------------------------------------------------

    def _audio_endpoint(self, msg) -> MediaEndpoint:
        call_id = _text(msg, "call-id")
        tag = _text(msg, "from-tag")
        call = self.calls.get(call_id)
        if call is None or tag not in call.legs:
            raise NgError("Unknown call-id or from-tag")
        for ep in call.legs[tag].endpoints:
            if ep is not None and ep.sock is not None:
                return ep
        raise NgError("leg has no media")

    def room_join(self, msg, source):
        name = _text(msg, "room")
        now = self.clock.seconds()
        reply: dict = {"result": "ok", "room": name}
        address = _text(msg, "address", required=False)
        if address is not None:
            # a participant on another worker: a port of ours that exchanges RTP with it
            host, port = _host_port(address)
            call_id = _text(msg, "call-id")
            tag = _text(msg, "from-tag")
            call = self.calls.get(call_id)
            if call is None:
                call = self.calls[call_id] = Call(call_id, now)
            leg = call.legs.get(tag) or Leg(call_id, tag, now)
            call.legs[tag] = leg
            ep = self._endpoint(leg, 0)
            ep.set_remote((host, port), (host, port + 1), True)
            ep.formats = [int(f) for f in _list(msg, "codecs") if f.isdigit()] or ep.formats
            self._signal(call, source, now)
            reply["port"] = ep.port
        elif isinstance(msg.get("sdp"), str) and msg.get("call-id") not in self.calls:
            # a leg that only talks to the room (an operator, a conference caller)
            call_id = _text(msg, "call-id")
            tag = _text(msg, "from-tag")
            desc = self._parse_sdp(msg)
            call = self.calls[call_id] = Call(call_id, now)
            leg = call.legs[tag] = Leg(call_id, tag, now)
            try:
                ports = []
                for i, section in enumerate(desc.media):
                    if section.port == 0 or section.media != "audio" or ports and any(ports):
                        ports.append(None)
                        continue
                    where = self._checked_endpoint(desc, i)
                    ep = self._endpoint(leg, i)
                    ep.set_remote((where.address, where.port),
                                  (where.rtcp_address, where.rtcp_port), True)
                    ep.formats = [int(f) for f in section.formats if f.isdigit()]
                    ports.append((ep.port, ep.port + 1))
                if not any(ports):
                    raise NgError("no audio stream in sdp")
            except NgError:
                self._delete_call(call)
                raise
            self._signal(call, source, now)
            reply["sdp"] = bytes(sdplib.rewrite_media(desc, self.public_address, ports))
        if address is None:
            ep = self._audio_endpoint(msg)
        try:
            return self._join(ep, name, msg, reply)
        except NgError:
            if "sdp" in reply or address is not None:
                self._delete_call(self.calls[ep.leg.call_id])   # created by this command
            raise

    def _join(self, ep: MediaEndpoint, name: str, msg, reply: dict) -> dict:
        if ep.bridge is not None:
            raise NgError("leg is bridged to another worker's room")
        if ep.room is not None:
            if ep.room.name == name:
                return reply
            self._leave(ep)
        codec = msg.get("codec")
        if codec in ("PCMU", "PCMA"):
            pt = PCMU if codec == "PCMU" else PCMA
        elif ep.last_pt in (PCMU, PCMA):
            pt = ep.last_pt
        else:
            pt = next((f for f in ep.formats if f in (PCMU, PCMA)), None)
            if pt is None:
                raise NgError("leg has no G.711 codec (PCMU or PCMA) to mix")
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name)
        room.add(ep, pt)
        self._start_mixing()
        self.log.info("{call_id} {tag} joined room {room} ({count} in room)",
                      call_id=ep.leg.call_id, tag=ep.leg.tag, room=name, count=len(room))
        return reply

    def room_leave(self, msg, source):
        ep = self._audio_endpoint(msg)
        if ep.room is None:
            raise NgError("leg is not in a room")
        self._leave(ep)
        return {"result": "ok"}

    def _leave(self, ep: MediaEndpoint) -> None:
        room = ep.room
        room.remove(ep)
        if not len(room):
            self.rooms.pop(room.name, None)
            if not self.rooms:
                self._stop_mixing()

    def room_query(self, msg, source):
        name = _text(msg, "room")
        room = self.rooms.get(name)
        if room is None:
            raise NgError("Unknown room")
        return {"result": "ok", **room.describe()}

    def room_list(self, msg, source):
        return {"result": "ok", "rooms": sorted(self.rooms)}

    def bridge(self, msg, source):
        """Send a leg's audio to (and take its audio from) a room port on another worker."""
        ep = self._audio_endpoint(msg)
        address = _text(msg, "address", required=False)
        if address is None:
            ep.bridge = None
        else:
            if ep.room is not None:
                self._leave(ep)
            ep.bridge = _host_port(address)
        return {"result": "ok"}

    def _start_mixing(self) -> None:
        if self._mixing is None:
            self._mixing = LoopingCall.withCount(self.mix)
            self._mixing.clock = self.clock
            self._mixing.start(0.02, now=False)

    def _stop_mixing(self) -> None:
        if self._mixing is not None:
            if self._mixing.running:
                self._mixing.stop()
            self._mixing = None

    def mix(self, frames: int = 1) -> None:
        """Mix ``frames`` 20 ms frames: more than one when the reactor was late, so that the
        participants still get 50 packets a second (at most 5 at once: a longer stall is lost)."""
        for _ in range(min(frames, MAX_CATCH_UP)):
            for room in list(self.rooms.values()):
                room.tick()

    # -- tones ----------------------------------------------------------------------------------

    def play_tone(self, msg, source):
        """Play a built-in tone to the phone of leg (call-id, from-tag); with ``sdp`` and an
        unknown call-id, first create that leg (it talks only to the tone) and answer it."""
        name = _text(msg, "tone")
        if name not in TONES:
            raise NgError(f"unknown tone {name!r}: one of {', '.join(sorted(TONES))}")
        duration = msg.get("duration")
        if not isinstance(duration, int) or isinstance(duration, bool) \
                or not 20 <= duration <= MAX_TONE_MS:
            raise NgError(f"duration must be an integer from 20 to {MAX_TONE_MS} (ms)")
        codec = msg.get("codec")
        if codec is not None and codec not in ("PCMU", "PCMA"):
            raise NgError("codec must be PCMU or PCMA")
        wanted = None if codec is None else (PCMU if codec == "PCMU" else PCMA)
        reply: dict = {"result": "ok", "tone": name, "duration": duration}
        call_id = _text(msg, "call-id")
        if call_id not in self.calls and isinstance(msg.get("sdp"), str):
            ep, pt, play = self._tone_leg(call_id, _text(msg, "from-tag"), wanted, msg, reply)
        else:
            ep = self._audio_endpoint(msg)
            if ep.room is not None or ep.bridge is not None:
                raise NgError("leg is in a mixing room")
            pt = self._g711(ep, wanted)
            play = True
        self._signal(self.calls[call_id], source, self.clock.seconds())
        reply["codec"] = "PCMU" if pt == PCMU else "PCMA"
        if ep.tone is not None:
            self._stop_tone(ep)
        if play:
            ep.tone = self.players[ep] = TonePlayer(ep, name, pt, duration)
            self._start_toning()
        reply["playing"] = 1 if play else 0
        self.log.info("{call_id} {tag}: tone {tone} for {duration} ms ({codec})",
                      call_id=call_id, tag=ep.leg.tag, tone=name, duration=duration,
                      codec=reply["codec"])
        return reply

    @staticmethod
    def _g711(ep: MediaEndpoint, wanted: int | None) -> int:
        if wanted is not None:
            return wanted
        if ep.last_pt in (PCMU, PCMA):
            return ep.last_pt
        pt = next((f for f in ep.formats if f in (PCMU, PCMA)), None)
        if pt is None:
            raise NgError("leg has no G.711 codec (PCMU or PCMA) to play")
        return pt

    def _tone_leg(self, call_id: str, tag: str, wanted: int | None, msg, reply: dict):
        """A new call with one leg for the offer in ``msg["sdp"]``; its answer goes in
        ``reply["sdp"]``: the first plain-RTP audio stream with PCMU or PCMA, answered with
        that codec alone and ``a=sendonly`` (``inactive`` when the offer does not receive);
        the other streams are rejected. Returns (endpoint, payload type, play?)."""
        desc = self._parse_sdp(msg)
        chosen = None
        for i, section in enumerate(desc.media):
            if section.media != "audio" or section.port == 0 \
                    or section.proto not in ("RTP/AVP", "RTP/AVPF"):
                continue
            formats = [int(f) for f in section.formats if f.isdigit()]
            pt = wanted if wanted in formats else \
                next((f for f in formats if f in (PCMU, PCMA)), None)
            if pt is not None:
                chosen = (i, pt)
                break
        if chosen is None:
            raise NgError("no audio stream with PCMU or PCMA in sdp")
        index, pt = chosen
        where = self._checked_endpoint(desc, index)
        now = self.clock.seconds()
        call = self.calls[call_id] = Call(call_id, now)
        leg = call.legs[tag] = Leg(call_id, tag, now)
        try:
            ep = self._endpoint(leg, index)
        except NgError:
            self._delete_call(call)
            raise
        ep.set_remote((where.address, where.port), (where.rtcp_address, where.rtcp_port), True)
        ep.formats = [pt]
        play = desc.direction(index) in ("sendrecv", "recvonly") and not where.on_hold_address
        family, address = self.family, self.public_address
        lines = ["v=0", f"o=mss-media {int(self.wallclock())} 1 IN {family} {address}", "s=-",
                 f"c=IN {family} {address}", "t=0 0"]
        for i, section in enumerate(desc.media):
            if i == index:
                lines += [f"m=audio {ep.port} {section.proto} {pt}",
                          f"a=rtpmap:{pt} {'PCMU' if pt == PCMU else 'PCMA'}/8000",
                          "a=ptime:20", "a=sendonly" if play else "a=inactive"]
            else:
                lines.append(f"m={section.media} 0 {section.proto} "
                             f"{(section.formats or ['0'])[0]}")
        reply["sdp"] = ("\r\n".join(lines) + "\r\n").encode()
        return ep, pt, play

    def stop_tone(self, msg, source):
        ep = self._audio_endpoint(msg)
        player = ep.tone
        if player is None:
            raise NgError("no tone is playing to this leg")
        self._stop_tone(ep)
        return {"result": "ok", "tone": player.name, "sent": player.sent}

    def _stop_tone(self, ep: MediaEndpoint) -> None:
        self.players.pop(ep, None)
        ep.tone = None
        if not self.players:
            self._stop_toning()

    def _start_toning(self) -> None:
        if self._toning is None:
            self._toning = LoopingCall.withCount(self.play)
            self._toning.clock = self.clock
            self._toning.start(0.02, now=False)
            self.play()                       # the first frame at once

    def _stop_toning(self) -> None:
        if self._toning is not None:
            if self._toning.running:
                self._toning.stop()
            self._toning = None

    def play(self, frames: int = 1) -> None:
        """Send ``frames`` 20 ms frames of every playing tone (more than one when the
        reactor was late, at most ``MAX_CATCH_UP``); finished tones stop."""
        for _ in range(min(frames, MAX_CATCH_UP)):
            for ep, player in list(self.players.items()):
                if not player.tick():
                    self._stop_tone(ep)

    # -- media timeout ----------------------------------------------------------------------------

    def check_timeouts(self) -> None:
        now = self.clock.seconds()
        for call in list(self.calls.values()):
            last = call.last_signal
            limit = self.media_timeout
            for ep in call.endpoints():
                if ep.last_packet is not None and ep.last_packet > last:
                    last = ep.last_packet
                if ep.on_hold:
                    limit = self.hold_timeout
                if ep.tone is not None:
                    last = now                # we are sending: the call is not dead
            idle = now - last
            if idle >= limit and not call.timed_out:
                call.timed_out = True
                self.log.info("media timeout for {call_id}: no RTP for {idle:.0f} s",
                              call_id=call.call_id, idle=idle)
                if self.notify is not None and call.controller is not None:
                    self.notify(call.controller, {"notify": "media-timeout",
                                                  "call-id": call.call_id,
                                                  "idle": int(idle)})
            elif idle < limit:
                call.timed_out = False

    COMMANDS = {
        "ping": ping, "offer": offer, "answer": answer, "delete": delete, "query": query,
        "list": list_calls, "room-join": room_join, "room-leave": room_leave,
        "room-query": room_query, "room-list": room_list, "bridge": bridge,
        "play-tone": play_tone, "stop-tone": stop_tone,
    }
