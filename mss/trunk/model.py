# -*- test-case-name: tests.trunk.test_model -*-
"""Trunk-layer views of the trunk records (``mss.store.records``): where a trunk's requests
go, and which inbound addresses two trunks share.
"""
from __future__ import annotations

import ipaddress

from mss.sip.address import Address
from mss.store.records import Trunk, TrunkError, parse_proxy


def destination(trunk: Trunk, resolve=lambda host: host) -> Address:
    """Where requests to ``trunk`` go as provisioned: its proxy, else its domain (``resolve``
    maps the host to an address)."""
    host, port, transport = parse_proxy(trunk.proxy or trunk.domain)
    return Address(transport, resolve(host), port)


def _where(trunk: Trunk) -> list:
    """The trunk's carrier addresses as networks (allow list, proxy IP) or host names."""
    out = []
    for item in trunk.allow:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    try:
        host = parse_proxy(trunk.proxy or trunk.domain)[0]
    except TrunkError:
        return out
    try:
        out.append(ipaddress.ip_network(host))
    except ValueError:
        out.append(host.lower())
    return out


def shared_addresses(a: Trunk, b: Trunk) -> list[str]:
    """Addresses (or networks, or host names) both trunks take inbound calls from: calls from
    there are told apart by the allow lists and the called number (``inbound_trunk``)."""
    shared = []
    for x in _where(a):
        for y in _where(b):
            if isinstance(x, str) or isinstance(y, str):
                same = x == y
            else:
                same = x.version == y.version and x.overlaps(y)
            if same:
                text = str(x if isinstance(x, str) or x.num_addresses <= y.num_addresses else y)
                if text.endswith(("/32", "/128")):
                    text = text.rsplit("/", 1)[0]
                if text not in shared:
                    shared.append(text)
    return shared
