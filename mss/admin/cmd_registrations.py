# -*- test-case-name: tests.admin.test_cli -*-
"""``mssctl registrations [NUMBER]``: the live registration bindings the switch recorded."""
from __future__ import annotations

from mss.admin.cli import format_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("registrations", help="list registered devices")
    p.add_argument("number", nargs="?", help="only this extension")
    p.set_defaults(func=list_registrations)


def list_registrations(args, ctx) -> int:
    now = ctx.now()
    bindings = ctx.store.list_bindings(now, args.number)
    if not bindings:
        ctx.out.write("no registrations\n")
        return 0
    rows = [(b.aor, b.contact, f"{b.transport}:{b.source_host}:{b.source_port}",
             int(b.expires_at - now), b.user_agent or "-") for b in bindings]
    ctx.out.write(format_table(("EXTENSION", "CONTACT", "SOURCE", "EXPIRES", "USER-AGENT"), rows))
    return 0
