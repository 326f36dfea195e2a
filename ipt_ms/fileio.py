"""File helpers shared by every command: atomic writes and output-path checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ipt_ms.errors import IPTError


def ensure_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create `path` if needed; raise IPTError naming it if it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise IPTError(f"{what} {str(path)!r} cannot be created: {err.strerror or err}") from err
    if not path.is_dir():
        raise IPTError(f"{what} {str(path)!r} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise IPTError(f"{what} {str(path)!r} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, keep_suffix: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it over `path` only if the block succeeds.

    A crash or exception leaves any existing file at `path` untouched and removes the
    temporary file. `keep_suffix` keeps the final extension on the temporary name, for
    writers that append their own extension (MindSpore adds ".ckpt" when missing).
    """
    path = Path(path)
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), "output directory")
    suffix = "".join(path.suffixes[-1:]) if keep_suffix else ""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.partial-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure as PNG atomically, then free it (long runs plot repeatedly)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def remove_stale_partials(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files `atomic_output` leaves when a process is killed mid-write
    (``.NAME.partial-*``) in `directory` (not recursive); returns what was removed.

    Call it only where no other process can be writing: e.g. a training run's own
    directory at start-up.
    """
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        if path.name.startswith(".") and ".partial-" in path.name and path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed
