"""Compare two restored outputs (.npy float32 or PNG): max abs difference and PSNR between them."""

from __future__ import annotations

import argparse
import sys

import numpy as np


def load(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return np.load(path).astype(np.float64)
    from ipt_ms.data.imageio import read_image

    return read_image(path).astype(np.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--max-rel", type=float, default=1e-4, help="fail above this max rel difference")
    args = parser.parse_args()
    a, b = load(args.a), load(args.b)
    if a.shape != b.shape:
        print(f"shapes differ: {a.shape} vs {b.shape}", file=sys.stderr)
        return 1
    diff = np.abs(a - b)
    rel = diff.max() / max(np.abs(b).max(), 1e-12)
    mse = np.mean((np.clip(a, 0, 255) - np.clip(b, 0, 255)) ** 2)
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    print(f"{args.a} vs {args.b}: max abs diff {diff.max():.3e}, max rel diff {rel:.3e}, PSNR {psnr:.1f} dB")
    return 0 if rel <= args.max_rel else 1


if __name__ == "__main__":
    sys.exit(main())
