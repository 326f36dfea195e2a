"""Resuming a run: which checkpoint, whether it fits the run's config and data, and putting it back.

A resumed run restores weights, Adam state, loss scale, weight averages, the best validation
scores, RNG states and the data position, so its losses equal those of an uninterrupted run;
anything that would make them differ (a changed config, other data, another epoch length) is
refused or, where the user asked for it, warned about.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ipt_ms.config import ConfigError
from ipt_ms.errors import IPTError
from ipt_ms.train.checkpoint import TrainState, latest_checkpoint, load_checkpoint, newest_readable
from ipt_ms.train.config import TrainConfig, resume_adjusted, resume_mismatch
from ipt_ms.train.result import CHECKPOINT_DIR

log = logging.getLogger("ipt_ms.train")


def resolve_resume(resume: str | bool | None, checkpoint_dir: Path) -> tuple[Path, tuple] | None:
    """(checkpoint, its contents) to resume from, or None for a fresh run."""
    if not resume:
        return None
    if resume is True or resume == "latest":
        found = newest_readable(checkpoint_dir)
        if found is None:
            raise IPTError(f"nothing to resume: no checkpoint in {str(checkpoint_dir)!r}")
        return found
    path = Path(resume)
    if path.is_dir():
        directory = path / CHECKPOINT_DIR if latest_checkpoint(path / CHECKPOINT_DIR) else path
        found = newest_readable(directory)
        if found is None:
            raise IPTError(f"nothing to resume: no checkpoint in {str(path)!r}")
        return found
    return path, load_checkpoint(path)


def check_resumable(saved: TrainState, cfg: TrainConfig, path: Path, world_size: int, is_main: bool) -> None:
    """Refuse a checkpoint trained with another config; warn about the settings a resume may change."""
    differences = resume_mismatch(saved.config, cfg)
    if differences:
        raise ConfigError(f"cannot resume from {path}: the config differs from the one it was "
                          f"trained with: {'; '.join(differences)}")
    adjusted = resume_adjusted(saved.config, cfg)
    if adjusted and is_main:
        log.warning("resuming with changed settings (the steps from here differ from the run so far): %s",
                    "; ".join(adjusted))
    if saved.world_size != world_size:
        log.warning("checkpoint was written by %d worker(s), resuming with %d: the data order changes, "
                    "so the run will not repeat an uninterrupted one exactly", saved.world_size, world_size)


def check_same_data(saved: TrainState, now: TrainState, cfg: TrainConfig, path: Path, is_main: bool) -> None:
    """Refuse (unless train.allow_data_change) training data or an epoch length other than the checkpoint's."""
    if saved.data and saved.data != now.data:
        then, current = saved.data.get("items"), now.data.get("items")
        what = f"{then} then, {current} now" if then != current else f"{current} as before, but not the same files"
        if not cfg.train.allow_data_change:
            raise IPTError(f"cannot resume from {path}: the training data in {cfg.data.root!r} changed "
                           f"since that checkpoint ({what}); pass --allow-data-change to go on with the "
                           "new set")
        if is_main:
            log.warning("resuming on changed training data (%s), as --allow-data-change asks", what)
    if saved.steps_per_epoch != now.steps_per_epoch:
        raise IPTError(f"cannot resume from {path}: an epoch had {saved.steps_per_epoch} steps, "
                       f"now {now.steps_per_epoch} (did the training data change?)")


def assign_parameters(params, tensors: dict[str, np.ndarray], what: str, source: Path) -> None:
    """Set each MindSpore parameter from the checkpoint's tensor of its name (all present, shapes equal)."""
    import mindspore as ms

    params = list(params)  # get_parameters() is a generator
    missing = [p.name for p in params if p.name not in tensors]
    if missing:
        raise IPTError(f"{source}: checkpoint lacks {len(missing)} {what} tensor(s), e.g. {missing[0]!r}")
    for p in params:
        value = tensors[p.name]
        if value.size == int(np.prod(p.shape)):
            value = value.reshape(tuple(p.shape))  # MindSpore stores 0-d tensors as shape (1,)
        if tuple(value.shape) != tuple(p.shape):
            raise IPTError(f"{source}: {p.name} has shape {tuple(value.shape)} in the checkpoint, "
                           f"{tuple(p.shape)} in the network")
        p.set_data(ms.Tensor(np.array(value, order="C"), dtype=p.dtype))  # ascontiguousarray makes 0-d 1-d
