# -*- test-case-name: tests.admin.test_cmd_trunk -*-
"""``mssctl trunk|route|did ...``: carrier trunks, outbound routes and inbound DIDs.

    mssctl trunk add NAME --domain D [--proxy HOST:PORT[;transport=tcp]] --account A
          [--auth-id ID] --password PW|- [--register/--no-register] [--expires S]
          [--max-in N] [--max-out N] [--allow ADDR ...] [--prack off|supported|required]
          [--from-user U] [--from-display NAME] [--identity pai|ppi] [--uri sip|phone|tel]
    mssctl trunk list | status | remove NAME
    mssctl route add PREFIX|--default --trunk NAME [--trunk NAME2 ...] [--strip N]
          [--prepend DIGITS] [--length N] [--extension EXT ...]
    mssctl route list | remove ID
    mssctl did add NUMBER --extension EXT | did list | did remove NUMBER

A running switch picks changes up within a second (store polling). ``trunk status`` asks the
running switch over its control socket for each trunk's registration state (registering /
registered / rejected / unreachable / failed), last response, next attempt ("in progress"
while a REGISTER awaits its answer) and calls per direction; when the switch does not answer
it shows what the switch last recorded in the store, and "-" for the calls.
"""
from __future__ import annotations

from mss.admin.cli import CommandError, format_table, read_secret
from mss.admin.control_client import ControlClient, ControlError
from mss.admin.operations import control_socket_path
from mss.store.interface import StoreError
from mss.store.records import PRACK_POLICIES, URI_FORMATS, Trunk
from mss.trunk.model import shared_addresses


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("trunk", help="carrier SIP trunks")
    sub = p.add_subparsers(dest="trunk_command", required=True, metavar="COMMAND")
    q = sub.add_parser("add", help="add a trunk")
    q.add_argument("name")
    q.add_argument("--domain", required=True, help="SIP domain (may be purely logical)")
    q.add_argument("--proxy", default="", help="outbound proxy host[:port][;transport=tcp]")
    q.add_argument("--account", required=True, help="user part (To/From)")
    q.add_argument("--auth-id", default="", help="digest username (default: the account)")
    q.add_argument("--password", required=True,
                   help="the carrier password; - reads it from stdin (keeps it out of ps)")
    q.add_argument("--register", dest="register", action="store_true", default=True)
    q.add_argument("--no-register", dest="register", action="store_false")
    q.add_argument("--expires", type=int, default=3600)
    q.add_argument("--max-in", type=int, default=None, help="inbound call limit (0 forbids)")
    q.add_argument("--max-out", type=int, default=None, help="outbound call limit (0 forbids)")
    q.add_argument("--allow", nargs="+", action="extend", default=[], metavar="ADDR",
                   help="addresses/networks inbound calls may come from")
    q.add_argument("--prack", choices=PRACK_POLICIES, default="supported")
    q.add_argument("--from-user", default="", help="caller ID user sent to the carrier")
    q.add_argument("--from-display", default="")
    q.add_argument("--identity", choices=("pai", "ppi"), default="")
    q.add_argument("--uri", choices=URI_FORMATS, default="sip",
                   help="Request-URI form: sip:N@domain, ;user=phone, or tel:N")
    q.add_argument("--replace", action="store_true", help="replace an existing trunk")
    q.set_defaults(func=trunk_add)
    sub.add_parser("list", help="list trunks").set_defaults(func=trunk_list)
    sub.add_parser("status", help="registration state and limits").set_defaults(func=trunk_status)
    q = sub.add_parser("remove", help="remove a trunk")
    q.add_argument("name")
    q.set_defaults(func=trunk_remove)

    p = subparsers.add_parser("route", help="outbound routes")
    sub = p.add_subparsers(dest="route_command", required=True, metavar="COMMAND")
    q = sub.add_parser("add", help="add an outbound route")
    q.add_argument("prefix", nargs="?", default=None,
                   help="dialled numbers starting with these digits")
    q.add_argument("--default", action="store_true",
                   help="a catch-all route: every number no other route matches")
    q.add_argument("--trunk", action="append", required=True, dest="trunks")
    q.add_argument("--strip", type=int, default=0)
    q.add_argument("--prepend", default="")
    q.add_argument("--length", type=int, default=None)
    q.add_argument("--extension", action="append", default=[], dest="extensions",
                   help="only these callers may use the route (default: all)")
    q.set_defaults(func=route_add)
    sub.add_parser("list", help="list routes in match order").set_defaults(func=route_list)
    q = sub.add_parser("remove", help="remove a route")
    q.add_argument("id", type=int)
    q.set_defaults(func=route_remove)

    p = subparsers.add_parser("did", help="inbound numbers (DIDs) to extensions")
    sub = p.add_subparsers(dest="did_command", required=True, metavar="COMMAND")
    q = sub.add_parser("add", help="map a DID to an extension")
    q.add_argument("number")
    q.add_argument("--extension", required=True)
    q.set_defaults(func=did_add)
    sub.add_parser("list", help="list DIDs").set_defaults(func=did_list)
    q = sub.add_parser("remove", help="remove a DID")
    q.add_argument("number")
    q.set_defaults(func=did_remove)


def _store_call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except StoreError as e:
        raise CommandError(str(e))


def trunk_add(args, ctx) -> int:
    trunk = Trunk(name=args.name, domain=args.domain, account=args.account,
                  password=read_secret(args.password, ctx, "trunk password"),
                  proxy=args.proxy, auth_id=args.auth_id,
                  register=args.register, expires=args.expires, from_user=args.from_user,
                  from_display=args.from_display, identity=args.identity,
                  allow=tuple(args.allow), max_in=args.max_in, max_out=args.max_out,
                  prack=args.prack, uri_format=args.uri)
    _store_call(ctx.store.put_trunk, trunk, replace=args.replace)
    ctx.out.write(f"trunk {args.name} {'replaced' if args.replace else 'added'}\n")
    for other in ctx.store.list_trunks():
        shared = shared_addresses(trunk, other) if other.name != trunk.name else []
        if shared:
            ctx.err.write(f"mssctl: warning: trunks {trunk.name} and {other.name} share "
                          f"{', '.join(shared)}: a call from there belongs to the trunk whose "
                          "--allow lists the address, then to the one whose account is the "
                          "called number\n")
    return 0


def _limit(value) -> str:
    return "-" if value is None else str(value)


def trunk_list(args, ctx) -> int:
    rows = [(t.name, t.domain, t.proxy or "-", t.account, t.auth_id or "-",
             "yes" if t.register else "no", _limit(t.max_in), _limit(t.max_out), t.prack,
             ",".join(t.allow) or "-") for t in ctx.store.list_trunks()]
    if not rows:
        ctx.out.write("no trunks\n")
        return 0
    ctx.out.write(format_table(("NAME", "DOMAIN", "PROXY", "ACCOUNT", "AUTH-ID", "REGISTER",
                                "MAX-IN", "MAX-OUT", "PRACK", "ALLOW"), rows))
    return 0


def _live_trunks(ctx) -> dict | None:
    """The running switch's rows per trunk (state, last response, next attempt, calls) from
    its control socket, or None when it does not answer. The switch is asked rather than the
    store only: it knows the state the moment it changes, and the calls are only there."""
    try:
        answer = ControlClient(control_socket_path(ctx.config), timeout=3.0).request("trunks")
    except ControlError:
        return None
    if not answer.get("ok") or not isinstance(answer.get("trunks"), list):
        return None
    return {row.get("name"): row for row in answer["trunks"] if isinstance(row, dict)}


def _next_attempt(state: str, when, now: float) -> str:
    if when is None:
        return "in progress" if state in ("registering", "registered", "unreachable",
                                          "failed", "rejected") else "-"
    return f"{max(0, round(when - now))}s"


def trunk_status(args, ctx) -> int:
    live = _live_trunks(ctx)
    status = ctx.store.list_trunk_status() if live is None else {}
    now = ctx.now()
    rows = []
    for t in ctx.store.list_trunks():
        if live is not None:
            row = live.get(t.name)
            if row is None:            # the switch has not loaded it (yet), or ignores it
                state = "disabled" if not t.enabled else "not loaded (yet)"
                last, refresh, calls = "-", "-", "-"
            else:
                state = str(row.get("state") or "-")
                last = str(row.get("last") or "-")
                refresh = "-" if state == "no registration" else \
                    _next_attempt(state, row.get("next_refresh"), now)
                c = row.get("calls") or {}
                calls = f"{c.get('in', 0)}/{c.get('out', 0)}"
            rows.append((t.name, state, last, refresh, _limit(t.max_in), _limit(t.max_out),
                         calls))
            continue
        s = status.get(t.name)
        calls = "-"
        if not t.register:
            state, last, refresh = "no registration", "-", "-"
        elif s is None:
            state, last, refresh = "unknown (switch not running)", "-", "-"
        else:
            state = s["state"]
            code = s["last_status"] or ""          # 0: no response (e.g. cannot resolve)
            last = f"{code} {s['last_reason']}".strip() or "-"
            refresh = _next_attempt(state, s["next_refresh"], now)
        rows.append((t.name, state, last, refresh, _limit(t.max_in), _limit(t.max_out), calls))
    if not rows:
        ctx.out.write("no trunks\n")
        return 0
    ctx.out.write(format_table(("NAME", "STATE", "LAST RESPONSE", "NEXT REFRESH", "MAX-IN",
                                "MAX-OUT", "CALLS IN/OUT"), rows))
    return 0


def trunk_remove(args, ctx) -> int:
    if not _store_call(ctx.store.remove_trunk, args.name):
        raise CommandError(f"no trunk named {args.name}")
    ctx.out.write(f"trunk {args.name} removed\n")
    return 0


def route_add(args, ctx) -> int:
    # An empty prefix matches every number: that must be asked for, never typed by accident
    # (an unset shell variable in ``route add "$PREFIX"``).
    if args.default and args.prefix:
        raise CommandError("give a PREFIX or --default, not both", 2)
    if not args.default and not args.prefix:
        raise CommandError("an empty prefix would match every number; use --default for a "
                           "catch-all route", 2)
    prefix = "" if args.default else args.prefix
    rid = _store_call(ctx.store.add_route, prefix, args.trunks, length=args.length,
                      strip=args.strip, prepend=args.prepend, extensions=args.extensions)
    ctx.out.write(f"route {rid} added\n")
    return 0


def route_list(args, ctx) -> int:
    rows = [(r.id, r.prefix or "(default)", "-" if r.length is None else r.length, r.strip,
             r.prepend or "-", ",".join(r.trunks), ",".join(r.extensions) or "all")
            for r in ctx.store.list_routes()]
    if not rows:
        ctx.out.write("no routes\n")
        return 0
    ctx.out.write(format_table(("ID", "PREFIX", "LENGTH", "STRIP", "PREPEND", "TRUNKS",
                                "CALLERS"), rows))
    return 0


def route_remove(args, ctx) -> int:
    if not ctx.store.remove_route(args.id):
        raise CommandError(f"no route {args.id}")
    ctx.out.write(f"route {args.id} removed\n")
    return 0


def did_add(args, ctx) -> int:
    _store_call(ctx.store.add_did, args.number, args.extension)
    ctx.out.write(f"DID {args.number} -> {args.extension}\n")
    return 0


def did_list(args, ctx) -> int:
    rows = sorted(ctx.store.list_dids().items())
    if not rows:
        ctx.out.write("no DIDs\n")
        return 0
    ctx.out.write(format_table(("DID", "EXTENSION"), rows))
    return 0


def did_remove(args, ctx) -> int:
    if not ctx.store.remove_did(args.number):
        raise CommandError(f"no DID {args.number}")
    ctx.out.write(f"DID {args.number} removed\n")
    return 0
