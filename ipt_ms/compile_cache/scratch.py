"""The per-process scratch folder MindSpore's own cache sees (`_Session`), and the removal of those
left by killed processes (`sweep_stale_scratch`). See `ipt_ms.compile_cache`.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("ipt_ms.compile_cache")  # one logger for the whole cache


_INDEX = re.compile(r"^compile_cache_(\d+)\.mindir$")
_session: _Session | None = None


# ------------------------------------------------------------------------------------ session
def _dependency_hash() -> str | None:
    """The hash MindSpore's cache checks before loading (its `compile_dependency.hash`):
    sha256 over the concatenated sha256 hex digests of the entry script and the modules it
    imports from outside sys.path, in sorted path order. None when there is no entry script
    (``python -c``, stdin), where MindSpore's own bookkeeping would fail."""
    from mindspore.graph import api

    entry = getattr(api, "entry_script_path", None)
    if not entry or not os.path.isfile(entry):
        return None
    try:
        files = api._get_compile_cache_dep_files()
    except Exception:  # unparsable entry script and the like: run uncached
        return None
    joined = "".join(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in sorted(files))
    return hashlib.sha256(joined.encode()).hexdigest()


class _Session:
    """This process's private folder for MindSpore's cache and its compile counter."""

    def __init__(self, folder: Path, dependency_hash: str):
        self.folder = folder
        self.owner = os.getpid()
        self.counter = 0  # MindSpore's index of the next cached compilation in this process
        self.dependency_hash = dependency_hash
        self.seen_hash_files: set[Path] = set()
        self.poisoned = False  # MindSpore no longer loads cached graphs in this process

    def graph_dirs(self) -> list[Path]:
        return sorted(self.folder.glob("rank_*/graph_cache"))

    def graph_dir(self) -> Path:
        rank = 0
        with contextlib.suppress(Exception):
            from mindspore.communication.management import GlobalComm, get_rank

            if GlobalComm.INITED:
                rank = get_rank()
        folder = self.folder / f"rank_{rank}" / "graph_cache"
        folder.mkdir(parents=True, exist_ok=True)
        hash_file = folder / "compile_dependency.hash"
        if folder not in self.seen_hash_files or not hash_file.exists():
            _write_private(hash_file, self.dependency_hash.encode())
            self.seen_hash_files.add(folder)
        return folder

    def files(self) -> dict[int, Path]:
        found = {}
        for folder in self.graph_dirs():
            for path in folder.iterdir():
                match = _INDEX.match(path.name)
                if match:
                    found[int(match.group(1))] = path
        return found

    def cleanup(self) -> None:
        if os.getpid() == self.owner:
            shutil.rmtree(self.folder, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.chmod(0o600)  # MindSpore leaves its files read-only
        path.unlink()
    path.write_bytes(data)


SCRATCH_PREFIX = "ipt-ms-compile-"
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(\d+)-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_stale_scratch(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the scratch folders of processes that are gone; returns what was removed.

    A process killed outright (SIGKILL, the second Ctrl-C once MindSpore owns SIGINT, the
    out-of-memory killer) cannot run its atexit cleanup, so the next process does it: a
    folder named for a PID that no longer runs, owned by this user and not a link, is
    removed. A folder whose PID runs (the owner, or a reused PID) is left alone.
    """
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _SCRATCH_NAME.match(entry.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or _pid_alive(int(match.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _get_session() -> _Session | None:
    global _session
    if _session is not None and _session.owner == os.getpid():
        return _session
    dependency_hash = _dependency_hash()
    if dependency_hash is None:
        return None
    try:
        sweep_stale_scratch()
        folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        stats = os.statvfs(folder)
        if stats.f_bavail * stats.f_frsize < SCRATCH_MIN_FREE:  # MindSpore would write truncated graphs
            shutil.rmtree(folder, ignore_errors=True)
            raise OSError(errno.ENOSPC, f"under {SCRATCH_MIN_FREE >> 20} MiB free")
    except OSError as err:  # TMPDIR full or unwritable: the cache never stops a run
        _scratch_failed(tempfile.gettempdir(), err)
        return None
    _session = _Session(folder, dependency_hash)
    atexit.register(_session.cleanup)
    return _session


_SCRATCH_WARNED: list[str] = []
#: free space the per-process scratch folder needs: MindSpore writes each compiled graph there
#: first, and on a full disk leaves a truncated file (and two [ERROR] lines) behind
SCRATCH_MIN_FREE = 64 << 20


def _scratch_failed(folder, err: OSError) -> None:
    """One warning line per process: the scratch folder (under TMPDIR) cannot be written."""
    if not _SCRATCH_WARNED:
        _SCRATCH_WARNED.append(str(folder))
        log.warning("compile cache not used in this run: cannot write its scratch folder in %s (%s); "
                    "compiling instead (set TMPDIR to a folder with free space)", folder, err.strerror or err)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.chmod(0o600)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
