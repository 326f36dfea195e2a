"""A real restoration for the demo: degrade a held-out photo, restore it, score it, show it.

    python -m ipt_ms.eval.showcase OUT [--model ipt_small | --weights FILE] [--photo coffee]
                                       [--tasks denoise_30,sr_x2,derain] [--crop 192]

For each task: the photo (never trained on: `ipt_ms.eval.photos.HELD_OUT_PHOTOS`) is
degraded as `ipt-ms synth` degrades it (seed 0), restored with the official tiling, and
scored with `ipt_ms.metrics` (PSNR-Y, SSIM-Y, SR border shaved) against the clean photo,
beside the task's baseline (MATLAB bicubic for SR, the degraded input otherwise). A
side-by-side PNG per task shows input | model | reference. Exit status 1 when the model
does not beat its baseline in PSNR-Y on some task: shipped weights that stopped restoring
are caught by `make demo`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError

__all__ = ["ShowcaseRow", "showcase"]


@dataclass
class ShowcaseRow:
    """One task's scores on the photo."""

    task: str
    baseline: str
    baseline_psnr: float
    baseline_ssim: float
    model_psnr: float
    model_ssim: float
    image: Path

    @property
    def gain(self) -> float:
        return self.model_psnr - self.baseline_psnr


def showcase(weights: str, out_dir: os.PathLike | str, photo: str = "coffee",
             tasks: tuple[str, ...] = ("denoise_30", "sr_x2", "derain"), crop: int | None = 192,
             overwrite: bool = False) -> list[ShowcaseRow]:
    """Restore `photo` degraded for each task with `weights`; write side-by-side PNGs into `out_dir`."""
    from ipt_ms.data.degrade import Degrader
    from ipt_ms.data.imageio import write_image
    from ipt_ms.eval.baseline import baseline_name, baseline_output
    from ipt_ms.eval.photos import HELD_OUT_PHOTOS, sample_photo
    from ipt_ms.eval.report import strip_image
    from ipt_ms.fileio import check_output_dir
    from ipt_ms.inference import load_model, restore_image
    from ipt_ms.metrics import psnr, quantize, ssim
    from ipt_ms.tasks import parse_task

    if photo not in HELD_OUT_PHOTOS:
        raise IPTError(f"{photo!r} is not a held-out photo; the model was trained on it. "
                       f"Choose one of {', '.join(HELD_OUT_PHOTOS)}")
    out = check_output_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean = sample_photo(photo, crop, crop)
    net, spec = load_model(weights, device="CPU", mode="graph")
    missing = [t for t in tasks if t not in spec.task_names]
    if missing:
        raise IPTError(f"{weights!r} has no {', '.join(missing)} head; it has {spec.describe_tasks()}")
    rows = []
    for task in tasks:
        parsed = parse_task(task)
        degraded, target = Degrader(parsed)(clean, seed=0, name=photo)
        baseline = baseline_output(degraded, parsed)
        restored = quantize(restore_image(net, spec, degraded, task))
        scale = parsed.scale
        label = baseline_name(parsed)
        # an SR input is shown at the output size, as its baseline (bicubic) upscaling
        shown = (f"input x{scale}, {label}", quantize(baseline)) if parsed.kind == "sr" else ("input", degraded)
        picture = strip_image([shown, (Path(weights).stem, restored), ("reference", target)])
        if picture.shape[1] < 600:  # small crops: enlarge so the difference is visible on a screen
            picture = np.repeat(np.repeat(picture, 2, axis=0), 2, axis=1)
        path = write_image(out / f"{photo}_{task}_side_by_side.png", picture, overwrite=overwrite)
        rows.append(ShowcaseRow(task, label, psnr(baseline, target, scale), ssim(baseline, target, scale),
                                psnr(restored, target, scale), ssim(restored, target, scale), path))
    return rows


def render(rows: list[ShowcaseRow], photo: str, weights: str) -> str:
    lines = [f"{Path(weights).name} on the held-out photo {photo!r} (PSNR-Y dB / SSIM-Y):",
             f"  {'task':<11} {'baseline':<22} {'model':<17} gain",
             ]
    for r in rows:
        lines.append(f"  {r.task:<11} {r.baseline + f' {r.baseline_psnr:.2f} / {r.baseline_ssim:.3f}':<22} "
                     f"{f'{r.model_psnr:.2f} / {r.model_ssim:.3f}':<17} {r.gain:+.2f} dB  -> {r.image}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the side-by-side PNGs")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default="ipt_small", help="registered model with shipped weights")
    source.add_argument("--weights", default=None, help="a weights file instead")
    parser.add_argument("--photo", default="coffee")
    parser.add_argument("--tasks", default="denoise_30,sr_x2,derain")
    parser.add_argument("--crop", type=int, default=192, help="centre crop size (0: the whole photo)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from ipt_ms.registry import pretrained_weights

    try:
        weights = args.weights or str(pretrained_weights(args.model))
        rows = showcase(weights, args.out, args.photo, tuple(args.tasks.split(",")), args.crop or None,
                        args.overwrite)
    except IPTError as err:
        print(f"showcase: error: {err}")
        return 2
    print(render(rows, args.photo, weights))
    worse = [r.task for r in rows if r.gain <= 0]
    if worse:
        print(f"FAIL: no gain over the baseline on {', '.join(worse)}")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
