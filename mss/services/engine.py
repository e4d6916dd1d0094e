# -*- test-case-name: tests.services.test_engine -*-
"""The Lua service engine: loads the services, runs their hooks, combines their decisions.

Theory of operation. Every ``*.lua`` file in the services directory is one service, named
after the file. Each is loaded into its own ``Sandbox`` (``mss.services.sandbox``): the chunk
runs once under the instruction budget and must return a table::

    return {
      priority = 50,                       -- lower runs first; ties by file name
      features = {"*78", "*79"},           -- dialled prefixes this service claims
      originating = function(call) ... end,
      terminating = function(call, callee) ... end,
      busy = function(call) ... end,  no_answer = function(call) ... end,
      answered = function(call) ... end,  ended = function(call, cause) ... end,
      feature = function(call, dialled) ... end,
    }

At a hook point the call core calls the matching engine method with a ``CallFacts``
(``mss.services.api``); the engine calls the services that define that hook, in order, and
combines their answers as described in ``mss.services.api``. A hook call that raises, runs out
of instructions or memory, or returns something that is not a valid decision for that hook is a
*fault*: it is logged with the service name and call id, counted, and treated as ``continue``.
After ``max_failures`` faults in a row the service is disabled (circuit breaker) until the next
``reload()``. Any other exception is a bug in mss: logged with its traceback, call goes on.

``reload()`` re-reads the directory: changed files are loaded into fresh runtimes and replace
the running version only when they load; a file that fails keeps the previous version running
and the report says why; new files appear, deleted files go; disabled services restart.

Control through the store (how ``mssctl services reload`` reaches a running switch): mssctl
increments the setting ``reload_request`` of the pseudo-service ``_engine``; the switch calls
``poll_store()`` every ``[store] poll_interval`` seconds, which notices the new value, reloads,
and writes ``reload_result`` (``{"request": N, "loaded": [...], "failed": {...}, ...}``) and
``status`` back under ``_engine``. ``poll_store()`` also drops the engine's read caches of
settings, rows, extension data and extension records, so provisioning changes made by other
processes are seen within one poll interval (changes made by the services themselves, through
``mss.set_ext_data``, are seen at once).
"""
from __future__ import annotations

import hashlib
import math
import os
import random as random_module
import re
import time as time_module
from pathlib import Path
from typing import Any, Callable

import attrs
from lupa import lua54
from twisted.logger import Logger

from mss.services.api import (
    ALLOWED, ANSWER, CONTINUE, CONTINUE_DECISION, ENGINE_SERVICE, FEATURE, HOOKS, NUMBER_RE,
    REDIRECT, REJECT, CallFacts, CalleeState, Decision, finite_seconds,
)
from mss.services.sandbox import SCRIPT_FAULTS, Sandbox, ScriptError
from mss.store.interface import StoreError

ACTIVE = "active"
DISABLED = "disabled"

API_CALLS_PER_HOOK = 1000     # store reads/writes and other API calls per hook call
LOG_LINES_PER_HOOK = 20
MAX_VALUE = 1024              # longest string a service may store
MAX_ERROR = 300               # longest error text kept and logged
MAX_CACHED = 5000             # cached extension records/data tables per service

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_FEATURE_PREFIX = re.compile(r"^[*#][0-9*#]{0,15}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn",
           "error": "error"}


def default_directory() -> str:
    """The bundled services: ``mss/lua/services`` when installed, else the source tree's."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "lua" / "services", here.parent / "lua" / "services"):
        if candidate.is_dir():
            return str(candidate)
    return str(here.parent / "lua" / "services")


def _is_key(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _short(error: BaseException | str) -> str:
    text = str(error).split("\nstack traceback:", 1)[0]
    return text[:MAX_ERROR]


@attrs.frozen
class ReloadReport:
    """What a reload did: names loaded (new or changed), unchanged, removed, and failures."""
    loaded: tuple = ()
    unchanged: tuple = ()
    removed: tuple = ()
    failed: tuple = ()           # ((name, reason), ...): previous version (if any) kept

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        return {"loaded": list(self.loaded), "unchanged": list(self.unchanged),
                "removed": list(self.removed), "failed": {n: r for n, r in self.failed}}


@attrs.define(eq=False)
class Service:
    """One loaded service: its runtime, hooks and health."""
    name: str
    path: str
    digest: str
    sandbox: Sandbox
    api: "_Api"
    hooks: dict
    priority: int = 100
    features: tuple = ()
    state: str = ACTIVE
    consecutive_failures: int = 0
    faults: int = 0
    calls: int = 0
    last_error: str = ""

    def status(self) -> dict:
        return {"name": self.name, "file": self.path, "state": self.state,
                "priority": self.priority, "hooks": sorted(self.hooks),
                "features": list(self.features), "calls": self.calls, "faults": self.faults,
                "consecutive_failures": self.consecutive_failures,
                "last_error": self.last_error, "memory": self.sandbox.memory_used()}


class _Api:
    """The Python side of the ``mss`` table of one service (bound to that service).

    Every function checks its arguments (a bad argument raises ``ScriptError``, a fault of the
    script) and counts against ``API_CALLS_PER_HOOK``.
    """
    log = Logger()

    def __init__(self, engine: "ServiceEngine", name: str):
        self.engine = engine
        self.name = name
        self.sandbox: Sandbox | None = None
        self.call_id = ""
        self.calls_left = API_CALLS_PER_HOOK
        self.lines_left = LOG_LINES_PER_HOOK
        self.settings: dict | None = None
        self.rows_cache: dict[Any, Any] = {}
        self.row_data: dict[str, list] = {}
        self.ext_cache: dict[str, Any] = {}
        self.data_cache: dict[str, dict] = {}
        self.data_tables: dict[str, Any] = {}

    def functions(self) -> dict[str, Callable]:
        return {"setting": self.setting, "ext_data": self.ext_data,
                "set_ext_data": self.set_ext_data, "rows": self.rows, "index": self.index,
                "extension": self.extension, "random": self.random, "log": self.log_line,
                "in_call": self.in_call, "localtime": self.localtime}

    def begin(self, call_id: str) -> None:
        self.call_id = call_id
        self.calls_left = API_CALLS_PER_HOOK
        self.lines_left = LOG_LINES_PER_HOOK

    def _cached(self, build: Callable[[], Any]) -> Any:
        """Build a value the engine keeps in the runtime; its memory is not the script's."""
        if len(self.ext_cache) + len(self.data_tables) + len(self.rows_cache) > MAX_CACHED:
            self.invalidate()           # many distinct numbers: start over rather than grow
        before = self.sandbox.memory_used()
        value = build()
        self.sandbox.engine_bytes += max(0, self.sandbox.memory_used() - before)
        return value

    def invalidate(self) -> None:
        if self.sandbox is not None:
            self.sandbox.engine_bytes = 0
        self.settings = None
        self.rows_cache.clear()
        self.row_data.clear()
        self.ext_cache.clear()
        self.data_cache.clear()
        self.data_tables.clear()

    @staticmethod
    def _store(method: Callable, *args: Any) -> Any:
        """Call the store; a refusal of what the script passed is the script's fault."""
        try:
            return method(*args)
        except StoreError as e:
            raise ScriptError(str(e))

    def _count(self) -> None:
        self.calls_left -= 1
        if self.calls_left < 0:
            raise ScriptError(f"more than {API_CALLS_PER_HOOK} mss API calls in one hook call")

    @staticmethod
    def _text(value: Any, what: str, limit: int = 64) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value) if not isinstance(value, float) or not value.is_integer() \
                else str(int(value))
        if not isinstance(value, str) or not value or len(value) > limit:
            raise ScriptError(f"{what} must be a non-empty string of at most {limit} characters")
        return value

    # -- store access ------------------------------------------------------------------------

    def setting(self, key: Any) -> Any:
        self._count()
        key = self._text(key, "setting key")
        if self.settings is None:
            self.settings = self._store(self.engine.store.get_service_settings, self.name)
        return self.sandbox.to_lua(self.settings.get(key))

    def _data(self, extension: str) -> dict:
        data = self.data_cache.get(extension)
        if data is None:
            if len(self.data_cache) > MAX_CACHED:
                self.data_cache.clear()
            data = self._store(self.engine.store.get_extension_data, self.name, extension)
            self.data_cache[extension] = data
        return data

    def ext_data(self, extension: Any, key: Any = None) -> Any:
        """One value, or without a key every value of the extension as a (cached) table."""
        self._count()
        extension = self._text(extension, "extension")
        if key is None:
            cached = self.data_tables.get(extension)
            if cached is None:
                data = self._data(extension)
                cached = self._cached(lambda: self.sandbox.to_lua(dict(data)))
                self.data_tables[extension] = cached
            return cached
        key = self._text(key, "key")
        return self.sandbox.to_lua(self._data(extension).get(key))

    def set_ext_data(self, extension: Any, key: Any, value: Any) -> bool:
        self._count()
        extension = self._text(extension, "extension")
        key = self._text(key, "key")
        if isinstance(value, str):
            if len(value) > MAX_VALUE:
                raise ScriptError(f"value longer than {MAX_VALUE} characters")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ScriptError("value must be a finite number")
        elif value is not None and not isinstance(value, (bool, int)):
            raise ScriptError("value must be nil, a boolean, a number or a string")
        self._store(self.engine.store.set_extension_data, self.name, extension, key, value)
        data = dict(self._data(extension))
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        self.data_cache[extension] = data
        self.data_tables.pop(extension, None)
        return True

    def _rows(self, table: str) -> list[dict]:
        rows = self.row_data.get(table)
        if rows is None:
            rows = [dict(data, id=row_id) for row_id, data in
                    self._store(self.engine.store.list_rows, self.name, table)]
            self.row_data[table] = rows
        return rows

    def rows(self, table: Any) -> Any:
        self._count()
        table = self._text(table, "table name")
        cached = self.rows_cache.get(table)
        if cached is None:
            rows = self._rows(table)
            cached = self._cached(lambda: self.sandbox.to_lua(rows))
            self.rows_cache[table] = cached
        return cached

    def index(self, table: Any, field: Any, field2: Any = None) -> Any:
        """Rows keyed by a field (value -> array of rows in id order), or by two fields
        (value -> value2 -> first row): built here, so big tables cost no Lua instructions."""
        self._count()
        table = self._text(table, "table name")
        field = self._text(field, "field name")
        if field2 is not None:
            field2 = self._text(field2, "field name")
        key = (table, field, field2)
        cached = self.rows_cache.get(key)
        if cached is None:
            groups: dict = {}
            for row in self._rows(table):
                value = row.get(field)
                if not _is_key(value):
                    continue
                if field2 is None:
                    groups.setdefault(value, []).append(row)
                else:
                    value2 = row.get(field2)
                    if _is_key(value2):
                        groups.setdefault(value, {}).setdefault(value2, row)
            cached = self._cached(lambda: self.sandbox.to_lua(groups))
            self.rows_cache[key] = cached
        return cached

    def extension(self, number: Any) -> Any:
        self._count()
        number = self._text(number, "extension number")
        cached = self.ext_cache.get(number)
        if cached is None:
            record = self._store(self.engine.store.get_extension, number)
            if record is None:
                value = {"number": number, "exists": False}
            else:
                value = {"number": record.number, "name": record.name or "", "exists": True,
                         "enabled": bool(record.enabled), "level": int(record.call_level),
                         "permissions": {p: True for p in record.permissions}}
            cached = self._cached(lambda: self.sandbox.to_lua(value))
            self.ext_cache[number] = cached
        return cached

    # -- other functions ---------------------------------------------------------------------

    def random(self, low: Any = None, high: Any = None) -> Any:
        self._count()
        generator = self.engine.random
        if low is None:
            return generator.random()
        for value in (low, high):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ScriptError("mss.random bounds must be integers")
        if high is None:
            low, high = 1, low
        if low > high:
            raise ScriptError("mss.random: interval is empty")
        return generator.randint(low, high)

    def log_line(self, level: Any, message: Any = None) -> None:
        self._count()
        if message is None:
            level, message = "info", level
        level = _LEVELS.get(level if isinstance(level, str) else "", "info")
        if self.lines_left <= 0:
            return
        self.lines_left -= 1
        text = message if isinstance(message, str) else repr(message)
        getattr(self.log, level)("service {service} call {call_id}: {message}",
                                 service=self.name, call_id=self.call_id,
                                 message=_CONTROL.sub("?", text[:MAX_ERROR]))

    def in_call(self, extension: Any) -> bool:
        self._count()
        extension = self._text(extension, "extension")
        probe = self.engine.in_call
        return bool(probe(extension)) if probe is not None else False

    def localtime(self, when: Any = None) -> Any:
        self._count()
        if when is None:
            when = self.engine.clock()
        if isinstance(when, bool) or not isinstance(when, (int, float)) \
                or not math.isfinite(when) or not 0 <= when < 2 ** 37:
            raise ScriptError("mss.localtime: time must be seconds since the epoch")
        t = time_module.localtime(when)
        return self.sandbox.to_lua({"year": t.tm_year, "month": t.tm_mon, "day": t.tm_mday,
                                    "hour": t.tm_hour, "min": t.tm_min, "sec": t.tm_sec,
                                    "wday": (t.tm_wday + 1) % 7 + 1, "yday": t.tm_yday})


class ServiceEngine:
    """Runs the Lua services at the call core's hook points (sans-I/O, reactor thread only)."""
    log = Logger()

    def __init__(self, store: Any, directory: str | None = None, *,
                 instruction_budget: int = 200000, memory_limit: int = 8 * 1024 * 1024,
                 max_failures: int = 5, forward_limit: int = 5, seed: Any = None,
                 clock: Callable[[], float] = time_module.time,
                 in_call: Callable[[str], bool] | None = None):
        self.store = store
        self.directory = directory or default_directory()
        self.instruction_budget = instruction_budget
        self.memory_limit = memory_limit
        self.max_failures = max_failures
        self.forward_limit = forward_limit
        self.random = random_module.Random(seed)
        self.clock = clock
        self.in_call = in_call
        self._services: dict[str, Service] = {}
        self._ordered: list[Service] = []
        self._by_hook: dict[str, list[Service]] = {hook: [] for hook in HOOKS}
        self._features: list[tuple[str, Service]] = []
        self._version_seen = self._data_version()
        self._reload_seen = self._control().get("reload_request")

    @classmethod
    def from_config(cls, config: Any, store: Any, **kwargs: Any) -> "ServiceEngine":
        """Build from ``[services]`` settings and load the services."""
        section = config["services"]
        engine = cls(store, section["path"] or None,
                     instruction_budget=section["instruction_budget"],
                     memory_limit=section["memory_limit"],
                     max_failures=section["max_failures"],
                     forward_limit=section["forward_limit"], **kwargs)
        engine.reload()
        return engine

    # -- loading -----------------------------------------------------------------------------

    @property
    def services(self) -> tuple[str, ...]:
        """Loaded service names in the order their hooks run."""
        return tuple(s.name for s in self._ordered)

    def service(self, name: str) -> Service | None:
        return self._services.get(name)

    def _load(self, name: str, path: str, source: str, digest: str) -> Service:
        api = _Api(self, name)
        sandbox = Sandbox(name, instruction_budget=self.instruction_budget,
                          memory_limit=self.memory_limit, api=api.functions())
        api.sandbox = sandbox
        api.begin("")
        chunk = sandbox.compile(source)
        result = sandbox.call(chunk)
        if isinstance(result, tuple):
            result = result[0] if result else None
        if lua54.lua_type(result) != "table":
            raise ScriptError("the service file must return a table of hooks")
        rawget = sandbox.rawget
        hooks = {}
        for hook in HOOKS:
            function = rawget(result, hook)
            if function is None:
                continue
            if lua54.lua_type(function) != "function":
                raise ScriptError(f"{hook} must be a function")
            hooks[hook] = function
        priority = rawget(result, "priority")
        if priority is None:
            priority = 100
        if isinstance(priority, bool) or not isinstance(priority, int) or \
                not -1000 <= priority <= 1000:
            raise ScriptError("priority must be an integer from -1000 to 1000")
        features = []
        declared = rawget(result, "features")
        if declared is not None:
            if lua54.lua_type(declared) != "table":
                raise ScriptError("features must be a list of dialled prefixes")
            listed = []
            for i in range(1, 65):
                prefix = rawget(declared, i)
                if prefix is None:
                    break
                listed.append(prefix)
            for prefix in listed:
                if not isinstance(prefix, str) or not _FEATURE_PREFIX.match(prefix):
                    raise ScriptError(f"feature prefix {prefix!r} must start with * or # and "
                                      f"hold only digits, * and # (at most 16)")
                features.append(prefix)
            if features and "feature" not in hooks:
                raise ScriptError("a service that claims features needs a feature hook")
        return Service(name=name, path=path, digest=digest, sandbox=sandbox, api=api,
                       hooks=hooks, priority=priority, features=tuple(features))

    def _scan(self) -> dict[str, str]:
        found = {}
        for entry in sorted(os.listdir(self.directory)):
            stem, ext = os.path.splitext(entry)
            if ext == ".lua" and not entry.startswith("."):
                found[stem] = os.path.join(self.directory, entry)
        return found

    def reload(self) -> ReloadReport:
        """Load new and changed services; keep the old version of any that fails to load."""
        loaded, unchanged, removed, failed = [], [], [], []
        try:
            found = self._scan()
        except OSError as e:
            reason = f"cannot read services directory {self.directory}: {e.strerror}"
            self.log.error("Services not reloaded: {reason}", reason=reason)
            return ReloadReport(failed=(("*", reason),), unchanged=self.services)
        for name, path in found.items():
            current = self._services.get(name)
            if not _SERVICE_NAME.match(name):
                failed.append((name, "file name must be letters, digits, _ or - (.lua)"))
                continue
            try:
                with open(path, "rb") as f:
                    raw = f.read(256 * 1024 + 1)
                source = raw.decode("utf-8")
            except (OSError, UnicodeDecodeError) as e:
                failed.append((name, f"cannot read {path}: {e}"))
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if current is not None and current.digest == digest and current.state == ACTIVE:
                unchanged.append(name)
                continue
            try:
                service = self._load(name, path, source, digest)
            except SCRIPT_FAULTS as e:
                failed.append((name, _short(e)))
                continue
            except Exception as e:
                self.log.failure("Loading service {service} failed (bug in mss)", service=name)
                failed.append((name, f"internal error: {_short(e)}"))
                continue
            self._services[name] = service
            loaded.append(name)
        for name in list(self._services):
            if name not in found:
                del self._services[name]
                removed.append(name)
        self._reorder()
        for name, reason in failed:
            kept = " (previous version kept)" if name in self._services else ""
            self.log.error("Service {service} not loaded{kept}: {reason}",
                           service=name, kept=kept, reason=reason)
        if loaded or removed:
            self.log.info("Services loaded: {loaded}; removed: {removed}; running: {running}",
                          loaded=", ".join(loaded) or "-", removed=", ".join(removed) or "-",
                          running=", ".join(self.services) or "-")
        return ReloadReport(tuple(loaded), tuple(unchanged), tuple(removed), tuple(failed))

    def _reorder(self) -> None:
        self._ordered = sorted(self._services.values(), key=lambda s: (s.priority, s.name))
        self._by_hook = {hook: [s for s in self._ordered if hook in s.hooks] for hook in HOOKS}
        features: list[tuple[str, Service]] = []
        taken: dict[str, str] = {}
        for service in self._ordered:
            for prefix in service.features:
                if prefix in taken:
                    self.log.warn("Feature prefix {prefix} of service {service} is already "
                                  "claimed by {owner}", prefix=prefix, service=service.name,
                                  owner=taken[prefix])
                    continue
                taken[prefix] = service.name
                features.append((prefix, service))
        features.sort(key=lambda item: -len(item[0]))
        self._features = features

    # -- control through the store -----------------------------------------------------------

    def _control(self) -> dict:
        try:
            return self.store.get_service_settings(ENGINE_SERVICE)
        except Exception:
            self.log.failure("Cannot read the service engine's control settings")
            return {}

    def invalidate_caches(self) -> None:
        for service in self._ordered:
            service.api.invalidate()

    def _data_version(self) -> Any:
        probe = getattr(self.store, "data_version", None)
        if probe is None:
            return None
        try:
            return probe()
        except Exception:
            self.log.failure("Cannot read the store's data version")
            return None

    def poll_store(self) -> ReloadReport | None:
        """Notice changes made by other processes; reload when mssctl asked for it.

        Call every ``[store] poll_interval`` seconds. With a store that has
        ``data_version()`` (SQLite: changes only when another connection commits) nothing is
        read unless something changed; otherwise the caches are dropped on every poll.
        """
        version = self._data_version()
        if version is not None and version == self._version_seen:
            return None
        self._version_seen = version
        self.invalidate_caches()
        request = self._control().get("reload_request")
        if request == self._reload_seen:
            return None
        self._reload_seen = request
        report = self.reload()
        try:
            self.store.set_service_setting(ENGINE_SERVICE, "reload_result",
                                           dict(report.as_dict(), request=request))
            self.publish_status()
        except Exception:
            self.log.failure("Cannot write the reload result to the store")
        return report

    def status(self) -> list[dict]:
        return [s.status() for s in self._ordered]

    def publish_status(self) -> None:
        """Write the services' health under ``_engine``/``status`` for mssctl."""
        self.store.set_service_setting(ENGINE_SERVICE, "status",
                                       {"time": self.clock(), "services": self.status()})

    # -- hook calls --------------------------------------------------------------------------

    def _fault(self, service: Service, hook: str, call_id: str, error: BaseException) -> None:
        service.faults += 1
        service.consecutive_failures += 1
        service.last_error = _short(error)
        self.log.error("Service {service} failed in {hook} for call {call_id}: {error}",
                       service=service.name, hook=hook, call_id=call_id,
                       error=service.last_error)
        if service.state == ACTIVE and service.consecutive_failures >= self.max_failures:
            service.state = DISABLED
            self.log.critical("Service {service} disabled after {count} failures in a row; "
                              "it stays off until the services are reloaded",
                              service=service.name, count=service.consecutive_failures)
            try:
                self.publish_status()
            except Exception:
                self.log.failure("Cannot publish service status")

    def _decision(self, hook: str, result: dict | None) -> Decision:
        if result is None:
            return CONTINUE_DECISION
        action = result["action"]
        if action not in ALLOWED[hook]:
            raise ScriptError(f"{action!r} is not a decision allowed in {hook}")
        try:
            if action == CONTINUE:
                decision = CONTINUE_DECISION
            elif action == REJECT:
                decision = Decision.reject(result["code"], self._phrase(result["reason"]))
            elif action == REDIRECT:
                decision = Decision.redirect(result["target"], result["reason"] or "unconditional")
            elif action == ANSWER:
                decision = Decision.answer(result["tone"])
            elif action == FEATURE:
                decision = Decision.feature(result["tone"] or "confirm")
            else:
                decision = Decision.break_in(result["target"])
            caller, display, ring = result["caller"], result["caller_display"], \
                result["ring_timeout"]
        except (ValueError, TypeError) as e:
            raise ScriptError(str(e))
        if caller is not None or display is not None:
            if hook not in ("originating", "terminating"):
                raise ScriptError(f"the caller cannot be changed in {hook}")
            if caller is not None and not (isinstance(caller, str) and NUMBER_RE.match(caller)):
                raise ScriptError(f"caller {caller!r} is not a number")
            if display is not None:
                display = self._phrase(display, "caller display")
            decision = attrs.evolve(decision, caller=caller, caller_display=display)
        if ring is not None:
            if hook != "terminating":
                raise ScriptError(f"ring_timeout only applies in terminating, not {hook}")
            try:
                decision = attrs.evolve(decision, ring_timeout=finite_seconds(ring))
            except ValueError as e:
                raise ScriptError(str(e))
        return decision

    @staticmethod
    def _phrase(value: Any, what: str = "reason") -> str:
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > 128 or _CONTROL.search(value):
            raise ScriptError(f"{what} must be a string of at most 128 printable characters")
        return value

    def _invoke(self, service: Service, hook: str, call_id: str, args: tuple) -> Decision | None:
        service.calls += 1
        service.api.begin(call_id)
        try:
            result = service.sandbox.call_decision(service.hooks[hook], *args)
            decision = self._decision(hook, result)
        except SCRIPT_FAULTS as e:
            if service.sandbox.internal_error:      # already logged with its traceback
                return None
            self._fault(service, hook, call_id, e)
            return None
        except Exception:
            self.log.failure("Service {service} hook {hook} for call {call_id}: bug in mss",
                             service=service.name, hook=hook, call_id=call_id)
            return None
        service.consecutive_failures = 0
        return decision

    def _redirect_refused(self, facts: CallFacts, decision: Decision) -> str:
        target = decision.target
        if target == facts.callee or target in facts.diversions:
            return "forwarding loop"
        if len(facts.diversions) + 1 > self.forward_limit:
            return f"more than {self.forward_limit} diversions"
        return ""

    def _run(self, hook: str, facts: CallFacts, extra: tuple = ()) -> Decision:
        services = self._by_hook[hook]
        if not services:
            return CONTINUE_DECISION
        values = facts.lua_values()
        caller = display = ring = None
        for service in services:
            if service.state != ACTIVE:
                continue
            try:
                sandbox = service.sandbox
                args = (sandbox.call_table(values),) + tuple(
                    sandbox.runtime.table_from(x) if isinstance(x, dict) else x
                    for x in extra)
            except SCRIPT_FAULTS as e:      # out of memory while building the call table
                self._fault(service, hook, facts.call_id, e)
                continue
            decision = self._invoke(service, hook, facts.call_id, args)
            if decision is None:
                continue
            if decision.caller is not None:
                caller = decision.caller
            if decision.caller_display is not None:
                display = decision.caller_display
            if decision.ring_timeout is not None:
                ring = decision.ring_timeout if ring is None else min(ring, decision.ring_timeout)
            if decision.action == CONTINUE:
                continue
            if decision.action == REDIRECT:
                why = self._redirect_refused(facts, decision)
                if why:
                    self.log.warn("Service {service} redirect of call {call_id} to {target} "
                                  "refused: {why}", service=service.name,
                                  call_id=facts.call_id, target=decision.target, why=why)
                    continue
            return attrs.evolve(decision, caller=caller, caller_display=display,
                                ring_timeout=ring, service=service.name)
        if caller is None and display is None and ring is None:
            return CONTINUE_DECISION
        return Decision(caller=caller, caller_display=display, ring_timeout=ring)

    def originating(self, facts: CallFacts) -> Decision:
        """After the caller is identified, before routing."""
        return self._run("originating", facts)

    def terminating(self, facts: CallFacts, callee: CalleeState) -> Decision:
        """Before a local callee is alerted; ``ring_timeout`` says when no_answer is due."""
        return self._run("terminating", facts, (callee.as_table(),))

    def busy(self, facts: CallFacts) -> Decision:
        """Every device of the callee is busy; continue means answer 486."""
        return self._run("busy", facts)

    def no_answer(self, facts: CallFacts) -> Decision:
        """The ring time expired; continue means give up as the call core would."""
        return self._run("no_answer", facts)

    def answered(self, facts: CallFacts) -> None:
        """Notification: the callee answered."""
        self._run("answered", facts)

    def ended(self, facts: CallFacts, cause: str) -> None:
        """Notification: the call ended (``cause``: e.g. "normal", "busy", "rejected")."""
        self._run("ended", facts, (str(cause)[:64],))

    def claims(self, dialled: str) -> str | None:
        """The name of the service that claims ``dialled`` as a feature code, if any."""
        for prefix, service in self._features:
            if dialled.startswith(prefix):
                return service.name
        return None

    def feature_code(self, dialled: str, facts: CallFacts) -> Decision | None:
        """A dialled feature code; None when no service claims it (route it normally).

        A claimed code always gets an answer: when its service fails or is disabled, 503;
        when the service does not recognise it (returns nil/continue), 404.
        """
        for prefix, service in self._features:
            if dialled.startswith(prefix):
                break
        else:
            return None
        if service.state != ACTIVE:
            return Decision.reject(503, "Service unavailable", service=service.name)
        try:
            args = (service.sandbox.call_table(facts.lua_values()), dialled[:64])
        except SCRIPT_FAULTS as e:
            self._fault(service, "feature", facts.call_id, e)
            return Decision.reject(503, "Service unavailable", service=service.name)
        decision = self._invoke(service, "feature", facts.call_id, args)
        if decision is None:
            return Decision.reject(503, "Service unavailable", service=service.name)
        if decision.action == CONTINUE:
            return Decision.reject(404, "Unknown feature code", service=service.name)
        if decision.action == REDIRECT and self._redirect_refused(facts, decision):
            return Decision.reject(482, "Loop detected", service=service.name)
        return attrs.evolve(decision, service=service.name)
