"""Evidence that training learns: the tiny config, trained on CPU on scikit-image photos,
must beat the degraded input on a photo it never saw.

Usage:  .venv/bin/python bench/learn_check.py [--out build/learn-check] [--minutes 12]   (make learn-check)

1. Writes 16 scikit-image sample images (colour photos, and grey textures as RGB) to
   OUT/photos, holding out `chelsea` (the cat); training takes random crops of them.
2. Pre-trains configs/tiny.yaml (sr_x2 + denoise_30, L1 + 0.1 x Eq. 5) from scratch,
   stopping at the config's step count or after `--minutes`, whichever comes first.
3. Restores the held-out photo with the trained model through the official tiling and
   reports PSNR (Y, and RGB) against the clean photo:
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
    return [write_image(folder / f"{name}.png", np.ascontiguousarray(img[..., :3])) for name, img in images.items()]


def evaluate(weights: Path) -> dict:
    """PSNRs of the trained model on the held-out photo, for both tasks."""
    from ipt_ms.data.degrade import noisy_image
    from ipt_ms.data.imresize import imresize, modcrop
    from ipt_ms.eval.baseline import baseline_output
    from ipt_ms.eval.photos import sample_photo
    from ipt_ms.inference import load_model, restore_image
    from ipt_ms.metrics import psnr
    from ipt_ms.tasks import parse_task

    net, spec = load_model(str(weights), device="CPU", mode="graph")
    clean = sample_photo(HELD_OUT)
    results = {}

    noisy = noisy_image(clean, 30, seed=0, name=HELD_OUT)
    denoised = restore_image(net, spec, noisy, "denoise_30")
    baseline = baseline_output(noisy, parse_task("denoise_30"))  # the degraded input itself
    results["denoise_30"] = {
        "input_psnr_y": psnr(baseline, clean), "output_psnr_y": psnr(denoised, clean),
        "input_psnr_rgb": psnr(baseline, clean, channel="rgb"), "output_psnr_rgb": psnr(denoised, clean, channel="rgb"),
    }
    hr = modcrop(clean, 2)
    lr = imresize(hr, 0.5)
    bicubic = baseline_output(lr, parse_task("sr_x2"))  # MATLAB bicubic, as the eval tables' baseline row
    sr = restore_image(net, spec, lr, "sr_x2")
    results["sr_x2"] = {
        "input_psnr_y": psnr(bicubic, hr, 2), "output_psnr_y": psnr(sr, hr, 2),
        "input_psnr_rgb": psnr(bicubic, hr, 2, channel="rgb"), "output_psnr_rgb": psnr(sr, hr, 2, channel="rgb"),
    }
    for task, r in results.items():
        r["gain_y"] = r["output_psnr_y"] - r["input_psnr_y"]
        r["gain_rgb"] = r["output_psnr_rgb"] - r["input_psnr_rgb"]
        r["required_gain_y"] = 3.0 if task == "denoise_30" else 0.0
        r["pass"] = r["gain_y"] >= r["required_gain_y"] if task == "denoise_30" else r["gain_y"] > 0.0
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
    results = evaluate(run / "model.ckpt")
    report = {"held_out": HELD_OUT, **info, "results": results}
    (out / "learn_check.json").write_text(json.dumps(report, indent=2))

    if info:
        print(f"\ntrained {info['steps']} steps in {info['train_minutes']:.1f} min on {info['training_images']} "
              f"photos (held out: {HELD_OUT})")
    print("| task | input | input PSNR-Y | model PSNR-Y | gain Y | input PSNR-RGB | model PSNR-RGB | check |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for task, r in results.items():
        what = "noisy (sigma 30)" if task == "denoise_30" else "bicubic x2"
        need = "+3 dB over noisy" if task == "denoise_30" else "above bicubic"
        print(f"| {task} | {what} | {r['input_psnr_y']:.2f} | {r['output_psnr_y']:.2f} | {r['gain_y']:+.2f} | "
              f"{r['input_psnr_rgb']:.2f} | {r['output_psnr_rgb']:.2f} | {need}: {'PASS' if r['pass'] else 'FAIL'} |")
    return 0 if all(r["pass"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
