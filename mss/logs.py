# -*- test-case-name: tests.test_tap -*-
"""The configured log level, for the hot paths that want to skip building a log event.

``twisted.logger`` filters by level only after the event is built and published (tens of
microseconds); a registration or call at thousands per second should not pay that for a line
nobody keeps. ``setup_logging`` in ``mss.tap`` sets the level from ``[log] level``.
"""
from __future__ import annotations

_ORDER = {"debug": 0, "info": 1, "warn": 2, "error": 3, "critical": 4}
_level = 1


def set_level(name: str) -> None:
    global _level
    _level = _ORDER[name]


def enabled(name: str) -> bool:
    """True when events of level ``name`` are kept."""
    return _ORDER[name] >= _level
