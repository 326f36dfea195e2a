"""Real photos for the mini benchmark, from scikit-image's bundled sample data.

`ipt-ms synth` degrades them into a benchmark-layout set that `ipt-ms eval` and
`ipt-ms parity-bench` read like Set5. Used by ``make bench-mini`` and the CI-size test:

    python -m ipt_ms.eval.photos OUT_DIR [--count 6] [--height 192 --width 240]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError

__all__ = ["HELD_OUT_PHOTOS", "SAMPLE_PHOTOS", "TRAINING_PHOTOS", "sample_photo", "training_images",
           "write_sample_photos", "write_training_photos"]

#: colour photos shipped inside scikit-image (no download needed)
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


#: photos the shipped small model (docs/model_card_small.md) never saw: its quality table is measured on them
HELD_OUT_PHOTOS = ("chelsea", "coffee")
#: the training images: every colour photo bundled with scikit-image or matplotlib except the held-out ones
#: (`cat` is `chelsea` again), and scikit-image's grey textures as RGB
TRAINING_COLOUR = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                   "motorcycle_left", "motorcycle_right", "grace_hopper")
TRAINING_GREY = ("camera", "grass", "gravel", "brick", "moon", "coins", "text", "page")
TRAINING_PHOTOS = TRAINING_COLOUR + TRAINING_GREY


def _bundled_image(name: str) -> np.ndarray:
    """One training image as H x W x 3 uint8, from the scikit-image or matplotlib wheel."""
    import skimage.data as skd

    if name == "grace_hopper":  # matplotlib's sample data (public domain, US Navy photo)
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
            from PIL import Image

            return np.asarray(Image.open(handle).convert("RGB"))
    if name.startswith("motorcycle_"):
        left, right = skd.stereo_motorcycle()[:2]
        return left if name.endswith("left") else right
    img = np.asarray(getattr(skd, name)())
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]


def training_images(names: tuple[str, ...] = TRAINING_PHOTOS) -> dict[str, np.ndarray]:
    """The named training images (never a held-out photo)."""
    leaked = sorted(set(names) & set(HELD_OUT_PHOTOS + ("cat",)))
    if leaked:
        raise IPTError(f"{', '.join(leaked)} is held out for evaluation and must not be trained on")
    return {name: np.ascontiguousarray(_bundled_image(name)) for name in names}


def write_training_photos(out_dir: os.PathLike | str, names: tuple[str, ...] = TRAINING_PHOTOS) -> list[Path]:
    """Write the training images as PNG into `out_dir` (created; rewritten on a second run)."""
    from ipt_ms.data.imageio import write_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [write_image(out / f"{name}.png", img, overwrite=True) for name, img in training_images(names).items()]


def sample_photo(name: str, height: int | None = None, width: int | None = None) -> np.ndarray:
    """H x W x 3 uint8 photo `name`, centre-cropped to at most height x width."""
    from skimage import data

    if name not in SAMPLE_PHOTOS:
        raise IPTError(f"unknown sample photo {name!r}; choose from {', '.join(SAMPLE_PHOTOS)}")
    img = np.asarray(getattr(data, name)())[..., :3]
    h, w = img.shape[:2]
    ch, cw = min(h, height or h), min(w, width or w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[top:top + ch, left:left + cw])


def write_sample_photos(out_dir: os.PathLike | str, names: tuple[str, ...] | list[str] = SAMPLE_PHOTOS,
                        height: int | None = None, width: int | None = None) -> list[Path]:
    """Write the named photos as PNG into `out_dir` (created); returns the files."""
    from ipt_ms.data.imageio import write_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the sample photos, rewritten by a second run (the quick start may be repeated)
    return [write_image(out / f"{name}.png", sample_photo(name, height, width), overwrite=True) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write scikit-image sample photos for the mini benchmark")
    parser.add_argument("out", help="folder to write PNGs into")
    parser.add_argument("--count", type=int, default=len(SAMPLE_PHOTOS), help="how many photos (default all 6)")
    parser.add_argument("--height", type=int, default=None, help="centre-crop height")
    parser.add_argument("--width", type=int, default=None, help="centre-crop width")
    args = parser.parse_args(argv)
    for path in write_sample_photos(args.out, SAMPLE_PHOTOS[:max(1, args.count)], args.height, args.width):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
