# -*- test-case-name: tests.admin.test_cli -*-
"""``mssctl check-config [FILE]``: report every problem in a settings file at once (without
FILE: the file in use, found as ``twistd mss`` finds it)."""
from __future__ import annotations

from mss import config as mss_config


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("check-config",
                              help="validate a settings file (default: the one in use)")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.set_defaults(func=check_config)


def check_config(args, ctx) -> int:
    path = mss_config.locate(args.file or ctx.config_path)
    problems = mss_config.problems(path)
    for problem in problems:
        ctx.out.write(f"{problem}\n")
    if problems:
        return 1
    ctx.out.write(f"{path}: ok\n")
    return 0
