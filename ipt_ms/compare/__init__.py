"""Compare two outputs: images, .npy arrays, or folders of either (`ipt-ms compare A B`).

The question a user asks after restoring the same photo in two frameworks (or two
versions): do these differ by more than rounding? Every pair gets PSNR (RGB and Y, on the
values as stored: float arrays are not rounded first), the max abs and max rel difference,
and how many 8-bit values and pixels would differ once both are saved as PNG (clipped to
[0, 255] and rounded). A pair passes when its max abs difference is at most `max_abs`
(default 1.0: one 8-bit level, so PNGs that differ by rounding pass) and the optional
limits (max rel, min PSNR, fraction of changed 8-bit values) hold. Folders are matched by
file name, then by stem (`x.npy` with `x.png`).

Ground-truth mode (`compare_to_ground_truth`, `ipt-ms compare OUT GT --gt`) scores restored
images against their clean originals as `ipt-ms eval` does, through the same functions
(`ipt_ms.metrics.psnr` / `ssim`: quantised output, PSNR on Y and RGB, SSIM on Y, the SR
border shave, the ground truth modcropped to the output). `restore`'s outputs pair with
their originals by name: `x_sr_x2.png` with `x.png` (the task suffix also gives the scale).

Here: the names to import; pairs are compared in `pairs`, scored against ground truth in `ground_truth`.
"""

from __future__ import annotations

from ipt_ms.compare.ground_truth import GroundTruthResult, compare_to_ground_truth
from ipt_ms.compare.pairs import CompareLimits, CompareResult, PairResult, compare_arrays, compare_paths, load_array

__all__ = ["CompareLimits", "PairResult", "CompareResult", "GroundTruthResult", "compare_arrays", "compare_paths",
           "compare_to_ground_truth", "load_array"]
