# -*- test-case-name: tests.sip.test_dialog -*-
"""SIP dialogs (RFC 3261 §12): identity, route set, remote target, CSeq, in-dialog requests.

A ``Dialog`` is one side's view: ``local_tag``/``remote_tag`` are ours/theirs whether we were
UAC or UAS. Requests inside it are built by ``request(method)`` with the Request-URI and
Route headers of §12.2.1.1 (loose routing; strict routing when the first route lacks ``lr``).
``flow`` is the transport address we talk to when there is no route set: the address the
peer's messages came from (for a phone behind NAT, that is the only address that works).
"""
from __future__ import annotations

import re

import attrs

from mss.sip.address import Address
from mss.sip.headers import Headers, parse_name_addr
from mss.sip.message import Request, Response
from mss.sip.uri import URI


@attrs.define(slots=True, eq=False)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str                  # the From (UAC) / To (UAS) header value, without tag
    remote_uri: str
    remote_target: URI
    route_set: list[str]            # Route header values, in the order we use them
    local_cseq: int
    remote_cseq: int | None
    flow: Address                   # where requests go when the route set is empty
    contact: str                    # our Contact URI in this dialog
    early: bool = True
    prack_rseq: int | None = None   # RSeq of the last reliable provisional we PRACKed (RFC 3262)

    @property
    def id(self) -> tuple:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, request: Request, response: Response, flow: Address, contact: str) -> "Dialog":
        """The dialog created by a response (1xx with To tag, or 2xx) to our INVITE (§12.1.2)."""
        routes = _route_set(response, reverse=True)
        target = _contact_uri(response) or request.uri
        return cls(call_id=request.call_id, local_tag=request.from_.tag,
                   remote_tag=response.to.tag, local_uri=_without_tag(request.headers.get("from")),
                   remote_uri=_without_tag(request.headers.get("to")), remote_target=target,
                   route_set=routes, local_cseq=request.cseq.number, remote_cseq=None,
                   flow=flow, contact=contact, early=response.status < 200)

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, flow: Address, contact: str) -> "Dialog":
        """The dialog we create by answering ``request`` with a tag (§12.1.1)."""
        routes = _route_set(request, reverse=False)
        target = _contact_uri(request) or request.from_.uri
        return cls(call_id=request.call_id, local_tag=local_tag, remote_tag=request.from_.tag,
                   local_uri=_without_tag(request.headers.get("to")),
                   remote_uri=_without_tag(request.headers.get("from")), remote_target=target,
                   route_set=routes, local_cseq=0, remote_cseq=request.cseq.number,
                   flow=flow, contact=contact, early=True)

    def update_from_response(self, response: Response) -> None:
        """A 2xx confirms the dialog; the route set is recomputed (§12.1.2 / §13.2.2.4)."""
        if response.status >= 200 and self.early:
            self.route_set = _route_set(response, reverse=True)
            self.early = False
        target = _contact_uri(response)
        if target is not None:
            self.remote_target = target

    def target_refresh(self, message) -> None:
        """re-INVITE / UPDATE (and their 2xx) may change the remote target (§12.2)."""
        target = _contact_uri(message)
        if target is not None:
            self.remote_target = target

    def accept_remote_cseq(self, request: Request) -> bool:
        """§12.2.2: a lower CSeq than the last one is out of order (answer 500)."""
        number = request.cseq.number
        if self.remote_cseq is not None and number < self.remote_cseq and request.method != "ACK":
            return False
        if request.method not in ("ACK", "CANCEL"):
            self.remote_cseq = number
        return True

    def destination(self) -> Address:
        """Where in-dialog requests go: the first route's host, else our flow to the peer."""
        if self.route_set:
            first = parse_name_addr(self.route_set[0]).uri
            transport = (first.param("transport") or self.flow.transport).lower()
            if (first.host.strip("[]"), first.port or 5060) == (self.flow.host, self.flow.port):
                return self.flow
            return Address(transport if transport in ("udp", "tcp") else "udp",
                           first.host.strip("[]"), first.port or 5060)
        return self.flow

    def request(self, method: str, cseq: int | None = None) -> Request:
        """A new request in this dialog (§12.2.1.1). ACK and CANCEL pass the CSeq to reuse."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        items = []
        uri = self.remote_target
        routes = self.route_set
        if routes:
            first = parse_name_addr(routes[0])
            if not first.uri.has_param("lr"):          # strict router (RFC 2543)
                uri = first.uri.without_param("method")
                routes = routes[1:] + [f"<{self.remote_target}>"]
            for route in routes:
                items.append(["Route", route])
        items += [
            ["Max-Forwards", "70"],
            ["From", self._with_tag(self.local_uri, self.local_tag)],
            ["To", self._with_tag(self.remote_uri, self.remote_tag)],
            ["Call-ID", self.call_id],
            ["CSeq", f"{cseq} {method}"],
        ]
        if method not in ("ACK", "CANCEL", "BYE", "PRACK", "INFO", "OPTIONS", "MESSAGE"):
            items.append(["Contact", f"<{self.contact}>"])
        return Request(method, uri, Headers(items))

    @staticmethod
    def _with_tag(value: str, tag: str | None) -> str:
        return value if tag is None else f"{value};tag={tag}"


_TAG_PARAM = re.compile(r"\s*;\s*tag\s*=\s*[^;,\s]*", re.IGNORECASE)


def _without_tag(value: str) -> str:
    """The From/To value without its tag, the rest kept as written (a re-serialized display
    name could lose its quotes, and "Smith, Alice" needs them)."""
    end = value.rfind(">")                     # header parameters follow the name-addr
    head, tail = value[:end + 1], value[end + 1:]
    return (head + _TAG_PARAM.sub("", tail)).strip()


def _route_set(message, reverse: bool) -> list[str]:
    """The Record-Route values as a route set (§12.1.1 keeps their order, §12.1.2 reverses
    it). A route set we could not follow (an entry that does not parse, or is not a SIP URI)
    is dropped as a whole: requests then go to the flow the peer talks to us on, instead of
    failing later when one is built."""
    try:
        values = message.headers.get_all("record-route")
        for value in values:
            if parse_name_addr(value).uri.scheme not in ("sip", "sips"):
                return []
    except Exception:
        return []
    return list(reversed(values)) if reverse else list(values)


def _contact_uri(message) -> URI | None:
    try:
        contacts = message.contacts
    except Exception:
        return None
    return contacts[0].uri if contacts else None
