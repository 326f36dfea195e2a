"""Every `ipt-ms` command line in the README, docs/ and the demo script parses.

Code blocks (```bash) and inline `ipt-ms ...` spans are collected and given to the real
argument parser: a renamed option, a removed command or a typo in the docs fails here.
Synopsis forms (`[--task T|all]`, `Set5,...`) are left out; everything else must parse.
Every command must also be shown at least once, so a new command comes with its docs.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from ipt_ms.cli import COMMAND_MODULES, build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_SYNOPSIS = ("[", "...", "|", "<", "NUM_WORKERS")


def _split_commands(line: str) -> list[list[str]]:
    """`ipt-ms` invocations in one shell line (chains with && ; | and env prefixes allowed)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return []
    commands, current = [], None
    for word in words:
        if word in ("&&", "||", ";", "|"):
            current = None
            continue
        if current is None and (word == "ipt-ms" or word.endswith("/ipt-ms")):
            current = []
            commands.append(current)
        elif current is not None:
            current.append(word)
    return commands


def _code_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, flags=re.DOTALL):
        lines += block.replace("\\\n", " ").splitlines()
    return lines


def _inline_spans(text: str) -> list[str]:
    """Inline command lines in prose; table rows (synopses with placeholders such as `--preset P`)
    and bare command names (`ipt-ms convert`, a reference, not a command line) are left out."""
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    prose = "\n".join(line for line in prose.splitlines() if not line.lstrip().startswith("|"))
    spans = [" ".join(s.split()) for s in re.findall(r"`((?:\.venv/bin/)?ipt-ms [^`]+)`", prose)]
    return [s for s in spans if len(s.split()) > 2 and not any(mark in s for mark in _SYNOPSIS)]


def _demo_lines() -> list[str]:
    text = (ROOT / "scripts" / "demo.sh").read_text().replace("\\\n", " ")
    defaults = dict(re.findall(r"^([A-Z_]+)=\$\{[A-Z_]+:-([^}]*)\}", text, flags=re.MULTILINE))  # OUT=${X:-y}
    text = re.sub(r"\$\{?([A-Z_]+)\}?", lambda m: defaults.get(m.group(1), "x"), text)
    return [line for line in text.splitlines() if "ipt-ms " in line and not line.lstrip().startswith("#")]


def collect() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for line in _code_lines(text) + _inline_spans(text):
            found += [(f"{path.name}: {line.strip()}", argv) for argv in _split_commands(line)]
    found += [(f"demo.sh: {line.strip()}", argv) for line in _demo_lines() for argv in _split_commands(line)]
    return found


COMMANDS = collect()


def test_the_docs_show_every_command():
    shown = {argv[0] for _, argv in COMMANDS if argv}
    expected = {name.replace("_", "-") for name in COMMAND_MODULES}
    assert expected <= shown, f"commands without an example in README/docs: {sorted(expected - shown)}"
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w[:90] for w, _ in COMMANDS])
def test_documented_command_line_parses(where, argv):
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exit_:
        assert exit_.code == 0, f"{where}\n{err.getvalue().strip()}"
