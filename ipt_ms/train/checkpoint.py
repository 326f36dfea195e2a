"""Training checkpoints: everything needed to continue a run as if it had never stopped.

One MindSpore .ckpt per checkpoint, written to a temporary file and renamed into place
(`ipt_ms.fileio.atomic_output`), so a kill -9 at any moment leaves either the previous
set of checkpoints or the new one, never a torn file. It holds:

* every network parameter (MindSpore names), the Adam moments (``exp_avg.*``,
  ``exp_avg_sq.*``) and step count (``state_step``), the dynamic loss scale;
* ``train_state``: a JSON string with the global step, the data position (epoch and
  step within it: the batch source is a pure function of seed, epoch and step, so
  this *is* the data position), the learning rate, the Python / NumPy / MindSpore RNG
  states, the world size and the resolved config;
* ``ipt_spec``: the architecture, and ``ipt_provenance``: the run, step and best validation
  PSNR-Y (`ipt_ms.provenance`), as in exported weights.

Checkpoints are named ``step_{global_step:09d}.ckpt``. After each write the run deletes
its own older checkpoints beyond `keep_last`: those of its *lineage* (the checkpoints it
wrote, and the ones written before the checkpoint it resumed from), oldest first, never
the one just written. Checkpoints of an abandoned continuation (written after the one
passed to ``--resume``) are left alone, so resuming from an older checkpoint never
deletes the newer ones; "latest" means the most recently written.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ipt_ms.convert.weights import SPEC_METADATA_KEY as SPEC_KEY
from ipt_ms.errors import IPTError

FORMAT_VERSION = 1
STATE_KEY = "train_state"
_NAME = re.compile(r"^step_(\d+)\.ckpt$")


@dataclass
class TrainState:
    """Position of a run: what a checkpoint records besides tensors."""

    global_step: int = 0  # batches consumed so far (including skipped ones)
    epoch: int = 0  # data position of the *next* batch
    step_in_epoch: int = 0
    steps_per_epoch: int = 0
    lr: float = 0.0
    world_size: int = 1
    skipped_batches: int = 0
    best: dict[str, Any] = field(default_factory=dict)  # validation: task -> {"psnr", "step"}
    config: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # `data_fingerprint` of the training set

    def to_json(self) -> str:
        data = dict(self.__dict__)
        data["format_version"] = FORMAT_VERSION
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str, source: str) -> TrainState:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise IPTError(f"{source}: unreadable training state ({err})") from err
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise IPTError(f"{source}: training checkpoint format {version!r} is not supported "
                           f"(this version writes {FORMAT_VERSION})")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def data_fingerprint(items, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """What identifies a training set: its number of items and a digest of their names and
    sizes (files) or names (pair datasets), so a resumed run notices images added or removed."""
    import hashlib

    digest = hashlib.sha256()
    if isinstance(items, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in items):
        for p in sorted(map(str, items)):
            try:
                size = os.stat(p).st_size
            except OSError:
                size = -1
            name = os.path.relpath(p, root) if root is not None else p  # however --data was spelled
            digest.update(f"{name}\0{size}\n".encode("utf-8", "surrogateescape"))
    else:
        names = getattr(items, "names", None)
        names = list(names() if callable(names) else names) if names is not None else []
        for name in sorted(map(str, names)):
            digest.update(f"{name}\n".encode("utf-8", "surrogateescape"))
    return {"items": len(items), "digest": digest.hexdigest()[:32]}


# ------------------------------------------------------------------------------- RNG states
def capture_rng() -> dict[str, Any]:
    """Python, NumPy (global) and MindSpore default-generator states, JSON-ready."""
    import mindspore as ms

    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "mindspore": ms.get_rng_state().asnumpy().tolist(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    import mindspore as ms

    if "python" in state:
        version, values, gauss = state["python"]
        random.setstate((version, tuple(values), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "mindspore" in state:
        current = ms.get_rng_state()
        ms.set_rng_state(ms.Tensor(np.asarray(state["mindspore"], dtype=current.asnumpy().dtype)))


# ------------------------------------------------------------------------------- files
def checkpoint_name(global_step: int) -> str:
    return f"step_{global_step:09d}.ckpt"


def checkpoint_step(path: str | Path) -> int | None:
    """The global step in a checkpoint's file name (None for other names)."""
    match = _NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def _written(path: Path) -> tuple[int, int]:
    return path.stat().st_mtime_ns, checkpoint_step(path) or 0


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints in `directory`, oldest written first (ties: lower step first;
    temporary files ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        if checkpoint_step(p) is not None and p.is_file():
            try:
                found.append((_written(p), p))
            except OSError:  # removed meanwhile
                continue
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The most recently written checkpoint of `directory` (None if there is none)."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def lineage_before(resumed: Path) -> list[Path]:
    """Checkpoints of `resumed`'s folder written no later than it (its own included),
    oldest first: the part of a resumed run's lineage that is already on disk."""
    try:
        mark = _written(resumed)
    except OSError:
        return []
    return [p for p in list_checkpoints(resumed.parent) if _written(p) <= mark]


def save_checkpoint(directory: str | Path, tensors: dict[str, np.ndarray], state: TrainState, spec_json: str,
                    keep_last: int, lineage: list[Path] | None = None, provenance: dict | None = None) -> Path:
    """Write one checkpoint atomically, then prune `lineage` (updated in place) to the
    newest `keep_last`; without a lineage, every checkpoint of `directory` counts.
    `provenance` is the run's record (`ipt_ms.train.weights.run_provenance`).

    A failed write (disk full, unwritable folder) raises IPTError in one line; the
    checkpoints already there are untouched.
    """
    from ipt_ms.convert.weights import write_ms_checkpoint
    from ipt_ms.provenance import PROVENANCE_METADATA_KEY, record_json

    directory = Path(directory)
    path = directory / checkpoint_name(state.global_step)
    metadata = {STATE_KEY: state.to_json(), SPEC_KEY: spec_json}
    if provenance is not None:
        metadata[PROVENANCE_METADATA_KEY] = record_json(provenance)
    try:  # write_ms_checkpoint keeps MindSpore's log quiet and removes its temporary files on failure
        write_ms_checkpoint(path, tensors, metadata, overwrite=True)
    except IPTError as err:
        raise IPTError(f"{err}; the checkpoints already in {directory} are kept") from err
    except (OSError, RuntimeError) as err:
        from ipt_ms.errors import first_line

        reason = err.strerror if isinstance(err, OSError) and err.strerror else first_line(err)
        raise IPTError(f"cannot write checkpoint {path}: {reason}; the checkpoints already in {directory} are "
                       "kept") from err
    if lineage is None:
        lineage = list_checkpoints(directory)
    else:
        lineage[:] = [p for p in lineage if p != path] + [path]
    while len(lineage) > keep_last:
        old = lineage.pop(0)
        if old != path:
            old.unlink(missing_ok=True)
    return path


def newest_readable(directory: str | Path) -> tuple[Path, tuple] | None:
    """The most recently written checkpoint of `directory` that loads, with its contents.

    When the newest one is unreadable (a truncated copy, a disk error) this raises
    IPTError naming it and the newest good one to pass to --resume instead.
    """
    found = list_checkpoints(directory)
    if not found:
        return None
    newest = found[-1]
    try:
        return newest, load_checkpoint(newest)
    except IPTError as err:
        reason = str(err)
        for older in reversed(found[:-1]):
            try:
                load_checkpoint(older)
            except IPTError:
                continue
            raise IPTError(f"the newest checkpoint {newest} cannot be read ({reason}); continue from the newest "
                           f"good one with --resume {older}") from err
        raise IPTError(f"the newest checkpoint {newest} cannot be read ({reason}), and no older one can "
                       "either") from err


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], TrainState, str | None]:
    """(tensors, state, spec json) of a training checkpoint; IPTError if it is not one."""
    from ipt_ms.convert.weights import read_ms_checkpoint

    path = Path(path)
    if not path.is_file():
        raise IPTError(f"checkpoint not found: {str(path)!r}")
    content = read_ms_checkpoint(path)
    text = content.pop(STATE_KEY, None)
    if not isinstance(text, str):
        raise IPTError(f"{str(path)!r} is a weights file, not a training checkpoint (no {STATE_KEY!r}); "
                       "use it with train.init / --init instead of --resume")
    spec_json = content.pop(SPEC_KEY, None)
    tensors = {k: v for k, v in content.items() if isinstance(v, np.ndarray)}
    return tensors, TrainState.from_json(text, str(path)), spec_json if isinstance(spec_json, str) else None
