# -*- test-case-name: tests.sip.test_core -*-
"""The SIP core: one message path from bytes to transaction users and back (sans-I/O).

    transport bytes -> receive() -> parse -> checks (400/483/482/501/513) -> TransactionLayer
        -> events -> transaction user (registrar, call core, OPTIONS responder, trunk client)
        -> send_response()/send_request() -> datagrams_to_send() -> transport

The Twisted shell (mss/transport/) feeds ``receive(data, source, now)`` and
``handle_timer(now)``. A reactor turn ends with one step, ``end_turn(now)``: the work queued
for the end of the turn (``at_end_of_turn``: the registrar's group commit, whose 200 OKs follow
it) runs, then the shell drains ``datagrams_to_send()`` and re-arms its one delayed call at
``get_timer()``. Whatever queues output or a timer, from inside the core or from outside it (a
media gateway answer, an operator's hangup), calls ``wake``: the shell's request for that end
of turn, coalesced, so nobody sends by hand. Transaction users schedule their timers on
``core.timers``, the same heap as the transactions': one clock, one heap.

Implements RFC 3261 §8.2 (UAS request checks), §18.2.1 (received/rport, RFC 3581),
§18.2.2 (where responses go), §11 (OPTIONS).
"""
from __future__ import annotations

import secrets

from twisted.logger import Logger
from zope.interface import Interface, implementer

from mss.sip import transaction as T
from mss.sip.address import Address
from mss.sip.errors import SIPParseError
from mss.sip.headers import Via, canonical, split_values
from mss.sip.checks import check_request
from mss.sip.message import Message, Request, Response, make_response
from mss.sip.parser import parse
from mss.sip.timers import TimerHeap

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, REGISTER"
# Only extensions implemented end to end: advertising one we ignore invites peers to rely on it.
SUPPORTED = "100rel"
SUPPORTED_TAGS = frozenset(t.strip() for t in SUPPORTED.split(","))
ACCEPT = "application/sdp"


class ITransactionUser(Interface):
    """What the core hands to registrar, call core, trunk client (cf. reSIProcate's DUM)."""

    def request_received(request, source, transaction):
        """A new request (``transaction`` is None for an ACK to a 2xx)."""

    def response_received(response, source, transaction):
        """A response to a request this user sent (``transaction`` None: a stray 2xx)."""

    def transaction_failed(transaction, reason):
        """``reason``: "timeout", "transport", "ack-timeout" or "prack-timeout"."""


def _nothing() -> None:
    pass


class SipCore:
    """Transaction layer + dispatch. See the module docstring for the flow."""

    log = Logger()

    def __init__(self, *, domain: str = "mss.local", user_agent: str = "mss",
                 max_size: int = 65535, max_headers: int = 256, trace: bool = False,
                 t1: float = 0.5, t2: float = 4.0, t4: float = 5.0,
                 local_host=lambda peer_host: "127.0.0.1", ports: dict | None = None,
                 transports=("udp", "tcp")):
        self.domain = domain
        self.user_agent = user_agent
        self.max_size = max_size
        self.max_headers = max_headers
        self.trace = trace
        self.trace_filter = None          # callable(msg) -> bool: per extension/trunk trace
        self.local_host = local_host      # peer host -> our address on the route toward it
        self.ports = ports or {"udp": 5060, "tcp": 5060}
        self.transports = tuple(transports)
        self.t1 = t1
        self.timers = TimerHeap()
        self.layer = T.TransactionLayer(t1=t1, t2=t2, t4=t4, timers=self.timers)
        self.wake = _nothing                # set by the shell: "end this turn with a flush"
        self.timers.on_schedule = self._wake
        self._end_of_turn: list = []
        self.loop_mark = "z9hG4bK-" + secrets.token_hex(3) + "-"
        self._out: list[tuple[bytes, Address]] = []
        self._users: dict[str, object] = {}       # method -> transaction user
        self._stray = None                        # user for stray responses / ACK to 2xx
        self.counters = {"parse_errors": 0, "requests": 0, "responses": 0,
                         "timeouts": 0, "dropped": 0}

    # -- wiring --------------------------------------------------------------------------------
    def register_user(self, user, methods) -> None:
        for method in methods:
            self._users[method] = user

    def set_dialog_user(self, user) -> None:
        """The user that gets stray responses and in-dialog requests (the call core)."""
        self._stray = user

    # -- input ---------------------------------------------------------------------------------
    def receive(self, data: bytes, source: Address, now: float) -> None:
        """One datagram, or one framed message from a stream."""
        try:
            msg, _ = parse(data, False, self.max_size, self.max_headers)
        except SIPParseError as e:
            self._parse_error(e, data, source)
            return
        self.receive_message(msg, source, now)

    def receive_message(self, msg: Message, source: Address, now: float) -> None:
        if self.trace:
            self._trace("in", msg, source)
        if msg.is_request:
            self.counters["requests"] += 1
            self._stamp_via(msg, source)
            answer = self._check(msg)
            if answer is not None:
                status, reason, extra = answer
                self.send_stateless(msg, source, status, reason, extra)
                return
            self.layer.receive_request(msg, source, now)
        else:
            self.counters["responses"] += 1
            if len(msg.vias) != 1:
                self.counters["dropped"] += 1    # §18.1.2: a response with more Vias is not ours
                self.log.debug("dropping response with {n} Via headers from {peer}",
                               n=len(msg.vias), peer=str(source))
                return
            self.layer.receive_response(msg, source, now)
        self._dispatch(now)

    def handle_timer(self, now: float) -> None:
        self.timers.run_due(now)
        self._dispatch(now)

    def get_timer(self) -> float | None:
        return self.timers.next_deadline()

    # -- the end of a reactor turn ------------------------------------------------------------
    def _wake(self) -> None:
        self.wake()

    def at_end_of_turn(self, fn) -> None:
        """Run ``fn()`` once at the end of this turn, before the output is sent (group
        commit); asking again in the same turn changes nothing."""
        if fn not in self._end_of_turn:
            self._end_of_turn.append(fn)
        self.wake()

    def end_turn(self, now: float) -> None:
        """The turn's last step before the shell drains the output."""
        while self._end_of_turn:
            work, self._end_of_turn = self._end_of_turn, []
            for fn in work:
                try:
                    fn()
                except Exception:
                    self.log.failure("end-of-turn work failed")
        self._dispatch(now)

    def transport_error(self, destination: Address, now: float) -> None:
        self.layer.transport_error(destination, now)
        self._dispatch(now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        for msg, dest in self.layer.datagrams_to_send():
            data = msg if isinstance(msg, bytes) else msg.to_bytes()
            if self.trace:
                self._trace_out(data, dest)
            self._out.append((data, dest))
        out, self._out = self._out, []
        return out

    # -- output for transaction users ---------------------------------------------------------
    def send_response(self, transaction, response: Response, now: float) -> None:
        self._stamp_response(response)
        self.layer.send_response(transaction, response, now)
        self.wake()

    def send_reliable_provisional(self, transaction, response: Response, now: float) -> None:
        self._stamp_response(response)
        self.layer.send_reliable_provisional(transaction, response, now)
        self.wake()

    def send_request(self, request: Request, destination: Address, owner, now: float):
        """Start a client transaction; ``owner`` gets its responses and failures."""
        self.add_via(request, destination)
        if "user-agent" not in request.headers:
            request.headers.add("User-Agent", self.user_agent)
        tx = self.layer.send_request(request, destination, now)
        tx.owner = owner
        self.wake()
        return tx

    def send_ack(self, ack: Request, destination: Address) -> None:
        """ACK for a 2xx: no transaction (§13.2.2.4); the caller keeps it to re-send."""
        if "via" not in ack.headers:
            self.add_via(ack, destination)
        self._out_message(ack, destination)

    def cancel(self, transaction, now: float, reason: str | None = None):
        """CANCEL a pending INVITE we sent (sent once it got a provisional, §9.1)."""
        self.wake()
        return self.layer.cancel(transaction, now, reason)

    def send_stateless(self, request: Request, source: Address, status: int,
                       reason: str | None = None, extra=()) -> None:
        """Answer without a transaction (errors found before the transaction layer)."""
        if request.method == "ACK":
            return
        resp = make_response(request, status, reason, to_tag=self.new_tag())
        for name, value in extra:
            resp.headers.add(name, value)
        self._stamp_response(resp)
        self._out_message(resp, T.response_address(request.top_via, source,
                                                   self.layer.symmetric_responses))

    def new_tag(self) -> str:
        return secrets.token_hex(6)

    def new_branch(self) -> str:
        return self.loop_mark + secrets.token_hex(8)

    def add_via(self, request: Request, destination: Address) -> None:
        host = self.local_host(destination.host)
        if ":" in host:
            host = f"[{host}]"
        transport = destination.transport.upper()
        port = self.ports.get(destination.transport, 5060)
        request.headers.insert_before(
            "Via", f"SIP/2.0/{transport} {host}:{port};branch={self.new_branch()};rport")
        request.invalidate()

    def contact_uri(self, destination: Address, user: str | None = None) -> str:
        host = self.local_host(destination.host)
        if ":" in host:
            host = f"[{host}]"
        port = self.ports.get(destination.transport, 5060)
        userpart = f"{user}@" if user else ""
        tp = ";transport=tcp" if destination.transport == "tcp" else ""
        return f"sip:{userpart}{host}:{port}{tp}"

    # -- internals ---------------------------------------------------------------------------
    def _out_message(self, msg: Message, dest: Address) -> None:
        data = msg.to_bytes()
        if self.trace:
            self._trace_out(data, dest)
        self._out.append((data, dest))
        self.wake()

    def _stamp_response(self, response: Response) -> None:
        headers = response.headers
        if headers._index is None:
            # a response built by make_response has no index yet: a scan of its few lines is
            # cheaper than building one (and keeps the retained response smaller)
            for item in headers._items:
                if canonical(item[0]) in ("server", "user-agent"):
                    return
        elif "server" in headers or "user-agent" in headers:
            return
        headers.add("Server", self.user_agent)

    def _stamp_via(self, msg: Request, source: Address) -> None:
        """RFC 3261 §18.2.1 received, RFC 3581 rport: remember where it really came from."""
        vias = msg.vias
        via = vias[0]
        host = source.host
        rport = via.param("rport") == ""
        if not rport and via.host.strip("[]") == host:
            return
        params = [(k, v) for k, v in via.params if k not in ("received", "rport")
                  or (k == "rport" and not rport)]
        if rport:
            params.insert(next((i for i, (k, _) in enumerate(via.params) if k == "rport"),
                               len(params)), ("rport", str(source.port)))
        params.append(("received", host))
        new = Via(via.transport, via.host, via.port, tuple(params))
        headers = msg.headers
        items = headers._items
        for i, item in enumerate(items):
            if canonical(item[0]) == "via":
                # replace only the first value of the first Via line
                first, sep, rest = _split_first_value(item[1])
                items[i] = (item[0], str(new) + (", " + rest if sep else ""))
                break
        headers._raw = None                  # the received header block is stale now
        vias[0] = new

    def _check(self, req: Request):
        """UAS checks before the transaction layer: (status, reason, extra headers) or None."""
        if req.method == "ACK":
            return None
        if req.uri.scheme not in ("sip", "sips", "tel"):
            return 416, None, ()
        mf = req.max_forwards
        if mf == 0:
            return 483, None, ()
        mark = self.loop_mark
        for via in req.vias:
            branch = via.branch
            if branch and branch.startswith(mark):
                return 482, None, ()
        if req.method not in self._users and req.method not in ("CANCEL", "ACK"):
            if not (req.to.tag and self._stray is not None):
                return 501, None, (("Allow", ALLOW),)
        rejection = check_request(req, supported=SUPPORTED_TAGS, schemes=("sip", "sips", "tel"))
        if rejection is not None:
            return rejection.status, rejection.reason, rejection.headers
        return None

    def _parse_error(self, e: SIPParseError, data: bytes, source: Address) -> None:
        self.counters["parse_errors"] += 1
        req = e.partial
        if req is not None and req.is_request and req.method != "ACK":
            self.log.info("bad request from {peer}: {reason}", peer=str(source), reason=e.reason)
            try:
                self._stamp_via(req, source)     # §18.2.1/RFC 3581: answer where it came from
                self.send_stateless(req, source, e.status, e.phrase)
            except SIPParseError:
                pass          # not answerable after all (a broken Via): dropped below
            else:
                return
        self.log.info("dropped unparsable message ({size} bytes) from {peer}: {reason}",
                      size=len(data), peer=str(source), reason=e.reason)

    def _dispatch(self, now: float) -> None:
        for event in self.layer.next_events():
            try:
                self._deliver(event, now)
            except Exception:
                self.log.failure("transaction user failed on {event}", event=type(event).__name__)

    def _deliver(self, event, now: float) -> None:
        if isinstance(event, T.RequestReceived):
            req = event.request
            user = self._users.get(req.method)
            if user is None or (req.to.tag and self._stray is not None and req.method != "REGISTER"):
                user = self._stray if (req.to.tag or req.method == "ACK") else user
            if user is None:
                if event.transaction is not None:
                    resp = make_response(req, 501, None, to_tag=self.new_tag())
                    resp.headers.add("Allow", ALLOW)
                    self.send_response(event.transaction, resp, now)
                return
            if event.transaction is not None:
                event.transaction.owner = user
            user.request_received(req, event.source, event.transaction)
        elif isinstance(event, T.ResponseReceived):
            user = event.transaction.owner if event.transaction is not None else self._stray
            if user is not None:
                user.response_received(event.response, event.source, event.transaction)
        elif isinstance(event, T.CancelReceived):
            user = event.transaction.owner
            if user is not None and hasattr(user, "cancel_received"):
                user.cancel_received(event.request, event.transaction)
        else:
            tx = event.transaction
            reason = {T.TransactionTimedOut: "timeout", T.TransportError: "transport",
                      T.AckTimeout: "ack-timeout", T.PrackTimeout: "prack-timeout"}.get(type(event))
            if reason == "timeout":
                self.counters["timeouts"] += 1
            user = tx.owner
            if user is not None and reason is not None:
                user.transaction_failed(tx, reason)

    def _trace(self, direction: str, msg: Message, peer: Address) -> None:
        if self.trace_filter is not None and not self.trace_filter(msg):
            return
        self.log.info("SIP {direction} {peer}:\n{text}", direction=direction, peer=str(peer),
                      text=msg.to_bytes().decode("utf-8", "replace"))

    def _trace_out(self, data: bytes, dest: Address) -> None:
        if self.trace_filter is not None:
            try:
                msg, _ = parse(data)
            except SIPParseError:
                return
            if not self.trace_filter(msg):
                return
        self.log.info("SIP out {peer}:\n{text}", peer=str(dest),
                      text=data.decode("utf-8", "replace"))


def _split_first_value(value: str):
    parts = split_values(value)
    if len(parts) == 1:
        return parts[0], "", ""
    return parts[0], ",", ", ".join(parts[1:])


@implementer(ITransactionUser)
class OptionsResponder:
    """OPTIONS to the server (RFC 3261 §11): 200 with Allow, Accept, Supported."""

    def __init__(self, core: SipCore, clock):
        self.core = core
        self.clock = clock

    def request_received(self, request, source, transaction):
        resp = make_response(request, 200, None, to_tag=self.core.new_tag())
        resp.headers.add("Allow", ALLOW)
        resp.headers.add("Accept", ACCEPT)
        resp.headers.add("Accept-Encoding", "identity")
        resp.headers.add("Accept-Language", "en")
        resp.headers.add("Supported", SUPPORTED)
        self.core.send_response(transaction, resp, self.clock.seconds())

    def response_received(self, response, source, transaction):
        pass

    def transaction_failed(self, transaction, reason):
        pass
