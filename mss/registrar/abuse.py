# -*- test-case-name: tests.registrar.test_abuse -*-
"""Abuse protection for the registrar and call core: failure counting, bans, scanner detection.

Sans-I/O: every entry point takes ``now`` (Unix time) and the caller persists bans through the
store (``IStore.put_ban`` when ``failure`` returns True, ``BanList.load`` at start-up).

An address that fails authentication ``threshold`` times within ``window`` seconds is banned for
``ban_time`` seconds (the ``[security]`` section). Addresses in ``allow`` (networks) are never
counted or banned. Memory stays bounded under a flood of distinct source addresses: failure
histories older than the window are pruned, and at most ``max_tracked`` addresses (and
``max_bans`` bans) are remembered, the oldest dropped first.

Addresses are IP address strings without port; they are normalised (IPv6 compressed,
IPv4-mapped IPv6 to IPv4) so that one host has one entry.
"""
from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict, deque
from typing import Iterable

from twisted.logger import Logger

from mss.store.interface import Ban

__all__ = ["BanList", "is_scanner", "normalize_address"]


_DOTTED = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                     r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def normalize_address(address: str) -> str:
    """The canonical text of an IP address; anything else is returned unchanged."""
    if _DOTTED.fullmatch(address):
        return address                    # already canonical IPv4 (every request passes here)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def is_scanner(user_agent: str | None, patterns: Iterable[str]) -> bool:
    """True if the User-Agent contains one of ``patterns`` (case-insensitive substrings)."""
    if not user_agent:
        return False
    agent = user_agent.casefold()
    return any(p and p.casefold() in agent for p in patterns)


class BanList:
    """Counts authentication failures per address and bans repeat offenders."""

    log = Logger()

    def __init__(self, threshold: int = 10, window: float = 60, ban_time: float = 600,
                 allow: Iterable[str] = (), max_tracked: int = 10_000, max_bans: int = 100_000):
        if threshold < 1 or window <= 0 or ban_time <= 0:
            raise ValueError("threshold, window and ban_time must be positive")
        self.threshold = threshold
        self.window = window
        self.ban_time = ban_time
        self.max_tracked = max_tracked
        self.max_bans = max_bans
        self._allow = [ipaddress.ip_network(n, strict=False) for n in allow]
        # address -> recent failure times (at most ``threshold``), least recently failed first
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._bans: dict[str, Ban] = {}

    # -- queries -------------------------------------------------------------------------------

    def is_allowed(self, address: str) -> bool:
        if not self._allow:
            return False
        try:
            ip = ipaddress.ip_address(normalize_address(address))
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self._allow)

    def is_banned(self, address: str, now: float) -> bool:
        address = normalize_address(address)
        ban = self._bans.get(address)
        if ban is None:
            return False
        if ban.until <= now:
            del self._bans[address]
            return False
        return not self.is_allowed(address)

    def get_ban(self, address: str, now: float) -> Ban | None:
        """The live ban of an address, or None."""
        return self._bans.get(normalize_address(address)) if self.is_banned(address, now) else None

    def bans(self, now: float) -> list[Ban]:
        """Live bans ordered by expiry; expired ones are forgotten."""
        self._prune_bans(now)
        return sorted(self._bans.values(), key=lambda b: (b.until, b.address))

    def tracked(self) -> int:
        """How many addresses have a failure history (for metrics and tests)."""
        return len(self._failures)

    # -- events --------------------------------------------------------------------------------

    def failure(self, address: str, now: float, reason: str = "authentication failures") -> bool:
        """Record an authentication failure; True when this failure just triggered a ban."""
        address = normalize_address(address)
        if self.is_allowed(address) or self.is_banned(address, now):
            return False
        self._prune_failures(now)
        history = self._failures.pop(address, None)
        if history is None:
            history = deque(maxlen=self.threshold)
        history.append(now)
        horizon = now - self.window
        while history and history[0] <= horizon:
            history.popleft()
        if len(history) >= self.threshold:
            self._ban(address, now + self.ban_time, reason, now)
            self.log.warn("Banned {peer} until {until} after {count} failures in {window}s",
                          peer=address, until=now + self.ban_time, count=len(history),
                          window=self.window)
            return True
        self._failures[address] = history           # most recent at the end
        if len(self._failures) > self.max_tracked:
            self._failures.popitem(last=False)
        return False

    def ban(self, address: str, now: float, reason: str, ban_time: float | None = None) -> Ban | None:
        """Ban an address at once (scanner, operator); None for allow-listed addresses."""
        address = normalize_address(address)
        if self.is_allowed(address):
            return None
        return self._ban(address, now + (self.ban_time if ban_time is None else ban_time), reason, now)

    def unban(self, address: str) -> bool:
        """Lift a ban and forget the failure history; False if the address was not banned."""
        address = normalize_address(address)
        self._failures.pop(address, None)
        return self._bans.pop(address, None) is not None

    def load(self, bans: Iterable[Ban], now: float | None = None) -> None:
        """Restore bans (``IStore.list_bans(now)``) at start-up; expired ones are skipped."""
        for ban in bans:
            if now is not None and ban.until <= now:
                continue
            address = normalize_address(ban.address)
            current = self._bans.get(address)
            if current is None or current.until < ban.until:
                self._bans[address] = Ban(address, ban.until, ban.reason)
        if len(self._bans) > self.max_bans and now is not None:
            self._prune_bans(now)

    def replace(self, bans: Iterable[Ban], now: float) -> None:
        """Make the live bans exactly ``bans`` (the store's list after ``mssctl bans`` changed it).

        Failure histories are kept, so an attacker gains nothing from an operator's change.
        """
        self._bans = {}
        self.load(bans, now)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _ban(self, address: str, until: float, reason: str, now: float) -> Ban:
        self._failures.pop(address, None)
        ban = Ban(address, until, reason)
        self._bans[address] = ban
        if len(self._bans) > self.max_bans:
            self._prune_bans(now)
        return ban

    def _prune_failures(self, now: float) -> None:
        """Drop histories whose last failure left the window (they are ordered by last failure)."""
        horizon = now - self.window
        failures = self._failures
        while failures:
            address, history = next(iter(failures.items()))
            if history and history[-1] > horizon:
                break
            del failures[address]

    def _prune_bans(self, now: float) -> None:
        expired = [a for a, b in self._bans.items() if b.until <= now]
        for address in expired:
            del self._bans[address]
        if len(self._bans) > self.max_bans:
            # Drop the bans closest to expiry, down to 90% so that the sort is amortised.
            excess = len(self._bans) - (self.max_bans * 9) // 10
            for ban in sorted(self._bans.values(), key=lambda b: b.until)[:excess]:
                del self._bans[ban.address]
