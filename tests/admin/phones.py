"""An in-process switch (``mss.tap.Switch`` on a ``MemoryReactorClock``) and hand-made phones.

``LiveSwitch`` builds the real switch from settings without opening sockets: what the SIP
shell sends lands in ``LiveSwitch.sent`` and phones hand their bytes to the shell as if they
came from UDP. ``Phone`` registers with digest authentication, calls (answering the 407),
answers calls and BYEs. This gives the operations tests real live calls, CDRs and bindings.
"""
from __future__ import annotations

import os
import secrets

from twisted.internet.testing import MemoryReactorClock

from mss import config as mss_config
from mss.sip.digest.client import authorization
from mss.sip.digest.headers import parse_challenge
from mss.sip.address import Address
from mss.sip.parser import parse

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class LiveSwitch:
    """A real ``Switch`` whose UDP output is captured (nothing listens)."""

    def __init__(self, directory: str, extra: dict | None = None):
        from mss.tap import Switch
        os.makedirs(directory, exist_ok=True)
        raw = {
            "sip": {"domain": "mss.test", "bind": "127.0.0.1", "port": 5060},
            "store": {"path": "mss.sqlite"},
            "media": {"mode": "off"},
            "security": {"allow": ["127.0.0.0/8"]},
        }
        for section, values in (extra or {}).items():
            raw.setdefault(section, {}).update(values)
        self.settings = mss_config.from_dict(raw, path=os.path.join(directory, "mss.toml"))
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_700_000_000)         # a plausible wall clock
        self.switch = Switch(self.settings, self.reactor)
        self.sent: list[tuple[object, Address]] = []
        self.switch.shell.udp = self               # the shell's send() target
        self.switch.core.ports = {"udp": 5060, "tcp": 5060}

    def send(self, data: bytes, dest: Address) -> None:
        self.sent.append((parse(data)[0], dest))

    def deliver(self, data: bytes, source: Address) -> None:
        self.switch.shell.data_received(data, source)
        self.reactor.advance(0)     # the reactor's next turn: calls due now (group commit)

    def take(self, port: int) -> list:
        """Messages sent to 127.0.0.1:``port`` since the last take (removed from ``sent``),
        once the current reactor turn has ended (when the shell sends)."""
        self.reactor.advance(0)
        mine = [m for m, d in self.sent if d.port == port]
        self.sent = [(m, d) for m, d in self.sent if d.port != port]
        return mine

    def advance(self, seconds: float) -> None:
        self.reactor.advance(seconds)

    def close(self) -> None:
        self.switch.store.close()


class Phone:
    def __init__(self, live: LiveSwitch, number: str, password: str, port: int):
        self.live = live
        self.number = number
        self.password = password
        self.port = port
        self.addr = Address("udp", "127.0.0.1", port)
        self.cseq = 0
        self.incoming = None            # the INVITE we answered
        self.call_id = None             # our outgoing call's Call-ID
        self.dialog = None              # (call_id, local_tag, remote_tag, remote_target, cseq)

    def _send(self, text: str, body: bytes = b"") -> None:
        data = text.replace("\n", "\r\n").encode() + b"\r\n" + body
        self.live.deliver(data, self.addr)

    def _request(self, method, uri, call_id, cseq, from_tag, to_tag=None, extra="", body=b"",
                 to_user=None, branch=None):
        to_user = to_user or self.number
        to = f"<sip:{to_user}@mss.test>" + (f";tag={to_tag}" if to_tag else "")
        ctype = "Content-Type: application/sdp\n" if body else ""
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        return (f"{method} {uri} SIP/2.0\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\n"
                f"Max-Forwards: 70\nFrom: <sip:{self.number}@mss.test>;tag={from_tag}\nTo: {to}\n"
                f"Call-ID: {call_id}\nCSeq: {cseq} {method}\n"
                f"Contact: <sip:{self.number}@127.0.0.1:{self.port}>\n{extra}{ctype}"
                f"Content-Length: {len(body)}\n\n", body)

    def _only(self, status=None, method=None):
        msgs = self.live.take(self.port)
        for m in msgs:
            if status is not None and not m.is_request and m.status == status:
                return m
            if method is not None and m.is_request and m.method == method:
                return m
        raise AssertionError(f"phone {self.number}: no {status or method} in {msgs!r}")

    def register(self, expires: int = 300) -> None:
        call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
        uri = "sip:mss.test"
        extra = f"Expires: {expires}\n"
        self.cseq += 1
        self._send(*self._request("REGISTER", uri, call_id, self.cseq, tag, extra=extra))
        challenge = parse_challenge(
            self._only(401).headers.get_lines("www-authenticate")[0])
        auth = authorization(challenge, self.number, self.password, "REGISTER", uri,
                             secrets.token_hex(4))
        self.cseq += 1
        self._send(*self._request("REGISTER", uri, call_id, self.cseq, tag,
                                  extra=extra + f"Authorization: {auth}\n"))
        self._only(200)

    def invite(self, callee: str) -> str:
        """Send an authorised INVITE; returns its Call-ID (the callee rings next)."""
        call_id, tag = secrets.token_hex(8) + "@test", secrets.token_hex(4)
        uri = f"sip:{callee}@mss.test"
        branch = "z9hG4bK" + secrets.token_hex(6)
        self._send(*self._request("INVITE", uri, call_id, 1, tag, body=SDP, to_user=callee,
                                  branch=branch))
        r407 = self._only(407)
        self._send(*self._request("ACK", uri, call_id, 1, tag, to_tag=r407.to.tag,
                                  to_user=callee, branch=branch))
        challenge = parse_challenge(r407.headers.get_lines("proxy-authenticate")[0])
        auth = authorization(challenge, self.number, self.password, "INVITE", uri,
                             secrets.token_hex(4))
        self._send(*self._request("INVITE", uri, call_id, 2, tag, body=SDP, to_user=callee,
                                  extra=f"Proxy-Authorization: {auth}\n"))
        self.call_id, self._tag, self._callee = call_id, tag, callee
        return call_id

    def answer(self) -> None:
        """Answer the INVITE the switch sent us: 180, then 200 with SDP."""
        invite = self._only(method="INVITE")
        self.incoming = invite
        tag = secrets.token_hex(4)
        for status, reason, body in ((180, "Ringing", b""), (200, "OK", SDP)):
            head = (f"SIP/2.0 {status} {reason}\n"
                    + "".join(f"Via: {v}\n" for v in invite.headers.get_lines("via"))
                    + f"From: {invite.headers.get('from')}\nTo: {invite.headers.get('to')};tag={tag}\n"
                    f"Call-ID: {invite.call_id}\nCSeq: {invite.headers.get('cseq')}\n"
                    f"Contact: <sip:{self.number}@127.0.0.1:{self.port}>\n"
                    + ("Content-Type: application/sdp\n" if body else "")
                    + f"Content-Length: {len(body)}\n\n")
            self._send(head, body)
        self.dialog = ("callee", invite.call_id, tag, invite.from_.tag)

    def ack_answer(self) -> None:
        """The caller's ACK for the 200 it got."""
        ok = self._only(200)
        target = ok.contacts[0].uri
        self._send(*self._request("ACK", str(target), self.call_id, 2, self._tag,
                                  to_tag=ok.to.tag, to_user=self._callee))
        self.dialog = ("caller", self.call_id, self._tag, ok.to.tag, str(target))

    def answer_bye(self) -> int:
        """Answer every BYE from the switch with 200; how many there were."""
        answered = 0
        for m in self.live.take(self.port):
            if m.is_request and m.method == "BYE":
                head = (f"SIP/2.0 200 OK\n"
                        + "".join(f"Via: {v}\n" for v in m.headers.get_lines("via"))
                        + f"From: {m.headers.get('from')}\nTo: {m.headers.get('to')}\n"
                        f"Call-ID: {m.call_id}\nCSeq: {m.headers.get('cseq')}\n"
                        "Content-Length: 0\n\n")
                self._send(head)
                answered += 1
        return answered

    def bye(self) -> None:
        """The caller hangs up."""
        _, call_id, tag, remote, target = self.dialog
        self._send(*self._request("BYE", target, call_id, 3, tag, to_tag=remote,
                                  to_user=self._callee))


def live_call(live: LiveSwitch, caller: Phone, callee: Phone) -> str:
    """Register ``callee``, call it from ``caller``, answer, ACK: an answered call."""
    callee.register()
    call_id = caller.invite(callee.number)
    callee.answer()
    caller.ack_answer()
    live.take(callee.port)          # the switch's ACK to the callee
    return call_id


def provision(live: LiveSwitch, *numbers: str) -> None:
    realm = live.settings["auth"]["realm"]
    for n in numbers:
        live.switch.store.add_extension(n, f"pw-{n}", realm)
    live.switch.directory.poll()
