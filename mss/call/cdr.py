# -*- test-case-name: tests.call.test_cdr -*-
"""Call detail records from calls: one per call, written when the call ends (before it is
dropped). The record itself (``CDR``) is what the store keeps (``mss.store.records``).

Dispositions: answered, busy, no answer, cancelled, failed (RFC-neutral words operators use);
``cause`` keeps the SIP status and why.
"""
from __future__ import annotations

from mss.store.records import CDR


def disposition_of(status: int) -> str:
    """The operator's word for how a call ended with final status ``status``."""
    if 200 <= status < 300:
        return "answered"
    if status in (486, 600):
        return "busy"
    if status in (480, 408):
        return "no answer"
    if status == 487:
        return "cancelled"
    return "failed"


def cdr_of(call) -> CDR:
    end = call.end_time or call.start_time
    billsec = (end - call.answer_time) if call.answer_time else 0.0
    return CDR(call_id=call.id, caller=call.caller, callee=call.callee, direction=call.direction,
               start=call.start_time, answer=call.answer_time, end=end,
               duration=round(end - call.start_time, 3), billsec=round(billsec, 3),
               disposition=call.disposition, cause=call.cause,
               trunk=getattr(call.trunk, "name", call.trunk) or "")


def rejected_cdr(call_id, caller, callee, direction, now, status, reason) -> CDR:
    return CDR(call_id=call_id, caller=caller, callee=callee, direction=direction, start=now,
               answer=None, end=now, duration=0.0, billsec=0.0, disposition=disposition_of(status),
               cause=f"{status} {reason or ''}".strip())
