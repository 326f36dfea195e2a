"""Harness for hostile-input tests: real `ipt-ms` subprocesses on real files.

Every case asserts the README's promise for bad input: exit code 2, exactly one line on
stderr that names the offending file or key, no traceback, no new or changed files in
the watched folders, and inputs byte-identical afterwards (`Snapshot`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str | os.PathLike, cwd: str | os.PathLike | None = None, env: dict | None = None,
            timeout: float = 300, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m ipt_ms ARGS` as a user would, capturing text output."""
    full_env = dict(os.environ)
    full_env.setdefault("MS_OM_PATH", str(Path(cwd or ".") / ".ms_om"))
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "ipt_ms", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, input=stdin)


@dataclass(frozen=True)
class Snapshot:
    """Every file under some roots: relative path -> (sha256, size, mode)."""

    files: dict

    @classmethod
    def take(cls, *roots: str | os.PathLike) -> Snapshot:
        files = {}
        for root in map(Path, roots):
            if root.is_file():
                files[str(root)] = _digest(root)
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if d != ".ms_om"]
                for name in filenames:
                    path = Path(dirpath) / name
                    if path.is_file() and not path.is_symlink():
                        files[str(path)] = _digest(path)
        return cls(files)

    def assert_same(self, other: Snapshot) -> None:
        added = sorted(set(other.files) - set(self.files))
        removed = sorted(set(self.files) - set(other.files))
        changed = sorted(k for k in set(self.files) & set(other.files) if self.files[k] != other.files[k])
        assert not (added or removed or changed), f"files added {added}, removed {removed}, changed {changed}"


def _digest(path: Path) -> tuple:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data), path.stat().st_mode


def assert_one_line_error(proc: subprocess.CompletedProcess, *names: str, code: int = 2) -> str:
    """Exit `code`, one stderr line, no traceback, mentioning every string in `names`."""
    err = proc.stderr.strip()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == code, f"exit {proc.returncode} (expected {code}); stderr:\n{err}\nstdout:\n{proc.stdout}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{err}"
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]


@pytest.fixture
def snapshot():
    return Snapshot.take
