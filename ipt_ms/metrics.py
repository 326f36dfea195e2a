"""Image-quality metrics, computed the way IPT/EDSR report them (one place for all of them).

PSNR (``psnr``), as the official ``utility.calc_psnr`` after ``utility.quantize``:

1. the restored image is quantised: clipped to [0, 255] and rounded half-to-even (what
   ``torch.round`` does), unless ``quantize=False``;
2. the ground truth is cropped at the bottom/right to the output size (the official
   loader cuts HR to LR*s; only a modcrop remainder of fewer than s pixels may be cut);
3. the per-pixel difference is divided by 255 and, for ``channel="y"``, mixed to luma
   with (65.738, 129.057, 25.064) / 256 (BT.601, the same as MATLAB ``rgb2ycbcr``);
4. a border of ``shave`` pixels is dropped: the scale for super-resolution, none for
   scale-1 tasks (denoise, derain, deblur), as the official test code does;
5. PSNR = -10 log10(mean(d^2)) in float64 (peak 1 on the /255 scale); +inf when equal.

``channel="rgb"`` skips the luma mix and averages over the three channels, the SwinIR /
KAIR convention (several dB lower for denoising, see ipt-conventions.md section 2).

SSIM (``ssim``): Wang et al. 2004 on the luma channel Y = 16 + coefficients . RGB (the
absolute Y the PSNR coefficients imply), 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
K2 = 0.03, L = 255, statistics by 'valid' filtering, mean of the SSIM map; same
quantisation, crop and shave as PSNR.
"""

from __future__ import annotations

import math

import numpy as np

from ipt_ms.errors import IPTError

__all__ = ["Y_COEFFS", "SSIM_WINDOW", "default_shave", "luma", "match_target", "mean_score", "psnr", "psnr_from_mse",
           "quantize", "ssim"]

#: RGB -> Y weights of the official code (divided by 256, applied to values on the 0..255 scale).
Y_COEFFS = np.array([65.738, 129.057, 25.064], dtype=np.float64) / 256.0
#: SSIM window side; images must be at least this large after shaving.
SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def default_shave(scale: int) -> int:
    """Border the official test code ignores: the scale for SR, nothing for scale 1."""
    return 0 if int(scale) == 1 else int(scale)


def quantize(img: np.ndarray) -> np.ndarray:
    """float64 copy clipped to [0, 255] and rounded half-to-even, like the official ``quantize``."""
    return np.round(np.clip(np.asarray(img, dtype=np.float64), 0.0, 255.0))


def _as_hwc3(img: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise IPTError(f"{what}: expected an H x W x 3 image, got shape {arr.shape}")
    return arr


def match_target(output: np.ndarray, target: np.ndarray, scale: int = 1) -> np.ndarray:
    """The target cropped to the output's size (bottom/right), as the official loader does.

    Only a modcrop remainder (fewer than `scale` pixels per side) may be cut; anything
    else means the two images do not belong together.
    """
    oh, ow = output.shape[:2]
    th, tw = target.shape[:2]
    slack = max(int(scale), 1)
    if th < oh or tw < ow or th - oh >= slack or tw - ow >= slack:
        raise IPTError(f"output is {ow}x{oh} but the ground truth is {tw}x{th} "
                       f"(expected {ow}x{oh}" + (f", or up to {slack - 1} px more for x{scale})" if slack > 1 else ")"))
    return target[:oh, :ow]


def _prepare(output: np.ndarray, target: np.ndarray, scale: int, shave: int | None,
             do_quantize: bool) -> tuple[np.ndarray, np.ndarray, int]:
    output = _as_hwc3(output, "restored image")
    target = _as_hwc3(target, "ground truth")
    target = match_target(output, target, scale).astype(np.float64)
    out = quantize(output) if do_quantize else np.asarray(output, dtype=np.float64)
    border = default_shave(scale) if shave is None else int(shave)
    if border < 0:
        raise IPTError(f"shave must be >= 0, got {border}")
    if 2 * border >= min(out.shape[:2]):
        raise IPTError(f"a {out.shape[1]}x{out.shape[0]} image has no pixels left after shaving {border} px")
    return out, target, border


def _crop(arr: np.ndarray, border: int) -> np.ndarray:
    return arr[border:arr.shape[0] - border, border:arr.shape[1] - border] if border else arr


def luma(img: np.ndarray) -> np.ndarray:
    """Y on the 16..235 scale from an H x W x 3 RGB image in [0, 255] (float64)."""
    return 16.0 + np.asarray(img, dtype=np.float64) @ Y_COEFFS


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error of values scaled to a peak of 1; inf when zero."""
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


def psnr(output: np.ndarray, target: np.ndarray, scale: int = 1, *, channel: str = "y",
         shave: int | None = None, quantize: bool = True) -> float:
    """PSNR in dB of a restored H x W x 3 image against its ground truth (see module docs)."""
    out, ref, border = _prepare(output, target, scale, shave, quantize)
    diff = (out - ref) / 255.0
    if channel == "y":
        diff = diff @ Y_COEFFS
    elif channel != "rgb":
        raise IPTError(f"PSNR channel must be 'y' or 'rgb', got {channel!r}")
    return psnr_from_mse(float(np.mean(np.square(_crop(diff, border)))))


def _gaussian_taps(size: int = SSIM_WINDOW, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return taps / taps.sum()


def _filter_valid(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with a symmetric 1-D kernel along both axes."""
    k = taps.size
    h, w = img.shape
    rows = sum(taps[i] * img[i:h - k + 1 + i, :] for i in range(k))
    return sum(taps[j] * rows[:, j:w - k + 1 + j] for j in range(k))


def ssim(output: np.ndarray, target: np.ndarray, scale: int = 1, *, shave: int | None = None,
         quantize: bool = True) -> float:
    """Mean SSIM on Y (Gaussian 11x11, sigma 1.5, 'valid' statistics; see module docs)."""
    out, ref, border = _prepare(output, target, scale, shave, quantize)
    a, b = _crop(luma(out), border), _crop(luma(ref), border)
    if min(a.shape) < SSIM_WINDOW:
        raise IPTError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after shaving, "
                       f"got {a.shape[1]}x{a.shape[0]}")
    taps = _gaussian_taps()
    mu_a, mu_b = _filter_valid(a, taps), _filter_valid(b, taps)
    var_a = _filter_valid(a * a, taps) - mu_a * mu_a
    var_b = _filter_valid(b * b, taps) - mu_b * mu_b
    cov = _filter_valid(a * b, taps) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + _C1) * (2.0 * cov + _C2)
    den = (mu_a * mu_a + mu_b * mu_b + _C1) * (var_a + var_b + _C2)
    return float(np.mean(num / den))


def mean_score(values: list[float | None]) -> float | None:
    """The mean of a set's per-image scores, missing ones (None) left out; None when none is left.

    inf when any image scores inf (the PSNR of an exact restoration), rather than whatever
    averaging an inf with finite scores gives."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return math.inf if any(math.isinf(v) for v in present) else float(np.mean(present))
