"""What a training run produces: its result record, its files' names, and its one fatal outcome.

Kept apart from the loop so the callbacks and sinks that receive a `TrainResult` need not import
the loop that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ipt_ms.errors import IPTError

PLOT_FILE = "loss_curves.png"
CHECKPOINT_DIR = "checkpoints"


class NonFiniteLossError(IPTError):
    """The run stopped on a non-finite loss; the last good checkpoint is kept. Exit code 3."""

    exit_code = 3


@dataclass
class TrainResult:
    """What a call to `train` did."""

    run_dir: Path
    global_step: int
    epoch: int
    rank: int = 0
    world_size: int = 1
    checkpoint: Path | None = None
    weights: Path | None = None
    metrics: Path | None = None
    plot: Path | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (global step, total loss) of this call
    skipped_batches: int = 0
    overflow_steps: int = 0
    interrupted: int | None = None  # the signal that stopped the run (2, 15), if any
    validation: object | None = None  # the last `ValidationReport` of this call
    best: dict = field(default_factory=dict)  # task -> {"psnr", "step", "path"}
    image_notes: dict = field(default_factory=dict)  # conversion -> number of files (warned once each)

    def summary_lines(self) -> list[str]:
        """The end-of-run summary (printed by the CLI, appended to train.log)."""
        if self.interrupted is not None:
            from ipt_ms.signals import signal_name

            lines = [f"interrupted ({signal_name(self.interrupted)}) at step {self.global_step}: checkpoint "
                     f"{self.checkpoint}; continue with --resume"]
        else:
            lines = [f"step {self.global_step}: weights {self.weights}, checkpoint {self.checkpoint}, metrics "
                     f"{self.metrics}" + (f", plot {self.plot}" if self.plot else "")]
        if self.validation is not None:
            lines += [f"validation at step {self.validation.step}: {text}" for text in self.validation.lines()]
        for task, best in self.best.items():
            where = f" -> {best['path']}" if best.get("path") else ""
            lines.append(f"best {task}: PSNR-Y {best['psnr']:.2f} dB at step {best['step']}{where}")
        if self.image_notes:
            notes = ", ".join(f"{n} {kind}" for kind, n in sorted(self.image_notes.items()))
            lines.append(f"image files converted on reading (one warning each): {notes}")
        if self.skipped_batches:
            lines.append(f"skipped batches (non-finite): {self.skipped_batches}")
        return lines
