"""Where a training step's time goes: per-operator profile of MindSpore Graph and of the PyTorch twin.

Usage:
    .venv/bin/python bench/profile_train.py [--preset full] [--steps 2] [--top 25]
    .venv/bin/python bench/profile_train.py --preset tiny --steps 1      # smoke

Each framework runs in its own process: two warm-up steps (compilation), then `--steps`
steps under the framework's own profiler (`mindspore.Profiler` with CPU activity: the
host kernels' execution times; `torch.profiler`: self CPU time per aten operator). Prints,
per framework, the operator types by total time per step and the share of the step they
take, plus MindSpore's forward / backward / optimizer split (from the operators' scopes).
The step is `bench/train_step.py`'s: L1 + 0.1 x Eq. 5, clip 1.0, Adam, batch 2, sr_x2.
Nothing is asserted; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF = str(Path(__file__).resolve())  # children run in a scratch folder
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadmeter import scratch_dir  # noqa: E402


def _trainer(framework: str, preset: str):
    import ipt_ms  # noqa: F401  (environment defaults before MindSpore loads)
    from bench.train_step import spec_for
    from parity.seeded import seeded_state
    from parity.train_parity import MindSporeTrainer, TorchTrainer, make_batches

    spec = spec_for(preset)
    options = dict(lr=1e-4, clip_norm=1.0, contrastive="eq5", weight=0.1)
    if framework == "mindspore":
        from ipt_ms.runtime import configure

        configure("CPU", "graph")
        trainer = MindSporeTrainer(spec, seeded_state(spec, 0), **options)
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        trainer = TorchTrainer(spec, seeded_state(spec, 0), **options)
    return trainer, make_batches(spec, 1, 2, seed=0)[0]


def _phase(scope: str) -> str:
    if "/update-ParameterUpdate/" in scope or scope.startswith("Default/update-"):
        return "optimizer (clip + Adam)"
    if scope.startswith("Gradients/"):
        return "backward"
    return "forward + loss"


def profile_mindspore(preset: str, steps: int, keep: str | None = None) -> dict:
    import mindspore as ms
    from mindspore.profiler import ProfilerActivity

    trainer, (lr, hr, task) = _trainer("mindspore", preset)
    for _ in range(2):
        trainer.step(lr, hr, task)
    with tempfile.TemporaryDirectory(prefix="ipt-prof-", dir=keep) as out:
        start = time.perf_counter()
        prof = ms.Profiler(output_path=out, activities=[ProfilerActivity.CPU])
        for _ in range(steps):
            trainer.step(lr, hr, task)
        prof.stop()
        wall = (time.perf_counter() - start) / steps
        prof.analyse()
        detail = next(Path(out).rglob("cpu_op_detail_info_*.csv"))
        if keep:
            import shutil

            shutil.copy(detail, Path(keep) / "mindspore_op_detail.csv")
        by_type, by_phase = defaultdict(float), defaultdict(float)
        with open(detail, newline="") as fh:
            for row in csv.DictReader(fh):
                ms_time = float(row["op_total_time(ms)"]) / steps
                by_type[row["op_type"]] += ms_time
                by_phase[_phase(row["full_op_name"])] += ms_time
    return {"wall_ms": 1000 * wall, "by_type": dict(by_type), "by_phase": dict(by_phase)}


def profile_torch(preset: str, steps: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    trainer, (lr, hr, task) = _trainer("torch", preset)
    for _ in range(2):
        trainer.step(lr, hr, task)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            trainer.step(lr, hr, task)
    wall = (time.perf_counter() - start) / steps
    by_type = {e.key: e.self_cpu_time_total / 1000 / steps for e in prof.key_averages()}
    del torch
    return {"wall_ms": 1000 * wall, "by_type": by_type, "by_phase": {}}


def render(results: dict, top: int) -> str:
    lines = []
    for framework, r in results.items():
        total = sum(r["by_type"].values())
        lines += ["", f"### {framework}: {r['wall_ms']:.0f} ms per profiled step (profiler overhead included), "
                      f"operators {total:.0f} ms", ""]
        if r["by_phase"]:
            lines += ["| phase | ms per step | share |", "|---|---:|---:|"]
            lines += [f"| {k} | {v:.1f} | {100 * v / total:.1f}% |"
                      for k, v in sorted(r["by_phase"].items(), key=lambda kv: -kv[1])]
            lines.append("")
        lines += ["| operator | ms per step | share |", "|---|---:|---:|"]
        for name, ms_time in sorted(r["by_type"].items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"| {name} | {ms_time:.1f} | {100 * ms_time / total:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=("tiny", "medium", "full"))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frameworks", default="mindspore,torch")
    parser.add_argument("--keep", default=None, help="copy MindSpore's per-operator CSV into this folder")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "mindspore":
            result = profile_mindspore(args.preset, args.steps, args.keep)
        else:
            result = profile_torch(args.preset, args.steps)
        print("PROFILE " + json.dumps(result))
        return 0
    results = {}
    for framework in args.frameworks.split(","):
        # compiled afresh: graphs loaded from the compile cache lose the scopes the phase split reads
        env = dict(os.environ, IPT_MS_COMPILE_CACHE="0")
        cmd = [sys.executable, SELF, "--child", framework, "--preset", args.preset, "--steps", str(args.steps)]
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            cmd += ["--keep", str(Path(args.keep).resolve())]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=scratch_dir(), env=env)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("PROFILE ")]
        if done.returncode != 0 or not lines:
            print(f"{framework} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        results[framework] = json.loads(lines[-1][len("PROFILE "):])
    print(f"Training step profile, preset {args.preset}, batch 2, {args.steps} profiled step(s)")
    print(render(results, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
