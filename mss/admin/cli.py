# -*- test-case-name: tests.admin.test_cli -*-
"""``mssctl``: the provisioning command line (console entry point ``mss.admin.cli:main``).

``mssctl [--config FILE] COMMAND ...`` reads the server settings with ``mss.config.load``
and works on the store named by ``[store] path``. Without ``--config`` it finds the file
exactly as ``twistd mss`` does (``mss.config.locate``: ``$MSS_CONFIG``, ``./etc/mss.toml``,
``/etc/mss/mss.toml``), so both use the same store. It talks to the database directly, never
to a running switch; the switch
notices committed changes through ``IStore.data_version()`` and reloads.

Exit codes: 0 success, 1 the request was refused (no such extension, exists already, store
busy...), 2 a usage or configuration error. Every error is one line on stderr.

Adding a command group
----------------------
Each group lives in its own module, listed in ``COMMAND_MODULES``. The module exports::

    def add_parser(subparsers):
        p = subparsers.add_parser("trunk", help="carrier trunks")
        sub = p.add_subparsers(dest="trunk_command", required=True, metavar="COMMAND")
        q = sub.add_parser("list", help="list trunks")
        q.set_defaults(func=list_trunks)

    def list_trunks(args, ctx) -> int:
        rows = [(t.name, t.host) for t in ctx.store.list_trunks()]
        ctx.out.write(format_table(("NAME", "HOST"), rows))
        return 0

Handlers receive the parsed ``args`` and a ``Context``: ``ctx.config`` (loaded on first use),
``ctx.store`` (an ``IStore`` opened on first use, closed by ``main``), ``ctx.realm``,
``ctx.out``/``ctx.err`` (text streams), ``ctx.stdin`` and ``ctx.now()`` (Unix time; injectable
for tests). A handler refuses a request by raising ``CommandError(message, code)``; a
``StoreError`` from the store is reported the same way with exit code 1. Use
``format_table`` for listings and ``on_off`` for ``on|off`` arguments so that every command
looks and behaves alike.
"""
from __future__ import annotations

import argparse
import contextlib
import getpass
import importlib
import sqlite3
import sys
import time
from typing import Callable, Iterable, Sequence, TextIO

from mss import config as mss_config
from mss.store.interface import StoreError
from mss.store.sqlite import SQLiteStore

__all__ = ["COMMAND_MODULES", "CommandError", "Context", "main", "build_parser", "format_table",
           "on_off", "read_password", "read_secret"]

#: Modules that each contribute a command group through ``add_parser(subparsers)``.
COMMAND_MODULES = [
    "mss.admin.cmd_extension",
    "mss.admin.cmd_registrations",
    "mss.admin.cmd_bans",
    "mss.admin.cmd_config",
    "mss.admin.cmd_cdr",
    "mss.admin.cmd_trunk",
    "mss.admin.cmd_ops",
    "mss.admin.cmd_lists", "mss.admin.cmd_features", "mss.admin.cmd_services",
]


class CommandError(Exception):
    """A refused request: printed as ``mssctl: error: MESSAGE``, exit ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class _UsageError(Exception):
    def __init__(self, prog: str, message: str):
        super().__init__(f"{prog}: error: {message}")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line instead of printing usage and exiting."""

    def error(self, message: str):
        raise _UsageError(self.prog, message)


class Context:
    """What a command handler works with; see the module docstring."""

    def __init__(self, config_path: str | None, out: TextIO, err: TextIO, stdin: TextIO,
                 clock: Callable[[], float] = time.time):
        self.config_path = config_path
        self.out = out
        self.err = err
        self.stdin = stdin
        self.now = clock
        self._config: mss_config.Config | None = None
        self._store = None

    @property
    def config(self) -> mss_config.Config:
        if self._config is None:
            self._config = mss_config.load(mss_config.locate(self.config_path))
        return self._config

    @property
    def realm(self) -> str:
        return self.config["auth"]["realm"]

    @property
    def store(self):
        if self._store is None:
            config = self.config
            try:
                self._store = SQLiteStore(config["store"]["path"])
            except StoreError as e:           # a configuration problem, as for the switch
                raise mss_config.ConfigError(config.path, "store.path", str(e))
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def on_off(value: str) -> bool:
    """argparse type for ``on|off`` arguments (also yes/no, true/false, 1/0)."""
    v = value.lower()
    if v in ("on", "yes", "true", "1"):
        return True
    if v in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, not {value!r}")


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def read_secret(value: str, ctx: Context, what: str = "password") -> str:
    """``-`` means: read the secret from standard input, so that it never shows in ``ps``:
    asked for twice without echo on a terminal, else the first line (scripts, pipes)."""
    if value != "-":
        return value
    if _is_terminal(ctx.stdin):
        secret = getpass.getpass(f"{what}: ")
        if secret and getpass.getpass(f"{what} again: ") != secret:
            raise CommandError(f"the two {what}s differ", 1)
    else:
        secret = ctx.stdin.readline().rstrip("\r\n")
    if not secret:
        raise CommandError(f"no {what} on standard input", 2)
    return secret


def read_password(value: str, ctx: Context) -> str:
    """An extension's SIP password (``-``: see ``read_secret``), refused when shorter than
    ``[security] min_password_length``: scanners brute-force SIP passwords around the clock."""
    password = read_secret(value, ctx)
    minimum = ctx.config["security"]["min_password_length"]
    if len(password) < minimum:
        raise CommandError(f"the password is too short: at least {minimum} characters "
                           f"([security] min_password_length)", 1)
    return password


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table with left-aligned columns separated by two spaces."""
    text_rows = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers)] + text_rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mssctl", description="Provision and inspect an mss softswitch.")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="server settings file (default: the first of "
                             f"${mss_config.ENVIRONMENT}, ./etc/mss.toml, "
                             f"{mss_config.SYSTEM_PATH}, as for twistd mss)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None, stdin: TextIO | None = None,
         clock: Callable[[], float] = time.time) -> int:
    """Run one command; return the exit code (the console script exits with it)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    stdin = sys.stdin if stdin is None else stdin
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out):          # --help goes to ``out``
            args = parser.parse_args(argv)
    except _UsageError as e:
        err.write(f"{e}\n")
        return 2
    except SystemExit as e:                             # --help
        return e.code if isinstance(e.code, int) else 0
    ctx = Context(args.config, out, err, stdin, clock)
    try:
        return args.func(args, ctx)
    except mss_config.ConfigError as e:
        err.write(f"mssctl: error: {e}\n")
        return 2
    except CommandError as e:
        err.write(f"mssctl: error: {e}\n")
        return e.code
    except StoreError as e:
        err.write(f"mssctl: error: {e}\n")
        return 1
    except sqlite3.Error as e:
        err.write(f"mssctl: error: database: {e}\n")
        return 1
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
