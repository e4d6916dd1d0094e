# -*- test-case-name: tests.call.test_call -*-
"""The states of a call and of its legs.

They are ``StrEnum``s: a state is its own text, so CDRs, ``mssctl calls``, the metrics'
labels and JSON show the same words as before. The call core compares them by identity
against the module-level names below (``state is SETUP``): an enum's class attribute costs
a lookup per use, a module global does not.
"""
from __future__ import annotations

import enum


class CallState(enum.StrEnum):
    """A call rings (``setup``), is ``answered``, then ``ended`` (exactly once)."""
    SETUP = "setup"
    ANSWERED = "answered"
    ENDED = "ended"


class LegState(enum.StrEnum):
    """A B leg: ``calling`` until a provisional with a tag makes it ``early``; then
    ``answered``, ``failed`` or ``cancelled``."""
    CALLING = "calling"
    EARLY = "early"
    ANSWERED = "answered"
    FAILED = "failed"
    CANCELLED = "cancelled"


SETUP, ANSWERED, ENDED = CallState.SETUP, CallState.ANSWERED, CallState.ENDED
CALLING, EARLY, LEG_ANSWERED, FAILED, CANCELLED = (
    LegState.CALLING, LegState.EARLY, LegState.ANSWERED, LegState.FAILED, LegState.CANCELLED)
