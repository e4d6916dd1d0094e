# -*- test-case-name: tests.registrar.test_registrar -*-
"""The registrar: REGISTER handling for extensions (RFC 3261 §10.3, RFC 5626 instance ids).

Order of checks for each REGISTER, each with the answer a phone expects:
scanner User-Agent (dropped) -> banned source (dropped) -> digest (401 challenge / 403)
-> Contact/Expires syntax (400) -> too brief (423 + Min-Expires) -> Call-ID/CSeq order (500)
-> apply (add, refresh, remove, ``*`` wildcard, query) -> 200 listing every binding with its
remaining expiry.
"""
from __future__ import annotations

import time
from email.utils import formatdate

from twisted.logger import Logger
from zope.interface import implementer

from mss import logs
from mss.registrar.abuse import is_scanner
from mss.sip.core import ITransactionUser
from mss.sip.message import make_response
from mss.store.interface import Binding

MULTI_DEVICE = "multi_device"


class RegisterError(Exception):
    def __init__(self, status: int, reason: str | None = None, headers=()):
        self.status, self.reason, self.headers = status, reason, headers


def _instance(contact) -> str:
    value = contact.param("+sip.instance")
    if not value:
        return ""
    return value.strip('"').strip("<>")


@implementer(ITransactionUser)
class Registrar:
    log = Logger()

    def __init__(self, core, clock, auth, bindings, directory, *, min_expires: int = 60,
                 max_expires: int = 3600, default_expires: int = 3600,
                 scanner_agents=(), domain: str = ""):
        self.core = core
        self.clock = clock
        self.auth = auth
        self.bindings = bindings
        self.directory = directory
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.scanner_agents = tuple(scanner_agents)
        self.domain = domain
        self.counters = {"registered": 0, "challenged": 0, "forbidden": 0, "dropped": 0}
        self._date_second = -1
        self._date_text = ""

    # -- ITransactionUser ------------------------------------------------------------------------
    def request_received(self, request, source, transaction):
        now = self.clock.seconds()
        if is_scanner(request.headers.get("user-agent"), self.scanner_agents):
            self.counters["dropped"] += 1
            return
        aor = request.to.uri.number
        outcome = self.auth.check(request, source.host, now, proxy=False, expected_user=aor)
        if outcome.kind == "drop":
            self.counters["dropped"] += 1
            return
        if outcome.kind == "challenge":
            self.counters["challenged"] += 1
            self._answer(transaction, request, 401, None, outcome.headers, now)
            return
        if outcome.kind == "forbidden":
            self.counters["forbidden"] += 1
            self.log.info("REGISTER for {aor} from {peer} refused: {why}", aor=aor,
                          peer=source.host, why=outcome.reason)
            self._answer(transaction, request, 403, None, (), now)
            return
        ext = outcome.extension
        try:
            self._apply(request, source, ext, now)
        except RegisterError as e:
            self._answer(transaction, request, e.status, e.reason, e.headers, now)
            return
        self.counters["registered"] += 1
        headers = [("Contact", f"<{b.contact}>;expires={max(0, int(b.expires_at - now))}")
                   for b in self.bindings.get(ext.number)]
        headers.append(("Date", self._date()))
        # the 200 only once the bindings are committed (group commit, see bindings.py)
        self.bindings.when_stored(
            lambda: self._answer(transaction, request, 200, None, headers, now))

    def _date(self) -> str:
        """The Date header value (RFC 3261 §20.17), formatted once per second."""
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            self._date_text = formatdate(second, usegmt=True)
        return self._date_text

    def response_received(self, response, source, transaction):
        pass

    def transaction_failed(self, transaction, reason):
        pass

    # -- REGISTER processing (§10.3 steps 5-8) ------------------------------------------------------
    def _expires(self, request, contact) -> int:
        value = contact.param("expires") if contact is not None else None
        if value is None:
            value = request.headers.get("expires")
        if value is None:
            return self.default_expires
        value = value.strip()
        if not value.isdigit():
            raise RegisterError(400, "Bad Expires value")
        return int(value) if len(value) < 11 else 2 ** 32 - 1

    def _apply(self, request, source, ext, now: float) -> None:
        aor = ext.number
        raw_contacts = request.headers.get_all("contact")
        if any(v.strip() == "*" for v in raw_contacts):
            if len(raw_contacts) != 1 or self._expires(request, None) != 0:
                raise RegisterError(400, "Wildcard Contact needs Expires 0 and no other Contact")
            self._check_order(aor, request, None)
            self.bindings.remove_all(aor)
            self.log.info("all bindings of {aor} removed", aor=aor)
            return
        contacts = request.contacts
        if not contacts:
            return                                      # a query
        planned = []
        for contact in contacts:
            expires = self._expires(request, contact)
            if 0 < expires < self.min_expires:
                raise RegisterError(423, None, (("Min-Expires", str(self.min_expires)),))
            expires = min(expires, self.max_expires)
            if not contact.uri.is_sip:
                raise RegisterError(400, "Contact must be a SIP URI")
            instance = _instance(contact)
            key = instance or str(contact.uri)
            self._check_order(aor, request, key)
            planned.append((contact, expires, instance, key))
        multi = ext.has(MULTI_DEVICE)
        call_id, cseq = request.call_id, request.cseq.number
        agent = request.headers.get("user-agent", "")
        for contact, expires, instance, key in planned:
            if expires == 0:
                self.bindings.remove(aor, key)
                self.log.info("binding {key} of {aor} removed", key=key, aor=aor)
                continue
            q = contact.param("q")
            try:
                qv = float(q) if q else None
            except ValueError:
                raise RegisterError(400, "Bad q value")
            old = self.bindings.find(aor, key)      # a refresh keeps its first registration time
            binding = Binding(aor=aor, key=key, contact=str(contact.uri), expires_at=now + expires,
                              call_id=call_id, cseq=cseq, transport=source.transport,
                              source_host=source.host, source_port=source.port,
                              registered_at=now if old is None else old.registered_at, q=qv,
                              user_agent=agent[:200], instance=instance)
            self.bindings.put(binding, connection=source.connection if source.reliable else None,
                              multi_device=multi)
            if logs.enabled("info"):
                self.log.info("{aor} registered {contact} from {peer} for {expires}s", aor=aor,
                              contact=binding.contact, peer=str(source), expires=expires)

    def _check_order(self, aor: str, request, key: str | None) -> None:
        """Same Call-ID needs a higher CSeq than the stored binding (§10.3 step 7)."""
        for b in self.bindings.get(aor):
            if (key is None or b.key == key) and b.call_id == request.call_id \
                    and request.cseq.number <= b.cseq:
                raise RegisterError(500, "Request Out Of Order", (("Retry-After", "1"),))

    def _answer(self, transaction, request, status, reason, headers, now):
        resp = make_response(request, status, reason, to_tag=self.core.new_tag())
        for name, value in headers:
            resp.headers.add(name, value)
        self.core.send_response(transaction, resp, now)
