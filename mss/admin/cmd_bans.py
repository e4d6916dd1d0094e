# -*- test-case-name: tests.admin.test_cli -*-
"""``mssctl bans [list|add|remove]``: addresses refused by the abuse protection.

The switch bans addresses itself (mss.registrar.abuse) and records the bans in the store; these
commands read and change that record. A running switch picks the changes up when it notices
``IStore.data_version()`` change.
"""
from __future__ import annotations

import ipaddress
import time

from mss.admin.cli import CommandError, format_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bans", help="list and lift address bans")
    p.set_defaults(func=list_bans)
    sub = p.add_subparsers(dest="bans_command", required=False, metavar="COMMAND")

    q = sub.add_parser("list", help="list live bans (the default)")
    q.set_defaults(func=list_bans)

    q = sub.add_parser("remove", help="lift the ban of an address")
    q.add_argument("address")
    q.set_defaults(func=remove_ban)

    q = sub.add_parser("add", help="ban an address")
    q.add_argument("address")
    q.add_argument("--time", type=int, default=None, metavar="SECONDS",
                   help="how long (default: [security] ban_time)")
    q.add_argument("--reason", default="operator")
    q.set_defaults(func=add_ban)


def _address(text: str) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise CommandError(f"{text!r} is not an IP address", 2)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _left(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def list_bans(args, ctx) -> int:
    now = ctx.now()
    bans = ctx.store.list_bans(now)
    if not bans:
        ctx.out.write("no bans\n")
        return 0
    rows = [(b.address, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(b.until)),
             _left(b.until - now), b.reason or "-") for b in bans]
    ctx.out.write(format_table(("ADDRESS", "UNTIL", "LEFT", "REASON"), rows))
    return 0


def remove_ban(args, ctx) -> int:
    address = _address(args.address)
    if not ctx.store.remove_ban(address):
        raise CommandError(f"{address} is not banned")
    ctx.out.write(f"ban of {address} lifted\n")
    return 0


def add_ban(args, ctx) -> int:
    address = _address(args.address)
    seconds = ctx.config["security"]["ban_time"] if args.time is None else args.time
    if seconds <= 0:
        raise CommandError("--time must be greater than 0", 2)
    ctx.store.put_ban(address, ctx.now() + seconds, args.reason)
    ctx.out.write(f"{address} banned for {_left(seconds)}\n")
    return 0
