# -*- test-case-name: tests.call.test_manager -*-
"""The call core's transaction user: new INVITEs become ``Call`` objects; everything else in a
dialog is routed to its call and leg.

For a new INVITE, in order: overload (503 + Retry-After when too many calls are being set up,
so calls in progress keep a short post-dial delay), media (503 "Media Gateway Unavailable" +
Retry-After + Reason while the gateway is known to be down), authentication of the calling extension
(407, the registrar's digest), routing (``Router``: extension, 404, 480), call waiting
(486 when the callee is in a call and has call waiting off), then the ``Call`` forks to the
callee's devices. Requests with a To tag are matched to a leg by (Call-ID, our tag); responses
to our requests by their client transaction. Every ended call leaves one CDR in the store.

Containment: every entry into a call (requests, responses, transaction failures, CANCEL,
timers) runs under ``guarded``; an exception there is logged with the call's id and ends that
call cleanly (500 to a waiting caller, BYE on answered legs, CDR "failed"), so that a bug or
unforeseen input costs one call, never leaked state or the shell's timer loop.
"""
from __future__ import annotations

import secrets
import weakref

from twisted.logger import Logger
from zope.interface import implementer

from mss.call.call import Call
from mss.call.cdr import cdr_of, rejected_cdr
from mss.call.context import CallContext
from mss.call.legs import ALeg, BLeg
from mss.call.media import PassThroughMedia
from mss.call.relay import relayed_response
from mss.call.reliable import caller_wants_reliable
from mss.call.routing import Router
from mss.call.services import ServiceHooks
from mss.call.state import ANSWERED, ENDED, LEG_ANSWERED, SETUP
from mss.services.api import ANSWER, BREAK_IN, FEATURE, REDIRECT, REJECT, is_anonymous
from mss.sip.core import ALLOW, ITransactionUser
from mss.sip.message import make_response

MEDIA_DOWN = "Media Gateway Unavailable"


def _caller_change(decision, caller, display):
    """A service may change the displayed caller (number and/or name)."""
    if decision.caller is not None:
        caller = decision.caller
    if decision.caller_display is not None:
        display = decision.caller_display
    return caller, display


_GO_ON = object()        # a service decision that lets the call's setup go on


class _Setup:
    """A call being set up in ``CallManager.start_call``, as the services change it."""

    __slots__ = ("caller", "caller_ext", "display", "direction", "trunk", "dialled", "route",
                 "ring_time", "diversions")

    def __init__(self, caller, caller_ext, display, direction, trunk, dialled, route,
                 ring_time):
        self.caller = caller
        self.caller_ext = caller_ext
        self.display = display
        self.direction = direction
        self.trunk = trunk
        self.dialled = dialled
        self.route = route
        self.ring_time = ring_time
        self.diversions: list[tuple[str, object]] = []   # (number diverted from, Decision)

    def facts(self, hooks, request, callee: str, diversions=()):
        """What the services are told about this call, to ``callee``, as it stands now."""
        return hooks.facts(request, request.call_id, self.caller, callee, display=self.display,
                           caller_ext=self.caller_ext, direction=self.direction,
                           trunk=self.trunk, diversions=diversions)


class _GuardedTimers:
    """The core's timer heap as the calls see it: a timer whose callback is a call's method
    runs under ``CallManager.guarded`` (an exception there must not reach the shell's timer
    loop, and must end that call cleanly)."""

    __slots__ = ("heap", "manager")

    def __init__(self, heap, manager):
        self.heap = heap
        self.manager = manager

    def call_at(self, when, fn, *args):
        return self.heap.call_at(when, self._run, fn, args)

    def _run(self, fn, args):
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, Call):
            self.manager.guarded(owner, fn, *args)
            return
        try:
            fn(*args)
        except Exception:
            self.manager.log.failure("call timer {timer} failed", timer=repr(fn))

    def __getattr__(self, name):
        return getattr(self.heap, name)


class _InContext:
    """A setting the calls read from the ``CallContext``: set on the manager (by the
    assembly, operations or tests), kept in one place."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, manager, owner=None):
        return self if manager is None else getattr(manager.context, self.name)

    def __set__(self, manager, value):
        setattr(manager.context, self.name, value)


@implementer(ITransactionUser)
class CallManager:
    log = Logger()

    media = _InContext()
    hooks = _InContext()
    router = _InContext()
    trunks = _InContext()
    no_answer_timeout = _InContext()
    max_duration = _InContext()
    forward_limit = _InContext()
    call_waiting = _InContext()

    def __init__(self, core, clock, store, directory, bindings, auth, *, domain: str,
                 no_answer_timeout: float = 30, max_duration: float = 0, max_setup: int = 200,
                 retry_after: int = 5, prefer_100rel: bool = False, call_waiting: bool = True,
                 media=None, wall=None, trunks=None):
        self.core = core
        self.clock = clock
        self.store = store
        self.directory = directory
        self.bindings = bindings
        self.auth = auth
        self.domain = domain
        self.max_setup = max_setup
        self.retry_after = retry_after
        self.prefer_100rel = prefer_100rel
        self.timers = _GuardedTimers(core.timers, self)     # a failing timer ends its call
        self.allow = ALLOW
        self.contact_user = "mss"
        self.in_call: dict[str, int] = {}                 # extension -> active calls
        self._wall = wall or clock.seconds
        self.context = CallContext(
            now=clock.seconds, wall=self._wall, timers=self.timers,
            send_request=self.send, send_response=core.send_response,
            send_reliable_provisional=core.send_reliable_provisional, send_ack=core.send_ack,
            cancel=core.cancel, prack_received=core.layer.prack_received, new_tag=core.new_tag,
            new_call_id=self.new_call_id, contact_uri=core.contact_uri,
            local_host=core.local_host, media=media or PassThroughMedia(),
            hooks=ServiceHooks(None, directory, bindings, self._wall, self.in_call),
            router=Router(directory, bindings, trunks), directory=directory, trunks=trunks,
            register_leg=self.register_leg, forget_leg=self.forget_leg,
            answered=self.call_answered, ended=self.call_ended,
            media_down_headers=self.media_down_headers, domain=domain, allow=self.allow,
            contact_user=self.contact_user, no_answer_timeout=no_answer_timeout,
            max_duration=max_duration, call_waiting=call_waiting)
        self.calls: dict[str, Call] = {}                 # A-leg Call-ID -> call
        self._legs: dict[tuple, tuple] = {}              # (Call-ID, our tag) -> (call, leg)
        self._tx: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._a_tx: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.setting_up = 0
        self.accepting = True                               # False while shutting down
        self.counters = {"calls": 0, "answered": 0, "busy": 0, "no answer": 0, "cancelled": 0,
                         "failed": 0, "rejected": 0, "overload": 0, "media_down": 0}
        self.listeners = []          # callables(call, event) for metrics/services: "answered"/"ended"

    def set_engine(self, engine, forward_limit: int = 5) -> None:
        """Attach the Lua service engine (``mss.services.engine.ServiceEngine``)."""
        self.context.hooks.engine = engine
        self.context.forward_limit = forward_limit

    # -- helpers the calls use -----------------------------------------------------------------
    def now(self) -> float:
        return self.clock.seconds()

    def wall(self) -> float:
        return self._wall()

    def new_call_id(self) -> str:
        return secrets.token_hex(10) + "@" + self.domain


    def send(self, request, destination, call, leg, purpose):
        tx = self.core.send_request(request, destination, self, self.now())
        self._tx[tx] = (call, leg, purpose)
        return tx

    def register_leg(self, call, leg) -> None:
        self._legs[leg.key] = (call, leg)

    def forget_leg(self, leg) -> None:
        entry = self._legs.get(leg.key)
        if entry is not None and entry[1] is leg and leg.state is not LEG_ANSWERED:
            del self._legs[leg.key]

    def call_answered(self, call: Call) -> None:
        self.setting_up -= 1
        if call.callee_ext:
            self.in_call[call.callee_ext] = self.in_call.get(call.callee_ext, 0) + 1
        self.counters["answered"] += 1
        if self.context.hooks.active:
            self.context.hooks.answered(call.facts())
        for listener in self.listeners:
            listener(call, "answered")

    def call_ended(self, call: Call) -> None:
        if self.context.trunks is not None:
            # a call from a trunk may go out through one as well (forwarded by a service)
            if call.inbound_trunk:
                self.context.trunks.release(call.inbound_trunk, "in")
            if call.trunk and call.trunk_direction == "out":
                self.context.trunks.release(call.trunk, "out")
        if call.answer_time is None:
            self.setting_up -= 1
        elif call.callee_ext:
            self._dec(call.callee_ext)
        if call.caller_ext:
            self._dec(call.caller_ext)
        if call.barged is not None and hasattr(self.context.media, "room_leave"):
            self.context.media.room_leave(call.id, call.a.request.from_.tag)
            victim = call.barged
            if victim.state is ANSWERED and not any(
                    o.barged is victim and o is not call for o in self.calls.values()):
                # the last operator left: the two parties go back to plain relaying (no mixing
                # for the rest of their call)
                self.context.media.room_leave(victim.id, victim.a.request.from_.tag)
                if victim.winner is not None:
                    self.context.media.room_leave(victim.id, victim.winner.tag)
        for other in list(self.calls.values()):
            if other.barged is call and other is not call:
                other.hangup("the call it broke into ended")
        self.context.media.delete(call.id)
        try:
            self.store.add_cdr(cdr_of(call))          # durable before the call is dropped
        except Exception:
            self.log.failure("CDR for call {call_id} could not be written", call_id=call.id)
        if self.calls.get(call.id) is call:
            del self.calls[call.id]
        for leg in [call.a, *call.b_legs]:
            entry = self._legs.get(leg.key)
            if entry is not None and entry[0] is call:
                del self._legs[leg.key]
        if call.disposition in self.counters and call.disposition != "answered":
            self.counters[call.disposition] += 1       # "answered" counts at the answer
        # one log line per call (an event costs ~20 us even when filtered out: keep it one)
        self.log.info("call {call_id} {caller} -> {callee} ended: {disposition} ({cause})",
                      call_id=call.id, caller=call.caller, callee=call.callee,
                      disposition=call.disposition, cause=call.cause)
        if self.context.hooks.active:
            self.context.hooks.ended(call.facts(), call.disposition)
        for listener in self.listeners:
            listener(call, "ended")

    def _dec(self, ext: str) -> None:
        n = self.in_call.get(ext, 0) - 1
        if n > 0:
            self.in_call[ext] = n
        else:
            self.in_call.pop(ext, None)

    # -- ITransactionUser ----------------------------------------------------------------------
    def request_received(self, request, source, transaction):
        tag = request.to.tag
        if tag is not None or request.method == "ACK":
            entry = self._legs.get((request.call_id, tag)) if tag else None
            if entry is None:
                if transaction is not None:
                    self._answer(transaction, request, 481)
                return
            call, leg = entry
            try:
                call.in_dialog_request(leg, request, transaction)
            except Exception:
                self.log.failure("call {call_id}: internal error on {method}; ending the call",
                                 call_id=call.id, method=request.method)
                self._answer_500(transaction, request)      # a server transaction never
                self.abort(call)                            # answered would stay forever
            return
        if request.method == "INVITE":
            try:
                self._new_invite(request, source, transaction)
            except Exception:
                self._new_invite_failed(request, transaction)
        elif transaction is not None:
            # out-of-dialog requests the call core does not serve (BYE, INFO without a dialog)
            self._answer(transaction, request, 481 if request.method in ("BYE", "PRACK", "UPDATE")
                         else 405, extra=(("Allow", ALLOW),))

    def response_received(self, response, source, transaction):
        if transaction is None:
            self._stray(response)
            return
        entry = self._tx.get(transaction)
        if entry is None:
            return
        call, leg, purpose = entry
        if response.status in (401, 407) and purpose != "invite" and \
                call.trunk_challenged(leg, purpose, transaction.request, response):
            return                       # re-sent with the trunk's credentials
        if purpose == "invite":
            self.guarded(call, call.b_invite_response, leg, response)
        elif isinstance(purpose, tuple) and purpose[0] == "relay":
            _, from_leg, req, tx = purpose
            self.guarded(call, relayed_response, call, leg, from_leg, req, tx, response)
        # PRACK and BYE answers need nothing: a 405/501 to our PRACK must not break the call

    def transaction_failed(self, transaction, reason):
        entry = self._tx.get(transaction)
        if entry is not None:
            call, leg, purpose = entry
            self.guarded(call, call.leg_failed, leg, purpose, reason)
            return
        call = self._a_tx.get(transaction)
        if call is not None:
            self.guarded(call, call.a_failed, reason)

    def cancel_received(self, cancel, transaction):
        call = self._a_tx.get(transaction)
        if call is not None:
            self.guarded(call, call.caller_cancelled)

    # -- containment of our own bugs ----------------------------------------------------------------
    def guarded(self, call, fn, *args):
        """Run a call's handler; if it raises (a bug, or input we did not foresee), log it and
        end that call cleanly (500 to a caller still waiting, BYE on answered legs, CDR
        "failed") so that no state is left half-changed and nothing leaks."""
        try:
            return fn(*args)
        except Exception:
            self.log.failure("call {call_id}: internal error in {handler}; ending the call",
                             call_id=call.id, handler=getattr(fn, "__name__", "?"))
            self.abort(call)

    def abort(self, call) -> None:
        try:
            if call.state is SETUP:
                call.fail(500, None, "internal error")
            elif call.state is ANSWERED:
                call.hangup("internal error")
        except Exception:
            self.log.failure("call {call_id}: could not end the call cleanly", call_id=call.id)
        if call.state is not ENDED:
            try:
                call.end("failed", "internal error")
            except Exception:
                self.log.failure("call {call_id}: end failed; forgetting it", call_id=call.id)
                call.state = ENDED
                self.calls.pop(call.id, None)
                for key, entry in list(self._legs.items()):
                    if entry[0] is call:
                        del self._legs[key]

    def _new_invite_failed(self, request, tx) -> None:
        self.log.failure("INVITE {call_id}: internal error", call_id=request.call_id)
        call = self._a_tx.get(tx) if tx is not None else None
        if call is not None:
            self.abort(call)
        else:
            self._answer_500(tx, request)

    def _answer_500(self, tx, request) -> None:
        """500 on a server transaction that has no final response yet."""
        if tx is None or tx.terminated:
            return
        last = tx.last_response
        if last is not None and last.status >= 200:
            return
        try:
            self._answer(tx, request, 500)
        except Exception:
            self.log.failure("{method} {call_id}: could not answer 500", method=request.method,
                             call_id=request.call_id)

    def _stray(self, response):
        """A 2xx retransmission after its transaction ended: re-send the ACK (§13.2.2.4)."""
        if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        entry = self._legs.get((response.call_id, response.from_.tag))
        if entry is not None and isinstance(entry[1], BLeg):
            entry[0].re_ack(entry[1])

    # -- new calls ---------------------------------------------------------------------------------
    def _new_invite(self, request, source, tx):
        now = self.now()
        if not self.accepting:                    # shutting down: refuse quickly
            self._answer(tx, request, 503, extra=(("Retry-After", str(self.retry_after)),))
            return
        if request.call_id in self.calls:
            # §8.2.2.2: the same request again by another path (a new branch), or another
            # INVITE reusing a live call's Call-ID (which would take that call's place): 482
            self._answer(tx, request, 482)
            return
        if self.setting_up >= self.max_setup:
            self.counters["overload"] += 1
            self._answer(tx, request, 503, extra=(("Retry-After", str(self.retry_after)),))
            return
        if not getattr(self.context.media, "available", True):
            # a call now would connect with no audio: refuse it until the gateway is back
            self.counters["media_down"] += 1
            self._answer(tx, request, 503, MEDIA_DOWN, extra=self.media_down_headers())
            return
        trunk = self.context.trunks.inbound_trunk(source.host, request.uri.number,
                                          request.to.uri.number) \
            if self.context.trunks is not None else None
        if trunk is not None:
            self._trunk_invite(request, source, tx, trunk)
            return
        caller = request.from_.uri.number or "anonymous"
        # a phone hiding its number (RFC 3323 4.1.1.3: From "Anonymous" <sip:anonymous@
        # anonymous.invalid>) still authenticates as its extension: the digest user names it
        hidden = is_anonymous(request.from_.uri.number)
        outcome = self.auth.check(request, source.host, now, proxy=True,
                                  expected_user=None if hidden else caller)
        if outcome.kind == "drop":
            return
        if outcome.kind == "challenge":
            self._answer(tx, request, 407, extra=outcome.headers)
            return
        if outcome.kind == "forbidden":
            self.log.info("INVITE from {peer} for {caller} refused: {why}", peer=source.host,
                          caller=caller, why=outcome.reason)
            self._answer(tx, request, 403)
            return
        ext = outcome.extension
        self.start_call(request, source, tx, caller=ext.number, caller_ext=ext.number,
                        display=request.from_.display or ext.name or None, direction="internal")

    def _trunk_invite(self, request, source, tx, trunk):
        """An INVITE from a carrier: no digest; the DID picks the extension; inbound limits."""
        number = request.uri.number or ""
        trunks = self.context.trunks
        ext = trunks.did(number) or trunks.did(request.to.uri.number or "")
        caller = request.from_.uri.number or "anonymous"
        if ext is None:
            self.log.info("inbound call on trunk {trunk} to unknown DID {did}", trunk=trunk.name,
                          did=number)
            self._answer(tx, request, 404)
            self._write_rejected(request, caller, number, "inbound", 404, "unknown DID")
            return
        refused = self.context.trunks.acquire(trunk, "in")
        if refused:
            self.log.info("inbound call on trunk {trunk} refused by its limit ({status})",
                          trunk=trunk.name, status=refused)
            self._answer(tx, request, refused)
            self._write_rejected(request, caller, number, "inbound", refused, "trunk limit")
            return
        call = self.start_call(request, source, tx, caller=caller, caller_ext=None,
                               display=request.from_.display, direction="inbound",
                               route=self.context.router.local(ext), callee=ext, trunk=trunk.name)
        if call is None:
            self.context.trunks.release(trunk.name, "in")
        elif call.inbound_trunk is None:               # a service answered it itself
            call.inbound_trunk = trunk.name
            if call.state is ENDED:                  # ... and it is over already
                self.context.trunks.release(trunk.name, "in")

    def start_call(self, request, source, tx, *, caller, caller_ext, display, direction,
                   route=None, callee=None, trunk=None):
        """Route an authorised INVITE and ring the callee; returns the Call (None if refused).

        The Lua services act here: feature codes and the originating hook before routing,
        the terminating hook before a local callee is alerted (forwarding, DND, ...); each
        decision is applied by ``_apply``.
        """
        setup = _Setup(caller, caller_ext, display, direction, trunk or "",
                       callee or request.uri.number or "", route, self.context.no_answer_timeout)
        hooks = self.context.hooks
        if hooks.active:
            facts = setup.facts(hooks, request, setup.dialled)
            if route is None and caller_ext is not None:
                feature = hooks.feature(setup.dialled, facts)
                if feature is not None:
                    return self._feature(feature, request, source, tx, setup.caller, caller_ext,
                                         setup.display, direction, setup.dialled)
            outcome = self._apply(hooks.originating(facts), facts, setup.dialled, setup,
                                  request, source, tx)
            if outcome is not _GO_ON:
                return outcome
        for _ in range(self.context.forward_limit + 1):
            if setup.route is None:
                setup.route = self.context.router.route(setup.dialled, caller_ext)
            callee_ext = setup.route.extension
            if not hooks.active or callee_ext is None:
                break
            state = hooks.callee_state(
                callee_ext, self.context.waiting_blocked(self.directory(callee_ext)))
            facts = setup.facts(hooks, request, callee_ext,
                                [n for n, _ in setup.diversions])
            decision = hooks.terminating(facts, state)
            outcome = self._apply(decision, facts, callee_ext, setup, request, source, tx)
            if outcome is not _GO_ON:
                return outcome
            if setup.route is not None:              # not diverted: ring this callee
                if decision.ring_timeout:
                    setup.ring_time = decision.ring_timeout
                break
        route = setup.route
        if route is None:                            # diverted as often as allowed
            route = self.context.router.route(setup.dialled, caller_ext)
        if route.status:
            return self._refuse(request, tx, setup, route.status, route.reason, route.reason)
        callee_ext = route.extension
        ext = self.directory(callee_ext) if callee_ext else None
        if callee_ext in self.in_call and self.context.waiting_blocked(ext):
            return self._refuse(request, tx, setup, 486, None, "call waiting off")
        call = self._new_call(request, source, tx, setup.caller, caller_ext, setup.display,
                              direction, setup.dialled, callee_ext, trunk)
        for number, decision in setup.diversions:
            call.add_diversion(number, decision)
        if route.trunk_plan:
            call.direction = "outbound" if direction == "internal" else direction
            self.log.info("call {call_id}: {caller} -> {callee} via trunks {trunks}",
                          call_id=call.id, caller=setup.caller, callee=setup.dialled,
                          trunks=",".join(t.name for t, _ in route.trunk_plan))
            call.ring_trunks(route.trunk_plan, setup.ring_time)
        else:
            call.ring(route.targets, setup.ring_time)
        return call

    def _apply(self, decision, facts, number, setup, request, source, tx):
        """Apply a service's decision at the originating or terminating hook about
        ``number``: a changed caller, a refusal (None), a local answer (the Call), or a
        diversion (``setup`` gets the new number and no route yet). ``_GO_ON`` when the
        setup goes on."""
        setup.caller, setup.display = _caller_change(decision, setup.caller, setup.display)
        action = decision.action
        if action == REJECT:
            return self._refuse(request, tx, setup, decision.code, decision.reason,
                                f"service {decision.service}")
        if action == REDIRECT:
            onward = self.context.hooks.onward_refusal(facts, decision)
            if onward is not None:
                return self._refuse(request, tx, setup, onward.code, onward.reason,
                                    f"service {onward.service}")
            setup.diversions.append((number, decision))
            setup.dialled, setup.route = decision.target, None
        elif action in (ANSWER, FEATURE):
            return self._answer_locally(request, source, tx, setup.caller, setup.caller_ext,
                                        setup.display, setup.direction, setup.dialled,
                                        decision.tone)
        return _GO_ON

    def _refuse(self, request, tx, setup, status, reason, why):
        """Refuse the call being set up (and write its CDR); None, as start_call returns."""
        self.counters["rejected"] += 1
        self._answer(tx, request, status, reason or None)
        self._write_rejected(request, setup.caller, setup.dialled, setup.direction, status,
                             why or reason)
        return None

    def _new_call(self, request, source, tx, caller, caller_ext, display, direction, dialled,
                  callee_ext, trunk) -> Call:
        tag = self.core.new_tag()
        tx.to_tag = tag
        reliable = caller_wants_reliable(request, self.prefer_100rel)
        a = ALeg(request, tx, source, tag, self.core.contact_uri(source, self.contact_user), reliable)
        call = Call(self.context, a, caller=caller, caller_display=display, callee=dialled,
                    callee_ext=callee_ext, direction=direction, caller_ext=caller_ext)
        if trunk is not None:
            call.trunk, call.trunk_direction = trunk, "in"
            call.inbound_trunk = trunk
        self.calls[call.id] = call
        self._a_tx[tx] = call
        self.register_leg(call, a)
        self.setting_up += 1
        self.counters["calls"] += 1
        if caller_ext:
            self.in_call[caller_ext] = self.in_call.get(caller_ext, 0) + 1
        return call

    def _answer_locally(self, request, source, tx, caller, caller_ext, display, direction,
                        dialled, tone):
        """A service answers the call itself (feature code confirmation, announcement)."""
        call = self._new_call(request, source, tx, caller, caller_ext, display, direction,
                              dialled, None, None)
        call.answer_locally(tone)
        return call

    def _feature(self, decision, request, source, tx, caller, caller_ext, display, direction,
                 dialled):
        if decision.action == REJECT:
            self.counters["rejected"] += 1
            self._answer(tx, request, decision.code, decision.reason or None)
            self._write_rejected(request, caller, dialled, direction, decision.code,
                                 f"feature {decision.service}")
            return None
        if decision.action == BREAK_IN:
            return self.break_in(request, source, tx, caller, caller_ext, display, decision.target)
        if decision.action == REDIRECT:
            return self.start_call(request, source, tx, caller=caller, caller_ext=caller_ext,
                                   display=display, direction=direction,
                                   route=self.context.router.route(decision.target, caller_ext),
                                   callee=decision.target)
        return self._answer_locally(request, source, tx, caller, caller_ext, display, direction,
                                    dialled, decision.tone or "confirm")

    def break_in(self, request, source, tx, caller, caller_ext, display, target):
        """Operator barge-in: join ``target``'s current call as a third party (mixer room)."""
        victim = next((c for c in self.calls.values() if c.state is ANSWERED
                       and target in (c.callee_ext, c.caller_ext)), None)
        if victim is None:
            self._answer(tx, request, 480, "Target Not In A Call")
            self._write_rejected(request, caller, target, "internal", 480, "break-in: idle target")
            return None
        if not hasattr(self.context.media, "room_join"):
            self._answer(tx, request, 503, "No Media Gateway For Break-In")
            return None
        call = self._new_call(request, source, tx, caller, caller_ext, display, "internal",
                              target, None, None)
        call.barge_into(victim)
        return call

    def _write_rejected(self, request, caller, callee, direction, status, reason):
        """Refused calls get a CDR too (disposition from the status)."""
        try:
            self.store.add_cdr(rejected_cdr(request.call_id, caller, callee, direction,
                                            self.wall(), status, reason))
        except Exception:
            self.log.failure("CDR for refused call {call_id} could not be written",
                             call_id=request.call_id)

    def media_down_headers(self) -> tuple:
        """Retry-After and Reason (RFC 3326) of a 503 for want of the media gateway."""
        return (("Retry-After", str(self.retry_after)),
                ("Reason", 'SIP;cause=503;text="media gateway unavailable"'))

    def _answer(self, tx, request, status, reason=None, extra=()):
        resp = make_response(request, status, reason, to_tag=tx.to_tag or self.core.new_tag())
        for name, value in extra:
            resp.headers.add(name, value)
        self.core.send_response(tx, resp, self.now())
