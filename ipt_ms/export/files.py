"""Where export files go: output names per task, and the scratch folder MindSpore's exporters can write in."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.fileio import disk_full


def output_paths(output: str | os.PathLike, fmt: str, tasks: list[str], stem: str) -> dict[str, Path]:
    """Where each task's file goes.

    One task: `output` itself (or `output/<stem>_<task>.<fmt>` when it is a folder).
    Several: `output` is a folder, or a file name that gets `_<task>` before its suffix.
    """
    output = Path(output)
    suffix = f".{fmt}"
    as_dir = output.is_dir() or str(output).endswith(os.sep) or output.suffix == ""
    if as_dir:
        return {t: output / f"{stem}_{t}{suffix}" for t in tasks}
    if output.suffix.lower() != suffix:
        raise IPTError(f"output {str(output)!r} should end in {suffix} for --format {fmt}")
    if len(tasks) == 1:
        return {tasks[0]: output}
    return {t: output.with_name(f"{output.stem}_{t}{suffix}") for t in tasks}


def writable_parent(path: Path) -> Path:
    """Check the output folder before a long export, not after."""
    from ipt_ms.fileio import ensure_writable_dir

    return ensure_writable_dir(path.parent if str(path.parent) else Path("."))


MINDSPORE_FILE_NAME = re.compile(r"^[0-9a-zA-Z@_\-.:/\\]+$")  # mindspore._checkparam's rule for export names


@contextlib.contextmanager
def mindspore_scratch(path: Path):
    """A temporary folder whose absolute name MindSpore's exporters accept; removed afterwards.

    Next to `path` when that folder's name qualifies (the result is then renamed, not
    copied), else in the system temporary folder. A full disk there is one line.
    """
    folder = writable_parent(path).resolve()
    candidates = [folder, Path(tempfile.gettempdir()).resolve()]
    base = next((c for c in candidates if MINDSPORE_FILE_NAME.match(str(c))), None)
    if base is None:
        raise IPTError(f"MindSpore cannot write under {str(folder)!r} (its exporters accept only ASCII letters, "
                       f"digits and @_-.:/ in file names) and neither under {str(candidates[1])!r}; set TMPDIR "
                       "to such a folder")
    with tempfile.TemporaryDirectory(prefix=".ipt-export-", dir=base) as scratch:
        try:
            yield Path(scratch)
        except IPTError:
            raise
        except Exception as err:
            if disk_full(err, scratch):
                where = "" if base == folder else f" (MindSpore's scratch file in {str(base)!r})"
                raise IPTError(f"cannot write {str(path)!r}: no space left on device{where}") from None
            raise


def move_into(source: Path, tmp: Path) -> None:
    """Move a finished scratch file onto an `atomic_output` temporary name (rename, or copy across file systems)."""
    try:
        os.replace(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
