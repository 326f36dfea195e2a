"""Where a run's numbers go (rank 0): metrics.jsonl, TensorBoard event files, train.log.

* `JsonlSink`: one JSON object per logged step (and one per validation, with
  ``"kind": "val"``) in metrics.jsonl, with the loss of every step since the previous
  logged one; lines after the resumed step are dropped first.
* `TensorBoardSink`: event files written by tensorboardX into the run directory, so
  ``tensorboard --logdir runs/`` shows every run: train/loss, l1, contrastive, lr,
  grad_norm, pairs_per_s (and loss_scale with mixed precision); val/<task>/psnr_y,
  ssim_y and their baselines; input | output | target strips of a few validation
  images. A resumed run purges the events after its checkpoint's step.
* `TextLogSink`: train.log, the plain-text story of the run (start, resume, logged
  steps, validations, checkpoints, warnings of the library, the end).
* `ConsoleSink`: the same step lines on stderr, for a console without a progress bar (a
  pipe, nohup, a worker log under msrun that the launcher shows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipt_ms.train.callbacks import Callback
from ipt_ms.train.metrics import STEP_LOSSES, MetricsLog

if TYPE_CHECKING:
    from ipt_ms.train.callbacks import TrainerView
    from ipt_ms.train.config import TrainConfig
    from ipt_ms.train.result import TrainResult
    from ipt_ms.train.validation import ValidationReport

__all__ = ["ConsoleSink", "JsonlSink", "METRICS_FILE", "TEXT_LOG_FILE", "RecordCollector", "TensorBoardSink",
           "TextLogSink", "open_sinks", "step_line"]

METRICS_FILE = "metrics.jsonl"
TEXT_LOG_FILE = "train.log"
log = logging.getLogger("ipt_ms.train")


def step_line(record: dict[str, Any]) -> str:
    """One logged step in words (train.log and the console)."""
    extra = f" scale {record['loss_scale']:g}" if "loss_scale" in record else ""
    return (f"step {record['step']} epoch {record['epoch']} batch {record['batch']} task {record['task']}: "
            f"loss {record['loss']:.6g} l1 {record['l1']:.6g} contrastive {record['contrastive']:.6g} "
            f"lr {record['lr']:.3g} grad_norm {record['grad_norm']:.4g} {record['pairs_per_s']:.1f} pairs/s"
            + ("" if record["applied"] else " (not applied: non-finite)") + extra)


class JsonlSink(Callback):
    """metrics.jsonl: the machine-readable log (`ipt_ms.train.metrics.read_metrics`).

    A logged step's record also carries ``step_losses``: ``[step, task, loss]`` of every
    step since the previous logged one (this one included), so the loss plot shows each
    step's raw loss, not one sample per `output.log_every` steps."""

    def __init__(self, run_dir: Path, resumed_step: int):
        self.log = MetricsLog(run_dir / METRICS_FILE)
        self.log.truncate_after(resumed_step)
        self._steps: list[list] = []

    @property
    def path(self) -> Path:
        return self.log.path

    def on_step_end(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        self._steps.append([record["step"], record["task"], record["loss"]])

    def on_log(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        self.log.write({**record, STEP_LOSSES: self._steps or [[record["step"], record["task"], record["loss"]]]})
        self._steps = []

    def on_validation(self, trainer: TrainerView, report: ValidationReport) -> None:
        self.log.write({"kind": "val", "step": report.step, "time": time.time(), "tasks": report.as_dict()})

    def close(self) -> None:
        self.log.close()


class TensorBoardSink(Callback):
    """TensorBoard event files in the run directory (tensorboardX)."""

    TRAIN_SCALARS = ("loss", "l1", "contrastive", "lr", "grad_norm", "pairs_per_s", "loss_scale")

    def __init__(self, run_dir: Path, resumed_step: int):
        from tensorboardX import SummaryWriter

        # purge_step: TensorBoard hides events of the interrupted run from this step on
        self.writer = SummaryWriter(logdir=str(run_dir), purge_step=resumed_step + 1 if resumed_step else None,
                                    flush_secs=20)

    def on_log(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        step = record["step"]
        for key in self.TRAIN_SCALARS:
            if key in record:
                self.writer.add_scalar(f"train/{key}", record[key], step)
        self.writer.add_scalar(f"train/loss_{record['task']}", record["loss"], step)

    def on_validation(self, trainer: TrainerView, report: ValidationReport) -> None:
        for task, r in report.tasks.items():
            for key in ("psnr", "ssim", "baseline_psnr", "baseline_ssim"):
                value = getattr(r, key)
                if value is not None:
                    self.writer.add_scalar(f"val/{task}/{key.replace('psnr', 'psnr_y').replace('ssim', 'ssim_y')}",
                                           value, report.step)
            for name, strip in r.strips.items():
                self.writer.add_image(f"val/{task}/{name}", strip, report.step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TextLogSink(Callback):
    """train.log: human-readable lines, plus every warning the library logs during the run."""

    def __init__(self, run_dir: Path, resumed_step: int, earlier: Sequence[logging.LogRecord] = ()):
        self.path = run_dir / TEXT_LOG_FILE
        self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        self.handler = logging.StreamHandler(self.handle)
        self.handler.setLevel(logging.INFO)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        for record in earlier:  # logged while the run was being set up
            self.handler.handle(record)
        self.library = logging.getLogger("ipt_ms")
        self.library.addHandler(self.handler)

    def line(self, text: str) -> None:
        self.handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        self.handle.flush()

    def on_log(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        self.line(step_line(record))

    def on_validation(self, trainer: TrainerView, report: ValidationReport) -> None:
        for text in report.lines():
            self.line(f"validation at step {report.step}: {text}")

    def on_checkpoint(self, trainer: TrainerView, path: Path) -> None:
        self.line(f"checkpoint {path}")

    def on_train_end(self, trainer: TrainerView, result: TrainResult) -> None:
        for text in result.summary_lines():
            self.line(text)

    def close(self) -> None:
        self.library.removeHandler(self.handler)
        self.handle.close()


class ConsoleSink(Callback):
    """Step lines on stderr where no progress bar is drawn (stderr not a terminal): under
    nohup or msrun the console, or the worker log the launcher shows, says how far the run
    got. Validation lines, "resumed from" and the summary reach the console elsewhere (the
    library's log, the CLI)."""

    def __init__(self, stream=None):
        import sys

        self.stream = stream if stream is not None else sys.stderr

    def on_log(self, trainer: TrainerView, record: dict[str, Any]) -> None:
        print(step_line(record), file=self.stream, flush=True)


def open_sinks(cfg: TrainConfig, run_dir: Path, resumed_step: int, earlier: Sequence[logging.LogRecord] = (),
               console: bool = False) -> list[Callback]:
    """The sinks of a run (rank 0), metrics.jsonl's first: train.log (starting with the `earlier`
    records of the set-up), TensorBoard when output.tensorboard, step lines on stderr when `console`
    (where no bar is drawn: a pipe, a worker log). Nothing is left open if one fails to open."""
    sinks: list[Callback] = []
    try:
        sinks.append(JsonlSink(run_dir, resumed_step))
        sinks.append(TextLogSink(run_dir, resumed_step, earlier=earlier))
        if cfg.output.tensorboard:
            sinks.append(TensorBoardSink(run_dir, resumed_step))
        if console:
            sinks.append(ConsoleSink())
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


class RecordCollector(logging.Handler):
    """Keeps the log records of the set-up (unreadable or grayscale images), for train.log once it opens."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
