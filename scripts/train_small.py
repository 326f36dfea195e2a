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
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STAGES = (("pretrain", "configs/small_pretrain.yaml"), ("finetune", "configs/small_finetune.yaml"))
SHIPPED = ROOT / "ipt_ms" / "pretrained" / "ipt_small.safetensors"


def run_stage(name: str, config: Path, run: Path, photos: Path, init: Path | None) -> None:
    """Train one stage to its end, resuming it when an earlier call stopped part-way."""
    from ipt_ms.train.stages import StageStoppedError, config_steps, run_to_end

    start = time.monotonic()
    try:
        trained = run_to_end(config, run, photos, [f"train.init={init}"] if init else [], label=name, quiet=True)
    except StageStoppedError as err:
        raise SystemExit(str(err)) from None
    if trained:
        print(f"[{name}] {config_steps(config)} steps done ({(time.monotonic() - start) / 60:.1f} min in this call)",
              flush=True)
    else:
        print(f"[{name}] done earlier: {run / 'model.ckpt'}", flush=True)


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
