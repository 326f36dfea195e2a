"""Write one of scikit-image's bundled photos (optionally a centre crop) as PNG.

    python scripts/sample_image.py astronaut demo_out/astronaut.png --crop 64
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="skimage.data photo: astronaut, coffee, chelsea, rocket, ...")
    parser.add_argument("output")
    parser.add_argument("--crop", type=int, default=None, help="centre crop size in pixels")
    args = parser.parse_args()
    from skimage import data

    image = np.asarray(getattr(data, args.name)())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if args.crop:
        h, w = image.shape[:2]
        top, left = max(0, (h - args.crop) // 2), max(0, (w - args.crop) // 2)
        image = image[top:top + args.crop, left:left + args.crop]
    Image.fromarray(image[:, :, :3]).save(args.output)
    print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    main()
