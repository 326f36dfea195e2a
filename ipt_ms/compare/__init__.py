"""Compare two outputs: images, .npy arrays, or folders of either (`ipt-ms compare A B`).

Two ways: `pairs` asks whether two outputs differ by more than rounding (PSNR, max abs/rel
difference, changed 8-bit values, against `CompareLimits`); `ground_truth` scores restored images
against their clean originals as `ipt-ms eval` does (`ipt-ms compare OUT GT --gt`). Import from here.
"""

from __future__ import annotations

from ipt_ms.compare.ground_truth import GroundTruthResult, compare_to_ground_truth
from ipt_ms.compare.pairs import CompareLimits, CompareResult, PairResult, compare_arrays, compare_paths, load_array

__all__ = ["CompareLimits", "PairResult", "CompareResult", "GroundTruthResult", "compare_arrays", "compare_paths",
           "compare_to_ground_truth", "load_array"]
