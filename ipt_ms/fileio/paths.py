"""Output-path checks made before any work, and the one-line errors of writing.

An output path is checked before a command starts (`check_output_file`, `check_output_dir`,
`check_new_output`); the files a command read are recorded (`note_input`) so that no output replaces
one of them; a failed write (full disk, read-only file system, missing permission) becomes one line
naming the file (`write_error`). The rules are in `ipt_ms.fileio`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ipt_ms.errors import CONTROL_CHARACTER, IPTError, first_line

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "file too large")
#: what `atomic_output` tells a user whose command has an --overwrite option
OVERWRITE_HINT = "pass --overwrite to replace it"
#: (st_dev, st_ino) -> path of every file this process read as an input (`note_input`)
_INPUTS: dict[tuple[int, int], str] = {}


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
