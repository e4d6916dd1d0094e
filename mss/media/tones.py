# -*- test-case-name: tests.media.test_tones -*-
"""Built-in call-progress tones, as ready-made G.711 frames, and the player that sends them.

A service that answers a call itself (a feature code's confirmation, an error) has the
gateway play one of these tones to the caller (``play-tone``, docs/media-protocol.md). The
frequencies and cadences follow ITU-T E.180 and ETSI TR 101 041 (425 Hz, the CEPT value):

=========== ============================================ ==========================
name        sound                                        cycle
=========== ============================================ ==========================
dial        425 Hz continuous                            1 s
ringback    425 Hz, 1 s on, 4 s off                      5 s
busy        425 Hz, 0.5 s on, 0.5 s off                  1 s
congestion  425 Hz, 0.2 s on, 0.2 s off                  0.4 s
confirm     425 Hz, three 0.1 s beeps 0.1 s apart,       2 s
            then 1.4 s silence (positive indication)
error       special information tone (E.180 §7):         2 s
            950, 1400, 1800 Hz, 330 ms each, 1.01 s off
info        1400 Hz, 0.2 s beep every 2 s                2 s
=========== ============================================ ==========================

Level: -10 dBm0 per tone (peak 7170 in 16-bit linear, where a G.711 full-scale sine is
+3.17 dBm0). Every on-segment starts at phase 0 and holds whole milliseconds, and every cycle
is a whole number of 20 ms frames, so frames repeat seamlessly.

A tone's linear samples are computed once per process, the first time the tone is asked for
(a few thousand samples: a one-off cost of a few milliseconds), encoded with ``audioop`` to
PCMU and PCMA and cut into 160-byte frames. Playing is then only picking the next frame and
packing a 12-byte RTP header: no sample work at play time.
"""
from __future__ import annotations

import math
import os
import struct
from array import array

try:
    import audioop
except ImportError:          # Python 3.13+: pip install audioop-lts
    import audioop_lts as audioop   # type: ignore[no-redef]

from mss.media.mixer import FRAME_SAMPLES, PCMA, PCMU

RATE = 8000
AMPLITUDE = 7170                      # -10 dBm0
_HEADER = struct.Struct("!BBHII")
_ENCODE = {PCMU: audioop.lin2ulaw, PCMA: audioop.lin2alaw}

#: name -> cadence: (frequency in Hz or 0 for silence, milliseconds), repeated
CADENCES: dict[str, tuple[tuple[int, int], ...]] = {
    "dial": ((425, 1000),),
    "ringback": ((425, 1000), (0, 4000)),
    "busy": ((425, 500), (0, 500)),
    "congestion": ((425, 200), (0, 200)),
    "confirm": ((425, 100), (0, 100), (425, 100), (0, 100), (425, 100), (0, 1500)),
    "error": ((950, 330), (1400, 330), (1800, 330), (0, 1010)),
    "info": ((1400, 200), (0, 1800)),
}
TONES = frozenset(CADENCES)

_linear: dict[str, bytes] = {}
_frames: dict[tuple[str, int], tuple[bytes, ...]] = {}


def _segment(frequency: int, ms: int) -> bytes:
    n = RATE * ms // 1000
    if not frequency:
        return bytes(2 * n)
    step = 2 * math.pi * frequency / RATE
    # computed once per process and tone (see the module docstring), never at play time
    return array("h", [int(AMPLITUDE * math.sin(step * i)) for i in range(n)]).tobytes()


def linear(name: str) -> bytes:
    """One cycle of ``name`` as 16-bit native-endian linear samples at 8 kHz."""
    pcm = _linear.get(name)
    if pcm is None:
        pcm = _linear[name] = b"".join(_segment(f, ms) for f, ms in CADENCES[name])
        assert len(pcm) % (2 * FRAME_SAMPLES) == 0, name
    return pcm


def frames(name: str, pt: int) -> tuple[bytes, ...]:
    """One cycle of ``name`` as 20 ms G.711 payloads for payload type ``pt`` (0 or 8)."""
    key = (name, pt)
    out = _frames.get(key)
    if out is None:
        coded = _ENCODE[pt](linear(name), 2)
        out = _frames[key] = tuple(coded[i:i + FRAME_SAMPLES]
                                   for i in range(0, len(coded), FRAME_SAMPLES))
    return out


class TonePlayer:
    """Sends ``count`` frames of a tone to one endpoint's phone, one per ``tick``, as an RTP
    stream of its own (random SSRC, sequence and timestamp; marker bit on the first packet)."""

    __slots__ = ("endpoint", "name", "pt", "frames", "index", "left", "ssrc", "seq", "ts",
                 "marker", "sent")

    def __init__(self, endpoint, name: str, pt: int, duration_ms: int):
        self.endpoint = endpoint
        self.name = name
        self.pt = pt
        self.frames = frames(name, pt)
        self.index = 0
        self.left = max(1, (duration_ms + 19) // 20)
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.seq = int.from_bytes(os.urandom(2), "big")
        self.ts = int.from_bytes(os.urandom(4), "big")
        self.marker = True
        self.sent = 0

    def tick(self) -> bool:
        """Send the next frame (if the phone's address is known); False once finished."""
        if self.left <= 0:
            return False
        ep = self.endpoint
        payload = self.frames[self.index]
        self.index = (self.index + 1) % len(self.frames)
        header = _HEADER.pack(0x80, (0x80 if self.marker else 0) | self.pt,
                              self.seq, self.ts, self.ssrc)
        self.marker = False
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + FRAME_SAMPLES) & 0xFFFFFFFF
        self.left -= 1
        if ep.target is not None and ep.sock is not None:
            ep.sock.sendto(header + payload, ep.target)
            self.sent += 1
        return self.left > 0
