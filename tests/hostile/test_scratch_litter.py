"""No litter after a process is killed outright: the per-process compile scratch folder of a
process that died without its atexit cleanup (SIGKILL, a second Ctrl-C once MindSpore owns
SIGINT, the OOM killer) is removed by the next ipt-ms process, and nothing else is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def restore(weights: Path, photo: Path, out: Path, scratch: Path, cache: Path, **popen):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(scratch), IPT_MS_LEVERS="default")
    args = [sys.executable, "-m", "ipt_ms", "restore", "--weights", str(weights), str(photo), "-o", str(out), "-q",
            "--overwrite", "--compile-cache", str(cache)]
    if popen:
        return subprocess.Popen(args, env=env, cwd=out.parent, **popen)
    return subprocess.run(args, env=env, cwd=out.parent, capture_output=True, text=True, timeout=300)


def test_killed_process_scratch_is_swept_by_the_next_one(tmp_path, tiny_ckpt, photo_png):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cache = tmp_path / "cache"
    # a run killed outright leaves its folder behind
    proc = restore(tiny_ckpt, photo_png, tmp_path / "out", scratch, cache, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(scratch.glob("ipt-ms-compile-*")) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed = list(scratch.glob(f"ipt-ms-compile-{proc.pid}-*"))
    assert killed, "the killed run made no scratch folder"

    # things that must survive the sweep: a live process's folder, a link, another name
    alive = scratch / f"ipt-ms-compile-{os.getpid()}-live"
    alive.mkdir()
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    link = scratch / f"ipt-ms-compile-{dead_pid()}-link"
    link.symlink_to(target, target_is_directory=True)
    other = scratch / "ipt-ms-compile-notapid"
    other.mkdir()

    done = restore(tiny_ckpt, photo_png, tmp_path / "out", scratch, cache)
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in killed)
    assert alive.is_dir() and other.is_dir() and (target / "keep.txt").read_text() == "x"
    assert link.is_symlink()
    assert sorted(scratch.glob("ipt-ms-compile-*")) == sorted([alive, link, other])  # its own went at exit
