# -*- test-case-name: tests.sip.test_sdp -*-
"""SDP (RFC 4566/8866) as needed by a media anchor: parse, inspect, rewrite, serialize.

The model keeps every line in order (``Line(kind, value)``), split into the session section and
one ``MediaSection`` per ``m=`` line, so that lines we do not understand (``a=ice-*``, ``b=``,
``a=crypto``, ...) survive untouched. Only what media anchoring needs is interpreted:

- connection data ``c=IN IP4|IP6 <address>`` (RFC 8866 5.7), media level overriding session level;
- the media line ``m=<media> <port> <proto> <fmt ...>`` (5.14): payload types are kept as given,
  and ``a=rtpmap``/``a=fmtp`` are never touched;
- ``a=rtcp:<port> [IN IP4 <address>]`` (RFC 3605), otherwise RTCP is on port + 1;
- direction attributes ``sendrecv``/``sendonly``/``recvonly``/``inactive`` (RFC 3264 5.1, 6.1),
  media level overriding session level; ``c=0.0.0.0`` is the RFC 2543 hold.

``rewrite_media`` replaces the endpoints (and optionally the origin address and direction) with
the anchor's own. Malformed SDP raises ``SdpError`` (with a SIP status to answer, 488).
"""
from __future__ import annotations

import ipaddress

import attrs

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
MAX_SDP = 65535
MAX_LINES = 2000


class SdpError(ValueError):
    """Unusable SDP; ``status`` is what a SIP UA answers (488 Not Acceptable Here)."""

    status = 488

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class Line:
    kind: str        # one letter: v, o, s, c, m, a, ...
    value: str       # everything after "x="

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


@attrs.frozen
class Endpoint:
    """Where a media stream's RTP (and RTCP) is to be sent, as the SDP says."""
    address: str
    port: int
    rtcp_address: str
    rtcp_port: int
    family: str       # "IP4" or "IP6"

    @property
    def on_hold_address(self) -> bool:
        return self.address in ("0.0.0.0", "::")


@attrs.define
class MediaSection:
    lines: list[Line]         # lines[0] is the m= line

    @property
    def _m(self) -> list[str]:
        return self.lines[0].value.split()

    @property
    def media(self) -> str:
        return self._m[0]

    @property
    def port(self) -> int:
        return int(self._m[1].split("/")[0])

    @property
    def proto(self) -> str:
        return self._m[2]

    @property
    def formats(self) -> list[str]:
        return self._m[3:]

    def set_port(self, port: int) -> None:
        parts = self._m
        count = parts[1].partition("/")[2]
        parts[1] = f"{port}/{count}" if count else str(port)
        self.lines[0] = Line("m", " ".join(parts))

    def attributes(self, name: str) -> list[str]:
        """Values of ``a=name:value`` (``""`` for a flag ``a=name``)."""
        out = []
        for line in self.lines:
            if line.kind == "a":
                key, _, val = line.value.partition(":")
                if key == name:
                    out.append(val)
        return out

    def connection(self) -> tuple[str, str] | None:
        for line in self.lines:
            if line.kind == "c":
                return _parse_connection(line.value)
        return None


@attrs.define
class SessionDescription:
    session: list[Line]
    media: list[MediaSection]

    def lines(self) -> list[Line]:
        out = list(self.session)
        for m in self.media:
            out.extend(m.lines)
        return out

    def __bytes__(self) -> bytes:
        return "".join(f"{line}\r\n" for line in self.lines()).encode("utf-8", "surrogateescape")

    def connection(self) -> tuple[str, str] | None:
        for line in self.session:
            if line.kind == "c":
                return _parse_connection(line.value)
        return None

    def endpoint(self, index: int) -> Endpoint | None:
        """The endpoint of media section ``index``, None when it has no connection address."""
        m = self.media[index]
        conn = m.connection() or self.connection()
        if conn is None:
            return None
        family, address = conn
        rtcp_port, rtcp_address = m.port + 1, address
        for value in m.attributes("rtcp"):
            parts = value.split()
            if parts and parts[0].isdigit():
                rtcp_port = int(parts[0])
                if len(parts) >= 4 and parts[1] == "IN":
                    rtcp_address = parts[3]
            break
        if m.attributes("rtcp-mux") and not m.attributes("rtcp"):
            rtcp_port = m.port
        return Endpoint(address, m.port, rtcp_address, rtcp_port, family)

    def direction(self, index: int) -> str:
        """The effective direction attribute of media ``index`` (RFC 3264 6.1; sendrecv if none)."""
        m = self.media[index]
        for line in m.lines:
            if line.kind == "a" and line.value in DIRECTIONS:
                return line.value
        for line in self.session:
            if line.kind == "a" and line.value in DIRECTIONS:
                return line.value
        return "sendrecv"

    def set_direction(self, index: int, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        m = self.media[index]
        for i, line in enumerate(m.lines):
            if line.kind == "a" and line.value in DIRECTIONS:
                m.lines[i] = Line("a", direction)
                return
        m.lines.append(Line("a", direction))


def _parse_connection(value: str) -> tuple[str, str]:
    parts = value.split()
    if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad connection line c={value}")
    address = parts[2].split("/")[0]       # strip multicast TTL / count
    return parts[1], address


def parse(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; lines keep their order and content."""
    if isinstance(data, bytes):
        if len(data) > MAX_SDP:
            raise SdpError("SDP too large")
        text = data.decode("utf-8", "surrogateescape")
    else:
        text = data
    raw = text.replace("\r\n", "\n").split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    if len(raw) > MAX_LINES:
        raise SdpError("SDP has too many lines")
    session: list[Line] = []
    media: list[MediaSection] = []
    for number, item in enumerate(raw, 1):
        if not item.strip():
            continue
        if len(item) < 2 or item[1] != "=" or not item[0].isalpha():
            raise SdpError(f"line {number} is not type=value: {item[:40]!r}")
        line = Line(item[0], item[2:])
        if line.kind == "m":
            parts = line.value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit() \
                    or int(parts[1].split("/")[0]) > 65535:
                raise SdpError(f"bad media line m={line.value[:60]}")
            media.append(MediaSection([line]))
        elif media:
            if line.kind == "c":
                _parse_connection(line.value)
            media[-1].lines.append(line)
        else:
            if line.kind == "c":
                _parse_connection(line.value)
            session.append(line)
    if not session or session[0] != Line("v", "0"):
        raise SdpError("SDP does not start with v=0")
    return SessionDescription(session, media)


def family_of(address: str) -> str:
    return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"


def rewrite_media(sdp: SessionDescription, address: str,
                  ports: list[tuple[int, int] | None], *, origin: bool = True,
                  directions: list[str | None] | None = None) -> SessionDescription:
    """Point every media section at ``address`` and its (rtp, rtcp) port pair.

    ``ports[i]`` None leaves section i as it is (e.g. a rejected stream with port 0). The
    session-level ``c=`` is rewritten (added when only media-level ones existed), media-level
    ``c=`` lines are rewritten, ``a=rtcp`` gets the new port and address; with ``origin`` the
    ``o=`` address too. Returns a new description; the input is not changed.
    """
    family = family_of(address)
    conn = Line("c", f"IN {family} {address}")
    session = []
    seen_c = False
    for line in sdp.session:
        if line.kind == "c":
            if not seen_c:
                session.append(conn)
            seen_c = True
            continue
        if line.kind == "o" and origin:
            parts = line.value.split()
            if len(parts) >= 6:
                parts[4], parts[5] = family, address
                line = Line("o", " ".join(parts))
        session.append(line)
    if not seen_c:
        # RFC 8866 5.7: c= at session level or in every media section; we put it at the
        # session level, after t= is not required: before the first t=/a= is conventional.
        at = next((i for i, l in enumerate(session) if l.kind in ("t", "a", "b", "z", "k")),
                  len(session))
        session.insert(at, conn)
    media = []
    for i, m in enumerate(sdp.media):
        section = MediaSection(list(m.lines))
        pair = ports[i] if i < len(ports) else None
        if pair is not None and section.port != 0:
            rtp, rtcp = pair
            if section.attributes("rtcp-mux"):
                rtcp = rtp                  # RFC 5761: RTCP shares the RTP port
            section.set_port(rtp)
            lines = [section.lines[0]]
            has_rtcp = False
            for line in section.lines[1:]:
                if line.kind == "c":
                    line = conn
                elif line.kind == "a" and line.value.startswith("rtcp:"):
                    line = Line("a", f"rtcp:{rtcp} IN {family} {address}")
                    has_rtcp = True
                lines.append(line)
            if not has_rtcp and not section.attributes("rtcp-mux") and rtcp != rtp + 1:
                lines.append(Line("a", f"rtcp:{rtcp}"))
            section.lines = lines
        media.append(section)
    out = SessionDescription(session, media)
    if directions:
        for i, direction in enumerate(directions):
            if direction and i < len(out.media) and out.media[i].port != 0:
                out.set_direction(i, direction)
    return out
