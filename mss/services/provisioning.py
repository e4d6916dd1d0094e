# -*- test-case-name: tests.services.test_provisioning -*-
"""Where the standard services keep their data in the store, and how to check what is put there.

The Lua files in ``lua/services/`` read these rows, settings and extension data; ``mssctl``
(and later the web console) write them through the functions here, so that a value a service
would refuse never reaches the store. Each function raises ``ValueError`` with a message meant
for the operator. ``request_reload`` is how another process asks a running switch to reload
its services (see ``mss.services.engine``).
"""
from __future__ import annotations

import re
from typing import Any

from mss.services.api import ENGINE_SERVICE, finite_seconds

BLACKLIST = "blacklist"            # service name (lua/services/blacklist.lua)
BLACK_TABLE = "blacklist"
WHITE_TABLE = "whitelist"
FORWARDING = "forwarding"
FORWARD_KINDS = ("unconditional", "busy", "unreachable", "no_answer")
FORWARD_CODES = {"unconditional": "*93", "busy": "*90", "unreachable": "*91",
                 "no_answer": "*92"}
DND = "dnd"
CALL_LEVELS = "call_levels"
LEVEL_TABLE = "prefixes"
BREAKIN = "breakin"
SERVICE_PERMISSIONS = {"forward": "may set call forwarding",
                       "break_in": "may break into calls (*75*EXT)",
                       "overstep": "protected from break-in"}

_DIGITS = re.compile(r"^\+?[0-9]{1,32}$")


def caller_prefix(text: str) -> str:
    """A caller prefix of the black/white list: digits, ``*`` or ``anonymous``."""
    if text == "*" or text.lower() == "anonymous":
        return text.lower()
    if not _DIGITS.match(text):
        raise ValueError(f"caller prefix {text!r} must be digits (optional leading +), * or "
                         f"anonymous")
    return text


def called_prefix(text: str) -> str:
    """A dialled-number prefix: digits or ``*`` (anything)."""
    if text == "*":
        return text
    if not _DIGITS.match(text):
        raise ValueError(f"called prefix {text!r} must be digits (optional leading +) or *")
    return text


def rate(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"rate {value!r} must be a whole number 0-100")
    if not 0 <= number <= 100:
        raise ValueError(f"rate {number} must be within 0-100 (percent of calls refused)")
    return number


def level(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"level {value!r} must be a whole number 0-99")
    if not 0 <= number <= 99:
        raise ValueError(f"level {number} must be within 0-99")
    return number


def forward_kind(text: str) -> str:
    kind = text.replace("-", "_").lower()
    if kind not in FORWARD_KINDS:
        raise ValueError(f"forwarding kind {text!r} must be one of "
                         f"{', '.join(k.replace('_', '-') for k in FORWARD_KINDS)}")
    return kind


def forward_target(text: str) -> str:
    if not _DIGITS.match(text):
        raise ValueError(f"forwarding target {text!r} must be digits (optional leading +)")
    return text


def ring_time(value: Any) -> int:
    try:
        return int(finite_seconds(int(value)))
    except (TypeError, ValueError):
        raise ValueError(f"ring time {value!r} must be whole seconds within 1-600")


def _reject_code(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 699:
        raise ValueError(f"reject_code {value!r} must be a SIP error status 400-699")
    return value


def _phrase(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 128 or not value.isprintable():
        raise ValueError("reject_reason must be 1-128 printable characters")
    return value


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} must be whole seconds")
    return ring_time(value)


#: settings of the standard services and their checks
SETTINGS = {
    (BLACKLIST, "reject_code"): _reject_code,
    (BLACKLIST, "reject_reason"): _phrase,
    (CALL_LEVELS, "reject_code"): _reject_code,
    (CALL_LEVELS, "reject_reason"): _phrase,
    (DND, "reject_code"): _reject_code,
    (DND, "reject_reason"): _phrase,
    (FORWARDING, "default_ring_time"): _seconds,
}


def setting(service: str, key: str, value: Any) -> Any:
    """Check a setting of a standard service (settings of other services pass unchecked)."""
    check = SETTINGS.get((service, key))
    return check(value) if check else value


def find_row(store: Any, service: str, table: str, **match: Any) -> int | None:
    for row_id, data in store.list_rows(service, table):
        if all(data.get(k) == v for k, v in match.items()):
            return row_id
    return None


def request_reload(store: Any) -> int:
    """Ask the running switch to reload its services; return the request number."""
    current = store.get_service_settings(ENGINE_SERVICE).get("reload_request")
    number = current + 1 if isinstance(current, int) and not isinstance(current, bool) else 1
    store.set_service_setting(ENGINE_SERVICE, "reload_request", number)
    return number


def reload_result(store: Any, request: int) -> dict | None:
    """The switch's answer to reload request ``request``, once it has answered."""
    result = store.get_service_settings(ENGINE_SERVICE).get("reload_result")
    if isinstance(result, dict) and result.get("request") == request:
        return result
    return None
