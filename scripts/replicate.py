"""The paper's pre-training claims in miniature: `make replicate` writes REPLICATION.md.

    .venv/bin/python scripts/replicate.py [--runs runs/replicate] [--seeds 0,1,2] [--scale 1.0]
                                          [--out REPLICATION.md]

Three comparisons, each over several seeds (mean and 95 % confidence interval), with the
tiny model of configs/tiny.yaml (pre-trained on sr_x2 + denoise_30) and fine-tuned per task
with configs/tiny_finetune.yaml, on the training photos of `ipt_ms.eval.photos` and scored
on the held-out ones (PSNR-Y, centre crops, degraded as `ipt-ms synth` does):

(a) fine-tuning from the multi-task pre-trained model vs from scratch, same fine-tuning budget;
(b) the contrastive weight lambda = 0 vs 0.1 in pre-training (the paper's ablation);
(c) pre-training on 25 / 50 / 100 % of the photos, against the fine-tuned PSNR.

Every run is an `ipt-ms pretrain` / `ipt-ms finetune` subprocess (`ipt_ms.train.stages`):
run the command again after any stop and finished runs are skipped, a stopped one resumes.
Scores are kept per run (score.json), so the report can be rewritten without retraining.
`--scale` multiplies every step count (0.1 for a quick check of the whole pipeline).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PRETRAIN_CONFIG = ROOT / "configs" / "tiny.yaml"
FINETUNE_CONFIG = ROOT / "configs" / "tiny_finetune.yaml"
TASKS = ("sr_x2", "denoise_30")
FRACTIONS = (0.25, 0.5, 1.0)
PRETRAIN_EPOCHS, FINETUNE_EPOCHS = 15, 8  # x100 and x50 steps: 1500 pre-training, 400 fine-tuning steps
EVAL_CROP = 192
#: two-sided 95 % Student t quantiles by degrees of freedom
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass(frozen=True)
class Pretraining:
    """One pre-training arm: contrastive weight and share of the photos."""

    weight: float
    fraction: float

    @property
    def name(self) -> str:
        return f"pre_l{self.weight:g}_f{self.fraction:g}"


ARMS = (Pretraining(0.1, 1.0), Pretraining(0.0, 1.0), Pretraining(0.1, 0.25), Pretraining(0.1, 0.5))


def scaled(epochs: int, scale: float) -> int:
    return max(1, round(epochs * scale))


def photo_subset(photos: list[Path], fraction: float, seed: int, folder: Path) -> Path:
    """A folder with a seeded `fraction` of the photos (at least 2), copied."""
    count = max(2, round(len(photos) * fraction))
    chosen = sorted(np.random.default_rng(seed).permutation(len(photos))[:count])
    folder.mkdir(parents=True, exist_ok=True)
    for i in chosen:
        copy = folder / photos[i].name
        if not copy.exists():
            shutil.copyfile(photos[i], copy)
    return folder


def pretrain_overrides(arm: Pretraining, seed: int, scale: float) -> list[str]:
    epochs = scaled(PRETRAIN_EPOCHS, scale)
    return [f"loss.weight={arm.weight}", f"train.seed={seed}", f"schedule.epochs={epochs}",
            f"schedule.milestones=[{max(1, round(epochs * 0.75))}]", "val.every=null", "output.log_every=20"]


def finetune_overrides(task: str, seed: int, init: Path | None, scale: float) -> list[str]:
    return [f"model.tasks=[{task}]", f"train.seed={seed}", f"schedule.epochs={scaled(FINETUNE_EPOCHS, scale)}",
            f"train.init={init if init else 'null'}", "val.every=null", "output.log_every=20"]


def score_run(run: Path, task: str) -> dict:
    """PSNR-Y of the run's final weights on the held-out photos (cached in run/score.json)."""
    cached = run / "score.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    from ipt_ms.data.degrade import Degrader
    from ipt_ms.eval.photos import HELD_OUT_PHOTOS, sample_photo
    from ipt_ms.inference import load_model, restore_image
    from ipt_ms.metrics import psnr, quantize
    from ipt_ms.tasks import parse_task

    net, spec = load_model(str(run / "model.ckpt"), device="CPU", mode="graph")
    scale = parse_task(task).scale
    scores = {}
    for name in HELD_OUT_PHOTOS:
        degraded, target = Degrader(task)(sample_photo(name, EVAL_CROP, EVAL_CROP), seed=0, name=name)
        scores[name] = psnr(quantize(restore_image(net, spec, degraded, task)), target, scale)
    result = {"task": task, "psnr_y": float(np.mean(list(scores.values()))), "per_photo": scores}
    tmp = cached.with_name(f".score.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, cached)  # a stop mid-write never leaves a half score
    return result


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval (Student t)."""
    arr = np.asarray(values, float)
    if len(arr) < 2:
        return float(arr.mean()), math.nan
    return float(arr.mean()), T975.get(len(arr) - 1, 1.96) * float(arr.std(ddof=1)) / math.sqrt(len(arr))


def verdict(diffs: list[float], expected: str) -> str:
    """'held', 'reversed' or 'not resolved' for seed-paired differences expected to be > 0."""
    mean, half = interval(diffs)
    if math.isnan(half):
        return "not resolved (one seed)"
    if mean - half > 0:
        return f"held: {expected}"
    if mean + half < 0:
        return f"reversed: the opposite of '{expected}'"
    return "not resolved: the 95 % interval of the difference includes 0"


def plot_bars(path: Path, title: str, groups: dict[str, dict[str, list[float]]]) -> None:
    """Per task, one bar per arm (mean, 95 % CI whiskers) with the seeds as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    for ax, (task, arms) in zip(axes[0], groups.items()):
        for i, values in enumerate(arms.values()):
            mean, half = interval(values)
            ax.bar(i, mean, yerr=0 if math.isnan(half) else half, capsize=4, color=f"C{i}", alpha=0.6)
            ax.plot([i] * len(values), values, "k.", ms=6)
        ax.set_xticks(range(len(arms)), list(arms), fontsize=8)
        lows = [min(v) for v in arms.values()]
        highs = [max(v) for v in arms.values()]
        ax.set_ylim(min(lows) - 0.3, max(highs) + 0.3)
        ax.set_title(task)
        ax.set_ylabel("held-out PSNR-Y (dB)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fraction(path: Path, groups: dict[str, dict[float, list[float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    for ax, (task, by_fraction) in zip(axes[0], groups.items()):
        xs = sorted(by_fraction)
        stats = [interval(by_fraction[x]) for x in xs]
        ax.errorbar([100 * x for x in xs], [m for m, _ in stats], yerr=[0 if math.isnan(h) else h for _, h in stats],
                    marker="o", capsize=4)
        for x in xs:
            ax.plot([100 * x] * len(by_fraction[x]), by_fraction[x], "k.", ms=5)
        ax.set_xlabel("pre-training photos (%)")
        ax.set_ylabel("fine-tuned held-out PSNR-Y (dB)")
        ax.set_title(task)
    fig.suptitle("(c) amount of pre-training data", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/replicate")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step count (default 1)")
    parser.add_argument("--out", default="REPLICATION.md")
    args = parser.parse_args(argv)

    from ipt_ms.eval.photos import HELD_OUT_PHOTOS, write_training_photos
    from ipt_ms.machine import one_line
    from ipt_ms.train.stages import StageStoppedError, run_to_end

    seeds = [int(s) for s in args.seeds.split(",")]
    runs = Path(args.runs).resolve()
    photos = write_training_photos(runs / "photos" / "all")
    started = time.monotonic()
    scores: dict[tuple, float] = {}
    try:
        for seed in seeds:
            for arm in ARMS:
                data = photo_subset(photos, arm.fraction, seed, runs / "photos" / f"f{arm.fraction:g}_s{seed}")
                pre = runs / f"{arm.name}_s{seed}"
                run_to_end(PRETRAIN_CONFIG, pre, data, pretrain_overrides(arm, seed, args.scale), "pretrain")
                for task in TASKS:
                    ft = runs / f"ft_{task}_from_{arm.name}_s{seed}"
                    run_to_end(FINETUNE_CONFIG, ft, runs / "photos" / "all",
                               finetune_overrides(task, seed, pre / "model.ckpt", args.scale), "finetune")
                    scores[(arm.name, task, seed)] = score_run(ft, task)["psnr_y"]
            for task in TASKS:
                ft = runs / f"ft_{task}_scratch_s{seed}"
                overrides = finetune_overrides(task, seed, None, args.scale)
                run_to_end(FINETUNE_CONFIG, ft, runs / "photos" / "all", overrides, "finetune")
                scores[("scratch", task, seed)] = score_run(ft, task)["psnr_y"]
    except StageStoppedError as err:
        print(err)
        return 3
    hours = max((time.monotonic() - started) / 3600, training_hours(runs))
    report = write_report(Path(args.out), Path(args.runs), seeds, scores, args.scale, one_line(), hours,
                          HELD_OUT_PHOTOS)
    print(report)
    return 0


def training_hours(runs: Path) -> float:
    """Training time of every run under `runs`, summed (first to last logged step, whichever
    invocation ran it), so the report's time survives a stop and resume of `make replicate`."""
    total = 0.0
    for metrics in runs.glob("*/metrics.jsonl"):
        times = []
        for line in metrics.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("time"), (int, float)):
                times.append(record["time"])
        if times:
            total += max(times) - min(times)
    return total / 3600


def write_report(out: Path, runs: Path, seeds: list[int], scores: dict, scale: float, machine: str, hours: float,
                 held_out: tuple[str, ...]) -> str:
    """REPLICATION.md with a table, a verdict and a plot per claim."""
    full, no_contrast = ARMS[0].name, ARMS[1].name
    by = {task: {arm: [scores[(arm, task, s)] for s in seeds] for arm in ("scratch", *[a.name for a in ARMS])}
          for task in TASKS}
    plots = out.parent / "docs" / "replication"
    plots.mkdir(parents=True, exist_ok=True)
    plot_bars(plots / "a_pretraining.png", "(a) fine-tuned from pre-training vs from scratch",
              {t: {"scratch": by[t]["scratch"], "pre-trained": by[t][full]} for t in TASKS})
    plot_bars(plots / "b_contrastive.png", "(b) contrastive weight in pre-training",
              {t: {"lambda=0": by[t][no_contrast], "lambda=0.1": by[t][full]} for t in TASKS})
    plot_fraction(plots / "c_data.png", {t: {a.fraction: by[t][a.name] for a in ARMS if a.weight == 0.1}
                                         for t in TASKS})

    def row(task: str, label: str, values: list[float]) -> str:
        mean, half = interval(values)
        return f"| {task} | {label} | {mean:.3f} ± {half:.3f} | {', '.join(f'{v:.3f}' for v in values)} |"

    def diff_row(task: str, label: str, a: list[float], b: list[float], expected: str) -> str:
        diffs = [x - y for x, y in zip(a, b)]
        mean, half = interval(diffs)
        return f"| {task} | {label} | {mean:+.3f} ± {half:.3f} dB | {verdict(diffs, expected)} |"

    lines = [
        "# The paper's pre-training claims, in miniature",
        "",
        f"Written by `make replicate` (scripts/replicate.py) on {time.strftime('%Y-%m-%d %H:%M')}: "
        f"{hours:.2f} h of training (summed over the runs; the wall time is less where runs ran side by side) "
        f"on {machine}. Seeds {', '.join(map(str, seeds))}; step scale {scale:g} "
        f"({scaled(PRETRAIN_EPOCHS, scale) * 100} pre-training and {scaled(FINETUNE_EPOCHS, scale) * 50} fine-tuning "
        "steps per run, batch 8). Model: configs/tiny.yaml (16 features, 1+1 layers, 0.86M parameters), pre-trained "
        f"on sr_x2 + denoise_30, fine-tuned per task with configs/tiny_finetune.yaml. Training photos: "
        f"`ipt_ms.eval.photos.TRAINING_PHOTOS`; scores: PSNR-Y of the fine-tuned model on {EVAL_CROP}-px centre "
        f"crops of the held-out photos ({', '.join(held_out)}), mean of the photos; intervals: 95 % Student t over "
        "seeds; differences are paired by seed (same seed, same fine-tuning draws).",
        "",
        "This is IPT at about 1/130 of its size, trained for minutes on 16 photos instead of days on ImageNet: "
        "a verdict here says what holds at this scale, not whether the paper is right.",
        "",
        "## Scores",
        "",
        "| task | arm | PSNR-Y (dB), mean ± 95 % CI | per seed |",
        "|---|---|---:|---|",
    ]
    labels = {"scratch": "from scratch", full: "pre-trained (lambda 0.1, 100 %)", no_contrast: "pre-trained, lambda 0",
              ARMS[2].name: "pre-trained on 25 %", ARMS[3].name: "pre-trained on 50 %"}
    for task in TASKS:
        lines += [row(task, labels[arm], values) for arm, values in by[task].items()]
    lines += ["", "## Claims", "", "| task | comparison | difference | verdict |", "|---|---|---:|---|"]
    for task in TASKS:
        lines.append(diff_row(task, "(a) pre-trained - scratch", by[task][full], by[task]["scratch"],
                              "pre-training helps"))
        lines.append(diff_row(task, "(b) lambda 0.1 - lambda 0", by[task][full], by[task][no_contrast],
                              "the contrastive term helps"))
        lines.append(diff_row(task, "(c) 100 % - 25 % of the data", by[task][full], by[task][ARMS[2].name],
                              "more pre-training data helps"))
    lines += ["", "![(a)](docs/replication/a_pretraining.png)", "", "![(b)](docs/replication/b_contrastive.png)", "",
              "![(c)](docs/replication/c_data.png)", "", f"Runs and per-run scores: `{runs}` (score.json per run).", ""]
    text = "\n".join(lines)
    out.write_text(text)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
