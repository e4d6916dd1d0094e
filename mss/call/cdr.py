# -*- test-case-name: tests.call.test_cdr -*-
"""Call detail records: one per call, written when the call ends (before it is dropped).

Dispositions: answered, busy, no answer, cancelled, failed (RFC-neutral words operators use);
``cause`` keeps the SIP status and why. Times are Unix timestamps; ``duration`` runs from the
INVITE to the end, ``billsec`` from the answer to the end.
"""
from __future__ import annotations

import attrs


@attrs.frozen
class CDR:
    call_id: str
    caller: str
    callee: str
    direction: str
    start: float
    answer: float | None
    end: float
    duration: float
    billsec: float
    disposition: str
    cause: str
    trunk: str = ""


def cdr_of(call) -> CDR:
    end = call.end_time or call.start_time
    billsec = (end - call.answer_time) if call.answer_time else 0.0
    return CDR(call_id=call.id, caller=call.caller, callee=call.callee, direction=call.direction,
               start=call.start_time, answer=call.answer_time, end=end,
               duration=round(end - call.start_time, 3), billsec=round(billsec, 3),
               disposition=call.disposition, cause=call.cause,
               trunk=getattr(call.trunk, "name", call.trunk) or "")


def rejected_cdr(call_id, caller, callee, direction, now, status, reason) -> CDR:
    from mss.call.call import _disposition
    return CDR(call_id=call_id, caller=caller, callee=callee, direction=direction, start=now,
               answer=None, end=now, duration=0.0, billsec=0.0, disposition=_disposition(status),
               cause=f"{status} {reason or ''}".strip())
