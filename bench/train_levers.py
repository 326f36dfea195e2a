"""What each MindSpore setting does to the full model's training step: time and peak memory.

Usage:  .venv/bin/python bench/train_levers.py [--levers a,b,...] [--steps 3] [--json FILE]

Every lever runs in a process of its own (peak RSS = VmHWM is its own) with the compile
cache off, the same seeded weights, batch and loss as `bench/train_step.py` (L1 + 0.1 x
Eq. 5, clip 1.0, Adam, batch 2 of 48x48, sr_x2), and one warm-up step before the timed
ones. A lever MindSpore rejects is reported with its error, not skipped. Levers:

  shipped          what ipt-ms does on CPU: convolutions as im2col + matmul, oneDNN at its full ISA
  native-conv-avx2 the previous setup: native convolutions, ONEDNN_MAX_CPU_ISA=AVX2
  mem-O1           memory_optimize_level O1
  jit-O1           jit_config jit_level O1 (the default on CPU is O0)
  graph-kernel     enable_graph_kernel (graph-kernel fusion)
  recompute        encoder and decoder layers recomputed in the backward pass (`Cell.recompute`)
  pynative         PyNative mode (no graph: frees each intermediate when no longer needed)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF = str(Path(__file__).resolve())  # children run in a scratch folder
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadmeter import scratch_dir  # noqa: E402

LEVERS = ("shipped", "native-conv-avx2", "mem-O1", "jit-O1", "graph-kernel", "recompute", "pynative")


def _apply(lever: str, net) -> None:
    import mindspore as ms

    from ipt_ms.models import set_conv_as_matmul

    if lever == "native-conv-avx2":
        set_conv_as_matmul(net, False)
    elif lever == "mem-O1":
        ms.set_context(memory_optimize_level="O1")
    elif lever == "jit-O1":
        ms.set_context(jit_config={"jit_level": "O1"})
    elif lever == "graph-kernel":
        ms.set_context(enable_graph_kernel=True)
    elif lever == "recompute":
        for layer in list(net.body.encoder.layers) + list(net.body.decoder.layers):
            layer.recompute()


def measure(lever: str, warmup: int, steps: int) -> dict:
    """In a child process: the training step under one lever."""
    import ipt_ms  # noqa: F401  (environment defaults before MindSpore loads)
    from bench.loadmeter import memory_mib
    from bench.train_step import spec_for
    from ipt_ms.runtime import configure
    from parity.seeded import seeded_state
    from parity.train_parity import MindSporeTrainer, make_batches

    configure("CPU", "pynative" if lever == "pynative" else "graph")
    spec = spec_for("full")
    trainer = MindSporeTrainer(spec, seeded_state(spec, 0), lr=1e-4, clip_norm=1.0, contrastive="eq5", weight=0.1)
    _apply(lever, trainer.net)
    times, losses = [], []
    for lr, hr, task in make_batches(spec, 1, 2, seed=0) * (warmup + steps):
        start = time.perf_counter()
        losses.append(trainer.step(lr, hr, task))
        times.append(time.perf_counter() - start)
    return {"lever": lever, "first_step_s": times[0], "median_step_s": statistics.median(times[warmup:]),
            "peak_rss_mb": memory_mib("VmHWM"), "last_loss": losses[-1]}


def run_child(lever: str, warmup: int, steps: int) -> dict:
    env = dict(os.environ, IPT_MS_COMPILE_CACHE="0")
    if lever == "native-conv-avx2":
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    cmd = [sys.executable, SELF, "--child", lever, "--warmup", str(warmup), "--steps", str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=scratch_dir(), env=env)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith(" ")]
        return {"lever": lever, "error": (lines[-1] if lines else f"exit {done.returncode}")[:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.warmup, args.steps)))
        return 0
    levers = [lever.strip() for lever in args.levers.split(",") if lever.strip()]
    unknown = sorted(set(levers) - set(LEVERS))
    if unknown:
        parser.error(f"unknown lever(s) {', '.join(unknown)}; choose from {', '.join(LEVERS)}")
    from bench.loadmeter import OthersMeter

    rows = []
    for lever in levers:
        with OthersMeter() as meter:
            row = run_child(lever, args.warmup, args.steps)
        row["others_cores"] = meter.cores
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    base = next((r for r in rows if r["lever"] == "shipped" and "error" not in r), None)
    print("| lever | first step (s) | median step (s) | vs shipped | peak RSS (MB) | vs shipped | loss | others |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['lever']} | error: {r['error']} | | | | | | {r['others_cores']:.2f} |")
            continue
        speed = f"{base['median_step_s'] / r['median_step_s']:.2f}x" if base else "-"
        memory = f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x" if base else "-"
        print(f"| {r['lever']} | {r['first_step_s']:.1f} | {r['median_step_s']:.3f} | {speed} | "
              f"{r['peak_rss_mb']:,.0f} | {memory} | {r['last_loss']:.4f} | {r['others_cores']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
