"""Training-step time and peak memory: MindSpore Graph (cold and warm compile cache), MindSpore PyNative, PyTorch.

Usage:  .venv/bin/python bench/train_step.py --preset full --out BENCHMARKS.md
        .venv/bin/python bench/train_step.py [--preset medium] [--batch 2] [--steps 5] [--json out.json]

One run measures the frameworks on the same machine, the same config and the same
batches: the full `ipt_ms.train` step (IPTLoss with L1 + 0.1 x Eq. 5 contrastive, backward,
global-norm clipping, Adam) against `parity.train_parity.TorchTrainer` doing the same in
PyTorch. Each framework runs in its own child process, so its peak resident memory (VmHWM)
is its own. Reported: the first step (MindSpore Graph: compilation), the median of the
timed steps after `--warmup` steps, the peak RSS, and the ratios against PyTorch.

MindSpore Graph runs twice: first with an empty persistent compile cache
(`ipt_ms.compile_cache`), then in a new process that finds the compiled step there; the
first step of each is reported (cold / warm), the other figures come from the second.

With ``--out`` the `## Training step` section of that Markdown file is replaced; that is
refused when other processes used more than `bench.loadmeter.OTHERS_LIMIT` of the CPU in
any job (``--allow-loaded`` writes it marked LOADED).

Presets (all with one sr_x2 head, 48x48 input patches, patch_dim 3, 12 heads):
  full    the paper's body: 64 features, 12 encoder + 12 decoder layers (115M params)
  medium  64 features, 2 + 2 layers (the full-size token width at a sixth of the depth)
  tiny    IPTSpec.tiny (configs/tiny.yaml): 16 features, 1 + 1 layers, 24-px patches, 2 heads
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF = str(Path(__file__).resolve())  # children run in a scratch folder
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadmeter import (  # noqa: E402
    REFUSED_EXIT,
    OthersMeter,
    loaded_banner,
    memory_mib,
    sample_others,
    scratch_dir,
    section_heading,
    verdict,
)

FRAMEWORKS = ("mindspore-graph", "mindspore-pynative", "torch")
DEFAULT_FRAMEWORKS = ("mindspore-graph", "torch")
LABELS = {"mindspore-graph": "MindSpore Graph", "mindspore-pynative": "MindSpore PyNative", "torch": "PyTorch twin"}
SECTION = "## Training step"


def section_title() -> str:
    return section_heading(SECTION)


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
        import mindspore as ms

        from ipt_ms.runtime import configure

        configure("CPU", framework.split("-")[1])
        trainer = MindSporeTrainer(spec, state, **options)
        threads = f"runtime_num_threads={ms.get_context('runtime_num_threads')}"
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        trainer = TorchTrainer(spec, state, **options)
        threads = f"torch threads={torch.get_num_threads()}"
    del state
    data = make_batches(spec, 1, batch, seed=0) * (warmup + steps)
    times, losses = [], []
    for lr, hr, task in data:
        start = time.perf_counter()
        losses.append(trainer.step(lr, hr, task))
        times.append(time.perf_counter() - start)
    from ipt_ms import compile_cache

    return {"framework": framework, "first_step_s": times[0], "median_step_s": statistics.median(times[warmup:]),
            "min_step_s": min(times[warmup:]), "step_s": times[warmup:], "peak_rss_mb": memory_mib("VmHWM"),
            "last_loss": losses[-1],
            "params": spec.num_parameters(), "threads": threads, "compile_cache": compile_cache.stats()}


def run_child(framework: str, args, cache: str) -> dict:
    cmd = [sys.executable, SELF, "--child", framework, "--preset", args.preset, "--batch", str(args.batch),
           "--warmup", str(args.warmup), "--steps", str(args.steps)]
    env = dict(os.environ, IPT_MS_COMPILE_CACHE=cache)
    with OthersMeter() as meter:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=scratch_dir(), env=env)
    if done.returncode != 0:
        raise SystemExit(f"{framework} failed:\n{done.stderr[-2000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["others_cores"] = meter.cores
    return row


def merge_rounds(per_round: list[dict[str, dict]]) -> list[dict]:
    """One row per framework from several rounds: every timed step counts in the median and the
    fastest step; peak memory and the others' load are the worst seen; the first step and the
    loss come from the first round."""
    merged = []
    for framework in per_round[0]:
        rounds = [r[framework] for r in per_round]
        row = dict(rounds[0])
        row["step_s"] = [t for r in rounds for t in r["step_s"]]
        row["median_step_s"], row["min_step_s"] = statistics.median(row["step_s"]), min(row["step_s"])
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rounds)
        row["others_cores"] = max(r["others_cores"] for r in rounds)
        row["rounds"] = len(rounds)
        merged.append(row)
    return merged


def round_ratios(per_round: list[dict[str, dict]]) -> dict[str, list[float]]:
    """Per round, PyTorch's median step time over each other framework's."""
    return {fw: [r["torch"]["median_step_s"] / r[fw]["median_step_s"] for r in per_round]
            for fw in per_round[0] if fw != "torch" and "torch" in per_round[0]}


def render(rows: list[dict], *, preset: str, batch: int, warmup: int, steps: int, loads: tuple[float, float],
           judged, started: float, finished: float, spread: dict[str, list[float]] | None = None) -> str:
    spec = spec_for(preset)
    ref = next((r for r in rows if r["framework"] == "torch" and not r.get("cold")), None)
    cold = {r["framework"]: r for r in rows if r.get("cold")}
    lines = [section_title(), ""]
    if not judged.quiet:
        lines += [loaded_banner(judged), ""]
    import mindspore
    import torch

    from ipt_ms import machine

    lines += [
        "`bench/train_step.py` (run: `.venv/bin/python bench/train_step.py --preset full --out BENCHMARKS.md`): "
        "the whole training step (L1 + 0.1 x Eq. 5 contrastive, backward, global-norm clip 1.0, Adam with "
        f"PyTorch's update rule) on one sr_x2 head, batch {batch} of {spec.patch_size}x{spec.patch_size} inputs, "
        "the same seeded weights and batch for every framework, each in its own process (peak RSS = VmHWM is its "
        f"own). Median over {steps} timed steps after {warmup} warm-up step(s). MindSpore Graph runs twice: with "
        "an empty persistent compile cache (first step 'cold': compilation) and again in a new process that "
        "finds the compiled step there ('warm'); the other figures are from the second process. Ratios: "
        "throughput = PyTorch step time / this step time (above 1: faster than PyTorch); memory = peak RSS / "
        "PyTorch's.",
        "",
        f"- Model: preset `{preset}`, {spec.num_parameters():,} parameters, {spec.num_layers}+{spec.num_layers} "
        f"layers, n_feats {spec.n_feats}.",
        f"- Machine: {machine.one_line()}; 1-min load average "
        f"{loads[0]:.2f} before / {loads[1]:.2f} after. {judged.describe().capitalize()}.",
        f"- Versions: MindSpore {mindspore.__version__}, PyTorch {torch.__version__}; env ONEDNN_MAX_CPU_ISA="
        f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')} (MindSpore; see the levers table for PyTorch).",
        f"- Run: {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, {(finished - started) / 60:.1f} min.",
        *([f"- Rounds: {len(next(iter(spread.values())))}, one process per framework per round, the frameworks "
           "taking turns; the step figures pool every round's timed steps. Per-round throughput vs PyTorch: "
           + "; ".join(f"{LABELS[fw]}: " + ", ".join(f"{x:.2f}" for x in xs) for fw, xs in spread.items()) + "."]
          if spread else []),
        "",
        "| framework | first step, cold (s) | first step, warm (s) | median step (s) | fastest step (s) | "
        "throughput vs PyTorch | peak RSS (MB) | memory vs PyTorch | loss after run | others | threads |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.get("cold"):
            continue
        c = cold.get(r["framework"])
        first_cold, first_warm = (c["first_step_s"], r["first_step_s"]) if c else (r["first_step_s"], None)
        speed = ref["median_step_s"] / r["median_step_s"] if ref else float("nan")
        memory = r["peak_rss_mb"] / ref["peak_rss_mb"] if ref else float("nan")
        peak = f"{r['peak_rss_mb']:,.0f}" + (f" ({c['peak_rss_mb']:,.0f} cold)" if c else "")
        lines.append(
            f"| {LABELS[r['framework']]} | {first_cold:.2f} | {'-' if first_warm is None else f'{first_warm:.2f}'} | "
            f"{r['median_step_s']:.3f} | {r['min_step_s']:.3f} | {speed:.2f} | {peak} | {memory:.2f} | "
            f"{r['last_loss']:.4f} | {r['others_cores']:.2f} | {r['threads']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium", choices=("tiny", "medium", "full"))
    parser.add_argument("--batch", type=int, default=2, help="images per step (>= 2 for the contrastive loss)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the warm-up")
    parser.add_argument("--frameworks", default=",".join(DEFAULT_FRAMEWORKS),
                        help=f"comma-separated subset of {', '.join(FRAMEWORKS)}")
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None, help="Markdown file whose '## Training step' section is written")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time every framework this many times, taking turns, and pool the steps (default 1)")
    parser.add_argument("--allow-loaded", action="store_true",
                        help="write --out even when other processes used more than the CPU limit (marked LOADED)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.preset, args.batch, args.warmup, args.steps)))
        return 0

    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown:
        parser.error(f"unknown framework(s) {unknown}; choose from {', '.join(FRAMEWORKS)}")
    out = Path(args.out) if args.out else None
    started, load_before = time.time(), os.getloadavg()[0]
    pre_check = sample_others(3.0)
    if out is not None and not args.allow_loaded and not verdict([pre_check]).quiet:
        print(f"refusing to benchmark into {out}: {verdict([pre_check]).describe()} (before starting); "
              "wait for an idle machine or pass --allow-loaded", file=sys.stderr)
        return REFUSED_EXIT
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    rows, per_round = [], []
    with tempfile.TemporaryDirectory(prefix="ipt-bench-train-") as cache:
        for round_index in range(args.rounds):  # the frameworks take turns in every round
            this_round = {}
            for framework in frameworks:
                if framework == "mindspore-graph" and round_index == 0:
                    row = run_child(framework, args, cache)
                    row["cold"] = True
                    rows.append(row)
                    print(f"{framework} (cold compile cache): first step {row['first_step_s']:.2f} s", flush=True)
                row = run_child(framework, args, cache if framework == "mindspore-graph" else "0")
                this_round[framework] = row
                print(f"{framework}: first {row['first_step_s']:.2f} s, median {row['median_step_s']:.3f} s, "
                      f"peak {row['peak_rss_mb']:,.0f} MB, others {row['others_cores']:.2f} cores", flush=True)
            per_round.append(this_round)
        rows += merge_rounds(per_round)
    finished, load_after = time.time(), os.getloadavg()[0]
    judged = verdict([r["others_cores"] for r in rows] + [pre_check])
    section = render(rows, preset=args.preset, batch=args.batch, warmup=args.warmup, steps=args.steps,
                     loads=(load_before, load_after), judged=judged, started=started, finished=finished,
                     spread=round_ratios(per_round) if args.rounds > 1 else None)
    print(section)
    if args.json:
        Path(args.json).write_text(json.dumps({"preset": args.preset, "batch": args.batch, "rows": rows,
                                               "load": [load_before, load_after], "pre_check": pre_check},
                                              indent=2))
    if out is not None:
        if not judged.quiet and not args.allow_loaded:
            print(f"refusing to write {out}: {judged.describe()}; re-run on an idle machine or pass --allow-loaded "
                  "(the section is then marked LOADED)", file=sys.stderr)
            return REFUSED_EXIT
        from bench.run import update_markdown

        update_markdown(out, section, section_title())
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
