# -*- test-case-name: tests.sip.test_message -*-
"""Where a message comes from or goes to: transport, host, port (and the TCP connection)."""
from __future__ import annotations

import attrs


@attrs.frozen(slots=True)
class Address:
    """A transport address. ``connection`` names the TCP connection a message came on, so a
    response or an in-dialog request goes back on it (RFC 3261 §18.2.2); it does not take
    part in equality: the peer is the same peer on a new connection."""

    transport: str          # "udp" | "tcp"
    host: str
    port: int
    connection: object = attrs.field(default=None, eq=False, repr=False)

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
