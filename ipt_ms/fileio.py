"""File helpers shared by every command: output-path checks and atomic writes.

The rules every writer in ipt-ms follows (docs/guarantees.md):

* an output path is checked before any work (`check_output_file`, `check_output_dir`):
  a directory where a file is expected, a file where a folder is expected, or a folder
  that cannot be written is refused with one line naming the path;
* a file is written to a temporary name next to it and moved into place only when the
  writer succeeded (`atomic_output`, `atomic_outputs` for files that belong together),
  so an existing file is never half-overwritten;
* outputs are created exclusively: the final move never replaces an existing file
  (rename with RENAME_NOREPLACE, else a hard link, both atomic), so two commands racing
  for one name cannot both win; only a caller passing ``overwrite=True`` (the user's
  --overwrite, or a run's own state files) replaces a file;
* no output ever replaces one of the command's own inputs, even with ``overwrite``: the
  readers record what they read (`note_input`) and the writer compares identities
  (device and inode, so symlinks and hard links count as the same file);
* on any failure the temporary file is removed, together with whatever the writer put
  next to it under the same unique name (MindSpore's checkpoint writer keeps its own
  ``.tmp`` file); a full disk (ENOSPC, EDQUOT), a read-only file system or a missing
  permission becomes one line naming the file (`IPTError`, exit code 2);
* new files get the permissions the umask allows (``0o666 & ~umask``), as `open()`
  gives, whatever mode the writer chose (`tempfile.mkstemp` uses 0600, MindSpore's
  checkpoint writer 0400), so teammates on shared storage can read results;
* temporary names are ``.<name>.partial-<pid>-<random><suffix>``: a process killed
  with SIGKILL cannot clean up, and `remove_stale_partials` deletes the ones whose
  process is gone and that are older than this process; every writer runs it once per
  folder it writes into.
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

from ipt_ms.errors import CONTROL_CHARACTER, IPTError, first_line

__all__ = [
    "FolderLock",
    "atomic_output",
    "atomic_outputs",
    "check_output_dir",
    "check_new_output",
    "check_output_file",
    "check_name_part",
    "disk_full",
    "ensure_writable_dir",
    "note_input",
    "output_dir",
    "overwriting",
    "remove_stale_partials",
    "save_figure",
    "staged_folder",
    "write_error",
]

PARTIAL_MARKER = ".partial-"
# `.NAME.partial-PID-HEX8...`; also the names of earlier versions (mkstemp: 8 characters, no PID)
_PARTIAL_NAME = re.compile(r"^\..+\.partial-(?:(\d+)-[0-9a-f]{8}|[a-z0-9_]{8}(?:\.|$))")
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "file too large")
_PROCESS_START = time.time()
#: what `atomic_output` tells a user whose command has an --overwrite option
OVERWRITE_HINT = "pass --overwrite to replace it"
#: (st_dev, st_ino) -> path of every file this process read as an input (`note_input`)
_INPUTS: dict[tuple[int, int], str] = {}
#: set by `overwriting()`: the writes in that block may replace existing files
_OVERWRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("ipt_ms_overwriting", default=False)
#: folders whose stale temporary files this process already removed
_CLEANED: set[str] = set()


def _show(path: Path) -> str:
    return repr(str(path))


def check_name_part(part: str, source: str | os.PathLike, what: str = "the output name of") -> None:
    """Refuse `part` of an output file name taken from something the user gave (an input's
    stem, a set image's name) when it holds a control character (a newline, ESC, a
    bidirectional override): such a name would break every listing and log line that shows
    it, so the command stops with one line naming the source and nothing is written."""
    found = CONTROL_CHARACTER.search(part)
    if found:
        raise IPTError(f"{what} {_show(Path(source))} would hold the control character {found.group()!r}; "
                       "rename the file")


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


#: at most this many inputs are remembered (a training on ImageNet reads 1.3M files; its outputs
#: go to a run folder that may not lie inside the data)
_MAX_INPUTS = 100_000


def note_input(path: str | os.PathLike) -> None:
    """Record that this command read `path`: no output of this process may replace it."""
    if len(_INPUTS) >= _MAX_INPUTS:
        return
    with contextlib.suppress(OSError, ValueError):
        info = os.stat(path)
        _INPUTS[(info.st_dev, info.st_ino)] = str(path)


def input_at(path: str | os.PathLike) -> str | None:
    """The recorded input (as it was named) that `path` is, following symlinks; else None."""
    if not _INPUTS:
        return None
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    key = (info.st_dev, info.st_ino)
    recorded = _INPUTS.get(key)
    if recorded is None:
        return None
    # an input deleted since (a training's own rotated checkpoint) frees its inode number for a
    # new, unrelated file: the record stands only while its path still names that inode
    try:
        still = os.stat(recorded)
    except (OSError, ValueError):
        still = None
    if still is None or (still.st_dev, still.st_ino) != key:
        del _INPUTS[key]
        return None
    return recorded


def _refuse_input(target: Path, what: str = "output") -> None:
    source = input_at(target)
    if source is not None:
        alias = os.path.abspath(source) != os.path.abspath(target)
        same = f" (the same file as {_show(Path(source))})" if alias else ""
        raise IPTError(f"{what} {_show(target)} is one of this command's inputs{same}; it is never replaced, "
                       "choose another output name")


def check_new_output(path: str | os.PathLike, overwrite: bool = False, hint: str = "remove it or choose another name",
                     what: str = "output") -> Path:
    """`check_output_file`, and refuse one of this command's inputs, or (without `overwrite`)
    any existing file: the check a command makes before its work (`atomic_outputs` makes it
    again, and its final move is exclusive)."""
    path = check_output_file(path, what)
    _refuse_input(path, what)
    if not overwrite and os.path.lexists(path):
        raise IPTError(f"{what} {_show(path)} already exists; {hint}")
    return path


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


LOCK_FILE = ".ipt-ms.lock"


def _flock_holder(info: os.stat_result) -> int | None:
    """The process holding a flock on the file `info` describes, from /proc/locks (Linux), or None."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[4].isdigit():
                    major, minor, inode = fields[5].split(":")
                    if int(inode) == info.st_ino and os.makedev(int(major, 16), int(minor, 16)) == info.st_dev:
                        return int(fields[4])
    except (OSError, ValueError):
        return None
    return None


class FolderLock:
    """An exclusive lock on a folder, held while a command writes into it (a training's run folder).

    `fcntl.flock` on ``FOLDER/.ipt-ms.lock`` (an empty file; the holder's process id is
    read from /proc/locks, so a refused run changes nothing). The kernel drops the lock
    when the process ends in any way (SIGKILL included), so a crashed run never leaves a
    stale lock; a released lock removes its file, one left by a killed run is reused.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "run folder"):
        import fcntl

        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as err:
                raise write_error(self.path, err) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _flock_holder(os.fstat(fd))
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise write_error(self.path, err) from None
                who = f"process {holder}" if holder else "another process"
                raise IPTError(f"{what} {_show(self.folder)} is in use by {who} (a training still running there); "
                               "wait for it to end, or choose another folder") from None
            try:  # the file a releasing holder removed meanwhile is no lock: take the current one
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)
        raise IPTError(f"{what} {_show(self.folder)}: could not take its lock {_show(self.path)}")

    def release(self) -> None:
        """Let the next run in (the lock file goes too); also happens when this process ends."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # while still holding it: a waiting opener re-checks the name
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def save_figure(fig, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write a matplotlib figure as PNG atomically, then free it (long runs plot repeatedly)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path

