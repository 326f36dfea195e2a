"""Atomic, exclusive writes: a file is complete or absent, and never replaces another unasked.

Files are written under a temporary name next to their final one and moved into place only when
the writer succeeded, with a move that never replaces an existing file unless asked
(`overwrite=True`, `overwriting()`); temporary names left by a killed process are removed by
`remove_stale_partials`. The rules are in `ipt_ms.fileio`.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.fileio.paths import (
    _disk_full,
    _refuse_input,
    _show,
    check_new_output,
    disk_full,
    ensure_writable_dir,
    write_error,
)

PARTIAL_MARKER = ".partial-"
# `.NAME.partial-PID-HEX8...`; also the names of earlier versions (mkstemp: 8 characters, no PID)
_PARTIAL_NAME = re.compile(r"^\..+\.partial-(?:(\d+)-[0-9a-f]{8}|[a-z0-9_]{8}(?:\.|$))")
_PROCESS_START = time.time()
#: set by `overwriting()`: the writes in that block may replace existing files
_OVERWRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("ipt_ms_overwriting", default=False)
#: folders whose stale temporary files this process already removed
_CLEANED: set[str] = set()
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_RENAMEAT2: list = []


def _renameat2():
    """libc's renameat2, or None where it is missing (non-Linux, old glibc)."""
    if not _RENAMEAT2:
        func = None
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            func = ctypes.CDLL(None, use_errno=True).renameat2
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            func.restype = ctypes.c_int
        _RENAMEAT2.append(func)
    return _RENAMEAT2[0]


def move_exclusive(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move `source` to `target` atomically, never replacing a file there: FileExistsError if one exists.

    renameat2(RENAME_NOREPLACE) where the kernel and file system support it, else a hard
    link (also atomic: it fails when the name exists) followed by removing `source`. Only
    where neither works (some FUSE/SMB mounts) is it a check followed by a rename, which
    a concurrent writer could still race.
    """
    src, dst = os.fsencode(source), os.fsencode(target)
    func = _renameat2()
    if func is not None:
        import ctypes

        if func(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), os.fsdecode(dst))
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), os.fsdecode(dst))
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def _clean_once(directory: Path) -> None:
    """`remove_stale_partials` on the first write of this process into `directory`."""
    key = os.path.abspath(directory)
    if key not in _CLEANED:
        _CLEANED.add(key)
        remove_stale_partials(directory)


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
def atomic_outputs(paths: Sequence[str | os.PathLike], keep_suffix: bool = True, overwrite: bool = False,
                   hint: str = "remove it or choose another name") -> Iterator[list[Path]]:
    """Yield temporary paths next to `paths`; move them all into place only if the block succeeds.

    For files that must exist together (an image and its raw array): if any write fails,
    none of `paths` is touched. A failure removes every temporary file (and whatever the
    writer left beside it) and re-raises; disk-full and permission errors come back as
    one-line `IPTError`s naming the file. `keep_suffix` keeps the final extension on the
    temporary names, for writers that pick the format from it.

    Without `overwrite` an existing file at any of `paths` is refused before the block runs
    (one line ending in `hint`) and the final move is exclusive, so a file that appeared
    meanwhile is not replaced either. A recorded input (`note_input`) is never replaced.
    """
    overwrite = overwrite or _OVERWRITING.get()
    targets = [check_new_output(p, overwrite, hint) for p in paths]
    for target in targets:
        folder = target.parent if str(target.parent) else Path(".")
        ensure_writable_dir(folder, "output folder")
        _clean_once(folder)
    reserved: list[tuple[Path, int, str]] = []
    placed: list[Path] = []
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
            _refuse_input(target)
            if overwrite:
                os.replace(tmp, target)
                continue
            try:
                move_exclusive(tmp, target)
            except FileExistsError:
                raise IPTError(f"output {_show(target)} was created by someone else while this command wrote it; "
                               "it was not replaced") from None
            placed.append(target)
        for directory in {t.parent for t in targets}:
            _fsync(directory, directory=True)
    except BaseException as err:
        folder = targets[0].parent if str(targets[0].parent) else Path(".")
        full = isinstance(err, Exception) and not isinstance(err, IPTError) and disk_full(err, folder)
        for tmp, _, prefix in reserved:
            _remove_partial(tmp.parent, prefix)
        for target in placed:  # files of this group created here: all of them or none
            with contextlib.suppress(OSError):
                os.unlink(target)
        if isinstance(err, IPTError) or not isinstance(err, Exception):
            raise
        if full:
            cause = err if _disk_full(err) else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise write_error(targets, cause) from None
        if isinstance(err, OSError):
            raise write_error(targets, err) from None
        raise


@contextlib.contextmanager
def overwriting() -> Iterator[None]:
    """Within the block, `atomic_output` may replace existing files (never an input): for a
    caller that rewrites its own files through a writer it does not control (a report
    folder that `ipt-ms parity --report` and `doctor` fill on every run)."""
    token = _OVERWRITING.set(True)
    try:
        yield
    finally:
        _OVERWRITING.reset(token)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, keep_suffix: bool = True, overwrite: bool = False,
                  hint: str = "remove it or choose another name") -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it to `path` only if the block succeeds.

    A crash or exception leaves any existing file at `path` untouched and removes the
    temporary file; an existing file is replaced only with `overwrite` (rules in the
    module docstring and `atomic_outputs`). `keep_suffix` keeps the final extension on
    the temporary name, for writers that append their own extension.
    """
    with atomic_outputs([path], keep_suffix=keep_suffix, overwrite=overwrite, hint=hint) as (tmp,):
        yield tmp


def _dead_and_old(match: re.Match, path: str) -> bool:
    """A temporary name's process is gone and the file or folder predates this process."""
    if match.group(1) is not None and _process_alive(int(match.group(1))):
        return False
    try:
        return os.stat(path, follow_symlinks=False).st_mtime < _PROCESS_START
    except OSError:
        return False


@contextlib.contextmanager
def staged_folder(final: str | os.PathLike, keep: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Build a folder under a hidden temporary sibling name; move it to `final` only if the block succeeds.

    Nobody ever sees a half-made `final`: an exception, Ctrl-C or a full disk removes the
    temporary folder, and one left by a killed process is removed by the next call for the
    same `final` (its process gone, older than this one). An existing `final` (the caller
    decided it may be replaced) is swapped out whole after its entries for which `keep`
    is true were moved into the new folder, then deleted.
    """
    final = Path(os.path.realpath(final)) if os.path.islink(final) else Path(final)  # a linked OUT: its target
    parent = final.parent if str(final.parent) else Path(".")
    ensure_writable_dir(parent, "output folder")
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(?:partial|replaced)-(\d+)-[0-9a-f]{{8}}$")
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            match = pattern.match(entry.name)
            if match and entry.is_dir(follow_symlinks=False) and _dead_and_old(match, entry.path):
                shutil.rmtree(entry.path, ignore_errors=True)
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    staging = parent / f".{final.name}{PARTIAL_MARKER}{tag}"
    try:
        staging.mkdir()
    except OSError as err:
        raise write_error(final, err) from None
    try:
        yield staging
        if final.is_dir() and not final.is_symlink():
            for entry in os.scandir(final):
                if keep is not None and keep(entry.name) and not os.path.lexists(staging / entry.name):
                    os.rename(entry.path, staging / entry.name)
            retired = parent / f".{final.name}.replaced-{tag}"
            os.rename(final, retired)
            os.rename(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            try:
                move_exclusive(staging, final)
            except FileExistsError:
                raise IPTError(f"output {_show(final)} was created by someone else meanwhile; it was not "
                               "replaced") from None
        _fsync(parent, directory=True)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, OSError):
            raise write_error(final, err) from None
        raise


def remove_stale_partials(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files left in `directory` by writers that were killed.

    Only names `atomic_output` makes (``.<name>.partial-<pid>-...``, and what a writer
    added beside them) whose process no longer runs on this machine are removed, and
    those of earlier ipt-ms versions (``.<name>.partial-XXXXXXXX...``, no process id);
    and only when last modified before this process started (a file still growing belongs
    to a live writer, perhaps on another machine sharing the folder).
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for entry in os.scandir(directory):
        match = _PARTIAL_NAME.match(entry.name)
        if not match or entry.is_dir(follow_symlinks=False):
            continue
        if not _dead_and_old(match, entry.path):
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


def save_figure(fig, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write a matplotlib figure as PNG atomically, then free it (long runs plot repeatedly)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
