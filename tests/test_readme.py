# -*- test-case-name: tests.test_readme -*-
"""README.md's set-up is exactly two shell commands (run the switch, run the tests), and CI
runs the second one verbatim: .ci/run holds it on the line after the comment that says so."""
from __future__ import annotations

import os
import re

from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
CI = os.path.join(ROOT, ".ci", "run")
MARKER = "README.md's test command, verbatim"
_FENCE = re.compile(r"^```[ \t]*(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_SHELL = {"sh", "bash", "shell", "console"}


def ci_test_command() -> str:
    with open(CI) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if MARKER in line and line.lstrip().startswith("#"):
            for following in lines[i + 1:]:
                line = following.strip()
                if line:
                    if line.startswith("(") and ")" in line:    # (command) 2>&1 | tee log
                        line = line[1:line.rindex(")")]
                    return line
    raise AssertionError(f"{CI}: no command after the comment {MARKER!r}")


def shell_blocks(text: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(text) if lang.lower() in _SHELL]


def commands(block: str) -> list[str]:
    """The commands of a shell block: comments and blank lines dropped, continuations joined."""
    out, current = [], ""
    for line in block.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("$ "):
            stripped = stripped[2:]
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        out.append(current + stripped)
        current = ""
    if current:
        out.append(current.strip())
    return out


class ReadmeTests(SynchronousTestCase):
    def setUp(self):
        if not os.path.exists(README):
            raise SkipTest("README.md does not exist yet (the lead writes it)")
        with open(README, encoding="utf-8") as f:
            self.text = f.read()
        self.blocks = shell_blocks(self.text)

    def test_two_shell_commands(self):
        self.assertEqual(len(self.blocks), 2, f"README.md has {len(self.blocks)} shell blocks")
        for block in self.blocks:
            self.assertEqual(len(commands(block)), 1, f"not one command:\n{block}")

    def test_one_runs_the_switch(self):
        runs = [b for b in self.blocks if "twistd -n mss" in b]
        self.assertEqual(len(runs), 1)

    def test_ci_runs_the_readme_test_command(self):
        command = ci_test_command()
        self.assertIn("twisted.trial tests", command)
        inside = [b for b in self.blocks if command in commands(b)]
        self.assertEqual(len(inside), 1, f"{command!r} is not a command of a ```sh block")


class HelperTests(SynchronousTestCase):
    """The parsing above, on made-up text (these run even before README.md exists)."""

    def test_ci_command_found(self):
        command = ci_test_command()
        self.assertTrue(command and not command.startswith("#"))

    def test_blocks_and_commands(self):
        text = ("# T\n\n```sh\n# comment\n$ make \\\n    all\n```\n\n```python\nx = 1\n```\n"
                "```bash\na && b\n\n```\n")
        blocks = shell_blocks(text)
        self.assertEqual(len(blocks), 2)
        self.assertEqual(commands(blocks[0]), ["make all"])
        self.assertEqual(commands(blocks[1]), ["a && b"])
