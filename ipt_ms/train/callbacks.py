"""The points at which the training loop calls out (MindCV callbacks, BasicSR hooks).

The loop (`ipt_ms.train.loop.Trainer`) knows the order of a step; everything else --
logging sinks, validation reports, a test's weight snapshots -- is a `Callback` it calls
at these points. Sinks run on rank 0 only; callbacks passed to `Trainer(callbacks=...)`
run on every rank.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipt_ms.train.loop import Trainer, TrainResult
    from ipt_ms.train.validation import ValidationReport

__all__ = ["Callback"]


class Callback:
    """Override the methods you need; each receives the trainer (its config, network, state)."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """After set-up and resume, before the first step of this call."""

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After every optimizer step; `record` is what metrics.jsonl gets (step, task, losses, lr, ...)."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Every `output.log_every` steps and at the last step (rank 0)."""

    def on_validation(self, trainer: Trainer, report: ValidationReport) -> None:
        """After a validation (rank 0), with per-task PSNR/SSIM, baselines and sample strips."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """After a training checkpoint was written (rank 0)."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """At the end of the call (finished, stopped by a signal or a step limit)."""

    def close(self) -> None:
        """Release files; called once, also when training fails."""
