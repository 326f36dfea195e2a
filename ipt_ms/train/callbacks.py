"""The points at which the training loop calls out (MindCV callbacks, BasicSR hooks).

The loop (`ipt_ms.train.loop.Trainer`) knows the order of a step; everything else --
logging sinks, validation reports, a test's weight snapshots -- is a `Callback` it calls
at these points. Sinks run on rank 0 only; callbacks passed to `Trainer(callbacks=...)`
run on every rank. A callback sees the trainer through `TrainerView`, so this module (and
the sinks) need not import the loop that calls them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ipt_ms.spec import IPTSpec
    from ipt_ms.train.checkpoint import TrainState
    from ipt_ms.train.config import TrainConfig
    from ipt_ms.train.distributed import DistInfo
    from ipt_ms.train.result import TrainResult
    from ipt_ms.train.validation import ValidationReport

__all__ = ["Callback", "TrainerView"]


class TrainerView(Protocol):
    """What a callback may read of the trainer that calls it (`ipt_ms.train.loop.Trainer` is one)."""

    cfg: TrainConfig
    spec: IPTSpec
    net: Any  # the MindSpore network; its parameters are the trained weights
    state: TrainState  # global step, epoch, position in the data, best validation scores
    dist: DistInfo  # rank and world size
    run_dir: Path
    last_checkpoint: Path | None

    def eval_weights(self) -> dict | None:
        """The weights validation and export use instead of the trained ones (the EMA), if any."""


class Callback:
    """Override the methods you need; each receives the trainer (its config, network, state)."""

    def on_train_begin(self, trainer: TrainerView) -> None:
        """After set-up and resume, before the first step of this call."""

    def on_step_end(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        """After every optimizer step; `record` is what metrics.jsonl gets (step, task, losses, lr, ...)."""

    def on_log(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        """Every `output.log_every` steps and at the last step (rank 0)."""

    def on_validation(self, trainer: TrainerView, report: ValidationReport) -> None:
        """After a validation (rank 0), with per-task PSNR/SSIM, baselines and sample strips."""

    def on_checkpoint(self, trainer: TrainerView, path: Path) -> None:
        """After a training checkpoint was written (rank 0)."""

    def on_train_end(self, trainer: TrainerView, result: TrainResult) -> None:
        """At the end of the call (finished, stopped by a signal or a step limit)."""

    def close(self) -> None:
        """Release files; called once, also when training fails."""
