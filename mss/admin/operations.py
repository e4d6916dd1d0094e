# -*- test-case-name: tests.admin.test_operations -*-
"""Operations on the running switch: what the manhole, the control socket and metrics share.

``Operations`` reads the live state of a ``mss.tap.Switch`` into plain rows (calls,
registrations, trunks, services) and carries out the few operator actions (hang up a call,
switch the SIP trace per extension or per trunk, reload the services). It holds no I/O:
the manhole prints its rows as tables, the control socket sends them as JSON. The Twisted
side that serves it (control socket, manhole, metrics, SIGHUP, drain) is
``mss.admin.service``.

Parts that other work adds to the switch (``switch.trunks``, ``switch.media``,
``switch.services``) are looked up with ``getattr`` and shown when present.
"""
from __future__ import annotations

import os
import time

from twisted.logger import Logger

from mss.admin.cli import format_table
from mss.sip.errors import SIPParseError
from mss.store.records import TrunkError, parse_proxy


def control_socket_path(settings) -> str:
    """``[admin] control_socket`` when configured, else ``mss.ctl`` beside the store file."""
    admin = settings.get("admin") or {}
    path = admin.get("control_socket") if isinstance(admin, dict) else None
    if path:
        return path
    store = settings["store"]["path"]
    return os.path.join(os.path.dirname(os.path.abspath(store)), "mss.ctl")


# -- SIP trace selection -----------------------------------------------------------------------

def _uri_parts(msg):
    """(number, host) of Request-URI, From, To; a header that does not parse is skipped."""
    out = []
    uri = getattr(msg, "uri", None)
    if uri is not None:
        out.append((uri.number, uri.host))
    for name in ("from_", "to"):
        try:
            addr = getattr(msg, name)
        except (SIPParseError, ValueError):
            continue
        if addr is not None:
            out.append((addr.uri.number, addr.uri.host))
    return out


class TraceSelection:
    """Which SIP messages the core logs: everything, or those of some extensions and trunks.

    An extension matches when it is the user part of the Request-URI, From or To. A trunk
    matches when its domain or its proxy host is the host of one of those, or of the top Via
    (requests the carrier sends us).
    """

    def __init__(self):
        self.everything = False
        self.extensions: set[str] = set()
        self.trunks: dict[str, frozenset[str]] = {}

    @property
    def active(self) -> bool:
        return self.everything or bool(self.extensions) or bool(self.trunks)

    def describe(self) -> dict:
        return {"on": self.active, "all": self.everything, "extensions": sorted(self.extensions),
                "trunks": sorted(self.trunks)}

    def __call__(self, msg) -> bool:
        if self.everything:
            return True
        hosts = self._hosts()
        for number, host in _uri_parts(msg):
            if number is not None and number in self.extensions:
                return True
            if host and host.lower() in hosts:
                return True
        if hosts:
            try:
                via = msg.top_via
            except (SIPParseError, ValueError):
                via = None
            if via is not None and via.host.strip("[]").lower() in hosts:
                return True
        return False

    def _hosts(self) -> frozenset[str]:
        if not self.trunks:
            return frozenset()
        return frozenset().union(*self.trunks.values())


class OperationError(Exception):
    """An operator request that cannot be carried out; the message says why."""


def _trunk_hosts(trunk) -> frozenset[str]:
    hosts = set()
    domain = getattr(trunk, "domain", "") or ""
    if domain:
        hosts.add(domain.lower())
    proxy = getattr(trunk, "proxy", "") or ""
    if proxy:
        try:
            hosts.add(parse_proxy(proxy)[0].lower())
        except TrunkError:
            pass
    return frozenset(hosts)


def service_engine(switch):
    """The Lua service engine of the switch, if it has one.

    ``Switch`` is a ``MultiService``, whose ``services`` attribute is its list of child
    services; the engine therefore lives under another name (``service_engine``), and a
    ``services`` attribute counts only when it is an engine (has ``reload``).
    """
    for name in ("service_engine", "engine", "services"):
        obj = getattr(switch, name, None)
        if obj is not None and hasattr(obj, "reload"):
            return obj
    return None


def _age(now: float, since) -> str:
    if since is None:
        return "-"
    seconds = max(0, int(now - since))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Operations:
    """Live state as rows and the operator actions, over one running ``Switch``."""

    log = Logger()

    def __init__(self, switch, wall=time.time):
        self.switch = switch
        self.wall = wall
        self.trace_selection = TraceSelection()

    # -- reading -----------------------------------------------------------------------------
    def calls(self) -> list[dict]:
        """The live calls, oldest first."""
        now = self.wall()
        manager = self.switch.calls
        rows = []
        for call in sorted(manager.calls.values(), key=lambda c: c.start_time):
            winner = call.winner
            trunk = getattr(call.trunk, "name", call.trunk) or ""
            rows.append({
                "call_id": call.id, "caller": call.caller or "", "callee": call.callee or "",
                "state": call.state, "direction": call.direction, "trunk": trunk,
                "start": call.start_time, "answer": call.answer_time,
                "duration": round(now - call.start_time, 1),
                "talking": round(now - call.answer_time, 1) if call.answer_time else None,
                "legs": len(call.b_legs),
                "device": (winner.device or winner.target) if winner is not None else "",
            })
        return rows

    def registrations(self) -> list[dict]:
        now = self.wall()
        table = self.switch.bindings
        rows = []
        for aor in sorted(table.aors()):
            for b in table.get(aor):
                rows.append({"extension": b.aor, "contact": b.contact,
                             "source": f"{b.transport}:{b.source_host}:{b.source_port}",
                             "expires": int(b.expires_at - now), "user_agent": b.user_agent})
        return rows

    def trunks(self) -> list[dict]:
        """Trunks with their registration state and live calls per direction."""
        active: dict[str, dict[str, int]] = {}
        for call in self.switch.calls.calls.values():
            name = getattr(call.trunk, "name", call.trunk)
            if name:
                direction = getattr(call, "trunk_direction", None) or call.direction
                per = active.setdefault(name, {})
                per[direction] = per.get(direction, 0) + 1
        dispatcher = getattr(self.switch, "trunks", None)
        if dispatcher is not None and hasattr(dispatcher, "status"):
            known = getattr(dispatcher, "trunks", None) or {}
            rows = []
            for row in dispatcher.status():
                row = dict(row)
                trunk = known.get(row.get("name"))
                row.setdefault("domain", getattr(trunk, "domain", ""))
                row.setdefault("proxy", getattr(trunk, "proxy", "") or row["domain"])
                if "in" in row or "out" in row:      # the dispatcher's own per-direction counts
                    row.setdefault("calls", {"in": row.get("in", 0), "out": row.get("out", 0)})
                row.setdefault("calls", active.get(row.get("name"), {}))
                rows.append(row)
            return rows
        if dispatcher is not None and isinstance(getattr(dispatcher, "trunks", None), dict):
            rows = []
            registrations = getattr(dispatcher, "registrations", {})
            for name, trunk in sorted(dispatcher.trunks.items()):
                reg = registrations.get(name)
                if reg is not None:
                    state = reg.state
                else:
                    state = "no registration" if not getattr(trunk, "register", False) \
                        else "unregistered"
                rows.append({"name": name, "domain": trunk.domain,
                             "proxy": getattr(trunk, "proxy", "") or trunk.domain,
                             "state": state, "calls": active.get(name, {})})
            return rows
        store = self.switch.store
        status = {}
        if hasattr(store, "list_trunk_status"):
            try:
                status = store.list_trunk_status() or {}
            except Exception:
                self.log.failure("cannot read the trunk status from the store")
        rows = []
        for trunk in store.list_trunks() if hasattr(store, "list_trunks") else ():
            st = status.get(trunk.name)
            state = (st.get("state") if isinstance(st, dict) else getattr(st, "state", None)) \
                or "unknown"
            rows.append({"name": trunk.name, "domain": trunk.domain,
                         "proxy": getattr(trunk, "proxy", "") or trunk.domain,
                         "state": state, "calls": active.get(trunk.name, {})})
        return rows

    def media(self) -> dict:
        """The media gateway as the switch's monitor sees it: mode, up, since, reason."""
        mode = self.switch.settings["media"]["mode"] if hasattr(self.switch, "settings") else "?"
        health = getattr(self.switch, "media_health", None)
        if health is None:
            return {"mode": mode}
        return {"mode": mode, **health.describe()}

    def services(self) -> list[dict]:
        engine = service_engine(self.switch)
        if engine is None:
            return []
        if hasattr(engine, "status"):
            return list(engine.status())
        return [{"name": name} for name in getattr(engine, "services", ())]

    def summary(self) -> dict:
        manager = self.switch.calls
        return {"calls": len(manager.calls),
                "answered": sum(1 for c in manager.calls.values() if c.state == "answered"),
                "registrations": sum(len(self.switch.bindings.get(a))
                                     for a in self.switch.bindings.aors()),
                "accepting": getattr(manager, "accepting", True),
                "trace": self.trace_selection.describe(),
                "config": getattr(getattr(self.switch, "settings", None), "path", ""),
                "store": getattr(getattr(self.switch, "store", None), "path", "")}

    # -- acting ------------------------------------------------------------------------------
    def hangup(self, call_id: str, by: str = "operator") -> dict:
        call = self.switch.calls.calls.get(call_id)
        if call is None:
            raise OperationError(f"no live call {call_id!r}")
        self.log.info("call {call_id} hung up by the {by}", call_id=call_id, by=by)
        call.hangup(by)
        return {"call_id": call_id, "state": call.state}

    def trace(self, on: bool, extension: str | None = None, trunk: str | None = None) -> dict:
        """Switch the SIP trace: all messages, or add/remove one extension or trunk."""
        sel = self.trace_selection
        if extension is not None and trunk is not None:
            raise OperationError("trace one extension or one trunk at a time")
        if extension is not None:
            extension = str(extension).strip()
            if not extension:
                raise OperationError("empty extension")
            if on:
                # a typo would otherwise trace nothing while the operator waits for messages
                if self.switch.store.get_extension(extension) is None:
                    raise OperationError(f"no extension {extension!r}")
                sel.extensions.add(extension)
            elif extension in sel.extensions:
                sel.extensions.discard(extension)
            else:
                raise OperationError(f"extension {extension!r} is not traced")
        elif trunk is not None:
            if on:
                hosts = self._find_trunk_hosts(trunk)
                sel.trunks[trunk] = hosts
            elif trunk in sel.trunks:
                sel.trunks.pop(trunk)
            else:
                raise OperationError(f"trunk {trunk!r} is not traced")
        else:
            sel.everything = on
            if not on:
                sel.extensions.clear()
                sel.trunks.clear()
        core = self.switch.core
        core.trace = sel.active
        core.trace_filter = sel if sel.active and not sel.everything else None
        state = sel.describe()
        self.log.info("SIP trace now {state}", state=state)
        return state

    def _find_trunk_hosts(self, name: str) -> frozenset[str]:
        trunk = None
        dispatcher = getattr(self.switch, "trunks", None)
        known = getattr(dispatcher, "trunks", None)
        if isinstance(known, dict):
            trunk = known.get(name)
        if trunk is None and hasattr(self.switch.store, "get_trunk"):
            trunk = self.switch.store.get_trunk(name)
        if trunk is None:
            raise OperationError(f"no trunk {name!r}")
        hosts = set(_trunk_hosts(trunk))
        if dispatcher is not None and hasattr(dispatcher, "destination"):
            try:
                hosts.add(dispatcher.destination(trunk).host.lower())   # the resolved proxy
            except Exception:
                self.log.failure("cannot resolve trunk {trunk}", trunk=name)
        if not hosts:
            raise OperationError(f"trunk {name!r} has no domain or proxy to match")
        return frozenset(hosts)

    def reload_services(self) -> dict:
        engine = service_engine(self.switch)
        if engine is None:
            raise OperationError("this switch runs no service engine")
        report = engine.reload()
        if hasattr(engine, "publish_status"):
            try:
                engine.publish_status()
            except Exception:
                self.log.failure("cannot publish the service status")
        result = report.as_dict() if hasattr(report, "as_dict") else dict(report or {})
        self.log.info("services reloaded: {report}", report=result)
        return result

    # -- tables for people -------------------------------------------------------------------
    def calls_table(self) -> "Table":
        now = self.wall()
        rows = [(r["call_id"], r["caller"], r["callee"], r["state"], r["direction"],
                 r["trunk"] or "-", _age(now, r["start"]), _age(now, r["answer"]),
                 r["device"] or "-") for r in self.calls()]
        return Table(("CALL-ID", "FROM", "TO", "STATE", "DIRECTION", "TRUNK", "AGE", "TALKING",
                      "DEVICE"), rows, empty="no live calls")

    def registrations_table(self) -> "Table":
        rows = [(r["extension"], r["contact"], r["source"], r["expires"], r["user_agent"] or "-")
                for r in self.registrations()]
        return Table(("EXTENSION", "CONTACT", "SOURCE", "EXPIRES", "USER-AGENT"), rows,
                     empty="no registrations")

    def trunks_table(self) -> "Table":
        rows = []
        for r in self.trunks():
            calls = r.get("calls") or {}
            rows.append((r.get("name", "?"), r.get("domain", ""), r.get("proxy", ""),
                         r.get("state", "unknown"),
                         " ".join(f"{d}={n}" for d, n in sorted(calls.items())) or "-"))
        return Table(("TRUNK", "DOMAIN", "PROXY", "STATE", "CALLS"), rows, empty="no trunks")

    def services_table(self) -> "Table":
        rows = [(s.get("name", "?"), s.get("state", "-"), s.get("priority", "-"),
                 ",".join(s.get("hooks", ())) or "-", s.get("calls", "-"), s.get("faults", "-"),
                 s.get("last_error") or "-") for s in self.services()]
        empty = "no services" if service_engine(self.switch) is not None \
            else "no service engine in this switch"
        return Table(("SERVICE", "STATE", "PRIORITY", "HOOKS", "CALLS", "FAULTS", "LAST ERROR"),
                     rows, empty=empty)


class Table:
    """Rows that show as an aligned text table at the manhole prompt (``repr``) or in print."""

    def __init__(self, headers, rows, empty: str = "(none)"):
        self.headers = tuple(headers)
        self.rows = [tuple(r) for r in rows]
        self.empty = empty

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __str__(self) -> str:
        if not self.rows:
            return self.empty
        return format_table(self.headers, self.rows).rstrip("\n")

    __repr__ = __str__


class Text(str):
    """A message shown without quotes at the manhole prompt."""

    def __repr__(self) -> str:
        return str(self)
