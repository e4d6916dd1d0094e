# -*- test-case-name: tests.services.test_commands -*-
"""``mssctl forward|dnd|level|permissions``: per-extension services and call levels.

``forward`` and ``dnd`` write the same extension data the feature codes set from a phone
(``lua/services/forwarding.lua``, ``lua/services/dnd.lua``); ``level`` manages the prefix rows
of ``lua/services/call_levels.lua`` and the extensions' call levels; ``permissions`` shows the
service rights of every extension (grant them with ``mssctl extension permission``).
"""
from __future__ import annotations

from mss.admin.cli import CommandError, format_table, on_off
from mss.services import provisioning as p
from mss.store.interface import StoreError, validate_number


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("forward", help="call forwarding of extensions")
    sub = parser.add_subparsers(dest="forward_command", required=True, metavar="COMMAND")
    q = sub.add_parser("set", help="forward an extension's calls")
    q.add_argument("extension", metavar="EXT")
    q.add_argument("kind", metavar="KIND", help="unconditional, busy, unreachable or no-answer")
    q.add_argument("target", metavar="NUMBER")
    q.add_argument("--ring-time", metavar="S", help="seconds before no-answer forwarding")
    q.set_defaults(func=forward_set)
    q = sub.add_parser("clear", help="stop forwarding")
    q.add_argument("extension", metavar="EXT")
    q.add_argument("kind", metavar="KIND", help="unconditional, busy, unreachable, no-answer "
                                                 "or all")
    q.set_defaults(func=forward_clear)
    q = sub.add_parser("list", help="list forwarding of every extension (or one)")
    q.add_argument("extension", metavar="EXT", nargs="?")
    q.set_defaults(func=forward_list)

    parser = subparsers.add_parser("dnd", help="do not disturb: dnd EXT on|off, dnd list")
    parser.add_argument("extension", metavar="EXT|list")
    parser.add_argument("state", type=on_off, metavar="on|off", nargs="?")
    parser.set_defaults(func=dnd)

    parser = subparsers.add_parser("level", help="call levels of prefixes and extensions")
    sub = parser.add_subparsers(dest="level_command", required=True, metavar="COMMAND")
    q = sub.add_parser("prefix", help="dialled prefixes that require a level")
    prefix_sub = q.add_subparsers(dest="prefix_command", required=True, metavar="COMMAND")
    r = prefix_sub.add_parser("add", help="require LEVEL for numbers starting with PREFIX")
    r.add_argument("prefix", metavar="PREFIX", help="digits or * (every number)")
    r.add_argument("level", metavar="LEVEL")
    r.set_defaults(func=level_prefix_add)
    r = prefix_sub.add_parser("remove", help="remove a prefix")
    r.add_argument("prefix", metavar="PREFIX")
    r.set_defaults(func=level_prefix_remove)
    q = sub.add_parser("set", help="set an extension's call level")
    q.add_argument("extension", metavar="EXT")
    q.add_argument("level", metavar="LEVEL")
    q.set_defaults(func=level_set)
    q = sub.add_parser("list", help="list prefixes and extension levels")
    q.set_defaults(func=level_list)

    parser = subparsers.add_parser("permissions", help="service rights of extensions")
    parser.add_argument("extension", metavar="EXT", nargs="?")
    parser.set_defaults(func=permissions)


def _checked(function, value):
    try:
        return function(value)
    except ValueError as e:
        raise CommandError(str(e), 2)


def _extension(ctx, number: str):
    try:
        validate_number(number)
    except StoreError as e:
        raise CommandError(str(e), 2)
    ext = ctx.store.get_extension(number)
    if ext is None:
        raise CommandError(f"extension {number} does not exist")
    return ext


def forward_set(args, ctx) -> int:
    kind = _checked(p.forward_kind, args.kind)
    target = _checked(p.forward_target, args.target)
    ring = None
    if args.ring_time is not None:
        if kind != "no_answer":
            raise CommandError("--ring-time only applies to no-answer forwarding", 2)
        ring = _checked(p.ring_time, args.ring_time)
    ext = _extension(ctx, args.extension)
    if target == ext.number:
        raise CommandError(f"extension {ext.number} cannot forward to itself", 2)
    ctx.store.set_extension_data(p.FORWARDING, ext.number, kind, target)
    if ring is not None:
        ctx.store.set_extension_data(p.FORWARDING, ext.number, "ring_time", ring)
    ctx.out.write(f"extension {ext.number}: {kind.replace('_', '-')} forwarding to {target}"
                  + (f" after {ring} s" if ring else "") + "\n")
    if "forward" not in ext.permissions:
        ctx.err.write(f"mssctl: warning: extension {ext.number} lacks the forward permission; "
                      f"forwarding stays inactive until it is granted\n")
    return 0


def forward_clear(args, ctx) -> int:
    kinds = p.FORWARD_KINDS if args.kind == "all" else (_checked(p.forward_kind, args.kind),)
    ext = _extension(ctx, args.extension)
    for kind in kinds:
        ctx.store.set_extension_data(p.FORWARDING, ext.number, kind, None)
        if kind == "no_answer":
            ctx.store.set_extension_data(p.FORWARDING, ext.number, "ring_time", None)
    ctx.out.write(f"extension {ext.number}: {args.kind} forwarding cleared\n")
    return 0


def _extensions(ctx, number: str | None):
    return [_extension(ctx, number)] if number else ctx.store.list_extensions()


def forward_list(args, ctx) -> int:
    rows = []
    for ext in _extensions(ctx, args.extension):
        data = ctx.store.get_extension_data(p.FORWARDING, ext.number)
        for kind in p.FORWARD_KINDS:
            if kind in data:
                ring = data.get("ring_time", "default") if kind == "no_answer" else ""
                rows.append((ext.number, kind.replace("_", "-"), data[kind], ring,
                             "yes" if "forward" in ext.permissions else "no (no permission)"))
    if not rows:
        ctx.out.write("no forwarding set\n")
        return 0
    ctx.out.write(format_table(("EXT", "KIND", "TARGET", "RING", "ACTIVE"), rows))
    return 0


def dnd(args, ctx) -> int:
    if args.extension == "list":
        if args.state is not None:
            raise CommandError("dnd list takes no state", 2)
        numbers = [e.number for e in ctx.store.list_extensions()
                   if ctx.store.get_extension_data(p.DND, e.number).get("on")]
        ctx.out.write(("do not disturb: " + ", ".join(numbers) if numbers
                       else "no extension has do not disturb on") + "\n")
        return 0
    ext = _extension(ctx, args.extension)
    if args.state is None:
        on = bool(ctx.store.get_extension_data(p.DND, ext.number).get("on"))
    else:
        on = args.state
        ctx.store.set_extension_data(p.DND, ext.number, "on", True if on else None)
    ctx.out.write(f"extension {ext.number}: do not disturb {'on' if on else 'off'}\n")
    return 0


def level_prefix_add(args, ctx) -> int:
    prefix = _checked(p.called_prefix, args.prefix)
    needed = _checked(p.level, args.level)
    existing = p.find_row(ctx.store, p.CALL_LEVELS, p.LEVEL_TABLE, prefix=prefix)
    if existing is not None:
        ctx.store.remove_row(p.CALL_LEVELS, p.LEVEL_TABLE, existing)
    ctx.store.add_row(p.CALL_LEVELS, p.LEVEL_TABLE, {"prefix": prefix, "level": needed})
    ctx.out.write(f"numbers starting with {prefix} need call level {needed}\n")
    return 0


def level_prefix_remove(args, ctx) -> int:
    prefix = _checked(p.called_prefix, args.prefix)
    existing = p.find_row(ctx.store, p.CALL_LEVELS, p.LEVEL_TABLE, prefix=prefix)
    if existing is None:
        raise CommandError(f"no call level for prefix {prefix}")
    ctx.store.remove_row(p.CALL_LEVELS, p.LEVEL_TABLE, existing)
    ctx.out.write(f"prefix {prefix} removed\n")
    return 0


def level_set(args, ctx) -> int:
    needed = _checked(p.level, args.level)
    ext = _extension(ctx, args.extension)
    ctx.store.set_call_level(ext.number, needed)
    ctx.out.write(f"extension {ext.number}: call level {needed}\n")
    return 0


def level_list(args, ctx) -> int:
    rows = sorted(((d.get("prefix"), d.get("level")) for _, d in
                   ctx.store.list_rows(p.CALL_LEVELS, p.LEVEL_TABLE)),
                  key=lambda r: (r[0] != "*", str(r[0])))
    if rows:
        ctx.out.write(format_table(("PREFIX", "LEVEL"), rows))
    else:
        ctx.out.write("no prefix needs a call level\n")
    extensions = [(e.number, e.call_level) for e in ctx.store.list_extensions()]
    if extensions:
        ctx.out.write("\n" + format_table(("EXT", "LEVEL"), extensions))
    return 0


def permissions(args, ctx) -> int:
    rows = []
    for ext in _extensions(ctx, args.extension):
        rights = [name for name in p.SERVICE_PERMISSIONS if name in ext.permissions]
        forwards = ctx.store.get_extension_data(p.FORWARDING, ext.number)
        active = [k.replace("_", "-") for k in p.FORWARD_KINDS if k in forwards]
        on = ctx.store.get_extension_data(p.DND, ext.number).get("on")
        rows.append((ext.number, ",".join(rights) or "-", ext.call_level,
                     ",".join(active) or "-", "on" if on else "off"))
    if not rows:
        ctx.out.write("no extensions\n")
        return 0
    ctx.out.write(format_table(("EXT", "RIGHTS", "LEVEL", "FORWARD", "DND"), rows))
    ctx.out.write("rights: " + "; ".join(f"{k}: {v}" for k, v in
                                           p.SERVICE_PERMISSIONS.items()) + "\n")
    return 0
