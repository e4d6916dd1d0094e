# -*- test-case-name: tests.services.test_api -*-
"""The seam between the call core and the Lua service engine: facts in, decisions out.

The call core never hands Python objects to Lua and Lua never sees SIP messages. At each hook
point the call core builds a ``CallFacts`` value (who calls whom, how, when) and asks the
``ServiceEngine`` (``mss.services.engine``) for a ``Decision``. The engine is sans-I/O: it
does no networking and keeps no timers; it reads the store through ``IServiceStore``.

Hook points, in call order, and what each may decide (anything else is a script fault):

==============  ===========================================  =====================================
hook            when                                          allowed decisions
==============  ===========================================  =====================================
originating     caller identified, before routing             continue, reject, redirect, answer
terminating     callee is a local extension, before alerting  continue (+ring_timeout), reject,
                                                              redirect, answer
busy            every device of the callee answered busy      continue, reject, redirect
no_answer       ring timeout expired                          continue, reject, redirect
answered        the callee answered (notification)            continue
ended           the call ended (notification)                 continue
feature         a dialled ``*xx`` string claimed by a         feature (confirmation tone), answer,
                service                                       reject, break_in, redirect
==============  ===========================================  =====================================

``continue`` may carry a caller change (``caller``/``caller_display``) on originating and
terminating, and ``ring_timeout`` (seconds before the no-answer hook) on terminating.

Several services combine in their order (declared ``priority``, then file name): the first
decision other than ``continue`` wins and stops the chain; caller changes of the services that
ran accumulate (a later one overrides an earlier one; the winner's own change applies too);
the smallest ``ring_timeout`` wins. The result names the deciding ``service``.

A redirect carries ``reason`` (``REDIRECT_REASONS``); the call core adds a History-Info entry
(RFC 7044, cause values of RFC 4458 in ``HISTORY_INFO_CAUSE``) or a Diversion header (RFC 5806,
reasons in ``DIVERSION_REASON``) and passes the chain of numbers the call was already diverted
through in ``CallFacts.diversions`` so that loops and long chains are stopped.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

import attrs
from zope.interface import Interface

# -- vocabulary ----------------------------------------------------------------------------

DIRECTIONS = frozenset({"internal", "inbound", "outbound"})

CONTINUE = "continue"
REJECT = "reject"
REDIRECT = "redirect"
ANSWER = "answer"
BREAK_IN = "break_in"
FEATURE = "feature"
ACTIONS = frozenset({CONTINUE, REJECT, REDIRECT, ANSWER, BREAK_IN, FEATURE})

#: hook name -> decisions a service may return there
ALLOWED = {
    "originating": frozenset({CONTINUE, REJECT, REDIRECT, ANSWER}),
    "terminating": frozenset({CONTINUE, REJECT, REDIRECT, ANSWER}),
    "busy": frozenset({CONTINUE, REJECT, REDIRECT}),
    "no_answer": frozenset({CONTINUE, REJECT, REDIRECT}),
    "answered": frozenset({CONTINUE}),
    "ended": frozenset({CONTINUE}),
    "feature": frozenset({CONTINUE, FEATURE, ANSWER, REJECT, BREAK_IN, REDIRECT}),
}
HOOKS = tuple(ALLOWED)

#: the built-in tones a decision may ask the call core (media gateway) to play
TONES = frozenset({"confirm", "error", "busy", "congestion", "ringback", "dial", "info"})

#: why a call is redirected
REDIRECT_REASONS = frozenset({"unconditional", "busy", "unreachable", "no_answer", "dnd",
                              "deflection"})
#: RFC 5806 Diversion ``reason`` parameter for each redirect reason
DIVERSION_REASON = {
    "unconditional": "unconditional",
    "busy": "user-busy",
    "unreachable": "unavailable",
    "no_answer": "no-answer",
    "dnd": "do-not-disturb",
    "deflection": "deflection",
}
#: RFC 4458 cause value (History-Info ``cause=`` of the diverting entry) for each reason
HISTORY_INFO_CAUSE = {
    "unconditional": 302,
    "busy": 486,
    "unreachable": 404,
    "no_answer": 408,
    "dnd": 486,
    "deflection": 480,
}

#: what a redirect target or a break-in target may look like (a dial string, not a URI)
NUMBER_RE = re.compile(r"^[0-9A-Za-z+*#._-]{1,64}$")

MAX_FACT = 256          # longest string fact handed to Lua
MAX_HEADER = 1024       # longest header value handed to Lua


def _clip(value: Any, limit: int = MAX_FACT) -> str:
    text = "" if value is None else str(value)
    return text[:limit]


def _headers(value: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> tuple:
    if not value:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(k).lower()[:64], _clip(v, MAX_HEADER)) for k, v in list(items)[:32])


def is_anonymous(user: str | None, privacy: str | None = None) -> bool:
    """The anonymous-caller rule shared by the call core and the black list.

    A caller is anonymous when it gives no identity (empty user), calls itself ``anonymous``
    (RFC 3323 section 4.1.1.3 recommends ``"Anonymous" <sip:anonymous@anonymous.invalid>``),
    or asks for privacy of its identity with ``Privacy: id`` (RFC 3325 section 9.3) or ``user``/
    ``header`` (RFC 3323 section 4.2).
    """
    if not user or user.strip().lower() == "anonymous":
        return True
    if privacy:
        values = {v.strip().lower() for v in privacy.replace(",", ";").split(";")}
        if values & {"id", "user", "header"}:
            return True
    return False


@attrs.frozen
class CallFacts:
    """What a service may know about a call: built by the call core at each hook point.

    ``caller``/``callee`` are user parts (extension or E.164-ish numbers) as dialled;
    ``diversions`` is the chain of numbers the call was already diverted from (oldest first);
    ``caller_level`` and ``caller_permissions`` come from the caller's extension record (0 and
    empty for callers that are not local extensions).
    """
    call_id: str = attrs.field(converter=_clip)
    caller: str = attrs.field(converter=_clip)
    callee: str = attrs.field(converter=_clip)
    caller_display: str = attrs.field(default="", converter=_clip)
    callee_display: str = attrs.field(default="", converter=_clip)
    direction: str = attrs.field(default="internal",
                                 validator=attrs.validators.in_(DIRECTIONS))
    trunk: str = attrs.field(default="", converter=_clip)
    headers: tuple = attrs.field(default=(), converter=_headers)
    time: float = 0.0
    anonymous: bool = False
    caller_is_extension: bool = False
    caller_level: int = 0
    caller_permissions: frozenset = attrs.field(default=frozenset(), converter=frozenset)
    diversions: tuple = attrs.field(default=(), converter=lambda v: tuple(_clip(x) for x in v))
    diverted_by: str = attrs.field(default="", converter=_clip)

    def diverted(self, target: str) -> "CallFacts":
        """The facts of the onward leg after a redirect to ``target``.

        The call core runs ``originating`` again with these facts before routing the onward
        leg, so that the black list and call levels apply to forwarded calls too (with the
        diverting extension's call level: no toll fraud through forwarding).
        """
        return attrs.evolve(self, callee=target, callee_display="",
                            diversions=self.diversions + (self.callee,),
                            diverted_by=self.callee)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def lua_values(self) -> tuple:
        """The ``call`` table's values in ``Sandbox.call_table`` order (built once per hook)."""
        return (self.call_id, self.caller, self.caller_display, self.callee,
                self.callee_display, self.direction, self.trunk, self.time, self.anonymous,
                self.caller_is_extension, self.caller_level, self.diverted_by,
                dict(self.headers), {p: True for p in self.caller_permissions},
                list(self.diversions))

    def as_table(self) -> dict:
        """The plain structure handed to Lua as the ``call`` table (see docs/lua-api.md)."""
        return {
            "id": self.call_id,
            "caller": self.caller,
            "caller_display": self.caller_display,
            "callee": self.callee,
            "callee_display": self.callee_display,
            "direction": self.direction,
            "trunk": self.trunk,
            "headers": dict(self.headers),
            "time": self.time,
            "anonymous": self.anonymous,
            "caller_is_extension": self.caller_is_extension,
            "caller_level": self.caller_level,
            "caller_permissions": {p: True for p in self.caller_permissions},
            "diversions": list(self.diversions),
            "diverted_by": self.diverted_by,
        }


@attrs.frozen
class CalleeState:
    """What the call core knows about a local callee before alerting it."""
    exists: bool = True          # the callee is a provisioned, enabled extension
    registered: bool = True      # at least one device is registered
    busy: bool = False           # every device is in a call (and call waiting is off)
    in_call: bool = False        # at least one device is in a call
    devices: int = 1

    def as_table(self) -> dict:
        return {"exists": self.exists, "registered": self.registered, "busy": self.busy,
                "in_call": self.in_call, "devices": self.devices}


def _check_code(code: int) -> None:
    if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 699:
        raise ValueError(f"reject code {code!r} is not a final error status 400-699")


@attrs.frozen
class Decision:
    """What the services decided at a hook point (combined over all services).

    ``action``: ``continue`` (default behaviour), ``reject`` (answer ``code`` ``reason``),
    ``redirect`` (divert to ``target`` for ``reason``), ``answer`` (answer and play ``tone``),
    ``break_in`` (join ``target``'s current call as a third party), ``feature`` (a feature
    code was handled: answer, play ``tone``, hang up).
    """
    action: str = CONTINUE
    code: int = 0
    reason: str = ""
    target: str = ""
    tone: str = ""
    caller: str | None = None
    caller_display: str | None = None
    ring_timeout: float | None = None
    service: str = ""

    @classmethod
    def reject(cls, code: int, reason: str = "", service: str = "") -> "Decision":
        _check_code(code)
        return cls(REJECT, code=code, reason=reason[:128], service=service)

    @classmethod
    def redirect(cls, target: str, reason: str = "unconditional",
                 service: str = "") -> "Decision":
        if not NUMBER_RE.match(target or ""):
            raise ValueError(f"redirect target {target!r} is not a number")
        if reason not in REDIRECT_REASONS:
            raise ValueError(f"redirect reason {reason!r} is not one of "
                             f"{', '.join(sorted(REDIRECT_REASONS))}")
        return cls(REDIRECT, target=target, reason=reason, service=service)

    @classmethod
    def answer(cls, tone: str, service: str = "") -> "Decision":
        if tone not in TONES:
            raise ValueError(f"tone {tone!r} is not one of {', '.join(sorted(TONES))}")
        return cls(ANSWER, tone=tone, service=service)

    @classmethod
    def feature(cls, tone: str = "confirm", service: str = "") -> "Decision":
        if tone not in TONES:
            raise ValueError(f"tone {tone!r} is not one of {', '.join(sorted(TONES))}")
        return cls(FEATURE, tone=tone, service=service)

    @classmethod
    def break_in(cls, target: str, service: str = "") -> "Decision":
        if not NUMBER_RE.match(target or ""):
            raise ValueError(f"break-in target {target!r} is not an extension")
        return cls(BREAK_IN, target=target, service=service)

    @property
    def diversion_reason(self) -> str | None:
        """RFC 5806 Diversion reason for a redirect."""
        return DIVERSION_REASON.get(self.reason) if self.action == REDIRECT else None

    @property
    def history_info_cause(self) -> int | None:
        """RFC 4458 cause for the History-Info entry of a redirect."""
        return HISTORY_INFO_CAUSE.get(self.reason) if self.action == REDIRECT else None


CONTINUE_DECISION = Decision()


def finite_seconds(value: Any) -> float:
    """A ring time in seconds: a finite number in 1..600."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"ring time {value!r} is not a number")
    if not 1 <= value <= 600:
        raise ValueError(f"ring time {value!r} is not within 1-600 seconds")
    return float(value)


class IServiceStore(Interface):
    """The part of the store the service engine and the service commands use.

    Values are JSON-encodable (the store encodes them); ``None`` deletes.
    """

    def get_service_settings(service: str) -> dict:
        """Every setting of ``service``."""

    def set_service_setting(service: str, key: str, value: Any) -> None:
        """Set (or with ``None`` delete) one setting."""

    def get_extension_data(service: str, extension: str) -> dict:
        """Every value ``service`` keeps for ``extension``."""

    def set_extension_data(service: str, extension: str, key: str, value: Any) -> None:
        """Set (or with ``None`` delete) one per-extension value."""

    def list_rows(service: str, table: str) -> list:
        """``[(id, data_dict), ...]`` of a service table, in id order."""

    def add_row(service: str, table: str, data: dict) -> int:
        """Add a row, return its id."""

    def remove_row(service: str, table: str, id: int) -> bool:
        """Remove a row; False when there was none."""

    def get_extension(number: str) -> Any:
        """The extension record (``number, name, enabled, permissions, call_level``) or None."""


class IInCall(Interface):
    """Injected by the call core: does this extension have a call in progress?"""

    def __call__(extension: str) -> bool:
        """True when ``extension`` takes part in an established call."""


ENGINE_SERVICE = "_engine"
"""Service name under which the engine keeps its control values in the store."""

