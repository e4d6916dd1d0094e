# -*- test-case-name: tests.admin.test_cli -*-
"""``mssctl check-config FILE``: report every problem in a settings file at once."""
from __future__ import annotations

from mss import config as mss_config


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("check-config", help="validate a settings file")
    p.add_argument("file")
    p.set_defaults(func=check_config)


def check_config(args, ctx) -> int:
    problems = mss_config.problems(args.file)
    for problem in problems:
        ctx.out.write(f"{problem}\n")
    if problems:
        return 1
    ctx.out.write(f"{args.file}: ok\n")
    return 0
