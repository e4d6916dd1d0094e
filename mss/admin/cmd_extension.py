# -*- test-case-name: tests.admin.test_cli -*-
"""``mssctl extension ...``: add, list, show, remove and change extensions.

Passwords are turned into HA1 values for the configured realm (``[auth] realm``) right away;
the store never sees the clear password. A password argument of ``-`` is read from stdin
(prompted for without echo on a terminal); passwords shorter than ``[security]
min_password_length`` are refused.
"""
from __future__ import annotations

from mss.admin.cli import CommandError, format_table, on_off, read_password
from mss.store.interface import StoreError, validate_number, validate_permission

MULTI_DEVICE = "multi_device"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("extension", help="manage extensions")
    sub = p.add_subparsers(dest="extension_command", required=True, metavar="COMMAND")

    q = sub.add_parser("add", help="add an extension")
    q.add_argument("number")
    q.add_argument("--password", required=True,
                   help="SIP password ('-' reads it from stdin; at least [security] "
                   "min_password_length characters)")
    q.add_argument("--name", default="", help="display name")
    q.add_argument("--multi-device", action="store_true",
                   help="allow several devices to register at once")
    q.add_argument("--permission", action="append", default=[], metavar="NAME",
                   help="grant a permission (repeatable)")
    q.add_argument("--call-level", type=int, default=0, metavar="LEVEL")
    q.set_defaults(func=add)

    q = sub.add_parser("list", help="list extensions")
    q.set_defaults(func=list_)

    q = sub.add_parser("show", help="show one extension")
    q.add_argument("number")
    q.set_defaults(func=show)

    q = sub.add_parser("remove", help="remove an extension and its registrations")
    q.add_argument("number")
    q.set_defaults(func=remove)

    q = sub.add_parser("set-password", help="change the password")
    q.add_argument("number")
    q.add_argument("password", help="the new password ('-' reads it from stdin)")
    q.set_defaults(func=set_password)

    q = sub.add_parser("multi-device", help="allow or refuse several devices at once")
    q.add_argument("number")
    q.add_argument("state", type=on_off, metavar="on|off")
    q.set_defaults(func=multi_device)

    for name, on in (("enable", True), ("disable", False)):
        q = sub.add_parser(name, help=f"{name} an extension")
        q.add_argument("number")
        q.set_defaults(func=set_enabled, enabled=on)

    q = sub.add_parser("permission", help="grant or revoke a permission")
    q.add_argument("number")
    q.add_argument("permission", metavar="NAME")
    q.add_argument("state", type=on_off, metavar="on|off")
    q.set_defaults(func=permission)

    q = sub.add_parser("digest", help="digest algorithms of this extension's phones",
                       description="md5: challenge with MD5 only (every phone can answer); "
                       "sha-256: SHA-256 only (phones that cannot compute it cannot register); "
                       "both: MD5 and SHA-256 (some phones, baresip 1.0 and SIPp 3.6.1 among "
                       "them, fail on two challenges); default: [auth] algorithms.")
    q.add_argument("number")
    q.add_argument("mode", choices=("md5", "sha-256", "both", "default"))
    q.set_defaults(func=set_digest)

    q = sub.add_parser("call-level", help="set the call level (0-99)")
    q.add_argument("number")
    q.add_argument("level", type=int)
    q.set_defaults(func=call_level)


def _number(text: str) -> str:
    # Validated before the store opens so that a typo costs nothing; a usage error (exit 2).
    try:
        return validate_number(text)
    except StoreError as e:
        raise CommandError(str(e), 2)


def _permission(text: str) -> str:
    try:
        return validate_permission(text)
    except StoreError as e:
        raise CommandError(str(e), 2)


def add(args, ctx) -> int:
    number = _number(args.number)
    password = read_password(args.password, ctx)
    permissions = [_permission(p) for p in args.permission]
    if args.multi_device:
        permissions.append(MULTI_DEVICE)
    ctx.store.add_extension(number, password, ctx.realm, name=args.name,
                            permissions=permissions, call_level=args.call_level)
    ctx.out.write(f"extension {number} added\n")
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def list_(args, ctx) -> int:
    extensions = ctx.store.list_extensions()
    if not extensions:
        ctx.out.write("no extensions\n")
        return 0
    rows = [(e.number, e.name or "-", _yes(e.enabled), e.call_level,
             ",".join(sorted(e.permissions)) or "-") for e in extensions]
    ctx.out.write(format_table(("NUMBER", "NAME", "ENABLED", "LEVEL", "PERMISSIONS"), rows))
    return 0


def _get(ctx, number: str):
    ext = ctx.store.get_extension(_number(number))
    if ext is None:
        raise CommandError(f"extension {number} does not exist")
    return ext


def show(args, ctx) -> int:
    ext = _get(ctx, args.number)
    realm_note = "" if ext.realm == ctx.realm else f" (configured realm is {ctx.realm}: set the password again)"
    ctx.out.write(
        f"number:      {ext.number}\n"
        f"name:        {ext.name}\n"
        f"enabled:     {_yes(ext.enabled)}\n"
        f"call level:  {ext.call_level}\n"
        f"permissions: {', '.join(sorted(ext.permissions)) or '-'}\n"
        f"realm:       {ext.realm}{realm_note}\n"
        f"digest:      {ext.digest or 'default'}\n")
    return 0


def remove(args, ctx) -> int:
    number = _number(args.number)
    if not ctx.store.remove_extension(number):
        raise CommandError(f"extension {number} does not exist")
    ctx.out.write(f"extension {number} removed\n")
    return 0


def set_password(args, ctx) -> int:
    number = _number(args.number)
    ctx.store.set_password(number, read_password(args.password, ctx), ctx.realm)
    ctx.out.write(f"extension {number}: password changed\n")
    return 0


def multi_device(args, ctx) -> int:
    number = _number(args.number)
    ctx.store.set_permission(number, MULTI_DEVICE, args.state)
    ctx.out.write(f"extension {number}: multi-device {'on' if args.state else 'off'}\n")
    return 0


def set_enabled(args, ctx) -> int:
    number = _number(args.number)
    ctx.store.set_enabled(number, args.enabled)
    ctx.out.write(f"extension {number} {'enabled' if args.enabled else 'disabled'}\n")
    return 0


def permission(args, ctx) -> int:
    number = _number(args.number)
    name = _permission(args.permission)
    ctx.store.set_permission(number, name, args.state)
    ctx.out.write(f"extension {number}: {name} {'on' if args.state else 'off'}\n")
    return 0


def set_digest(args, ctx) -> int:
    number = _number(args.number)
    ctx.store.set_digest(number, "" if args.mode == "default" else args.mode)
    ctx.out.write(f"extension {number}: digest {args.mode}\n")
    return 0


def call_level(args, ctx) -> int:
    number = _number(args.number)
    ctx.store.set_call_level(number, args.level)
    ctx.out.write(f"extension {number}: call level {args.level}\n")
    return 0
