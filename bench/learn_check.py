"""Evidence that training learns: the tiny config, trained on CPU on scikit-image photos,
must beat the degraded input on a photo it never saw.

Usage:  .venv/bin/python bench/learn_check.py [--out build/learn-check] [--minutes 12]   (make learn-check)

1. Writes 16 scikit-image sample images (colour photos, and grey textures as RGB) to
   OUT/photos, holding out `chelsea` (the cat); training takes random crops of them.
2. Pre-trains configs/tiny.yaml (sr_x2 + denoise_30, L1 + 0.1 x Eq. 5) from scratch,
   stopping at the config's step count or after `--minutes`, whichever comes first.
3. Restores the held-out photo through the official tiling, with the final weights and
   with the weights validation kept per task (best_<task>.ckpt: the run validates every
   200 steps on one more photo held out of training), and reports PSNR (Y, and RGB)
   against the clean photo and against the baseline (`ipt_ms.eval.baseline`); the checks
   use the validated weights:
   * denoise_30: output vs the noisy input (seeded sigma-30 noise, clipped); pass: +3 dB;
   * sr_x2: output vs bicubic upscaling (MATLAB imresize) of the x2 bicubic downscale;
     pass: above bicubic.
Writes OUT/learn_check.json and prints a Markdown table; exit 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ipt_ms  # noqa: E402,F401  (environment defaults before MindSpore loads)

HELD_OUT = "chelsea"
COLOUR = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
GREY = ("camera", "grass", "gravel", "brick", "moon", "coins", "text", "page")


def write_training_photos(folder: Path) -> list[Path]:
    """The training images (no `chelsea`), as PNG."""
    import skimage.data as skd

    from ipt_ms.data.imageio import write_image

    folder.mkdir(parents=True, exist_ok=True)
    images = {name: getattr(skd, name)() for name in COLOUR}
    left, right = skd.stereo_motorcycle()[:2]
    images.update(motorcycle_left=left, motorcycle_right=right)
    for name in GREY:
        grey = getattr(skd, name)()
        images[name] = np.repeat(grey[..., None], 3, axis=2)
    return [write_image(folder / f"{name}.png", np.ascontiguousarray(img[..., :3]), overwrite=True)  # its own photos
            for name, img in images.items()]


def evaluate(weights: dict[str, Path]) -> dict:
    """PSNRs on the held-out photo, per task, with the weights file given for that task."""
    from ipt_ms.data.degrade import noisy_image
    from ipt_ms.data.imresize import imresize, modcrop
    from ipt_ms.eval.baseline import baseline_output
    from ipt_ms.eval.photos import sample_photo
    from ipt_ms.inference import load_model, restore_image
    from ipt_ms.metrics import psnr
    from ipt_ms.tasks import parse_task

    clean = sample_photo(HELD_OUT)
    hr = modcrop(clean, 2)
    degraded = {"denoise_30": (noisy_image(clean, 30, seed=0, name=HELD_OUT), clean, 1),
                "sr_x2": (imresize(hr, 0.5), hr, 2)}
    results = {}
    for task, path in weights.items():
        net, spec = load_model(str(path), device="CPU", mode="graph")
        lq, target, scale = degraded[task]
        baseline = baseline_output(lq, parse_task(task))  # the noisy input / MATLAB bicubic
        out = restore_image(net, spec, lq, task)
        r = {"weights": str(path), "input_psnr_y": psnr(baseline, target, scale),
             "output_psnr_y": psnr(out, target, scale), "input_psnr_rgb": psnr(baseline, target, scale, channel="rgb"),
             "output_psnr_rgb": psnr(out, target, scale, channel="rgb")}
        r["gain_y"] = r["output_psnr_y"] - r["input_psnr_y"]
        r["gain_rgb"] = r["output_psnr_rgb"] - r["input_psnr_rgb"]
        r["required_gain_y"] = 3.0 if task == "denoise_30" else 0.0
        r["pass"] = r["gain_y"] >= r["required_gain_y"] if task == "denoise_30" else r["gain_y"] > 0.0
        results[task] = r
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/learn-check")
    parser.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"))
    parser.add_argument("--minutes", type=float, default=12.0, help="training time budget (default 12)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides")
    parser.add_argument("--eval-only", action="store_true", help="evaluate OUT/run/model.ckpt without training")
    args = parser.parse_args(argv)

    from ipt_ms.cli._common import setup_logging
    from ipt_ms.train.config import load_train_config
    from ipt_ms.train.loop import train

    setup_logging()
    out = Path(args.out)
    run = out / "run"
    info: dict = {}
    if not args.eval_only:
        photos = write_training_photos(out / "photos")
        if run.exists():
            shutil.rmtree(run)  # a fresh run each time: the numbers must not depend on an earlier one
        cfg = load_train_config(args.config, [f"train.time_limit_min={args.minutes}", *args.overrides])
        cfg.data.root, cfg.output.dir = str(out / "photos"), str(run)
        start = time.monotonic()
        result = train(cfg)
        info = {"training_images": len(photos), "steps": result.global_step, "epochs_done": result.epoch,
                "train_minutes": (time.monotonic() - start) / 60.0, "config": args.config,
                "overrides": args.overrides, "batch": cfg.data.batch_size}
    tasks = ("denoise_30", "sr_x2")
    final = evaluate({task: run / "model.ckpt" for task in tasks})
    best = {task: run / f"best_{task}.ckpt" for task in tasks if (run / f"best_{task}.ckpt").exists()}
    results = evaluate(best) if best else final
    report = {"held_out": HELD_OUT, **info, "results": results, "final_weights": final}
    (out / "learn_check.json").write_text(json.dumps(report, indent=2))

    if info:
        print(f"\ntrained {info['steps']} steps in {info['train_minutes']:.1f} min on {info['training_images']} "
              f"photos (held out: {HELD_OUT})")
    print("| task | weights | baseline | baseline PSNR-Y | model PSNR-Y | gain Y | baseline PSNR-RGB | model PSNR-RGB "
          "| check |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for rows, label in ((results, "validated"), (final, "final")):
        for task, r in rows.items():
            what = "noisy input (sigma 30)" if task == "denoise_30" else "bicubic x2"
            need = "+3 dB over noisy" if task == "denoise_30" else "above bicubic"
            check = f"{need}: {'PASS' if r['pass'] else 'FAIL'}" if rows is results else "(not checked)"
            print(f"| {task} | {label} {Path(r['weights']).name} | {what} | {r['input_psnr_y']:.2f} | "
                  f"{r['output_psnr_y']:.2f} | {r['gain_y']:+.2f} | {r['input_psnr_rgb']:.2f} | "
                  f"{r['output_psnr_rgb']:.2f} | {check} |")
    return 0 if all(r["pass"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
