"""The shipped small model's quality table: `ipt-ms eval` against classical methods on held-out photos.

Usage:  .venv/bin/python bench/quality_small.py [--out build/quality-small] [--weights FILE]
        (make quality-small; needs the dev extra for CBM3D: bm3d)

1. Writes the held-out photos (`ipt_ms.eval.photos.HELD_OUT_PHOTOS`, never trained on) to
   OUT/photos and degrades them with `ipt-ms synth` (seed 0) into OUT/data/HeldOut.
2. Scores the model per task with `ipt-ms eval --model ipt_small` (or `--weights FILE`),
   which also scores its baseline: MATLAB bicubic for SR, the degraded input otherwise.
3. Scores classical methods on the same degraded files with the same metric functions
   (`ipt_ms.metrics`: PSNR-Y, SSIM-Y, SR border shaved by the scale), averaged per image
   as eval does: Lanczos (OpenCV INTER_LANCZOS4) for SR; OpenCV's
   fastNlMeansDenoisingColored with its filter strength h swept over a grid on these very
   photos (the best h is reported: tuned in NL-means' favour), and CBM3D
   (`bm3d.bm3d_rgb` given the true sigma) for denoising.
   As a check that both sides measure alike, this script recomputes eval's baseline and
   stops if the two differ.
Writes OUT/quality.json and prints the Markdown table for docs/model_card_small.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TASKS = ("sr_x2", "sr_x3", "sr_x4", "denoise_30", "denoise_50", "derain")
NLM_H = tuple(range(6, 41, 2))  # fastNlMeansDenoisingColored strengths tried (h = hColor)
SET = "HeldOut"


def pairs(data: Path, task: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, degraded, clean) for each held-out photo, read from the synth folders eval reads."""
    from ipt_ms.data.imageio import read_image
    from ipt_ms.tasks import parse_task

    root = data / SET
    found = []
    for hr_path in sorted((root / "HR").glob("*.png")):
        name = hr_path.stem
        spec = parse_task(task)
        if spec.kind == "sr":
            lq = root / "LR_bicubic" / f"X{spec.scale}" / f"{name}x{spec.scale}.png"
            clean = hr_path
        elif task == "derain":
            lq, clean = root / "derain" / "rainy" / f"rain-{name}.png", root / "derain" / f"norain-{name}.png"
        else:
            lq, clean = root / task / f"{name}.png", hr_path
        found.append((name, read_image(lq), read_image(clean)))
    return found


def score(outputs: dict[str, np.ndarray], truth: dict[str, np.ndarray], scale: int) -> dict:
    """Mean PSNR-Y / SSIM-Y over the images, as `ipt-ms eval` averages them."""
    from ipt_ms.metrics import psnr, ssim

    ps = [psnr(outputs[n], truth[n], scale) for n in truth]
    ss = [ssim(outputs[n], truth[n], scale) for n in truth]
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "per_image_psnr": dict(zip(truth, ps))}


def lanczos(lq: np.ndarray, scale: int) -> np.ndarray:
    import cv2

    h, w = lq.shape[:2]
    return np.clip(np.round(cv2.resize(lq.astype(np.float32), (w * scale, h * scale),
                                       interpolation=cv2.INTER_LANCZOS4)), 0, 255).astype(np.uint8)


def nl_means(noisy: np.ndarray, h: int) -> np.ndarray:
    import cv2

    bgr = np.ascontiguousarray(noisy[..., ::-1])
    return np.ascontiguousarray(cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)[..., ::-1])


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    out = bm3d.bm3d_rgb(noisy.astype(np.float64) / 255.0, sigma_psd=sigma / 255.0)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def run_eval(task: str, data: Path, out: Path, weights: str | None) -> dict:
    """`ipt-ms eval` of the model on the held-out set: {"model": ..., "baseline": ...}."""
    source = ["--weights", weights] if weights else ["--model", "ipt_small"]
    data_arg, sets = (data / SET, "derain") if task == "derain" else (data, SET)
    command = [sys.executable, "-m", "ipt_ms", "eval", *source, "--task", task, "--data", str(data_arg),
               "--sets", sets, "-o", str(out / "eval" / task), "--restart", "-q"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((out / "eval" / task / "report.json").read_text())
    summary = report["summary"]
    baseline = report["baseline"]["label"]
    model = next(label for label in summary if label != baseline)
    return {"model": summary[model][sets], "baseline": summary[baseline][sets], "baseline_label": baseline}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/quality-small")
    parser.add_argument("--weights", default=None, help="weights file (default: the shipped ipt_small)")
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args(argv)

    from ipt_ms.eval.baseline import baseline_output
    from ipt_ms.eval.photos import HELD_OUT_PHOTOS, write_sample_photos
    from ipt_ms.machine import one_line
    from ipt_ms.tasks import parse_task

    out = Path(args.out).resolve()
    data = out / "data"
    write_sample_photos(out / "photos", HELD_OUT_PHOTOS)
    subprocess.run([sys.executable, "-m", "ipt_ms", "synth", str(out / "photos"), str(data / SET), "--tasks",
                    ",".join(TASKS), "--seed", "0", "--overwrite", "-q"], check=True, stdout=subprocess.DEVNULL)
    results: dict = {"photos": list(HELD_OUT_PHOTOS), "machine": one_line(), "tasks": {}}
    for task in args.tasks.split(","):
        spec = parse_task(task)
        scale = spec.scale if spec.kind == "sr" else 1
        items = pairs(data, task)
        truth = {n: clean for n, _, clean in items}
        start = time.monotonic()
        measured = run_eval(task, data, out, args.weights)
        row = {"model": measured["model"], measured["baseline_label"]: measured["baseline"],
               "eval_seconds": time.monotonic() - start}
        ours_baseline = score({n: baseline_output(lq, spec) for n, lq, _ in items}, truth, scale)
        if abs(ours_baseline["psnr"] - measured["baseline"]["psnr"]) > 1e-4:  # summation order only
            raise SystemExit(f"{task}: this script's {measured['baseline_label']} PSNR-Y {ours_baseline['psnr']:.6f} "
                             f"differs from ipt-ms eval's {measured['baseline']['psnr']:.6f}: not measured alike")
        if spec.kind == "sr":
            row["lanczos"] = score({n: lanczos(lq, scale) for n, lq, _ in items}, truth, scale)
        elif spec.kind == "denoise":
            sweep = {h: score({n: nl_means(lq, h) for n, lq, _ in items}, truth, 1) for h in NLM_H}
            best_h = max(sweep, key=lambda h: sweep[h]["psnr"])
            row["nl_means"] = {**sweep[best_h], "h": best_h, "h_grid": list(NLM_H)}
            row["cbm3d"] = score({n: cbm3d(lq, spec.sigma) for n, lq, _ in items}, truth, 1)
        results["tasks"][task] = row
        print(f"{task}: done ({time.monotonic() - start:.0f} s)", flush=True)
    (out / "quality.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwrote {out / 'quality.json'}")
    return 0


def table(results: dict) -> str:
    """The model card's Markdown table: PSNR-Y / SSIM-Y per task and method."""
    lines = [f"Held-out photos: {', '.join(results['photos'])}; {results['machine']}", "",
             "| task | ipt_small | baseline | Lanczos | NL-means (best h) | CBM3D | ipt_small - best other |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for task, row in results["tasks"].items():
        def cell(entry: dict | None, extra: str = "") -> str:
            return f"{entry['psnr']:.2f} / {entry['ssim']:.4f}{extra}" if entry else "-"
        label = "bicubic" if "bicubic" in row else "input"
        others = [row[k]["psnr"] for k in (label, "lanczos", "nl_means", "cbm3d") if k in row]
        nlm = row.get("nl_means")
        nlm_h = f" (h={nlm['h']})" if nlm else ""
        lines.append(f"| {task} | {cell(row['model'])} | {cell(row[label], f' ({label})')} | "
                     f"{cell(row.get('lanczos'))} | {cell(nlm, nlm_h)} | "
                     f"{cell(row.get('cbm3d'))} | {row['model']['psnr'] - max(others):+.2f} dB |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
