# -*- test-case-name: tests.media.test_relay -*-
"""One media endpoint of the relay: our RTP/RTCP socket pair facing one call leg's phone.

Theory of operation. For each leg of a call and each media section the gateway owns a socket
pair; the phone of that leg sends to it and receives from it (so our source port towards the
phone never changes during the call). A packet arriving on endpoint E from E's phone is
forwarded out of E's peer's socket to wherever the peer's phone is (``peer.target``); if E is
in a mixing room the packet goes to the room instead; if E is bridged to a room on another
worker it goes to that worker; while a tone plays to the peer's phone (``tone``) the packet is
not forwarded, so that the phone hears one stream.

Symmetric RTP (latching): after each offer/answer that changes the leg's SDP endpoint the
endpoint is *armed*; the first valid RTP packet (version 2, at least a header) latches its
source address as the phone's address, and from then on packets from any other source are
dropped and counted (``foreign``), so a third party cannot hijack the stream. Until a packet
has been latched we send to the address the SDP announced. RTCP latches on its own socket the
same way. With ``asymmetric`` the SDP address is used and nothing is latched.

Counters follow RFC 3550: extended highest sequence number, expected and lost packets
(A.1/A.3, without the probation step) and the interarrival jitter (A.8) in timestamp units,
reported in milliseconds.

This is the hot path: plain classes with ``__slots__``, no logging and no allocation per packet
beyond what Python needs to call ``sendto``. ``sock`` is any object with ``sendto(data, addr)``
(a real socket in the server, a recorder in tests); ``now`` is passed in by the caller once
per batch of packets.
"""
from __future__ import annotations

from typing import Any


class MediaEndpoint:
    __slots__ = (
        "leg", "index", "port", "sock", "rtcp_sock", "peer", "room", "bridge",
        "sdp_address", "sdp_rtcp_address", "target", "rtcp_target",
        "latched", "rtcp_latched", "armed", "rtcp_armed", "symmetric",
        "packets", "bytes", "foreign", "rtcp_packets", "rtcp_bytes", "rtcp_foreign",
        "first_packet", "last_packet", "base_seq", "max_seq", "cycles", "bad_seq",
        "jitter", "transit", "clock_rates", "no_jitter_pts", "last_pt",
        "formats", "mix_state", "seq_offset", "on_hold", "tone",
    )

    def __init__(self, leg: Any, index: int, port: int, sock: Any, rtcp_sock: Any):
        self.leg = leg
        self.index = index
        self.port = port
        self.sock = sock
        self.rtcp_sock = rtcp_sock
        self.peer: MediaEndpoint | None = None
        self.room = None
        self.bridge: tuple | None = None
        self.sdp_address: tuple | None = None
        self.sdp_rtcp_address: tuple | None = None
        self.target: tuple | None = None
        self.rtcp_target: tuple | None = None
        self.latched: tuple | None = None
        self.rtcp_latched: tuple | None = None
        self.armed = True
        self.rtcp_armed = True
        self.symmetric = True
        self.packets = self.bytes = self.foreign = 0
        self.rtcp_packets = self.rtcp_bytes = self.rtcp_foreign = 0
        self.first_packet = self.last_packet = None
        self.base_seq = self.max_seq = -1
        self.cycles = 0
        self.bad_seq = -1
        self.jitter = 0.0
        self.transit = None
        self.clock_rates: dict[int, int] = {}
        self.no_jitter_pts: frozenset = frozenset()
        self.last_pt = -1
        self.formats: list[int] = []
        self.mix_state = None
        self.seq_offset = 0
        self.on_hold = False          # the leg's SDP said sendonly/recvonly/inactive/0.0.0.0
        self.tone = None              # the TonePlayer sending to our phone (peer audio muted)

    # -- signalling ---------------------------------------------------------------------------

    def set_remote(self, rtp: tuple | None, rtcp: tuple | None, symmetric: bool = True) -> bool:
        """Apply the endpoint an offer/answer announced; re-arm latching when it changed.

        ``rtp`` None (or the hold address 0.0.0.0) means: nothing to send to until a packet
        is latched. Returns True when the endpoint was re-armed.
        """
        if rtp is not None and rtp[0] in ("0.0.0.0", "::"):
            rtp = rtcp = None
        self.symmetric = symmetric
        changed = (rtp, rtcp) != (self.sdp_address, self.sdp_rtcp_address)
        self.sdp_address, self.sdp_rtcp_address = rtp, rtcp
        if changed or not symmetric:
            self.latched = self.rtcp_latched = None
            self.armed = self.rtcp_armed = symmetric
            self.target, self.rtcp_target = rtp, rtcp
        return changed

    # -- packets --------------------------------------------------------------------------------

    def rtp_received(self, data: bytes, addr: tuple, now: float) -> None:
        if addr != self.latched:
            if addr == self.bridge:
                # mixed audio from the room's worker, for our phone
                if self.target is not None:
                    self.sock.sendto(data, self.target)
                return
            if self.armed and len(data) >= 12 and (data[0] & 0xC0) == 0x80:
                self.latched = self.target = addr
                self.armed = False
            elif self.symmetric:
                self.foreign += 1
                return
        self.packets += 1
        self.bytes += len(data)
        self.last_packet = now
        if len(data) >= 12:
            self._account(data, now)
        if self.room is not None:
            self.room.push(self, data)
            return
        if self.bridge is not None:
            self.sock.sendto(data, self.bridge)
            return
        peer = self.peer
        if peer is not None and peer.target is not None and peer.room is None \
                and peer.bridge is None and peer.tone is None:
            peer.sock.sendto(data, peer.target)

    def _account(self, data: bytes, now: float) -> None:
        seq = (data[2] << 8) | data[3]
        max_seq = self.max_seq
        if max_seq < 0:
            self.base_seq = self.max_seq = seq
            self.first_packet = now
        else:
            udelta = (seq - max_seq) & 0xFFFF
            if udelta < 3000:
                if seq < max_seq:
                    self.cycles += 65536
                self.max_seq = seq
            elif udelta <= 65436:
                # a large jump: accept it as a restart when the next packet follows it
                if seq == self.bad_seq:
                    self.base_seq = self.max_seq = seq
                    self.cycles = 0
                    self.seq_offset = self.packets - 1
                    self.transit = None
                else:
                    self.bad_seq = (seq + 1) & 0xFFFF
                    return
            # else: duplicate or reordered, counted as received only
        pt = data[1] & 0x7F
        if pt in self.no_jitter_pts:
            return
        if pt != self.last_pt:
            self.last_pt = pt
            self.transit = None
        rate = self.clock_rates.get(pt, 8000)
        ts = int.from_bytes(data[4:8], "big")
        transit = now * rate - ts
        if self.transit is not None:
            d = transit - self.transit
            if d < 0:
                d = -d
            if d < 1e9:
                self.jitter += (d - self.jitter) / 16.0
        self.transit = transit

    def rtcp_received(self, data: bytes, addr: tuple, now: float) -> None:
        if addr != self.rtcp_latched:
            if self.bridge is not None and addr == (self.bridge[0], self.bridge[1] + 1):
                if self.rtcp_target is not None:
                    self.rtcp_sock.sendto(data, self.rtcp_target)
                return
            if self.rtcp_armed and len(data) >= 8 and (data[0] & 0xC0) == 0x80:
                self.rtcp_latched = self.rtcp_target = addr
                self.rtcp_armed = False
            elif self.symmetric:
                self.rtcp_foreign += 1
                return
        self.rtcp_packets += 1
        self.rtcp_bytes += len(data)
        if self.room is not None:
            return          # the mixer is the RTP source towards the room; no RTCP relayed
        if self.bridge is not None:
            self.rtcp_sock.sendto(data, (self.bridge[0], self.bridge[1] + 1))
            return
        peer = self.peer
        if peer is not None and peer.rtcp_target is not None and peer.room is None \
                and peer.bridge is None:
            peer.rtcp_sock.sendto(data, peer.rtcp_target)

    # -- reporting -------------------------------------------------------------------------------

    @property
    def expected(self) -> int:
        if self.max_seq < 0:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        if self.max_seq < 0:
            return 0
        return max(0, self.expected - (self.packets - self.seq_offset))

    def jitter_ms(self) -> float:
        rate = self.clock_rates.get(self.last_pt, 8000) if self.last_pt >= 0 else 8000
        return self.jitter * 1000.0 / rate

    def stats(self, now: float) -> dict:
        def ep(addr):
            if addr is None:
                return {}
            return {"family": "IPv6" if ":" in addr[0] else "IPv4",
                    "address": addr[0], "port": addr[1]}
        return {
            "local port": self.port,
            "endpoint": ep(self.target),
            "advertised endpoint": ep(self.sdp_address),
            "latched": 1 if self.latched is not None else 0,
            "payload types": list(self.formats),
            "last payload type": self.last_pt,
            "stats": {"packets": self.packets, "bytes": self.bytes, "errors": self.foreign,
                      "lost": self.lost, "jitter-ms": int(round(self.jitter_ms())),
                      "idle": int(now - self.last_packet) if self.last_packet is not None else -1},
            "rtcp": {"local port": self.port + 1, "endpoint": ep(self.rtcp_target),
                     "packets": self.rtcp_packets, "bytes": self.rtcp_bytes,
                     "errors": self.rtcp_foreign},
        }
