# -*- test-case-name: tests.sip.test_transaction -*-
"""The SIP transaction layer, sans-I/O (RFC 3261 §17 as amended by RFC 6026, with the UAS
retransmission services of RFC 3261 §13.3.1.4 and RFC 3262 §3, and CANCEL per §9).

Theory of operation
-------------------
One ``TransactionLayer`` holds every client and server transaction and a single timer heap.
It never touches the network or a clock: the Twisted shell feeds it parsed messages with the
current time (``receive_request``, ``receive_response``, ``handle_timer``) and, after each
call, drains what it produced:

- ``datagrams_to_send()``: ``(bytes, Address)`` pairs. Every message is serialized once and the
  bytes are kept for retransmissions.
- ``next_events()``: events for the transaction users (registrar, call core, trunk client).
- ``get_timer()``: the earliest deadline; the shell keeps one ``IDelayedCall`` armed at it.

Matching is one dict lookup. Server transactions are keyed by (branch, sent-by, method) with
ACK looked up as INVITE (§17.2.3); requests whose branch lacks the ``z9hG4bK`` cookie are keyed
by the RFC 2543 tuple (Request-URI, From tag, Call-ID, CSeq number, method, top Via) and the
To tag is checked after the lookup. Client transactions are keyed by (branch, CSeq method)
(§17.1.3). ACKs for 2xx are separate transactions (§13.2.2.4); they are matched to the INVITE
server transaction that is retransmitting the 2xx by (Call-ID, CSeq number, To tag).

Timers go on the core's one ``TimerHeap`` (``mss.sip.timers``), shared with the transaction
users; each transaction keeps its live timers by kind so that a state change cancels them.

States and timers (T1, T2, T4 from the constructor; on reliable transports A, E, G and the
2xx retransmission never run and D, I, J, K are zero, so the transaction ends at once):

- INVITE client: Calling (A doubling, B=64*T1) -> Proceeding -> Completed (ACK generated here
  for 300-699, D=32 s) or Accepted (RFC 6026, M=64*T1: further 2xx go to the TU).
- non-INVITE client: Trying (E doubling to T2, F=64*T1) -> Proceeding (E at T2) -> Completed
  (K=T4).
- INVITE server: Proceeding (100 Trying sent at once) -> Completed (G doubling to T2,
  H=64*T1) -> Confirmed on ACK (I=T4); or Accepted on 2xx (L=64*T1). In Accepted the layer
  also performs the UAS core's 2xx retransmission (§13.3.1.4, UDP only) until the ACK
  arrives, and reports ``AckTimeout`` when none came within 64*T1 (both transports).
- non-INVITE server: Trying -> Proceeding -> Completed (J=64*T1).
- Reliable provisional responses (RFC 3262 §3): retransmitted at T1, doubling without cap, on
  every transport (RFC 3262 makes no exception for reliable transports), until
  ``prack_received`` or a final response; ``PrackTimeout`` after 64*T1.

CANCEL (§9): ``cancel()`` builds the CANCEL and sends it once a provisional response has
arrived; if the INVITE is still unanswered 64*T1 after the CANCEL went out, the INVITE client
transaction is given up (``TransactionTimedOut``). A received CANCEL is answered here (200,
or 481 when it matches nothing) and the TU gets ``CancelReceived`` to answer the INVITE 487.

Transport errors terminate the transaction and the TU gets ``TransportError``.
"""
from __future__ import annotations

import os

import attrs
from twisted.logger import Logger

from mss.sip.address import Address
from mss.sip.headers import Headers
from mss.sip.message import Message, Request, Response, make_response
from mss.sip.timers import TimerHeap

MAGIC = "z9hG4bK"

# states (RFC 3261 §17 names; Accepted from RFC 6026)
CALLING = "Calling"
TRYING = "Trying"
PROCEEDING = "Proceeding"
COMPLETED = "Completed"
CONFIRMED = "Confirmed"
ACCEPTED = "Accepted"
TERMINATED = "Terminated"

TIMER_D = 32.0          # §17.1.1.2: at least 32 s on unreliable transports


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 64 random bits."""
    return MAGIC + os.urandom(8).hex()


def new_tag() -> str:
    """A fresh From/To tag (§19.3: at least 32 random bits)."""
    return os.urandom(6).hex()


# -- events ---------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class RequestReceived:
    """A new request for the TU. ``transaction`` is the server transaction to answer on;
    it is None for an ACK (ACK never gets a response)."""
    request: Request
    source: Address
    transaction: "ServerTransaction | None"


@attrs.frozen(slots=True)
class ResponseReceived:
    """A response for the TU. ``transaction`` is None for a response that matched no client
    transaction (a stray 2xx retransmission: the TU re-sends its ACK)."""
    response: Response
    source: Address
    transaction: "ClientTransaction | None"


@attrs.frozen(slots=True)
class CancelReceived:
    """A CANCEL matched a pending INVITE server transaction. The layer has answered the
    CANCEL 200; the TU answers the INVITE 487 (with ``transaction.to_tag``)."""
    request: Request
    source: Address
    transaction: "ServerTransaction"


@attrs.frozen(slots=True)
class TransactionTimedOut:
    """Timer B, F or H fired, or an INVITE stayed unanswered 64*T1 after its CANCEL."""
    transaction: "ClientTransaction | ServerTransaction"


@attrs.frozen(slots=True)
class TransportError:
    transaction: "ClientTransaction | ServerTransaction"


@attrs.frozen(slots=True)
class AckTimeout:
    """No ACK for our 2xx within 64*T1 (§13.3.1.4): the TU should send BYE."""
    transaction: "ServerTransaction"


@attrs.frozen(slots=True)
class PrackTimeout:
    """No PRACK for the reliable provisional ``rseq`` within 64*T1 (RFC 3262 §3): the TU
    should reject the INVITE with a 5xx."""
    transaction: "ServerTransaction"
    rseq: int


def response_address(via, source: Address, symmetric: bool = True) -> Address:
    """Where responses to a request go: the one rule of the switch (§18.2.2, RFC 3581).

    Stream transports: back on the connection the request came on. UDP: to the source address
    and port when ``rport`` was asked for or ``symmetric`` is set (the default: phones behind
    NAT are reachable nowhere else), else to the source address and the Via port. ``maddr``
    and a Via host that differs from the source are not honoured: a forged Via must not turn
    the switch into a reflector toward a third party.
    """
    if source.reliable or symmetric:
        return source
    for name, _ in via.params:
        if name == "rport":
            return source
    port = via.port or 5060
    if port == source.port:
        return source
    return Address(source.transport, source.host, port)


# -- transactions ---------------------------------------------------------------------------

class _Transaction:
    __slots__ = ("request", "method", "is_invite", "peer", "reliable", "state", "timers",
                 "interval", "key", "owner", "__weakref__")

    def __init__(self, request: Request, peer: Address, key):
        self.request = request
        self.method = request.method
        self.is_invite = request.method == "INVITE"
        self.peer = peer
        self.reliable = peer.reliable
        self.state = ""
        self.timers: dict = {}
        self.interval = 0.0
        self.key = key
        self.owner = None       # the transaction user the core hands its events to

    @property
    def terminated(self) -> bool:
        return self.state is TERMINATED

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state} {self.key!r}>"


class ClientTransaction(_Transaction):
    """An outgoing request (§17.1). ``destination`` is where it (and its ACK) goes."""

    __slots__ = ("data", "ack_data", "cancel_request", "cancel_transaction", "last_response")

    def __init__(self, request, destination, key):
        super().__init__(request, destination, key)
        self.data = b""
        self.ack_data: bytes | None = None
        self.cancel_request: Request | None = None
        self.cancel_transaction: ClientTransaction | None = None
        self.last_response: Response | None = None

    @property
    def destination(self) -> Address:
        return self.peer

    @property
    def branch(self) -> str:
        return self.key[0]


class ServerTransaction(_Transaction):
    """An incoming request (§17.2). ``source`` is where responses go; ``to_tag`` is the tag
    of our responses (or of the request, for a re-INVITE), which the TU should reuse."""

    __slots__ = ("key2543", "to_tag", "last_data", "last_response", "ack_key", "acked",
                 "reliable_1xx")

    def __init__(self, request, source, key, key2543):
        super().__init__(request, source, key)
        self.key2543 = key2543
        self.to_tag: str | None = request.to.tag
        self.last_data: bytes | None = None
        self.last_response: Response | None = None
        self.ack_key = None
        self.acked = False
        self.reliable_1xx: dict[int, list] | None = None    # rseq -> [data, interval, end]

    @property
    def source(self) -> Address:
        return self.peer


def _release_caches(request: Request) -> None:
    """Drop the parsed values and header index a request keeps (rebuilt on demand).

    A completed non-INVITE server transaction waits 64*T1 for retransmissions, which it
    matches by key alone; what parse cached for the request is some thirty objects per
    transaction that the garbage collector would otherwise walk again and again."""
    request.headers._index = None
    request.invalidate()


# -- the layer ------------------------------------------------------------------------------

class TransactionLayer:
    """All transactions of one SIP endpoint and their timers. See the module docstring."""

    log = Logger()

    def __init__(self, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0,
                 send_trying: bool = True, timer_d: float = TIMER_D,
                 symmetric_responses: bool = True, timers: TimerHeap | None = None):
        self.t1 = t1
        self.symmetric_responses = symmetric_responses
        self.t2 = t2
        self.t4 = t4
        self.timeout = 64 * t1
        self.timer_d = timer_d
        self.send_trying = send_trying
        self._client: dict = {}
        self._server: dict = {}
        self._server2543: dict = {}
        self._ack_index: dict = {}
        self.timers = timers if timers is not None else TimerHeap()    # the core's one heap
        self._out: list = []
        self._events: list = []
        # for metrics; names are stable
        self.counters = dict.fromkeys((
            "retransmissions_sent", "retransmissions_received", "timeouts",
            "transport_errors", "stray_responses", "ack_timeouts", "prack_timeouts",
            "cancels_received"), 0)
        self._fire = {
            "A": self._timer_a, "B": self._timer_b, "D": self._timer_end,
            "E": self._timer_e, "F": self._timer_f, "K": self._timer_end,
            "M": self._timer_end, "G": self._timer_g, "G2": self._timer_g2,
            "H": self._timer_h, "I": self._timer_end, "J": self._timer_end,
            "L": self._timer_l, "cancel": self._timer_cancel,
        }

    # -- outputs ------------------------------------------------------------------------------
    def datagrams_to_send(self) -> list:
        out, self._out = self._out, []
        return out

    def next_events(self) -> list:
        events, self._events = self._events, []
        return events

    def get_timer(self) -> float | None:
        return self.timers.next_deadline()

    def __len__(self) -> int:
        """Live transactions (client and server)."""
        return len(self._client) + len(self._server) + len(self._server2543)

    def __bool__(self) -> bool:
        return True                 # an idle layer is still a layer

    def unanswered(self, method: str) -> int:
        """Client transactions of ``method`` still waiting for a final response (Trying or
        Proceeding): a graceful shutdown waits for its BYEs to be answered."""
        return sum(1 for tx in self._client.values()
                   if tx.method == method and tx.state in (TRYING, PROCEEDING))

    def send_stateless(self, message: Message, destination: Address) -> None:
        """Send outside any transaction: the ACK for a 2xx, a re-ACK (§13.2.2.4)."""
        self._out.append((message.to_bytes(), destination))

    # -- timers -------------------------------------------------------------------------------
    def _schedule(self, tx: _Transaction, kind, delay: float, now: float) -> None:
        old = tx.timers.get(kind)
        if old is not None:
            old.cancel()
        tx.timers[kind] = self.timers.call_at(now + delay, self._fire_timer, tx, kind)

    def _cancel(self, tx: _Transaction, kind) -> None:
        timer = tx.timers.pop(kind, None)
        if timer is not None:
            timer.cancel()

    def _fire_timer(self, tx: _Transaction, kind) -> None:
        del tx.timers[kind]
        now = self.timers.now
        if type(kind) is tuple:
            self._timer_prack(tx, kind[1], now)
        else:
            self._fire[kind](tx, now)

    def handle_timer(self, now: float) -> None:
        """Run the timers due at ``now`` (when the layer owns its heap, as in its tests)."""
        self.timers.run_due(now)

    def _terminate(self, tx: _Transaction) -> None:
        if tx.state is TERMINATED:
            return
        tx.state = TERMINATED
        for timer in tx.timers.values():
            timer.cancel()
        tx.timers.clear()
        if isinstance(tx, ClientTransaction):
            if self._client.get(tx.key) is tx:
                del self._client[tx.key]
            return
        if tx.key is not None and self._server.get(tx.key) is tx:
            del self._server[tx.key]
        if tx.key2543 is not None and self._server2543.get(tx.key2543) is tx:
            del self._server2543[tx.key2543]
        if tx.ack_key is not None and self._ack_index.get(tx.ack_key) is tx:
            del self._ack_index[tx.ack_key]
        tx.reliable_1xx = None

    # -- client side (§17.1) ------------------------------------------------------------------
    def send_request(self, request: Request, destination: Address, now: float
                     ) -> ClientTransaction:
        """Start a client transaction. The request must carry a top Via with a fresh
        ``z9hG4bK`` branch (``new_branch()``). ACK is not a transaction: ``send_stateless``."""
        method = request.method
        if method == "ACK":
            raise ValueError("ACK is sent with send_stateless, not in a transaction")
        via = request.top_via
        branch = via.branch if via is not None else None
        if not branch or not branch.startswith(MAGIC):
            raise ValueError("a client request needs a top Via with a z9hG4bK branch")
        key = (branch, method)
        if key in self._client:
            raise ValueError(f"branch {branch} already in use for {method}")
        tx = ClientTransaction(request, destination, key)
        self._client[key] = tx
        tx.data = data = request.to_bytes()
        self._out.append((data, destination))
        tx.interval = self.t1
        if tx.is_invite:
            tx.state = CALLING
            if not tx.reliable:
                self._schedule(tx, "A", self.t1, now)
            self._schedule(tx, "B", self.timeout, now)
        else:
            tx.state = TRYING
            if not tx.reliable:
                self._schedule(tx, "E", self.t1, now)
            self._schedule(tx, "F", self.timeout, now)
        return tx

    def receive_response(self, response: Response, source: Address, now: float) -> None:
        via = response.top_via
        branch = via.branch if via is not None else None
        tx = self._client.get((branch, response.cseq.method)) if branch else None
        if tx is None:
            self._events.append(ResponseReceived(response, source, None))
            self.counters["stray_responses"] += 1
            return
        status = response.status
        state = tx.state
        if tx.is_invite:
            if state is CALLING or state is PROCEEDING:
                tx.last_response = response
                if status < 200:
                    if state is CALLING:
                        self._cancel(tx, "A")
                        self._cancel(tx, "B")
                        tx.state = PROCEEDING
                        self._events.append(ResponseReceived(response, source, tx))
                        if tx.cancel_request is not None:
                            self._send_cancel(tx, now)
                        return
                    self._events.append(ResponseReceived(response, source, tx))
                    return
                self._cancel(tx, "A")
                self._cancel(tx, "B")
                self._cancel(tx, "cancel")
                self._events.append(ResponseReceived(response, source, tx))
                if status < 300:
                    tx.state = ACCEPTED
                    self._schedule(tx, "M", self.timeout, now)
                    return
                tx.ack_data = self._make_ack(tx.request, response).to_bytes()
                self._out.append((tx.ack_data, tx.peer))
                tx.state = COMPLETED
                if tx.reliable:
                    self._terminate(tx)
                else:
                    self._schedule(tx, "D", self.timer_d, now)
            elif state is ACCEPTED:
                if 200 <= status < 300:
                    self._events.append(ResponseReceived(response, source, tx))
            elif state is COMPLETED:
                if status >= 300:
                    self._out.append((tx.ack_data, tx.peer))        # absorbed, re-ACKed
                    self.counters["retransmissions_received"] += 1
                elif status >= 200:
                    self._events.append(ResponseReceived(response, source, None))
            return
        if state is TRYING or state is PROCEEDING:
            tx.last_response = response
            if status < 200:
                if state is TRYING:
                    tx.state = PROCEEDING
                self._events.append(ResponseReceived(response, source, tx))
                return
            self._cancel(tx, "E")
            self._cancel(tx, "F")
            tx.state = COMPLETED
            self._events.append(ResponseReceived(response, source, tx))
            if tx.reliable:
                self._terminate(tx)
            else:
                self._schedule(tx, "K", self.t4, now)

    @staticmethod
    def _make_ack(invite: Request, response: Response) -> Request:
        """§17.1.1.3: the ACK for a non-2xx final, built by the client transaction."""
        h = invite.headers
        items = [["Via", str(invite.top_via)]]
        items.append(["Max-Forwards", h.get("max-forwards") or "70"])
        items.append(["From", h.get("from")])
        items.append(["To", response.headers.get("to")])
        items.append(["Call-ID", h.get("call-id")])
        items.append(["CSeq", f"{invite.cseq.number} ACK"])
        for route in h.get_lines("route"):
            items.append(["Route", route])
        items.append(["Content-Length", "0"])
        return Request("ACK", invite.uri, Headers(items))

    def cancel(self, tx: ClientTransaction, now: float, reason: str | None = None
               ) -> Request | None:
        """CANCEL the INVITE of ``tx`` (§9.1). Sent now if a provisional response has
        arrived, else when the first one does. Returns None when the INVITE already has a
        final response (nothing to cancel). ``reason`` is a Reason header value."""
        if not tx.is_invite:
            raise ValueError("only an INVITE client transaction can be cancelled")
        if tx.state is not CALLING and tx.state is not PROCEEDING:
            return None
        if tx.cancel_request is not None:
            return tx.cancel_request
        invite = tx.request
        h = invite.headers
        items = [["Via", str(invite.top_via)],
                 ["Max-Forwards", h.get("max-forwards") or "70"],
                 ["From", h.get("from")], ["To", h.get("to")], ["Call-ID", h.get("call-id")],
                 ["CSeq", f"{invite.cseq.number} CANCEL"]]
        for route in h.get_lines("route"):
            items.append(["Route", route])
        if reason is not None:
            items.append(["Reason", reason])
        items.append(["Content-Length", "0"])
        tx.cancel_request = cancel = Request("CANCEL", invite.uri, Headers(items))
        if tx.state is PROCEEDING:
            self._send_cancel(tx, now)
        return cancel

    def _send_cancel(self, tx: ClientTransaction, now: float) -> None:
        existing = self._client.get((tx.key[0], "CANCEL"))
        if existing is not None:          # the TU sent its own CANCEL already
            tx.cancel_transaction = existing
        else:
            tx.cancel_transaction = self.send_request(tx.cancel_request, tx.peer, now)
        self._schedule(tx, "cancel", self.timeout, now)

    def _timer_a(self, tx, now):
        if tx.state is CALLING:
            self._out.append((tx.data, tx.peer))
            self.counters["retransmissions_sent"] += 1
            tx.interval *= 2
            self._schedule(tx, "A", tx.interval, now)

    def _timer_b(self, tx, now):
        if tx.state is CALLING:
            self._events.append(TransactionTimedOut(tx))
            self.counters["timeouts"] += 1
            self._terminate(tx)

    def _timer_cancel(self, tx, now):
        """§9.1: no final response 64*T1 after the CANCEL: consider the INVITE cancelled."""
        if tx.state is PROCEEDING:
            self._events.append(TransactionTimedOut(tx))
            self.counters["timeouts"] += 1
            self._terminate(tx)

    def _timer_e(self, tx, now):
        if tx.state is TRYING:
            tx.interval = min(tx.interval * 2, self.t2)
        elif tx.state is PROCEEDING:
            tx.interval = self.t2
        else:
            return
        self._out.append((tx.data, tx.peer))
        self.counters["retransmissions_sent"] += 1
        self._schedule(tx, "E", tx.interval, now)

    def _timer_f(self, tx, now):
        self._events.append(TransactionTimedOut(tx))
        self.counters["timeouts"] += 1
        self._terminate(tx)

    def _timer_end(self, tx, now):
        """D, I, J, K, M: the wait for retransmissions is over."""
        self._terminate(tx)

    # -- server side (§17.2) ------------------------------------------------------------------
    def receive_request(self, request: Request, source: Address, now: float) -> None:
        via = request.top_via
        if via is None:
            self.log.warn("request without Via from {peer} dropped", peer=str(source))
            return
        method = request.method
        branch = via.branch
        if branch is not None and branch.startswith(MAGIC):
            key = (branch, via.host.lower(), via.port, "INVITE" if method == "ACK" else method)
            key2543 = None
            tx = self._server.get(key)
        else:
            key = None
            key2543 = self._key2543(request, via, "INVITE" if method == "ACK" else method)
            tx = self._server2543.get(key2543)
            if tx is not None:
                tag = request.to.tag
                if method == "ACK":
                    if tag != tx.to_tag:
                        tx = None
                elif tag != tx.request.to.tag:
                    tx = None
        if method == "ACK":
            self._receive_ack(request, source, tx, now)
            return
        if tx is not None:
            # a retransmission: absorb it, answering with the last response (§17.2.1-2)
            self.counters["retransmissions_received"] += 1
            state = tx.state
            if (state is PROCEEDING or state is COMPLETED) and tx.last_data is not None:
                self._out.append((tx.last_data, tx.peer))
            return
        tx = ServerTransaction(request, response_address(via, source, self.symmetric_responses),
                               key, key2543)
        if key is not None:
            self._server[key] = tx
        else:
            self._server2543[key2543] = tx
        if method == "CANCEL":
            tx.state = TRYING
            self._receive_cancel(request, source, tx, via, now)
            return
        if tx.is_invite:
            tx.state = PROCEEDING
            if self.send_trying:
                trying = make_response(request, 100)
                tx.last_response = trying
                tx.last_data = data = trying.to_bytes()
                self._out.append((data, source))
        else:
            tx.state = TRYING
        self._events.append(RequestReceived(request, source, tx))

    @staticmethod
    def _key2543(request: Request, via, method: str) -> tuple:
        return (request.uri, request.from_.tag, request.call_id, request.cseq.number, method,
                via)

    def _receive_ack(self, ack: Request, source: Address, tx, now: float) -> None:
        if tx is not None and tx.is_invite:
            state = tx.state
            if state is COMPLETED:
                self._cancel(tx, "G")
                self._cancel(tx, "H")
                tx.state = CONFIRMED
                if tx.reliable:
                    self._terminate(tx)
                else:
                    self._schedule(tx, "I", self.t4, now)
                return
            if state is not ACCEPTED:
                return                       # Confirmed: absorbed; Proceeding: bogus
        else:
            tx = self._ack_index.get((ack.call_id, ack.cseq.number, ack.to.tag))
        if tx is not None and not tx.acked:
            tx.acked = True
            self._cancel(tx, "G2")
        self._events.append(RequestReceived(ack, source, None))

    def _receive_cancel(self, cancel: Request, source: Address, tx: ServerTransaction,
                        via, now: float) -> None:
        """§9.2: answer the CANCEL here; tell the TU if an INVITE is still pending."""
        if tx.key is not None:
            invite = self._server.get(tx.key[:3] + ("INVITE",))
        else:
            invite = self._server2543.get(self._key2543(cancel, via, "INVITE"))
            if invite is not None and invite.request.to.tag != cancel.to.tag:
                invite = None
        if invite is None:
            self.send_response(tx, make_response(cancel, 481, to_tag=new_tag()), now)
            return
        if invite.to_tag is None:
            invite.to_tag = new_tag()
        self.send_response(tx, make_response(cancel, 200, to_tag=invite.to_tag), now)
        if invite.state is PROCEEDING:
            self._events.append(CancelReceived(cancel, source, invite))
            self.counters["cancels_received"] += 1

    def send_response(self, tx: ServerTransaction, response: Response, now: float) -> None:
        """Send a response on a server transaction (§17.2.1-2). A 2xx to INVITE moves it to
        Accepted, where the 2xx is retransmitted (UDP) until the ACK arrives."""
        state = tx.state
        status = response.status
        if tx.is_invite:
            if state is ACCEPTED and 200 <= status < 300:
                tx.last_data = data = response.to_bytes()     # a TU retransmission or a new 2xx
                self._out.append((data, tx.peer))
                return
            if state is not PROCEEDING:
                self.log.warn("{status} on INVITE transaction in state {state} dropped",
                              status=status, state=state)
                return
            if status >= 200 or (tx.to_tag is None and status > 100):
                tx.to_tag = response.to.tag        # the final's tag is what the ACK carries
            tx.last_response = response
            tx.last_data = data = response.to_bytes()
            self._out.append((data, tx.peer))
            if status < 200:
                return
            if tx.reliable_1xx:
                for rseq in tx.reliable_1xx:
                    self._cancel(tx, ("P", rseq))
                tx.reliable_1xx = None
            tx.interval = self.t1
            if status < 300:
                tx.state = ACCEPTED
                request = tx.request
                tx.ack_key = key = (request.call_id, request.cseq.number, response.to.tag)
                self._ack_index[key] = tx
                if not tx.reliable:
                    self._schedule(tx, "G2", self.t1, now)
                self._schedule(tx, "L", self.timeout, now)
            else:
                tx.state = COMPLETED
                if not tx.reliable:
                    self._schedule(tx, "G", self.t1, now)
                self._schedule(tx, "H", self.timeout, now)
            return
        if state is not TRYING and state is not PROCEEDING:
            self.log.warn("{status} on {method} transaction in state {state} dropped",
                          status=status, method=tx.method, state=state)
            return
        tx.last_response = response
        tx.last_data = data = response.to_bytes()
        self._out.append((data, tx.peer))
        if status < 200:
            tx.state = PROCEEDING
            return
        tx.state = COMPLETED
        if tx.reliable:
            self._terminate(tx)
        else:
            self._schedule(tx, "J", self.timeout, now)
            _release_caches(tx.request)

    def send_reliable_provisional(self, tx: ServerTransaction, response: Response,
                                  now: float) -> None:
        """Send a 101-199 carrying RSeq and retransmit it until ``prack_received`` (RFC 3262
        §3): at T1, doubling, on every transport; ``PrackTimeout`` after 64*T1."""
        if not tx.is_invite or not 100 < response.status < 200:
            raise ValueError("reliable provisionals are 101-199 responses to INVITE")
        rseq_text = response.headers.get("rseq")
        if rseq_text is None or not rseq_text.strip().isdigit():
            raise ValueError("a reliable provisional response needs an RSeq header")
        if tx.state is not PROCEEDING:
            self.log.warn("reliable {status} after the final response dropped",
                          status=response.status)
            return
        self.send_response(tx, response, now)
        rseq = int(rseq_text)
        if tx.reliable_1xx is None:
            tx.reliable_1xx = {}
        tx.reliable_1xx[rseq] = [tx.last_data, self.t1, now + self.timeout]
        self._schedule(tx, ("P", rseq), self.t1, now)

    def prack_received(self, tx: ServerTransaction, rseq: int) -> bool:
        """The TU matched a PRACK's RAck to this transaction: stop retransmitting ``rseq``.
        False when that provisional was not outstanding."""
        pending = tx.reliable_1xx
        if not pending or pending.pop(rseq, None) is None:
            return False
        self._cancel(tx, ("P", rseq))
        return True

    def _timer_prack(self, tx, rseq, now):
        record = tx.reliable_1xx.get(rseq) if tx.reliable_1xx else None
        if record is None:
            return
        data, interval, end = record
        if now >= end:
            del tx.reliable_1xx[rseq]
            self._events.append(PrackTimeout(tx, rseq))
            self.counters["prack_timeouts"] += 1
            return
        self._out.append((data, tx.peer))
        self.counters["retransmissions_sent"] += 1
        record[1] = interval = interval * 2
        self._schedule(tx, ("P", rseq), min(interval, end - now), now)

    def _timer_g(self, tx, now):
        if tx.state is COMPLETED:
            self._out.append((tx.last_data, tx.peer))
            self.counters["retransmissions_sent"] += 1
            tx.interval = min(tx.interval * 2, self.t2)
            self._schedule(tx, "G", tx.interval, now)

    def _timer_g2(self, tx, now):
        """§13.3.1.4: the UAS core's 2xx retransmission, T1 doubling up to T2."""
        if tx.state is ACCEPTED and not tx.acked:
            self._out.append((tx.last_data, tx.peer))
            self.counters["retransmissions_sent"] += 1
            tx.interval = min(tx.interval * 2, self.t2)
            self._schedule(tx, "G2", tx.interval, now)

    def _timer_h(self, tx, now):
        self._events.append(TransactionTimedOut(tx))
        self.counters["timeouts"] += 1
        self._terminate(tx)

    def _timer_l(self, tx, now):
        if not tx.acked:
            self._events.append(AckTimeout(tx))
            self.counters["ack_timeouts"] += 1
        self._terminate(tx)

    # -- transport errors (§17.1.4, §17.2.4) ----------------------------------------------------
    def transport_error(self, target, now: float) -> None:
        """A send failed: ``target`` is a transaction, or an Address (every transaction with
        that peer; a scan, transport errors are rare)."""
        if isinstance(target, _Transaction):
            victims = [target]
        else:
            victims = [tx for table in (self._client, self._server, self._server2543)
                       for tx in table.values() if tx.peer == target]
        for tx in victims:
            if tx.state is not TERMINATED:
                self._events.append(TransportError(tx))
                self.counters["transport_errors"] += 1
                self._terminate(tx)
