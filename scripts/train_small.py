"""Train the shipped small model `ipt_small` from scratch: `make train-small`.

    .venv/bin/python scripts/train_small.py [--runs runs/small] [--install]

1. Writes the training photos (`ipt_ms.eval.photos.TRAINING_PHOTOS`: scikit-image's and
   matplotlib's bundled photos, the held-out ones excluded) to RUNS/photos.
2. Stage 1, configs/small_pretrain.yaml: six-task pre-training with L1 + 0.1 x Eq. 5.
3. Stage 2, configs/small_finetune.yaml: fine-tuning of all six tasks from stage 1's
   weights, no contrastive term, cosine learning rate, EMA of the weights.
4. Writes RUNS/ipt_small.safetensors (stage 2's EMA weights, with their provenance);
   `--install` copies it to ipt_ms/pretrained/, where `create_model("ipt_small",
   pretrained=True)` finds it (an existing file there is replaced only with --install).

Each stage is an `ipt-ms pretrain` subprocess. The command is resumable: run it again after
a Ctrl-C, a crash or a reboot and a stage that finished is skipped, an interrupted one goes
on from its newest checkpoint (`--resume`), bit for bit as if it had not stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STAGES = (("pretrain", "configs/small_pretrain.yaml"), ("finetune", "configs/small_finetune.yaml"))
SHIPPED = ROOT / "ipt_ms" / "pretrained" / "ipt_small.safetensors"


def stage_steps(config: Path) -> int:
    """The number of optimizer steps a stage's config trains."""
    from ipt_ms.train.config import load_train_config

    cfg = load_train_config(str(config))
    return cfg.schedule.epochs * (cfg.data.samples_per_epoch // cfg.data.batch_size)


def finished_step(run: Path) -> int:
    """The step of the run's final weights (model.ckpt), 0 when it has none."""
    from ipt_ms.convert.weights import read_weight_file

    weights = run / "model.ckpt"
    if not weights.is_file():
        return 0
    record = read_weight_file(weights).provenance or {}
    return int(record.get("step", 0)) if record.get("kind") == "trained" else 0


def run_stage(name: str, config: Path, run: Path, photos: Path, init: Path | None) -> None:
    """Train one stage to its end, resuming it when an earlier call stopped part-way."""
    steps = stage_steps(config)
    if finished_step(run) >= steps:
        print(f"[{name}] done earlier: {run / 'model.ckpt'} is at step {steps}", flush=True)
        return
    command = [sys.executable, "-m", "ipt_ms", "pretrain", "--config", str(config), "--data", str(photos),
               "-o", str(run), "-q"]
    if init is not None:
        command += ["--set", f"train.init={init}"]
    if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()):
        command.append("--resume")
    print(f"[{name}] {' '.join(command[1:])}", flush=True)
    start = time.monotonic()
    code = subprocess.run(command, cwd=ROOT).returncode
    if code != 0:
        raise SystemExit(f"[{name}] stopped (exit {code}); run the same command again to resume it")
    if finished_step(run) < steps:
        raise SystemExit(f"[{name}] ended before step {steps}; run the same command again to resume it")
    print(f"[{name}] {steps} steps in {(time.monotonic() - start) / 60:.1f} min (this call)", flush=True)


def package(run: Path, out: Path) -> None:
    """Write the stage-2 EMA weights as a self-describing .safetensors file."""
    from ipt_ms.convert.weights import convert_file

    convert_file(run / "model.ckpt", out, overwrite=True)  # the run's own output, rewritten on a re-run
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/small", help="folder for the photos and both runs")
    parser.add_argument("--install", action="store_true", help=f"copy the result to {SHIPPED.relative_to(ROOT)}")
    args = parser.parse_args(argv)

    from ipt_ms.eval.photos import write_training_photos

    runs = Path(args.runs).resolve()
    photos = runs / "photos"
    write_training_photos(photos)
    init = None
    for name, config in STAGES:
        run = runs / name
        run_stage(name, ROOT / config, run, photos, init)
        init = run / "model.ckpt"
    result = runs / "ipt_small.safetensors"
    package(runs / STAGES[-1][0], result)
    if args.install:
        SHIPPED.parent.mkdir(exist_ok=True)
        tmp = SHIPPED.with_name(f".{SHIPPED.name}.{os.getpid()}.partial")
        shutil.copyfile(result, tmp)
        os.replace(tmp, SHIPPED)
        print(f"installed {SHIPPED}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
