"""Run a training to its end across interruptions: the building block of recipes with many runs
(`make train-small`, `make replicate`).

A run is done when its final weights (``model.ckpt``) record, in their provenance, the
step count its config trains to. Otherwise it is started, or resumed from its newest
checkpoint (`ipt-ms pretrain --resume`), as a subprocess: Ctrl-C and SIGTERM stop it the
way they stop the CLI, and calling `run_to_end` again goes on where it stopped.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ipt_ms.errors import IPTError

__all__ = ["StageStoppedError", "config_steps", "finished_step", "run_to_end"]


class StageStoppedError(IPTError):
    """A training subprocess stopped before its last step; running the recipe again resumes it."""


def config_steps(config: str | Path, overrides: Sequence[str] = ()) -> int:
    """The number of optimizer steps a training config (with `--set` overrides) trains."""
    from ipt_ms.train.config import load_train_config

    cfg = load_train_config(str(config), list(overrides))
    return cfg.schedule.epochs * (cfg.data.samples_per_epoch // cfg.data.batch_size)


def finished_step(run: str | Path) -> int:
    """The step the run's final weights (model.ckpt) were written at; 0 when there are none."""
    from ipt_ms.convert.weights import read_weight_file

    weights = Path(run) / "model.ckpt"
    if not weights.is_file():
        return 0
    record = read_weight_file(weights).provenance or {}
    return int(record.get("step", 0)) if record.get("kind") == "trained" else 0


def run_to_end(config: str | Path, run: str | Path, data: str | Path, overrides: Sequence[str] = (),
               command: str = "pretrain", label: str | None = None, quiet: bool = True) -> bool:
    """Train `config` into `run` until its last step; False when it was already done.

    Raises `StageStoppedError` when the subprocess ends early (a signal, an error it printed).
    """
    run = Path(run)
    steps = config_steps(config, overrides)
    label = label or run.name
    if finished_step(run) >= steps:
        return False
    args = [sys.executable, "-m", "ipt_ms", command, "--config", str(config), "--data", str(data), "-o", str(run)]
    for item in overrides:
        args += ["--set", item]
    if quiet:
        args.append("-q")
    checkpoints = run / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        args.append("--resume")
    print(f"[{label}] ipt-ms {' '.join(args[3:])}", flush=True)
    code = subprocess.run(args).returncode
    if code != 0:
        raise StageStoppedError(f"[{label}] stopped (exit {code}); run the same command again to resume it")
    if finished_step(run) < steps:
        raise StageStoppedError(f"[{label}] ended before step {steps}; run the same command again to resume it")
    return True
