# -*- test-case-name: tests.call.test_services -*-
"""Where the call core asks the Lua services (mss.services.engine) and how it applies the answer.

The call core builds ``CallFacts`` (never SIP objects) at each hook point and acts on the
``Decision``: reject with a code, redirect (call forwarding: a ``Diversion`` header, RFC 5806,
is added to the diverted INVITE and the chain is passed to the services, which stop loops and
long chains), change the displayed caller, answer with a tone (feature codes), or break in.
Without an engine every hook answers "continue", so the call core behaves as a plain PBX.
"""
from __future__ import annotations

from twisted.logger import Logger

from mss.services.api import CONTINUE_DECISION, REJECT, CalleeState, CallFacts, is_anonymous

_HEADERS = ("user-agent", "privacy", "p-asserted-identity", "diversion", "history-info",
            "subject", "alert-info")


class ServiceHooks:
    log = Logger()

    def __init__(self, engine, directory, bindings, wall, in_call=None):
        self.engine = engine
        self.directory = directory
        self.bindings = bindings
        self.wall = wall
        # the manager's live dict (extension -> active calls): `or {}` would replace the
        # manager's still-empty dict by another one and no callee would ever be "in a call"
        self.in_call = in_call if in_call is not None else {}

    @property
    def active(self) -> bool:
        return self.engine is not None

    def facts(self, request, call_id: str, caller: str, callee: str, *, display: str | None,
              caller_ext: str | None, direction: str, trunk: str = "",
              diversions=()) -> CallFacts:
        ext = self.directory(caller_ext) if caller_ext else None
        callee_ext = self.directory(callee) if callee else None
        privacy = request.headers.get("privacy")
        headers = [(name, value) for name in _HEADERS
                   for value in request.headers.get_lines(name)[:1]]
        return CallFacts(
            call_id=call_id, caller=caller, callee=callee, caller_display=display or "",
            callee_display=(callee_ext.name if callee_ext is not None else ""),
            direction=direction, trunk=trunk or "", headers=headers, time=self.wall(),
            # the caller hid its number in From (checked before a service changed `caller`)
            # or asked for privacy
            anonymous=is_anonymous(request.from_.uri.number, privacy) or caller == "anonymous",
            caller_is_extension=ext is not None, caller_level=ext.call_level if ext else 0,
            caller_permissions=ext.permissions if ext else frozenset(),
            diversions=tuple(diversions))

    def callee_state(self, number: str, call_waiting_blocks: bool) -> CalleeState:
        ext = self.directory(number)
        devices = len(self.bindings.get(number)) if ext is not None else 0
        in_call = number in self.in_call
        return CalleeState(exists=ext is not None and ext.enabled, registered=devices > 0,
                           busy=in_call and call_waiting_blocks, in_call=in_call,
                           devices=devices)

    # -- hooks (each returns a Decision; CONTINUE without an engine) ----------------------------
    def feature(self, dialled: str, facts: CallFacts):
        if self.engine is None or not dialled or self.engine.claims(dialled) is None:
            return None
        return self.engine.feature_code(dialled, facts)

    def originating(self, facts):
        return self.engine.originating(facts) if self.engine is not None else CONTINUE_DECISION

    def terminating(self, facts, state):
        return self.engine.terminating(facts, state) if self.engine is not None else CONTINUE_DECISION

    def onward_refusal(self, facts, decision):
        """A forwarded call is checked again as a new call from the forwarding extension
        (black list, call levels): the refusing Decision, or None when it may go on."""
        again = self.originating(facts.diverted(decision.target))
        return again if again.action == REJECT else None

    def busy(self, facts):
        return self.engine.busy(facts) if self.engine is not None else CONTINUE_DECISION

    def no_answer(self, facts):
        return self.engine.no_answer(facts) if self.engine is not None else CONTINUE_DECISION

    def answered(self, facts) -> None:
        if self.engine is not None:
            self.engine.answered(facts)

    def ended(self, facts, cause: str) -> None:
        if self.engine is not None:
            self.engine.ended(facts, cause)


def diversion_header(number: str, domain: str, decision) -> str:
    """RFC 5806 Diversion value for the number the call is diverted *from*."""
    reason = decision.diversion_reason or "unknown"
    return f"<sip:{number}@{domain}>;reason={reason};counter=1"
