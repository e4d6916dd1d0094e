# -*- test-case-name: tests.admin.test_cmd_cdr -*-
"""``mssctl cdr [--since WHEN] [--limit N] [--csv]``: the call detail records in the store.

One record per call (``mss.store.records.CDR``), oldest first. ``--since`` takes a Unix time
(``1767225600``) or an ISO 8601 date or date-time (``2026-01-01``, ``2026-01-01T08:00``,
``2026-01-01T08:00:00+01:00``); without a UTC offset the time is UTC. The table is for people
(times in UTC, durations in seconds); ``--csv`` is for billing tools: every field, a header
row, times as ISO 8601 UTC with milliseconds, empty ``answer`` for an unanswered call.
"""
from __future__ import annotations

import csv
import datetime

from mss.admin.cli import CommandError, format_table

CSV_FIELDS = ("call_id", "caller", "callee", "direction", "start", "answer", "end", "duration",
              "billsec", "disposition", "cause", "trunk")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("cdr", help="list call detail records")
    p.add_argument("--since", metavar="WHEN", default=None,
                   help="only calls that started at or after WHEN (Unix time or ISO 8601 date)")
    p.add_argument("--limit", metavar="N", type=int, default=None,
                   help="at most N records (the oldest first)")
    p.add_argument("--csv", action="store_true", help="comma-separated values with a header row")
    p.set_defaults(func=list_cdrs)


def parse_since(text: str) -> float:
    """A Unix time or an ISO 8601 date/date-time (UTC unless it carries an offset)."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--since: expected a Unix time or an ISO 8601 date, not {text!r}", 2)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def iso(t: float | None) -> str:
    if t is None:
        return ""
    when = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def list_cdrs(args, ctx) -> int:
    since = parse_since(args.since) if args.since is not None else None
    if args.limit is not None and args.limit < 1:
        raise CommandError("--limit must be at least 1", 2)
    cdrs = ctx.store.list_cdrs(since=since, limit=args.limit)
    if args.csv:
        writer = csv.writer(ctx.out, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for c in cdrs:
            writer.writerow((c.call_id, c.caller, c.callee, c.direction, iso(c.start),
                             iso(c.answer), iso(c.end), f"{c.duration:.3f}", f"{c.billsec:.3f}",
                             c.disposition, c.cause, c.trunk))
        return 0
    if not cdrs:
        ctx.out.write("no call records\n")
        return 0
    rows = [(iso(c.start)[:19].replace("T", " "), c.caller, c.callee, c.direction,
             c.disposition, f"{c.duration:.0f}", f"{c.billsec:.0f}", c.cause or "-",
             c.trunk or "-", c.call_id) for c in cdrs]
    ctx.out.write(format_table(("START (UTC)", "CALLER", "CALLEE", "DIRECTION", "DISPOSITION",
                                "DURATION", "BILLSEC", "CAUSE", "TRUNK", "CALL-ID"), rows))
    return 0
