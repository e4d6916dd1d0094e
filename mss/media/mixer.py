# -*- test-case-name: tests.media.test_mixer -*-
"""G.711 mixing rooms: mix-minus conference audio in 20 ms frames.

Each participant is a relay endpoint (``MediaEndpoint``) whose RTP goes into the room instead
of to its peer. Incoming PCMU (payload type 0) or PCMA (8) payloads are decoded to 16-bit linear
and put in a small per-participant jitter buffer ordered by RTP sequence number. Every 20 ms
(``tick``, driven by the gateway's timer) the room takes 160 samples from every buffer (silence
when a participant sent nothing or its buffer ran dry), sums them and sends each participant the
sum of the *others* (its own voice removed), re-encoded in the participant's codec, in RTP with
the participant's own SSRC, sequence numbers and timestamps.

Sample work is done by ``audioop`` (standard library up to 3.12, ``audioop-lts`` on 3.13+), never
by Python loops: frames are widened to 32-bit and scaled down by 2^8 so that the sum of up to
256 voices cannot overflow, each mix-minus is one subtraction, and the scale-back multiply
saturates at the 32-bit limits, which after narrowing to 16 bits is exactly saturation of the
true sum.

The jitter buffer holds at most ``MAX_BUFFER`` ms; it starts playing once ``PREFILL`` ms are
queued (absorbing the phase between the phones' clocks and our timer) and drops the oldest audio
when a participant sends faster than we play.
"""
from __future__ import annotations

import os
import struct

try:
    import audioop
except ImportError:          # Python 3.13+: pip install audioop-lts
    import audioop_lts as audioop   # type: ignore[no-redef]

FRAME_SAMPLES = 160                     # 20 ms at 8 kHz
FRAME_BYTES = FRAME_SAMPLES * 2         # 16-bit linear
SILENCE = bytes(FRAME_BYTES)
PREFILL = 2 * FRAME_BYTES               # 40 ms
MAX_BUFFER = 6 * FRAME_BYTES            # 120 ms
PCMU, PCMA = 0, 8
_DECODE = {PCMU: audioop.ulaw2lin, PCMA: audioop.alaw2lin}
_ENCODE = {PCMU: audioop.lin2ulaw, PCMA: audioop.lin2alaw}
_HEADER = struct.Struct("!BBHII")


class Participant:
    __slots__ = ("endpoint", "pt", "ssrc", "seq", "ts", "pending", "audio", "next_seq",
                 "playing", "frames_in", "frames_out", "underruns", "dropped", "marker")

    def __init__(self, endpoint, pt: int):
        self.endpoint = endpoint
        self.pt = pt                      # codec we send to this participant
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.seq = int.from_bytes(os.urandom(2), "big")
        self.ts = int.from_bytes(os.urandom(4), "big")
        self.pending: dict[int, bytes] = {}      # seq -> linear audio not yet in order
        self.audio = bytearray()                 # linear audio in playout order
        self.next_seq = -1
        self.playing = False
        self.frames_in = self.frames_out = self.underruns = self.dropped = 0
        self.marker = True


class Room:
    def __init__(self, name: str):
        self.name = name
        self.participants: dict = {}      # endpoint -> Participant

    def __len__(self) -> int:
        return len(self.participants)

    def add(self, endpoint, pt: int) -> Participant:
        if pt not in _ENCODE:
            raise ValueError(f"payload type {pt} is not PCMU (0) or PCMA (8)")
        p = Participant(endpoint, pt)
        self.participants[endpoint] = p
        endpoint.mix_state = p
        endpoint.room = self
        return p

    def remove(self, endpoint) -> None:
        self.participants.pop(endpoint, None)
        endpoint.mix_state = None
        endpoint.room = None

    def push(self, endpoint, data: bytes) -> None:
        """An RTP packet from a participant's phone (already accounted by the endpoint)."""
        p = endpoint.mix_state
        pt = data[1] & 0x7F
        decode = _DECODE.get(pt)
        if decode is None or p is None:
            return                        # DTMF, comfort noise, other codecs: not mixed
        cc = data[0] & 0x0F
        start = 12 + 4 * cc
        if data[0] & 0x10:                # header extension
            if len(data) < start + 4:
                return
            start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
        end = len(data)
        if data[0] & 0x20:                # padding
            end -= data[-1]
        if end <= start:
            return
        seq = (data[2] << 8) | data[3]
        if p.next_seq < 0:
            p.next_seq = seq
        elif ((seq - p.next_seq) & 0xFFFF) >= 0x8000:
            p.dropped += 1                # too late: already played past it
            return
        p.pending[seq] = decode(data[start:end], 2)
        p.frames_in += 1
        # move what is now in order into the playout buffer
        pending = p.pending
        while p.next_seq in pending:
            p.audio += pending.pop(p.next_seq)
            p.next_seq = (p.next_seq + 1) & 0xFFFF
        if len(pending) > 4:              # a gap that will not be filled: skip it
            p.next_seq = min(pending, key=lambda s: (s - p.next_seq) & 0xFFFF)
            while p.next_seq in pending:
                p.audio += pending.pop(p.next_seq)
                p.next_seq = (p.next_seq + 1) & 0xFFFF
        if len(p.audio) > MAX_BUFFER:
            del p.audio[:len(p.audio) - PREFILL]
            p.dropped += 1

    def mix(self) -> list[tuple[Participant, bytes]]:
        """One 20 ms frame: returns (participant, encoded payload) for each participant."""
        parts = list(self.participants.values())
        if not parts:
            return []
        own = []
        total = None
        for p in parts:
            if not p.playing and len(p.audio) >= PREFILL:
                p.playing = True
            if p.playing and len(p.audio) >= FRAME_BYTES:
                frame = bytes(p.audio[:FRAME_BYTES])
                del p.audio[:FRAME_BYTES]
            else:
                if p.playing:
                    p.underruns += 1
                    p.playing = False     # refill before playing again
                frame = SILENCE
            wide = audioop.mul(audioop.lin2lin(frame, 2, 4), 4, 1 / 256)
            own.append(wide)
            total = wide if total is None else audioop.add(total, wide, 4)
        out = []
        for p, wide in zip(parts, own):
            others = audioop.add(total, audioop.mul(wide, 4, -1), 4)
            linear = audioop.lin2lin(audioop.mul(others, 4, 256), 4, 2)
            out.append((p, _ENCODE[p.pt](linear, 2)))
        return out

    def tick(self) -> int:
        """Mix one frame and send it to every participant; returns packets sent."""
        sent = 0
        for p, payload in self.mix():
            ep = p.endpoint
            header = _HEADER.pack(0x80, (0x80 if p.marker else 0) | p.pt,
                                  p.seq, p.ts, p.ssrc)
            p.marker = False
            p.seq = (p.seq + 1) & 0xFFFF
            p.ts = (p.ts + FRAME_SAMPLES) & 0xFFFFFFFF
            p.frames_out += 1
            if ep.target is not None:
                ep.sock.sendto(header + payload, ep.target)
                sent += 1
        return sent

    def describe(self) -> dict:
        return {"room": self.name, "participants": [
            {"call-id": p.endpoint.leg.call_id, "tag": p.endpoint.leg.tag,
             "codec": "PCMU" if p.pt == PCMU else "PCMA", "frames-in": p.frames_in,
             "frames-out": p.frames_out, "underruns": p.underruns, "dropped": p.dropped}
            for p in self.participants.values()]}
