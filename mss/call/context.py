# -*- test-case-name: tests.call.test_manager -*-
"""What a call may use of the switch: ``CallContext``, built once by the ``CallManager`` and
shared by all its calls.

A call (and each of its parts: relay, reliable provisionals, hunting, re-authentication)
sees the clock, the timers, the SIP core's public output, the media anchor, the services,
the dial plan and trunks, the manager's bookkeeping for legs, and the settings, and
nothing else of the manager. The core's output methods are stored bound, so a call sends
with one attribute lookup; settings that operators or tests change on the manager
(``media``, ``trunks``, ``no_answer_timeout``...) live here and the manager forwards them.
"""
from __future__ import annotations

from typing import Any, Callable

import attrs

CALL_WAITING_OFF = "call_waiting_off"


@attrs.define(eq=False, repr=False)
class CallContext:
    # clock and timers (the core's heap; a call's timer runs guarded by the manager)
    now: Callable[[], float]
    wall: Callable[[], float]
    timers: Any                         # .call_at(when, fn, *args) -> .cancel()
    # the SIP core's public output
    send_request: Callable              # (request, destination, call, leg, purpose) -> client tx
    send_response: Callable             # (server tx, response, now)
    send_reliable_provisional: Callable
    send_ack: Callable                  # (ack, destination): also re-sends a kept ACK
    cancel: Callable                    # (client INVITE tx, now, reason)
    prack_received: Callable            # (server INVITE tx, rseq) -> bool
    new_tag: Callable[[], str]
    new_call_id: Callable[[], str]
    contact_uri: Callable               # (destination, user) -> our Contact URI
    local_host: Callable                # (peer host) -> our address toward it
    # collaborators
    media: Any                          # IMediaAnchor
    hooks: Any                          # ServiceHooks
    router: Any                         # Router
    directory: Callable                 # number -> Extension | None
    trunks: Any                         # TrunkDispatcher, or None
    # the manager's bookkeeping
    register_leg: Callable              # (call, leg): requests in its dialog reach the call
    forget_leg: Callable                # (leg)
    answered: Callable                  # (call)
    ended: Callable                     # (call): media freed, CDR written, call forgotten
    media_down_headers: Callable[[], tuple]
    # settings
    domain: str
    allow: str
    contact_user: str = "mss"
    no_answer_timeout: float = 30
    max_duration: float = 0
    forward_limit: int = 5
    call_waiting: bool = True

    def waiting_blocked(self, ext) -> bool:
        """A second call to this extension while it is in one gets 486 (no call waiting)."""
        return ext is not None and (ext.has(CALL_WAITING_OFF) or not self.call_waiting)
