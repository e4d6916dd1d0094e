# -*- test-case-name: tests.test_layers -*-
"""The layering rules of docs/architecture.md, checked on the source with ``ast``.

- The sans-I/O packages (``mss.sip``, ``mss.registrar``, ``mss.call``, ``mss.trunk``,
  ``mss.services``) import no networking: not ``socket``, ``select``, ``asyncio``,
  ``twisted.names``, ``twisted.application`` nor ``twisted.internet``, except
  ``twisted.internet.defer`` (a callback container: no reactor, no I/O), at module level or
  inside functions.
- No import cycle among ``mss`` modules, counting imports inside functions: an import moved
  into a function still ties the two modules together.
- The store (``mss.store``) is below the SIP, registrar, call and trunk layers: what it loads,
  directly or through other modules and the packages they live in, stays inside ``mss.store``
  except the Digest hashing module (``mss.sip.digest.hashing``, standard library only), with
  which it computes HA1.
"""
from __future__ import annotations

import ast
import pathlib

from twisted.trial.unittest import SynchronousTestCase

ROOT = pathlib.Path(__file__).resolve().parent.parent / "mss"
SANS_IO = ("mss.sip", "mss.registrar", "mss.call", "mss.trunk", "mss.services")
FORBIDDEN = ("socket", "select", "asyncio", "twisted.internet", "twisted.names",
             "twisted.application")
ALLOWED = ("twisted.internet.defer",)
STORE = "mss.store"
# What the store may load outside itself: HA1 hashing and the packages around it.
STORE_MAY_LOAD = ("mss", "mss.sip", "mss.sip.digest", "mss.sip.digest.hashing")


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imported_names(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every module name ``source`` imports (anywhere in it), with its line: for ``from a
    import b`` both ``a`` and ``a.b`` (b may be a module); relative imports made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.append((base, node.lineno))
            out.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return out


def io_imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """The imports of ``source`` that break the sans-I/O rule (``from a import b`` is judged
    by ``a.b``: ``from twisted.internet import defer`` is allowed, ``... import reactor`` not)."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue                                    # relative: inside mss
        bad.extend((name, node.lineno) for name in names
                   if _within(name, FORBIDDEN) and not _within(name, ALLOWED))
    return bad


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """module -> the modules among ``sources`` (name -> (source, is_package)) it imports."""
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, (source, is_package) in sources.items():
        for target, _ in imported_names(source, name, is_package):
            while target and target not in sources:     # ``from pkg import name``: pkg
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def loaded(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module importing ``start`` loads: its imports, transitively, and the packages
    around each (importing ``a.b.c`` runs ``a`` and ``a.b`` first)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(graph.get(name, ()))
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)
    return seen


def mss_sources() -> dict[str, tuple[str, bool]]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path.read_text(encoding="utf-8"), is_package)
    return out


class CheckerTests(SynchronousTestCase):
    """The checks themselves, on tiny in-memory modules: they must catch what they claim."""

    def test_io_imports_found_at_module_and_function_level(self):
        source = ("import socket\n"
                  "from twisted.internet import reactor\n"
                  "def f():\n"
                  "    import twisted.internet.task\n"
                  "    from twisted.names import client\n")
        self.assertEqual([n for n, _ in io_imports(source, "mss.sip.x")],
                         ["socket", "twisted.internet.reactor", "twisted.internet.task",
                          "twisted.names.client"])

    def test_deferreds_are_allowed(self):
        source = ("from twisted.internet import defer\n"
                  "from twisted.internet.defer import Deferred\n"
                  "import twisted.internet.defer\n"
                  "from twisted.logger import Logger\n")
        self.assertEqual(io_imports(source, "mss.call.x"), [])
        self.assertEqual(io_imports("from twisted import internet\n", "mss.call.x"),
                         [("twisted.internet", 1)])

    def test_relative_imports_resolved(self):
        self.assertIn(("mss.sip.uri", 1),
                      imported_names("from .uri import parse_uri\n", "mss.sip.core"))
        self.assertIn(("mss.sip", 1), imported_names("from . import uri\n", "mss.sip", True))

    def test_cycle_found_even_through_a_function_level_import(self):
        sources = {
            "mss.a": ("from mss.b import thing\n", False),
            "mss.b": ("def late():\n    from mss.c import other\n", False),
            "mss.c": ("import mss.a\n", False),
            "mss.d": ("from mss import a\n", False),
            "mss": ("", True),
        }
        self.assertEqual(cycles(import_graph(sources)), [["mss.a", "mss.b", "mss.c"]])

    def test_no_cycle_in_a_layered_graph(self):
        graph = {"top": {"middle", "bottom"}, "middle": {"bottom"}, "bottom": set()}
        self.assertEqual(cycles(graph), [])

    def test_loaded_follows_imports_and_parent_packages(self):
        graph = {"mss.a.b": {"mss.c.d"}, "mss.c.d": set(), "mss.c": {"mss.e"}, "mss.e": set(),
                 "mss.a": set(), "mss": set(), "mss.f": set()}
        self.assertEqual(loaded(graph, "mss.a.b"),
                         {"mss.a.b", "mss.a", "mss", "mss.c.d", "mss.c", "mss.e"})

    def test_two_separate_cycles(self):
        graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
        self.assertEqual(sorted(cycles(graph)), [["a", "b"], ["c", "d", "e"]])


class LayerTests(SynchronousTestCase):
    """The rules on the real tree."""

    def test_sans_io_layers_import_no_networking(self):
        bad = []
        for name, (source, is_package) in mss_sources().items():
            if _within(name, SANS_IO):
                bad.extend(f"{name}:{line} imports {imported}"
                           for imported, line in io_imports(source, name, is_package))
        self.assertEqual(bad, [])

    def test_no_import_cycles(self):
        self.assertEqual(cycles(import_graph(mss_sources())), [])

    def test_store_loads_nothing_from_the_layers_above(self):
        graph = import_graph(mss_sources())
        bad = []
        for name in sorted(graph):
            if _within(name, (STORE,)):
                bad.extend(f"{name} loads {other}" for other in sorted(loaded(graph, name))
                           if not _within(other, (STORE,)) and other not in STORE_MAY_LOAD)
        self.assertEqual(bad, [])
