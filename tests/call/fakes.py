"""An in-memory switch for call-core tests: a real ``SipCore`` and ``CallManager`` with a real
``SQLiteStore`` (temporary file), ``Directory`` and ``BindingTable``, driven by
``twisted.internet.task.Clock``; phones are plain objects that build SIP text, feed it to the
core and collect what the core sends to their address.

Only authentication is faked (``FakeAuth``): digest is the registrar's business and tested
there and end to end; here a request with a Proxy-Authorization line is the named extension.
"""
from __future__ import annotations

import itertools
import os
import tempfile

from twisted.internet import task

from mss.call.manager import CallManager
from mss.registrar.auth import AuthOutcome
from mss.registrar.bindings import BindingTable
from mss.registrar.directory import Directory
from mss.sip.address import Address
from mss.sip.core import SipCore
from mss.sip.dialog import Dialog
from mss.sip.message import Request, Response, make_response
from mss.sip.parser import parse
from mss.store.interface import Binding
from mss.store.sqlite import SQLiteStore

MSS = Address("udp", "127.0.0.1", 5060)
REALM = "mss.test"
SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n")

_seq = itertools.count(1)


def sdp(port: int = 4000, direction: str = "sendrecv") -> bytes:
    return SDP.replace(b"4000", str(port).encode()).replace(b"sendrecv", direction.encode())


class FakeAuth:
    """Challenges a request without credentials; accepts one with them as ``expected_user``."""

    def __init__(self, directory):
        self.directory = directory
        self.checked = 0

    def check(self, request, source_host, now, proxy, expected_user=None):
        self.checked += 1
        if "proxy-authorization" not in request.headers:
            return AuthOutcome("challenge", headers=(
                ("Proxy-Authenticate", f'Digest realm="{REALM}", nonce="abc", qop="auth"'),))
        ext = self.directory(expected_user) if expected_user else None
        if ext is None:
            return AuthOutcome("forbidden", reason="unknown user")
        return AuthOutcome("ok", extension=ext)


class Switch:
    """The core, the call manager and the phones' mailboxes."""

    def __init__(self, testcase, **manager_options):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        path = os.path.join(tempfile.mkdtemp(), "store.sqlite")
        self.store = SQLiteStore(path)
        testcase.addCleanup(self.store.close)
        self.directory = Directory(self.store)
        self.core = SipCore(domain=REALM, local_host=lambda host: "127.0.0.1",
                            ports={"udp": 5060, "tcp": 5060}, t1=0.5, t2=4.0, t4=5.0)
        self.bindings = BindingTable(self.store, self.core.timers, self.core.at_end_of_turn,
                                     max_devices=5)
        self.auth = FakeAuth(self.directory)
        options = dict(no_answer_timeout=30, max_duration=0, max_setup=200)
        options.update(manager_options)
        self.calls = CallManager(self.core, self.clock, self.store, self.directory,
                                 self.bindings, self.auth, domain=REALM, **options)
        self.core.register_user(self.calls, ["INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE",
                                             "INFO", "MESSAGE", "NOTIFY", "REFER"])
        self.core.set_dialog_user(self.calls)
        self.phones: dict[tuple, "Phone"] = {}
        self.lost: list = []                 # messages to nobody we know

    def now(self) -> float:
        return self.clock.seconds()

    def extension(self, number: str, *permissions: str):
        self.store.add_extension(number, "pw-" + number, REALM, permissions=permissions)
        self.directory.invalidate()

    def phone(self, number: str, port: int, register: bool = True) -> "Phone":
        p = Phone(self, number, port)
        self.phones[(p.addr.host, p.addr.port)] = p
        if register:
            p.register()
        return p

    def deliver(self) -> None:
        """Hand everything the core sent to the phone at its address."""
        for data, dest in self.core.datagrams_to_send():
            msg, _ = parse(data)
            phone = self.phones.get((dest.host, dest.port))
            if phone is None:
                self.lost.append((msg, dest))
            else:
                phone.inbox.append(msg)

    def advance(self, seconds: float, step: float = 0.25) -> None:
        """Let time pass, running the core's timers as the shell would."""
        end = self.clock.seconds() + seconds
        while True:
            deadline = self.core.get_timer()
            if deadline is None or deadline > end:
                break
            self.clock.advance(max(0.0, deadline - self.clock.seconds()))
            self.core.handle_timer(self.clock.seconds())
            self.deliver()
        self.clock.advance(max(0.0, end - self.clock.seconds()))
        self.core.handle_timer(self.clock.seconds())
        self.deliver()

    def assert_clean(self, testcase) -> None:
        """No call state left behind once every transaction has ended."""
        self.advance(40)
        testcase.assertEqual(self.calls.calls, {})
        testcase.assertEqual(self.calls._legs, {})
        testcase.assertEqual(self.calls.setting_up, 0)
        testcase.assertEqual(self.calls.in_call, {})
        testcase.assertEqual(len(self.core.layer), 0)

    def cdrs(self):
        return self.store.list_cdrs()


class Phone:
    """A SIP phone at 127.0.0.1:port: builds requests and responses, reads its inbox."""

    def __init__(self, switch: Switch, number: str, port: int):
        self.sw = switch
        self.number = number
        self.addr = Address("udp", "127.0.0.1", port)
        self.contact = f"sip:{number}@127.0.0.1:{port}"
        self.inbox: list = []

    # -- plumbing -----------------------------------------------------------------------------
    def register(self) -> None:
        now = self.sw.now()
        b = Binding(aor=self.number, key=f"<{self.contact}>", contact=self.contact,
                    expires_at=now + 3600, call_id=f"reg-{self.addr.port}", cseq=1,
                    transport="udp", source_host="127.0.0.1", source_port=self.addr.port,
                    registered_at=now + next(_seq) * 1e-3)
        self.sw.bindings.put(b, multi_device=True)

    def send(self, message) -> None:
        data = message if isinstance(message, bytes) else message.to_bytes()
        self.sw.core.receive(data, self.addr, self.sw.now())
        self.sw.deliver()

    def via(self) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.addr.port};branch=z9hG4bK-t{next(_seq)};rport"

    def take(self, what, testcase=None):
        """Pop the first message that is request ``what`` (str) or a response ``what`` (int)."""
        for i, msg in enumerate(self.inbox):
            if (isinstance(what, str) and msg.is_request and msg.method == what) or \
                    (isinstance(what, int) and not msg.is_request and msg.status == what):
                return self.inbox.pop(i)
        raise AssertionError(f"phone {self.number}:{self.addr.port} got no {what!r}; inbox: "
                             f"{[m.method if m.is_request else m.status for m in self.inbox]}")

    def has(self, what) -> bool:
        return any((isinstance(what, str) and m.is_request and m.method == what) or
                   (isinstance(what, int) and not m.is_request and m.status == what)
                   for m in self.inbox)

    def kinds(self) -> list:
        return [m.method if m.is_request else m.status for m in self.inbox]

    # -- as a caller ------------------------------------------------------------------------------
    def invite(self, callee: str, body: bytes = SDP, headers=(), auth: bool = True) -> "OutCall":
        call = OutCall(self, callee)
        call.send_invite(body, headers, auth)
        return call

    # -- as a callee --------------------------------------------------------------------------------
    def incoming(self) -> "InCall":
        return InCall(self, self.take("INVITE"))


class OutCall:
    """A call this phone places (it is the UAC of the A leg)."""

    def __init__(self, phone: Phone, callee: str):
        self.phone = phone
        self.callee = callee
        self.call_id = f"a{next(_seq)}@127.0.0.1"
        self.tag = f"ta{next(_seq)}"
        self.cseq = 0
        self.invite: Request | None = None
        self.dialog: Dialog | None = None

    def send_invite(self, body=SDP, headers=(), auth=True) -> None:
        p = self.phone
        self.cseq += 1
        lines = [
            f"INVITE sip:{self.callee}@{REALM} SIP/2.0",
            f"Via: {p.via()}",
            f"From: <sip:{p.number}@{REALM}>;tag={self.tag}",
            f"To: <sip:{self.callee}@{REALM}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} INVITE",
            f"Contact: <{p.contact}>",
            "Max-Forwards: 70",
        ]
        if auth:
            lines.append(f'Proxy-Authorization: Digest username="{p.number}", realm="{REALM}"')
        lines += [f"{n}: {v}" for n, v in headers]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        self.invite, _ = parse(data)
        p.send(data)

    def confirmed(self, response: Response) -> Dialog:
        """The dialog of a 2xx (or a tagged 1xx) to our INVITE."""
        if self.dialog is None:
            self.dialog = Dialog.from_uac(self.invite, response, MSS, self.phone.contact)
        self.dialog.update_from_response(response)
        return self.dialog

    def ack(self, response: Response, body: bytes = b"") -> None:
        dialog = self.confirmed(response)
        ack = dialog.request("ACK", cseq=response.cseq.number)
        self._send(ack, body)

    def cancel(self) -> None:
        h = self.invite.headers
        lines = [f"CANCEL {self.invite.uri} SIP/2.0", f"Via: {h.get('via')}",
                 f"From: {h.get('from')}", f"To: {h.get('to')}", f"Call-ID: {self.call_id}",
                 f"CSeq: {self.invite.cseq.number} CANCEL", "Max-Forwards: 70",
                 "Content-Length: 0"]
        self.phone.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def request(self, method: str, body: bytes = b"", headers=()) -> Request:
        req = self.dialog.request(method)
        for n, v in headers:
            req.headers.add(n, v)
        self._send(req, body)
        return req

    def prack(self, response: Response) -> None:
        dialog = self.confirmed(response)
        req = dialog.request("PRACK")
        req.headers.add("RAck", f"{response.headers.get('rseq')} {response.cseq.number} INVITE")
        self._send(req, b"")

    def respond(self, request: Request, status: int, body: bytes = b"") -> None:
        resp = make_response(request, status, to_tag=self.tag)
        resp.headers.add("Contact", f"<{self.phone.contact}>")
        _body(resp, body)
        self.phone.send(resp)

    def _send(self, req: Request, body: bytes) -> None:
        req.headers.insert_before("Via", self.phone.via())
        _body(req, body)
        self.phone.send(req)


class InCall:
    """A call this phone receives (it is the UAS of a B leg)."""

    def __init__(self, phone: Phone, invite: Request):
        self.phone = phone
        self.invite = invite
        self.tag = f"tb{next(_seq)}"
        self.dialog = Dialog.from_uas(invite, self.tag, MSS, phone.contact)

    def respond(self, status: int, body: bytes = b"", headers=(), request: Request | None = None,
                tag: str | None = None) -> Response:
        request = request or self.invite
        resp = make_response(request, status, to_tag=tag or self.tag)
        if status < 300 and request.method in ("INVITE", "UPDATE", "PRACK") or \
                request is self.invite and 100 < status < 300:
            resp.headers.add("Contact", f"<{self.phone.contact}>")
        for n, v in headers:
            resp.headers.add(n, v)
        _body(resp, body)
        self.phone.send(resp)
        return resp

    def request(self, method: str, body: bytes = b"", headers=()) -> Request:
        req = self.dialog.request(method)
        for n, v in headers:
            req.headers.add(n, v)
        req.headers.insert_before("Via", self.phone.via())
        _body(req, body)
        self.phone.send(req)
        return req

    def ack(self, response: Response, body: bytes = b"") -> None:
        """ACK a 2xx we got for a request we sent (a re-INVITE)."""
        ack = self.dialog.request("ACK", cseq=response.cseq.number)
        ack.headers.insert_before("Via", self.phone.via())
        _body(ack, body)
        self.phone.send(ack)


def _body(msg, body: bytes) -> None:
    if body:
        msg.set_body(body, "application/sdp")
    else:
        msg.headers.set("Content-Length", "0")
