# -*- test-case-name: tests.trunk.test_registration -*-
"""Registration of mss to a carrier trunk (RFC 3261 §10.2 as a client), sans-I/O.

REGISTER goes to the trunk's outbound proxy with Request-URI ``sip:<domain>`` and To/From
``sip:<account>@<domain>``; a 401/407 is answered once per challenge with the auth ID as the
digest username and the challenge's realm. The registration is refreshed before it expires;
423 adopts Min-Expires; failures and timeouts back off exponentially (capped); 403 marks the
trunk "rejected" with a log line naming the usual causes, and keeps retrying slowly.

The state, the last response and the time of the next attempt are written to the store on
every change (``next_refresh`` is None while a REGISTER awaits its answer), so that ``mssctl
trunk status`` never shows a stale or missing state while the switch runs.
"""
from __future__ import annotations

import os

from twisted.logger import Logger
from zope.interface import implementer

from mss.sip.digest import client as digest
from mss.sip.core import SUPPORTED, ITransactionUser
from mss.sip.headers import Headers
from mss.sip.message import Request
from mss.sip.uri import parse_uri

BACKOFF_START = 5.0
BACKOFF_CAP = 300.0
REJECTED_RETRY = 600.0


@implementer(ITransactionUser)
class TrunkRegistration:
    log = Logger()

    def __init__(self, core, clock, trunk, destination, store=None, wall=None):
        self.core = core
        self.clock = clock
        self.trunk = trunk
        self.destination = destination
        self.store = store
        self.wall = wall or clock.seconds
        self.call_id = os.urandom(8).hex() + "@mss"
        self.from_tag = core.new_tag()
        self.cseq = 0
        self.expires = trunk.expires
        # unregistered, registering, registered, rejected, unreachable, failed
        self.state = "unregistered"
        self.last_status = 0
        self.last_reason = ""
        self.next_refresh: float | None = None
        self.backoff = BACKOFF_START
        self._timer = None
        self._tx = None
        self._answered_nonce = None
        self._nc = 0
        self.stopped = False
        self.waiting_for_address = False
        self._recorded = None

    # -- control -------------------------------------------------------------------------------
    def start(self) -> None:
        self.stopped = False
        self.waiting_for_address = False
        self._send(None)

    def unresolved(self, host: str, retry: float) -> None:
        """The proxy/domain does not resolve: nothing can be sent; shown as unreachable
        until the dispatcher, which retries the resolution, calls ``start``."""
        self.waiting_for_address = True
        if self.state != "unreachable" or self.last_reason != f"cannot resolve {host}":
            self.log.warn("trunk {trunk}: {host} does not resolve; retrying", trunk=self.trunk.name,
                          host=host)
        self.state = "unreachable"
        self.last_status, self.last_reason = 0, f"cannot resolve {host}"
        self.next_refresh = self.wall() + retry
        self._record()

    def stop(self) -> None:
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        when = self.clock.seconds() + delay
        self.next_refresh = self.wall() + delay
        self._timer = self.core.timers.call_at(when, self._send, None)

    # -- REGISTER ------------------------------------------------------------------------------
    def _request(self) -> Request:
        t = self.trunk
        self.cseq += 1
        aor = f"sip:{t.account}@{t.domain}"
        contact = self.core.contact_uri(self.destination, t.account)
        items = [
            ["Max-Forwards", "70"],
            ["From", f"<{aor}>;tag={self.from_tag}"],
            ["To", f"<{aor}>"],
            ["Call-ID", self.call_id],
            ["CSeq", f"{self.cseq} REGISTER"],
            ["Contact", f"<{contact}>"],
            ["Expires", str(self.expires)],
            ["Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO"],
            ["Supported", SUPPORTED],
        ]
        return Request("REGISTER", parse_uri(f"sip:{t.domain}"), Headers(items))

    def _send(self, challenge, header: str = "Authorization") -> None:
        if self.stopped:
            return
        self._timer = None
        req = self._request()
        if challenge is not None:
            self._nc = self._nc + 1 if self._answered_nonce == challenge.nonce else 1
            self._answered_nonce = challenge.nonce
            req.headers.add(header, digest.authorization(
                challenge, self.trunk.username, self.trunk.password, "REGISTER", str(req.uri),
                cnonce=os.urandom(8).hex(), nc=self._nc))
        req.headers.add("Content-Length", "0")
        if self.state not in ("registered",):
            self.state = "registering" if self.state == "unregistered" else self.state
        self._tx = self.core.send_request(req, self.destination, self, self.clock.seconds())
        self.next_refresh = None                   # an attempt is under way
        self._record()

    # -- ITransactionUser ----------------------------------------------------------------------
    def request_received(self, request, source, transaction):
        pass

    def response_received(self, response, source, transaction):
        if transaction is not self._tx or response.status < 200 or self.stopped:
            return
        status = response.status
        self.last_status, self.last_reason = status, response.reason
        if status in (401, 407):
            self._challenged(response, status)
        elif 200 <= status < 300:
            self._registered(response)
        elif status == 423:
            value = (response.headers.get("min-expires") or "").strip()
            if value.isdigit() and int(value) > self.expires:
                self.expires = int(value)
                self.log.info("trunk {trunk}: carrier wants at least {expires}s",
                              trunk=self.trunk.name, expires=self.expires)
                self._send(None)
            else:
                self._failed("failed", "423 without a usable Min-Expires")
        elif status == 403:
            self.state = "rejected"
            self.log.warn(
                "trunk {trunk}: registration rejected (403 {reason}). Likely causes: a wrong "
                "password, or an auth ID that must be the full URI (e.g. "
                "+8675512345678@{domain}) instead of the account; retrying in {retry}s",
                trunk=self.trunk.name, reason=response.reason, domain=self.trunk.domain,
                retry=int(REJECTED_RETRY))
            self._schedule(REJECTED_RETRY)
            self._record()
        else:
            self._failed("failed", f"{status} {response.reason}")

    def transaction_failed(self, transaction, reason):
        if transaction is not self._tx or self.stopped:
            return
        self.last_status, self.last_reason = 408, f"no answer ({reason})"
        self._failed("unreachable", reason)

    # -- outcomes ------------------------------------------------------------------------------
    def _challenged(self, response, status: int) -> None:
        challenge = digest.challenge_in(response)
        if challenge is None:
            self._failed("failed", f"{status} with no usable digest challenge")
            return
        if not challenge.stale and self._last_had_auth():
            # our answer was refused (many registrars send a fresh nonce with every 401, so
            # the nonce is not compared): the credentials are wrong; answering again would loop
            self.state = "rejected"
            self.log.warn("trunk {trunk}: credentials refused ({status}); check the password "
                          "and whether the auth ID must be the full URI", trunk=self.trunk.name,
                          status=status)
            self._schedule(REJECTED_RETRY)
            self._record()
            return
        self._send(challenge, "Authorization" if status == 401 else "Proxy-Authorization")

    def _last_had_auth(self) -> bool:
        req = self._tx.request if self._tx is not None else None
        return req is not None and ("authorization" in req.headers or
                                    "proxy-authorization" in req.headers)

    def _registered(self, response) -> None:
        granted = self.expires
        for contact in response.contacts:
            value = contact.param("expires")
            if value and value.isdigit() and contact.uri.user == self.trunk.account:
                granted = int(value)
                break
        else:
            value = (response.headers.get("expires") or "").strip()
            if value.isdigit():
                granted = int(value)
        if self.state != "registered":
            self.log.info("trunk {trunk}: registered for {granted}s", trunk=self.trunk.name,
                          granted=granted)
        self.state = "registered"
        self.backoff = BACKOFF_START
        refresh = max(granted * 0.5, granted - 60) if granted > 0 else BACKOFF_START
        self._schedule(refresh)
        self._record()

    def _failed(self, state: str, why: str) -> None:
        self.state = state
        delay = self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_CAP)
        self.log.warn("trunk {trunk}: registration {state} ({why}); retrying in {delay}s",
                      trunk=self.trunk.name, state=state, why=why, delay=int(delay))
        self._schedule(delay)
        self._record()

    def _record(self) -> None:
        if self.store is None:
            return
        recorded = (self.state, self.last_status, self.last_reason, self.next_refresh)
        if recorded == self._recorded:             # e.g. the answer to a challenge
            return
        self._recorded = recorded
        try:
            self.store.put_trunk_status(self.trunk.name, self.state, self.last_status,
                                        self.last_reason, self.next_refresh, self.wall())
        except Exception:
            self.log.failure("could not record the state of trunk {trunk}", trunk=self.trunk.name)
