"""An in-memory store with the service methods of mss.store (values JSON-encoded like it)."""
from __future__ import annotations

import json
from typing import Any

import attrs
from zope.interface import implementer

from mss.services.api import IServiceStore


@attrs.frozen
class Extension:
    number: str
    name: str = ""
    enabled: bool = True
    permissions: frozenset = frozenset()
    call_level: int = 0


@implementer(IServiceStore)
class MemoryServiceStore:
    """Behaves like the SQLite store's service methods; counts reads to check caching."""

    def __init__(self):
        self.settings: dict[tuple[str, str], str] = {}
        self.data: dict[tuple[str, str, str], str] = {}
        self.tables: dict[tuple[str, str], dict[int, str]] = {}
        self.extensions: dict[str, Extension] = {}
        self.next_id = 1
        self.reads = 0

    def get_service_settings(self, service: str) -> dict:
        self.reads += 1
        return {k: json.loads(v) for (s, k), v in self.settings.items() if s == service}

    def set_service_setting(self, service: str, key: str, value: Any) -> None:
        if value is None:
            self.settings.pop((service, key), None)
        else:
            self.settings[(service, key)] = json.dumps(value)

    def get_extension_data(self, service: str, extension: str) -> dict:
        self.reads += 1
        return {k: json.loads(v) for (s, e, k), v in self.data.items()
                if s == service and e == extension}

    def set_extension_data(self, service: str, extension: str, key: str, value: Any) -> None:
        if value is None:
            self.data.pop((service, extension, key), None)
        else:
            self.data[(service, extension, key)] = json.dumps(value)

    def list_rows(self, service: str, table: str) -> list:
        self.reads += 1
        rows = self.tables.get((service, table), {})
        return [(i, json.loads(v)) for i, v in sorted(rows.items())]

    def add_row(self, service: str, table: str, data: dict) -> int:
        row_id = self.next_id
        self.next_id += 1
        self.tables.setdefault((service, table), {})[row_id] = json.dumps(data)
        return row_id

    def remove_row(self, service: str, table: str, id: int) -> bool:
        return self.tables.get((service, table), {}).pop(id, None) is not None

    def get_extension(self, number: str):
        self.reads += 1
        return self.extensions.get(number)

    # test helper, not part of the interface
    def add_extension(self, number: str, **kwargs: Any) -> Extension:
        kwargs["permissions"] = frozenset(kwargs.get("permissions", ()))
        ext = Extension(number, **kwargs)
        self.extensions[number] = ext
        return ext


def write_services(directory: str, files: dict[str, str]) -> str:
    """Write ``{name: lua source}`` as ``name.lua`` files (None removes a file)."""
    import os
    os.makedirs(directory, exist_ok=True)
    for name, source in files.items():
        path = os.path.join(directory, name + ".lua")
        if source is None:
            os.remove(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(source)
    return directory


def facts(call_id: str = "call-1", caller: str = "1001", callee: str = "1002", **kwargs: Any):
    """CallFacts with handy defaults."""
    from mss.services.api import CallFacts
    return CallFacts(call_id=call_id, caller=caller, callee=callee, **kwargs)


def standard_engine(store=None, seed: int = 1, **kwargs: Any):
    """A ServiceEngine over the bundled lua/services with a memory store."""
    from mss.services.engine import ServiceEngine, default_directory
    engine = ServiceEngine(store if store is not None else MemoryServiceStore(),
                           default_directory(), seed=seed, **kwargs)
    report = engine.reload()
    if not report.ok:
        raise AssertionError(f"bundled services failed to load: {report.failed}")
    return engine
