# -*- test-case-name: tests.services.test_commands -*-
"""``mssctl blacklist ...`` and ``mssctl whitelist ...``: the system black and white list.

Rows are read by ``lua/services/blacklist.lua`` (see its header for the matching rules); a
running switch sees changes within ``[store] poll_interval``.
"""
from __future__ import annotations

from mss.admin.cli import CommandError, format_table
from mss.services import provisioning as p


def add_parser(subparsers) -> None:
    for table, help_text in ((p.BLACK_TABLE, "calls refused by caller/called prefix"),
                             (p.WHITE_TABLE, "calls exempt from the black list")):
        parser = subparsers.add_parser(table, help=help_text)
        sub = parser.add_subparsers(dest=f"{table}_command", required=True, metavar="COMMAND")
        q = sub.add_parser("add", help="add a row")
        q.add_argument("caller", metavar="CALLER_PREFIX",
                       help="digits, * (any caller) or anonymous")
        q.add_argument("called", metavar="CALLED_PREFIX", help="digits or * (any number)")
        if table == p.BLACK_TABLE:
            q.add_argument("rate", metavar="RATE", help="percent of matching calls refused")
        q.add_argument("--description", default="", metavar="TEXT")
        q.set_defaults(func=add, table=table)
        q = sub.add_parser("list", help="list the rows")
        q.set_defaults(func=list_, table=table)
        q = sub.add_parser("remove", help="remove a row by its ID")
        q.add_argument("id", metavar="ID")
        q.set_defaults(func=remove, table=table)


def _checked(function, value):
    try:
        return function(value)
    except ValueError as e:
        raise CommandError(str(e), 2)


def add(args, ctx) -> int:
    caller = _checked(p.caller_prefix, args.caller)
    called = _checked(p.called_prefix, args.called)
    row = {"caller": caller, "called": called, "description": args.description[:200]}
    if args.table == p.BLACK_TABLE:
        row["rate"] = _checked(p.rate, args.rate)
    existing = p.find_row(ctx.store, p.BLACKLIST, args.table, caller=caller, called=called)
    if existing is not None:
        raise CommandError(f"{args.table} row {existing} already has {caller} {called}; "
                           f"remove it first")
    row_id = ctx.store.add_row(p.BLACKLIST, args.table, row)
    ctx.out.write(f"{args.table} row {row_id} added\n")
    return 0


def list_(args, ctx) -> int:
    rows = ctx.store.list_rows(p.BLACKLIST, args.table)
    if not rows:
        ctx.out.write(f"{args.table} is empty\n")
        return 0
    if args.table == p.BLACK_TABLE:
        headers = ("ID", "CALLER", "CALLED", "RATE", "DESCRIPTION")
        lines = [(i, d.get("caller"), d.get("called"), f"{d.get('rate', 100)}%",
                  d.get("description") or "-") for i, d in rows]
    else:
        headers = ("ID", "CALLER", "CALLED", "DESCRIPTION")
        lines = [(i, d.get("caller"), d.get("called"), d.get("description") or "-")
                 for i, d in rows]
    ctx.out.write(format_table(headers, lines))
    return 0


def remove(args, ctx) -> int:
    if not args.id.isdigit():
        raise CommandError(f"row ID {args.id!r} must be a number (see {args.table} list)", 2)
    if not ctx.store.remove_row(p.BLACKLIST, args.table, int(args.id)):
        raise CommandError(f"{args.table} row {args.id} does not exist")
    ctx.out.write(f"{args.table} row {args.id} removed\n")
    return 0
