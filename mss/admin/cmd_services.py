# -*- test-case-name: tests.services.test_commands -*-
"""``mssctl services ...``: list, check and reload the Lua services, and their settings.

``services reload`` asks the running switch through its control socket (``mss.admin.control``,
like ``mssctl reload``) when the socket exists. Otherwise (or with ``--via-store``) it
increments the ``_engine``/``reload_request`` setting in the store; the running switch notices
it on its next store poll (``[store] poll_interval``), reloads, and writes
``_engine``/``reload_result``, which mssctl waits for (``--timeout``, default 5 s; 0 returns at
once). This path also works for a switch on another host sharing the database. ``services list`` shows the
files and the health the switch last published (``_engine``/``status``). ``services check``
loads the files in sandboxes exactly as the switch would, without a running switch.
"""
from __future__ import annotations

import json
import os
import time

from mss.admin.cli import CommandError, format_table
from mss.admin.control_client import ControlClient, ControlError
from mss.admin.operations import control_socket_path
from mss.services import provisioning as p
from mss.services.api import ENGINE_SERVICE

_sleep = time.sleep          # replaced in tests


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("services", help="the Lua services")
    sub = parser.add_subparsers(dest="services_command", required=True, metavar="COMMAND")
    q = sub.add_parser("list", help="service files and their state in the running switch")
    q.set_defaults(func=list_)
    q = sub.add_parser("reload", help="ask the running switch to reload changed services")
    q.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for the switch's answer (0: do not wait)")
    q.add_argument("--via-store", action="store_true",
                   help="ask through the store even when the control socket answers")
    q.set_defaults(func=reload)
    q = sub.add_parser("check", help="load the service files in sandboxes and report")
    q.add_argument("directory", nargs="?", metavar="DIR",
                   help="directory of .lua files (default: [services] path)")
    q.set_defaults(func=check)
    q = sub.add_parser("show", help="settings of a service")
    q.add_argument("service", metavar="SERVICE")
    q.set_defaults(func=show)
    q = sub.add_parser("set", help="set a service setting (VALUE is JSON, else text)")
    q.add_argument("service", metavar="SERVICE")
    q.add_argument("key", metavar="KEY")
    q.add_argument("value", metavar="VALUE")
    q.set_defaults(func=set_)
    q = sub.add_parser("unset", help="remove a service setting")
    q.add_argument("service", metavar="SERVICE")
    q.add_argument("key", metavar="KEY")
    q.set_defaults(func=unset)


def _directory(ctx) -> str:
    # the engine loads lupa and a Lua runtime: only the commands that need it pay for it
    from mss.services.engine import default_directory
    return ctx.config["services"]["path"] or default_directory()


def list_(args, ctx) -> int:
    directory = _directory(ctx)
    try:
        files = sorted(f[:-4] for f in os.listdir(directory) if f.endswith(".lua"))
    except OSError as e:
        raise CommandError(f"cannot read services directory {directory}: {e.strerror}")
    status = ctx.store.get_service_settings(ENGINE_SERVICE).get("status") or {}
    running = {s.get("name"): s for s in status.get("services", []) if isinstance(s, dict)}
    rows = []
    for name in sorted(set(files) | set(running)):
        s = running.get(name)
        if s is None:
            rows.append((name, "yes" if name in files else "no", "-", "-", "-", "-"))
        else:
            rows.append((name, "yes" if name in files else "no", s.get("state", "?"),
                         s.get("calls", 0), s.get("faults", 0), s.get("last_error") or "-"))
    ctx.out.write(f"directory: {directory}\n")
    if status.get("time"):
        age = max(0, int(ctx.now() - status["time"]))
        ctx.out.write(f"state published by the switch {age} s ago\n")
    else:
        ctx.out.write("no state published by a switch yet\n")
    if rows:
        ctx.out.write(format_table(("SERVICE", "FILE", "STATE", "CALLS", "FAULTS", "LAST ERROR"),
                                   rows))
    return 0


def _write_report(ctx, result: dict) -> int:
    for key in ("loaded", "unchanged", "removed"):
        if result.get(key):
            ctx.out.write(f"{key}: {', '.join(result[key])}\n")
    failed = result.get("failed") or {}
    for name, reason in failed.items():
        ctx.out.write(f"failed: {name}: {reason}\n")
    return 1 if failed else 0


def _ask_switch(ctx) -> dict | None:
    """The reload report through the control socket, or None when no switch answers there."""
    path = control_socket_path(ctx.config)
    if not os.path.exists(path):
        return None
    try:
        answer = ControlClient(path).request("services-reload")
    except ControlError as e:
        ctx.err.write(f"mssctl: warning: {e}; asking through the store instead\n")
        return None
    if not answer.get("ok"):
        raise CommandError(str(answer.get("error", "the switch refused the request")), 1)
    return answer.get("report") or {}


def reload(args, ctx) -> int:
    if args.timeout < 0:
        raise CommandError("--timeout must not be negative", 2)
    if not args.via_store:
        report = _ask_switch(ctx)
        if report is not None:
            return _write_report(ctx, report)
    request = p.request_reload(ctx.store)
    ctx.out.write(f"reload request {request} queued\n")
    if args.timeout == 0:
        return 0
    deadline = ctx.now() + args.timeout
    step = min(0.2, args.timeout)
    while True:
        result = p.reload_result(ctx.store, request)
        if result is not None:
            return _write_report(ctx, result)
        if ctx.now() >= deadline:
            raise CommandError(f"no running switch answered within {args.timeout:g} s; the "
                               f"request stays queued for the next start or poll")
        _sleep(step)


def check(args, ctx) -> int:
    # the engine loads lupa and a Lua runtime: only the commands that need it pay for it
    from mss.services.engine import ServiceEngine
    directory = args.directory or _directory(ctx)
    section = ctx.config["services"]
    engine = ServiceEngine(ctx.store, directory,
                           instruction_budget=section["instruction_budget"],
                           memory_limit=section["memory_limit"])
    report = engine.reload()
    ctx.out.write(f"directory: {directory}\n")
    for name in engine.services:
        service = engine.service(name)
        features = f" features {' '.join(service.features)}" if service.features else ""
        ctx.out.write(f"ok: {name} (priority {service.priority}; hooks "
                      f"{' '.join(sorted(service.hooks))}{features})\n")
    for name, reason in report.failed:
        ctx.out.write(f"failed: {name}: {reason}\n")
    return 0 if report.ok else 1


def show(args, ctx) -> int:
    settings = ctx.store.get_service_settings(args.service)
    if not settings:
        ctx.out.write(f"{args.service} has no settings\n")
        return 0
    ctx.out.write(format_table(("KEY", "VALUE"), ((k, json.dumps(v)) for k, v in
                                                  sorted(settings.items()))))
    return 0


def set_(args, ctx) -> int:
    if args.service == ENGINE_SERVICE:
        raise CommandError(f"{ENGINE_SERVICE} belongs to the engine; use services reload", 2)
    try:
        value = json.loads(args.value)
    except ValueError:
        value = args.value
    if value is None:
        raise CommandError("use services unset to remove a setting", 2)
    try:
        value = p.setting(args.service, args.key, value)
    except ValueError as e:
        raise CommandError(str(e), 2)
    ctx.store.set_service_setting(args.service, args.key, value)
    ctx.out.write(f"{args.service}: {args.key} = {json.dumps(value)}\n")
    return 0


def unset(args, ctx) -> int:
    if args.service == ENGINE_SERVICE:
        raise CommandError(f"{ENGINE_SERVICE} belongs to the engine", 2)
    ctx.store.set_service_setting(args.service, args.key, None)
    ctx.out.write(f"{args.service}: {args.key} removed\n")
    return 0
