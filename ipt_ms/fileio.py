"""File helpers shared by every command: output-path checks and atomic writes.

The rules every writer in ipt-ms follows (README, "Errors"):

* an output path is checked before any work (`check_output_file`, `check_output_dir`):
  a directory where a file is expected, a file where a folder is expected, or a folder
  that cannot be written is refused with one line naming the path;
* a file is written to a temporary name next to it and renamed into place only when the
  writer succeeded (`atomic_output`, `atomic_outputs` for files that belong together),
  so an existing file is never half-overwritten;
* on any failure the temporary file is removed, together with whatever the writer put
  next to it under the same unique name (MindSpore's checkpoint writer keeps its own
  ``.tmp`` file); a full disk (ENOSPC, EDQUOT), a read-only file system or a missing
  permission becomes one line naming the file (`IPTError`, exit code 2);
* new files get the permissions the umask allows (``0o666 & ~umask``), as `open()`
  gives, whatever mode the writer chose (`tempfile.mkstemp` uses 0600, MindSpore's
  checkpoint writer 0400), so teammates on shared storage can read results;
* temporary names are ``.<name>.partial-<pid>-<random><suffix>``: a process killed
  with SIGKILL cannot clean up, and `remove_stale_partials` deletes the ones whose
  process is gone (training calls it when a run starts).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from ipt_ms.errors import IPTError, first_line

__all__ = [
    "atomic_output",
    "atomic_outputs",
    "check_output_dir",
    "check_output_file",
    "disk_full",
    "ensure_writable_dir",
    "output_dir",
    "remove_stale_partials",
    "save_figure",
    "write_error",
]

PARTIAL_MARKER = ".partial-"
# `.NAME.partial-PID-HEX8...`; also the names of earlier versions (mkstemp: 8 characters, no PID)
_PARTIAL_NAME = re.compile(r"^\..+\.partial-(?:(\d+)-[0-9a-f]{8}|[a-z0-9_]{8}(?:\.|$))")
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "file too large")


def _show(path: Path) -> str:
    return repr(str(path))


def write_error(path: str | os.PathLike | Sequence[str | os.PathLike], err: BaseException) -> IPTError:
    """One-line IPTError for a failed write of `path` or paths (disk full, read-only, permission, ...)."""
    if isinstance(err, IPTError):
        return err
    reason = err.strerror if isinstance(err, OSError) and err.strerror else first_line(err)
    if _disk_full(err):
        reason = "disk quota exceeded" if _errno(err) == errno.EDQUOT else "no space left on device"
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return IPTError(f"cannot write {' and '.join(_show(Path(p)) for p in paths)}: {reason}")


def _errno(err: BaseException) -> int | None:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno is not None:
            return err.errno
        err = err.__cause__ or err.__context__
    return None


def disk_full(err: BaseException, directory: str | os.PathLike | None = None) -> bool:
    """Did a failed write come from a full disk? From `err`, or the free space of `directory`."""
    return _disk_full(err) or (directory is not None and _no_space_left(Path(directory)))


def _disk_full(err: BaseException) -> bool:
    """Did `err` (or an exception it was raised from) come from a full disk or quota?

    Writers report ENOSPC in their own ways: Python raises OSError, safetensors a
    SafetensorError quoting "os error 28", torch.save a RuntimeError about the zip
    writer's position; so the errno and the message are both consulted.
    """
    if _errno(err) in _DISK_FULL_ERRNOS:
        return True
    text = str(err).lower()
    return any(fragment in text for fragment in _DISK_FULL_TEXT)


def _no_space_left(directory: Path) -> bool:
    """True when the file system holding `directory` has (almost) no space left."""
    try:
        info = os.statvfs(directory)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < 64 * 1024


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (what must be a writable folder)."""
    current = path
    while not os.path.lexists(current):
        parent = current.parent
        if parent == current:
            break
        current = parent
    return current


def _unusable_folder(folder: Path) -> str | None:
    """Why no file can be created in `folder` (existing or to be created), or None."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        return f"{_show(existing)} is {'a file, ' if existing.exists() else ''}not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"folder {_show(existing)} is not writable"
    return None


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check, without creating anything, that `path` is or can become a writable folder."""
    path = Path(path)
    reason = _unusable_folder(path)
    if reason is not None:
        raise IPTError(f"{what} {_show(path)} cannot be used: {reason}")
    return path


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """Check, without creating anything, that a file can be written at `path`.

    Refused: an existing folder or other non-regular file at `path` (a device, a pipe),
    a parent that is a file, a parent folder that cannot be written or created.
    """
    path = Path(path)
    if path.is_dir():
        raise IPTError(f"{what} {_show(path)} is a folder; give a file name")
    if os.path.lexists(path) and not path.is_file():
        raise IPTError(f"{what} {_show(path)} exists and is not a regular file")
    reason = _unusable_folder(path.parent if str(path.parent) else Path("."))
    if reason is not None:
        raise IPTError(f"{what} {_show(path)} cannot be written: {reason}")
    return path


def ensure_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create `path` if needed; raise IPTError naming it if it cannot be written."""
    path = check_output_dir(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise IPTError(f"{what} {_show(path)} cannot be created: {err.strerror or err}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise IPTError(f"{what} {_show(path)} is not writable")
    return path


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, what: str = "output directory") -> Iterator[Path]:
    """`ensure_writable_dir` for a block that fills the folder: if the block fails, the
    folders it created (and that are still empty) are removed again."""
    path = Path(path)
    first_new = None
    current = path
    while not os.path.lexists(current) and current.parent != current:
        first_new, current = current, current.parent
    ensure_writable_dir(path, what)
    try:
        yield path
    except BaseException:
        folder = path
        while first_new is not None and folder != first_new.parent:
            try:
                os.rmdir(folder)  # only an empty folder; stops at the first one holding anything
            except OSError:
                break
            folder = folder.parent
        raise


def _reserve(path: Path, keep_suffix: bool) -> tuple[Path, int, str]:
    """Create an empty temporary file next to `path`.

    Returns it, the mode the umask gives new files, and its unique name prefix (a writer
    may leave other files starting with it, e.g. MindSpore's ``.tmp``).
    """
    suffix = path.suffix if keep_suffix else ""
    for _ in range(100):
        prefix = f".{path.name}{PARTIAL_MARKER}{os.getpid()}-{secrets.token_hex(4)}"
        tmp = path.with_name(prefix + suffix)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        except OSError as err:
            raise write_error(path, err) from None
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)  # 0o666 & ~umask, without touching the umask
        finally:
            os.close(fd)
        return tmp, mode, prefix
    raise IPTError(f"cannot write {_show(path)}: no free temporary name next to it")


def _remove_partial(directory: Path, prefix: str) -> None:
    """Remove the temporary file and anything a writer created beside it under its unique prefix."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.startswith(prefix) and not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _fsync(path: Path, directory: bool = False) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike], keep_suffix: bool = True) -> Iterator[list[Path]]:
    """Yield temporary paths next to `paths`; move them all into place only if the block succeeds.

    For files that must exist together (an image and its raw array): if any write fails,
    none of `paths` is touched. A failure removes every temporary file (and whatever the
    writer left beside it) and re-raises; disk-full and permission errors come back as
    one-line `IPTError`s naming the file. `keep_suffix` keeps the final extension on the
    temporary names, for writers that pick the format from it.
    """
    targets = [check_output_file(p) for p in paths]
    for target in targets:
        ensure_writable_dir(target.parent if str(target.parent) else Path("."), "output folder")
    reserved: list[tuple[Path, int, str]] = []
    try:
        for target in targets:
            reserved.append(_reserve(target, keep_suffix))
        yield [tmp for tmp, _, _ in reserved]
        for (tmp, mode, _), target in zip(reserved, targets):
            if not tmp.is_file():
                raise IPTError(f"cannot write {_show(target)}: the writer produced no file")
            if stat.S_IMODE(tmp.stat().st_mode) != mode:
                os.chmod(tmp, mode)  # MindSpore's checkpoint writer leaves 0400
            _fsync(tmp)
        for (tmp, _, _), target in zip(reserved, targets):
            if target.is_dir():  # appeared while writing
                raise IPTError(f"output {_show(target)} is a folder; give a file name")
            os.replace(tmp, target)
        for directory in {t.parent for t in targets}:
            _fsync(directory, directory=True)
    except BaseException as err:
        folder = targets[0].parent if str(targets[0].parent) else Path(".")
        full = isinstance(err, Exception) and not isinstance(err, IPTError) and disk_full(err, folder)
        for tmp, _, prefix in reserved:
            _remove_partial(tmp.parent, prefix)
        if isinstance(err, IPTError) or not isinstance(err, Exception):
            raise
        if full:
            cause = err if _disk_full(err) else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise write_error(targets, cause) from None
        if isinstance(err, OSError):
            raise write_error(targets, err) from None
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, keep_suffix: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it over `path` only if the block succeeds.

    A crash or exception leaves any existing file at `path` untouched and removes the
    temporary file (rules in the module docstring). `keep_suffix` keeps the final
    extension on the temporary name, for writers that append their own extension.
    """
    with atomic_outputs([path], keep_suffix=keep_suffix) as (tmp,):
        yield tmp


def remove_stale_partials(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files left in `directory` by writers that were killed.

    Only names `atomic_output` makes (``.<name>.partial-<pid>-...``, and what a writer
    added beside them) whose process no longer runs on this machine are removed, and
    those of earlier ipt-ms versions (``.<name>.partial-XXXXXXXX...``, no process id).
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for entry in os.scandir(directory):
        match = _PARTIAL_NAME.match(entry.name)
        if not match or entry.is_dir(follow_symlinks=False):
            continue
        if match.group(1) is not None and _process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure as PNG atomically, then free it (long runs plot repeatedly)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path

