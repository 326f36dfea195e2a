"""Training-step time and peak memory: MindSpore Graph, MindSpore PyNative, PyTorch twin.

Usage:  .venv/bin/python bench/train_step.py [--preset medium] [--batch 2] [--steps 5] [--json out.json]

One run measures all three on the same machine, the same config and the same batches:
the full `ipt_ms.train` step (IPTLoss with L1 + 0.1 x Eq. 5 contrastive, backward,
global-norm clipping, Adam) against `parity.train_parity.TorchTrainer` doing the same
in PyTorch. Each framework runs in its own child process so its peak resident memory
(ru_maxrss) is its own. Reported: the first step (MindSpore Graph: compilation), the
median of the timed steps after `--warmup` steps, and the peak RSS.

Presets (all with one sr_x2 head, 48x48 input patches, patch_dim 3, 12 heads):
  full    the paper's body: 64 features, 12 encoder + 12 decoder layers (115M params)
  medium  64 features, 2 + 2 layers (the full-size token width at a sixth of the depth)
  tiny    IPTSpec.tiny: 8 features, 1 + 1 layers, 24-px patches, 2 heads
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FRAMEWORKS = ("mindspore-graph", "mindspore-pynative", "torch")


def spec_for(preset: str):
    from ipt_ms.spec import IPTSpec

    if preset == "tiny":
        return IPTSpec.tiny(scales=(2,))
    layers = {"full": 12, "medium": 2}[preset]
    return IPTSpec.official("sr_x2", num_layers=layers)


def measure(framework: str, preset: str, batch: int, warmup: int, steps: int) -> dict:
    """Run in a child process: time `warmup + steps` training steps of one framework."""
    import ipt_ms  # noqa: F401  (environment defaults before MindSpore loads)
    from parity.seeded import seeded_state
    from parity.train_parity import MindSporeTrainer, TorchTrainer, make_batches

    spec = spec_for(preset)
    state = seeded_state(spec, 0)
    options = dict(lr=1e-4, clip_norm=1.0, contrastive="eq5", weight=0.1)
    if framework.startswith("mindspore"):
        from ipt_ms.runtime import configure

        configure("CPU", framework.split("-")[1])
        trainer = MindSporeTrainer(spec, state, **options)
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        trainer = TorchTrainer(spec, state, **options)
    del state
    data = make_batches(spec, 1, batch, seed=0) * (warmup + steps)
    times, losses = [], []
    for lr, hr, task in data:
        start = time.perf_counter()
        losses.append(trainer.step(lr, hr, task))
        times.append(time.perf_counter() - start)
    return {"framework": framework, "first_step_s": times[0], "median_step_s": statistics.median(times[warmup:]),
            "min_step_s": min(times[warmup:]), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "last_loss": losses[-1], "params": spec.num_parameters()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium", choices=("tiny", "medium", "full"))
    parser.add_argument("--batch", type=int, default=2, help="images per step (>= 2 for the contrastive loss)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the warm-up")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.preset, args.batch, args.warmup, args.steps)))
        return 0

    rows = []
    load_before = os.getloadavg()[0]
    for framework in args.frameworks.split(","):
        cmd = [sys.executable, __file__, "--child", framework, "--preset", args.preset, "--batch", str(args.batch),
               "--warmup", str(args.warmup), "--steps", str(args.steps)]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            print(f"{framework} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()[0]

    spec = spec_for(args.preset)
    print(f"preset {args.preset}: {spec.num_parameters():,} params, {spec.num_layers}+{spec.num_layers} layers, "
          f"n_feats {spec.n_feats}, batch {args.batch} x {spec.patch_size}px sr_x2, L1 + 0.1 x Eq. 5, clip 1.0, Adam")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load_before:.1f} before / {load_after:.1f} after\n")
    print("| framework | first step (s) | median step (s) | fastest step (s) | peak RSS (MB) | loss after run |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['framework']} | {r['first_step_s']:.2f} | {r['median_step_s']:.3f} | {r['min_step_s']:.3f} | "
              f"{r['peak_rss_mb']:,.0f} | {r['last_loss']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"preset": args.preset, "batch": args.batch, "rows": rows,
                                               "load": [load_before, load_after]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
