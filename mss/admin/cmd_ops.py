# -*- test-case-name: tests.admin.test_cmd_ops -*-
"""``mssctl calls | hangup | trace | reload | status | manhole-password``: the running switch.

Unlike the provisioning commands, these talk to the running switch through its control
socket (``[admin] control_socket``, default ``mss.ctl`` beside the store; see
``mss.admin.control``). When the switch is not running they say so and exit 1.
``manhole-password NAME`` needs no switch: it prints a ``NAME:HASH`` line for the manhole's
password file (the password is read from standard input, never from the command line).
"""
from __future__ import annotations

import getpass
import time

from mss.admin.cli import CommandError, format_table, on_off
from mss.admin.control_client import ControlClient, ControlError
from mss.admin.operations import control_socket_path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("calls", help="live calls in the running switch")
    p.set_defaults(func=calls)
    p = subparsers.add_parser("hangup", help="end a live call (BYE on both legs)")
    p.add_argument("call_id", metavar="CALL-ID")
    p.set_defaults(func=hangup)
    p = subparsers.add_parser("trace", help="switch the SIP trace of the running switch")
    p.add_argument("state", type=on_off, metavar="on|off")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--extension", metavar="NUMBER", help="only this extension's messages")
    who.add_argument("--trunk", metavar="NAME", help="only this trunk's messages")
    p.set_defaults(func=trace)
    p = subparsers.add_parser("reload", help="reload the Lua services now (like SIGHUP)")
    p.set_defaults(func=reload)
    p = subparsers.add_parser("status", help="counts and state of the running switch")
    p.set_defaults(func=status)
    p = subparsers.add_parser("manhole-password",
                              help="print a NAME:HASH line for the manhole password file")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--scheme", choices=("scrypt", "pbkdf2-sha256"), default="scrypt")
    p.set_defaults(func=manhole_password)


def _ask(ctx, command: str, **args) -> dict:
    path = control_socket_path(ctx.config)
    try:
        answer = ControlClient(path).request(command, **args)
    except ControlError as e:
        raise CommandError(str(e), 1)
    if not answer.get("ok"):
        raise CommandError(str(answer.get("error", "the switch refused the request")), 1)
    return answer


def _clock(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def calls(args, ctx) -> int:
    rows = _ask(ctx, "calls")["calls"]
    if not rows:
        ctx.out.write("no live calls\n")
        return 0
    table = [(r["call_id"], r["caller"], r["callee"], r["state"], r["direction"],
              r.get("trunk") or "-", _clock(r["duration"]), _clock(r.get("talking")),
              r.get("device") or "-") for r in rows]
    ctx.out.write(format_table(("CALL-ID", "FROM", "TO", "STATE", "DIRECTION", "TRUNK", "AGE",
                                "TALKING", "DEVICE"), table))
    return 0


def hangup(args, ctx) -> int:
    answer = _ask(ctx, "hangup", call_id=args.call_id)
    ctx.out.write(f"call {answer['call_id']} {answer['state']}\n")
    return 0


def _trace_text(state: dict) -> str:
    if not state["on"]:
        return "SIP trace off"
    if state["all"]:
        return "SIP trace on for every message"
    parts = []
    if state["extensions"]:
        parts.append("extensions " + ", ".join(state["extensions"]))
    if state["trunks"]:
        parts.append("trunks " + ", ".join(state["trunks"]))
    return "SIP trace on for " + "; ".join(parts)


def trace(args, ctx) -> int:
    request = {"on": args.state}
    if args.extension is not None:
        request["extension"] = args.extension
    if args.trunk is not None:
        request["trunk"] = args.trunk
    answer = _ask(ctx, "trace", **request)
    ctx.out.write(_trace_text(answer["trace"]) + "\n")
    return 0


def reload(args, ctx) -> int:
    report = _ask(ctx, "services-reload")["report"]
    for key in ("loaded", "unchanged", "removed"):
        names = report.get(key) or []
        ctx.out.write(f"{key}: {', '.join(names) if names else '-'}\n")
    failed = report.get("failed") or {}
    for name, reason in sorted(failed.items()):
        ctx.out.write(f"failed: {name}: {reason}\n")
    return 1 if failed else 0


def status(args, ctx) -> int:
    """Which configuration and store are in use comes first: it is what to check when mssctl
    and the switch disagree (and it is shown even when the switch is not running)."""
    config = ctx.config
    ctx.out.write(f"configuration: {config.path}\nstore: {config['store']['path']}\n")
    ctx.out.flush()
    s = _ask(ctx, "status")
    theirs = (s.get("config"), s.get("store"))
    if all(theirs) and theirs != (config.path, config["store"]["path"]):
        ctx.out.write(f"the running switch uses: configuration {theirs[0]}, store {theirs[1]}\n")
    ctx.out.write(f"calls: {s['calls']} ({s['answered']} answered)\n"
                  f"registrations: {s['registrations']}\n"
                  f"accepting new calls: {'yes' if s['accepting'] else 'no (shutting down)'}\n"
                  f"{_trace_text(s['trace'])}\n")
    ctx.out.write(_media_text(s.get("media") or {}) + "\n")
    return 0


def _media_text(media: dict) -> str:
    """``media: up since ... (address)`` / ``media: down since ...: why`` / ``media: off``."""
    if "up" not in media:
        return f"media: {media.get('mode', 'off')}"
    since = media.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "start-up"
    if media["up"]:
        return f"media: up since {when} ({media.get('address') or '?'})"
    return f"media: down since {when}: {media.get('reason') or 'unknown'}"


def manhole_password(args, ctx) -> int:
    # twisted.conch (and cryptography), which the manhole module loads, are slow to import:
    # only this command needs them, not every mssctl run
    from mss.admin.manhole import hash_password
    if ":" in args.name or not args.name.strip():
        raise CommandError("NAME must be non-empty and without ':'", 2)
    if ctx.stdin.isatty():
        password = getpass.getpass("manhole password: ")
        if getpass.getpass("again: ") != password:
            raise CommandError("the passwords differ", 1)
    else:
        password = ctx.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise CommandError("a manhole password needs at least 8 characters", 1)
    ctx.out.write(f"{args.name}:{hash_password(password, args.scheme)}\n")
    return 0
