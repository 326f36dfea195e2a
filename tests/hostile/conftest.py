"""Harness for hostile-input tests: real `ipt-ms` subprocesses on real files.

Every case asserts the promise for bad input (docs/guarantees.md): exit code 2, exactly one line on
stderr that names the offending file or key, no traceback, no new or changed files in
the watched folders, and inputs byte-identical afterwards (`Snapshot`).

Beyond that API (`run_cli`, `Snapshot`, `assert_one_line_error`, the `snapshot` fixture):

* `run_cli(..., user="nobody")` runs the command as an unprivileged user (root ignores
  permission bits, so read-only folders are only read-only to someone else): as
  `nobody` where that user can run this checkout's Python, else as root without the
  capabilities that override permission bits (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
  CAP_FOWNER: the kernel then applies the bits to root too), and
  `run_cli(..., umask=0o002)` under another umask; every result carries the child's
  peak resident memory as `peak_rss_mb` (from `wait4`), for decompression-bomb checks;
* `Snapshot.take(..., dirs=True)` also records folders, so a folder created and left
  empty counts as a change;
* fixtures: `tmpfs` (mount a small tmpfs for a real ENOSPC, or skip saying why),
  `shared_tmp` (a folder the unprivileged user can use; skips if it cannot run
  Python from this checkout).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNPRIVILEGED = "nobody"


_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3
_PR_CAPBSET_DROP = 24


def _drop_dac_capabilities() -> None:
    """Remove the capabilities that let root ignore permission bits from the bounding set,
    so the program exec'd next runs as root that obeys them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _drop_privileges(user: str | None, umask: int | None, how: str | None = None):
    if user is None and umask is None:
        return None
    how = how or (_unprivileged_mode() if user is not None else None)

    def preexec() -> None:  # runs in the child between fork and exec
        if umask is not None:
            os.umask(umask)
        if user is None or os.geteuid() != 0:
            return
        if how == "capabilities":
            _drop_dac_capabilities()
            return
        import pwd

        entry = pwd.getpwnam(user)
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return preexec


# `python -m ipt_ms`, plus the peak resident memory of the command's own address space
# (VmHWM at exit). The kernel's ru_maxrss would also count the forked copy of this pytest
# process, which holds MindSpore and is far bigger than a command that fails early.
_MAIN = """
import atexit, runpy, sys
_peak_file = sys.argv.pop(1)
def _record_peak():
    try:
        with open("/proc/self/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(_peak_file, "w") as out:
            out.write(peak)
    except Exception:
        pass
atexit.register(_record_peak)
runpy.run_module("ipt_ms", run_name="__main__", alter_sys=True)
"""


def run_cli(*args: str | os.PathLike, cwd: str | os.PathLike | None = None, env: dict | None = None,
            timeout: float = 300, stdin: str | None = None, user: str | None = None,
            umask: int | None = None) -> subprocess.CompletedProcess:
    """Run `python -m ipt_ms ARGS` as a user would, capturing text output.

    `user`: run as that (unprivileged) user when this process is root. `umask`: the
    child's umask. The result has `peak_rss_mb`: the command's peak resident memory
    (None where it could not be read, e.g. killed by a signal).
    """
    full_env = dict(os.environ)
    full_env.setdefault("MS_OM_PATH", str(Path(cwd or ".") / ".ms_om"))
    if env:
        full_env.update(env)
    fd, peak_file = tempfile.mkstemp(prefix="ipt-peak-")
    os.close(fd)
    os.chmod(peak_file, 0o666)  # writable by an unprivileged child too
    try:
        result = subprocess.run([sys.executable, "-c", _MAIN, peak_file, *map(str, args)], cwd=cwd, env=full_env,
                                capture_output=True, text=True, timeout=timeout, input=stdin,
                                preexec_fn=_drop_privileges(user, umask))
        text = Path(peak_file).read_text().strip()
        result.peak_rss_mb = int(text) / 1024 if text else None  # VmHWM is in kB
    finally:
        os.unlink(peak_file)
    return result


@dataclass(frozen=True)
class Snapshot:
    """Every file under some roots: relative path -> (sha256, size, mode); with `dirs=True`
    every folder too (path -> mode)."""

    files: dict

    @classmethod
    def take(cls, *roots: str | os.PathLike, dirs: bool = False) -> Snapshot:
        files = {}
        for root in map(Path, roots):
            if root.is_file():
                files[str(root)] = _digest(root)
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if d != ".ms_om"]
                if dirs:
                    files[dirpath + os.sep] = ("folder", os.stat(dirpath).st_mode)
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


# ------------------------------------------------------------------------------ environments
def _can_mount_tmpfs() -> str | None:
    """None if a tmpfs can be mounted here, else the reason it cannot."""
    if sys.platform != "linux":
        return "tmpfs mounts need Linux"
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (or CAP_SYS_ADMIN)"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount/umount command"
    probe = Path(tempfile.mkdtemp(prefix="ipt-tmpfs-probe-"))
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            return f"mount -t tmpfs was refused: {done.stderr.strip() or done.returncode}"
        subprocess.run(["umount", str(probe)], check=True, capture_output=True)
        return None
    finally:
        probe.rmdir()


_TMPFS_REASON: list = []


@pytest.fixture
def tmpfs():
    """Factory: `tmpfs(size_kib) -> Path`, a fresh tmpfs of that size (a real full disk);
    unmounted afterwards. Skips with the reason where mounting is not permitted."""
    if not _TMPFS_REASON:
        _TMPFS_REASON.append(_can_mount_tmpfs())
    if _TMPFS_REASON[0] is not None:
        pytest.skip(f"no real ENOSPC here: {_TMPFS_REASON[0]}")
    mounted: list[Path] = []

    def make(size_kib: int) -> Path:
        where = Path(tempfile.mkdtemp(prefix="ipt-tmpfs-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size_kib)}k,mode=0777", "tmpfs", str(where)],
                       check=True, capture_output=True)
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)
        with_retry = 0
        while os.path.ismount(where) and with_retry < 20:  # a child may still hold a file open
            time.sleep(0.1)
            subprocess.run(["umount", str(where)], capture_output=True)
            with_retry += 1
        shutil.rmtree(where, ignore_errors=True)


def _probe(how: str) -> str | None:
    """None if `ipt_ms` imports and a 0555 folder is unwritable in a child run `how`, else why not."""
    folder = Path(tempfile.mkdtemp(prefix="ipt-probe-"))
    try:
        folder.chmod(0o555)
        code = f"import ipt_ms, os, sys; sys.exit(1 if os.access({str(folder)!r}, os.W_OK) else 0)"
        done = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True,
                              preexec_fn=_drop_privileges(UNPRIVILEGED, None, how))
    except OSError as err:
        return f"{how}: {err}"
    finally:
        folder.chmod(0o755)
        folder.rmdir()
    if done.returncode != 0:
        return f"{how}: exit {done.returncode} {done.stderr.strip()[-200:]}"
    return None


_MODE: list = []


def _unprivileged_mode() -> str | None:
    """How `user=UNPRIVILEGED` runs a command as root: "user" (setuid to nobody), else
    "capabilities" (stay uid 0 but without CAP_DAC_OVERRIDE/READ_SEARCH/FOWNER, e.g. when
    nobody cannot reach this Python), else None with the reasons in _MODE[1]."""
    if not _MODE:
        reasons = []
        for how in ("user", "capabilities"):
            reason = _probe(how)
            if reason is None:
                _MODE[:] = [how, ""]
                break
            reasons.append(reason)
        else:
            _MODE[:] = [None, "; ".join(reasons)]
    return _MODE[0]


def _unprivileged_reason() -> str | None:
    if os.geteuid() != 0:
        return None  # already unprivileged: permission bits apply to us
    try:
        import pwd

        pwd.getpwnam(UNPRIVILEGED)
    except (ImportError, KeyError):
        return f"no {UNPRIVILEGED!r} user to drop privileges to"
    return None if _unprivileged_mode() else _MODE[1]


@pytest.fixture
def shared_tmp():
    """A fresh folder an unprivileged user can enter (pytest's tmp_path is private to root),
    with HOME/MPLCONFIGDIR/MS_OM_PATH env for it: yields (folder, env). Skips with the
    reason where commands cannot run unprivileged."""
    reason = _unprivileged_reason()
    if reason is not None:
        pytest.skip(f"read-only folders cannot be tested: {reason}")
    folder = Path(tempfile.mkdtemp(prefix="ipt-hostile-"))
    folder.chmod(0o755)
    home = folder / ".home"
    home.mkdir()
    home.chmod(0o777)
    env = {"HOME": str(home), "MPLCONFIGDIR": str(home), "MS_OM_PATH": str(home / "ms_om")}
    yield folder, env
    shutil.rmtree(folder, ignore_errors=True)
