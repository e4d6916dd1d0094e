# -*- test-case-name: tests.test_readme -*-
"""README.md's set-up is exactly two shell commands (run the switch, run the tests), and CI
runs the second one verbatim: .ci/run holds it on the line after the comment that says so."""
from __future__ import annotations

import io
import os
import re
import shlex
import shutil

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
            raise SkipTest("README.md does not exist")
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


class ExampleTests(SynchronousTestCase):
    """The examples in README.md's "Using it" work as written."""

    def setUp(self):
        with open(README, encoding="utf-8") as f:
            self.text = f.read()

    def plain_block(self, needle: str) -> str:
        blocks = [body for lang, body in _FENCE.findall(self.text) if not lang and needle in body]
        self.assertEqual(len(blocks), 1, f"one plain block with {needle!r}")
        return blocks[0]

    def test_mssctl_examples_run(self):
        """Every mssctl line, in order, in a directory holding the shipped etc/mss.toml (so
        mssctl finds it as documented): exit 0 and no warning."""
        from mss.admin.cli import main
        work = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(work, "etc"))
        shutil.copy(os.path.join(ROOT, "etc", "mss.toml"), os.path.join(work, "etc"))
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(work)
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != "MSS_CONFIG"})
        lines = [c for c in commands(self.plain_block("mssctl extension add"))
                 if c.startswith("mssctl ")]
        self.assertGreater(len(lines), 10)
        for line in lines:
            argv = shlex.split(line, comments=True)[1:]
            out, err = io.StringIO(), io.StringIO()
            code = main(argv, out=out, err=err, stdin=io.StringIO("Front-Desk-2024\n"))
            self.assertEqual(code, 0, f"{line}\n{err.getvalue()}")
            self.assertNotIn("warning", err.getvalue(), line)

    def test_manhole_calls_example_has_the_real_columns(self):
        from mss.admin.operations import Operations
        from tests.admin.phones import LiveSwitch, Phone, live_call, provision
        live = LiveSwitch(self.mktemp())
        self.addCleanup(live.close)
        provision(live, "1001", "1002")
        call_id = live_call(live, Phone(live, "1001", "pw-1001", 40001),
                            Phone(live, "1002", "pw-1002", 40002))
        live.advance(72)
        real = str(Operations(live.switch, wall=live.reactor.seconds).calls_table()).splitlines()
        example = self.plain_block(">>> calls()").splitlines()
        shown = example[example.index(">>> calls()") + 1:]
        self.assertEqual(shown[0].split(), real[0].split())            # the header
        self.assertEqual(len(shown[1].split()), len(real[1].split()))  # one call, every column
        self.assertIn(call_id, real[1])


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
