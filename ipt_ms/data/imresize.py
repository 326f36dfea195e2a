"""MATLAB-compatible bicubic ``imresize`` (numpy, vectorised).

Benchmark LR images (Set5 ... Urban100, DIV2K) were made with MATLAB's ``imresize``; a
model evaluated on LR from another resampler loses 1-2 dB or more (OpenCV ``INTER_CUBIC``
is 30-37 dB away from MATLAB). This module reproduces MATLAB exactly:

* Keys cubic kernel with a = -0.5; on downscaling the kernel is stretched by 1/scale
  (antialiasing, MATLAB's default);
* output index x (1-based) samples input coordinate ``u = x/scale + 0.5*(1 - 1/scale)``;
  ``ceil(kernel_width) + 2`` taps from ``floor(u - width/2)``; rows normalised to sum 1;
  tap columns that are zero in every row are dropped;
* out-of-range taps use half-sample symmetric reflection (the edge pixel repeats);
* the dimension with the smaller scale is resized first (rows first on a tie);
* integer images (uint8, uint16, ...) are rounded half away from zero and saturated
  **after each 1-D pass**, as MATLAB's ``imresizemex`` does; float images stay float.

Weights are computed in float64; for x2 and x4 they are dyadic rationals, so the products
and sums with 8-bit pixels are exact and the .5 rounding cases come out as in MATLAB.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ipt_ms.errors import IPTError

__all__ = ["cubic", "contributions", "imresize", "modcrop"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    t = np.abs(np.asarray(x, dtype=np.float64))
    t2 = t * t
    t3 = t2 * t
    inner = (1.5 * t3 - 2.5 * t2 + 1.0) * (t <= 1)
    outer = (-0.5 * t3 + 2.5 * t2 - 4.0 * t + 2.0) * ((t > 1) & (t <= 2))
    return inner + outer


@lru_cache(maxsize=256)
def _contributions_cached(in_len: int, out_len: int, scale: float, antialias: bool):
    kernel_width = 4.0
    stretch = antialias and scale < 1
    if stretch:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    dist = u[:, None] - indices
    weights = scale * cubic(scale * dist) if stretch else cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Half-sample symmetric reflection: aux = [1..n, n..1], indexed modulo 2n.
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(weights != 0, axis=0)
    weights = np.ascontiguousarray(weights[:, keep])
    idx = np.ascontiguousarray(idx[:, keep])
    weights.setflags(write=False)
    idx.setflags(write=False)
    return weights, idx


def contributions(
    in_len: int, out_len: int, scale: float, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-pixel tap weights (out_len, K) and 0-based input indices (out_len, K).

    Exposed so tests (and curious users) can compare the taps with MATLAB's tables.
    """
    return _contributions_cached(int(in_len), int(out_len), float(scale), bool(antialias))


def _out_len(in_len: int, scale: float) -> int:
    # MATLAB: ceil(scale * in). The 1e-9 guard absorbs float error such as 144 * (1/3)
    # = 48.000000000000004, which would otherwise give one extra output row.
    return max(1, int(math.ceil(in_len * scale - 1e-9)))


def _dense_matrix(weights: np.ndarray, idx: np.ndarray, in_len: int) -> np.ndarray:
    """Scatter the taps into a dense (out_len, in_len) matrix (reflected taps add up)."""
    mat = np.zeros((weights.shape[0], in_len), dtype=np.float64)
    rows = np.broadcast_to(np.arange(weights.shape[0])[:, None], idx.shape)
    np.add.at(mat, (rows, idx), weights)
    return mat


@lru_cache(maxsize=256)
def _dense_cached(in_len: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    weights, idx = _contributions_cached(in_len, out_len, scale, antialias)
    mat = _dense_matrix(weights, idx, in_len)
    mat.setflags(write=False)
    return mat


#: Passes whose input length is at most this use a dense matrix product (BLAS is faster than
#: K gathers on small patches); longer ones loop over the K taps, which needs K/in_len of the
#: arithmetic and no out x in matrix.
_DENSE_MAX_IN = 512


@lru_cache(maxsize=64)
def _dense_cached_f32(in_len: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    mat = _dense_cached(in_len, out_len, scale, antialias).astype(np.float32)
    mat.setflags(write=False)
    return mat


def _exact_in_float32(n_in: int, n_out: int, scale: float, antialias: bool) -> bool:
    """Whether a pass over 8-bit integers gives MATLAB's rounding when computed in float32.

    True for downscaling by exactly 2, 3 or 4 (the training and benchmark factors):

    * x2 / x4: every weight is a multiple of 2^-12 (tested), so each product with an 8-bit
      value and every partial sum (|sum| < 2^9) is exact in float32's 24-bit mantissa,
      whatever the summation order; the .5 ties come out exactly as in float64;
    * x3: every weight is a multiple of 1/81 (tested), so the exact result is a multiple of
      1/81 and at least 1/162 away from any .5 tie, while float32 accumulation over <= 16
      taps of values <= 255 errs by < 3e-4: rounding is unchanged.

    Other factors keep the float64 path (MATLAB computes in double).
    """
    return antialias and n_in in (2 * n_out, 3 * n_out, 4 * n_out) and abs(scale * n_in - n_out) < 1e-9


def _resize_axis(
    x: np.ndarray, axis: int, n_in: int, n_out: int, scale: float, antialias: bool, f32: bool = False
):
    """One 1-D pass of a float HxW[xC] array: out[i] = sum_k w[i, k] * x[idx[i, k]].

    ``f32``: x is float32 holding 8-bit integers and the pass is one of the factors for
    which :func:`_exact_in_float32` holds (float32 BLAS is about twice as fast).
    """
    if n_in <= _DENSE_MAX_IN:
        if f32:
            mat = _dense_cached_f32(n_in, n_out, scale, antialias)
        else:
            mat = _dense_cached(n_in, n_out, scale, antialias)
            x = x.astype(np.float64, copy=False)
        if axis == 0:
            return (mat @ x.reshape(n_in, -1)).reshape((n_out,) + x.shape[1:])
        if x.ndim == 2:
            return x @ mat.T
        return np.matmul(mat, x)  # batched over rows: (o, W) @ (H, W, C) -> (H, o, C)
    weights, idx = contributions(n_in, n_out, scale, antialias)
    xm = np.moveaxis(x.astype(np.float64, copy=False), axis, 0)
    shape = (n_out,) + (1,) * (xm.ndim - 1)
    out = np.zeros((n_out,) + xm.shape[1:], dtype=np.float64)
    # Loop over the (few) taps, vectorised over every output pixel of the pass.
    for k in range(weights.shape[1]):
        out += weights[:, k].reshape(shape) * xm[idx[:, k]]
    return np.moveaxis(out, 0, axis)


def _round_saturate(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """MATLAB integer conversion in float64, in place: round half away from zero, saturate."""
    info = np.iinfo(dtype)
    if info.min == 0:
        # Negative values saturate to 0 whichever way they round, so floor(x + 0.5) is exact.
        x += 0.5
        np.floor(x, out=x)
    else:
        sign = np.sign(x)
        np.abs(x, out=x)
        x += 0.5
        np.floor(x, out=x)
        x *= sign
    np.clip(x, info.min, info.max, out=x)
    return x


def imresize(
    img: np.ndarray,
    scale: float | tuple[float, float] | None = None,
    output_shape: tuple[int, int] | None = None,
    antialiasing: bool = True,
) -> np.ndarray:
    """Resize an HxW or HxWxC image exactly like MATLAB's ``imresize(img, scale, 'bicubic')``.

    Give either ``scale`` (a number, or (scale_h, scale_w)); the output size is
    ``ceil(scale * size)``) or ``output_shape`` (H, W); then the per-axis scale is out/in,
    as in MATLAB. Integer input returns the same integer dtype (per-pass rounding and
    saturation); float input returns the same float dtype, unclipped. Bool input is not
    supported.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise IPTError(f"imresize expects an HxW or HxWxC image, got shape {img.shape}")
    if img.dtype == np.bool_ or not (
        np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)
    ):
        raise IPTError(f"imresize: unsupported dtype {img.dtype}")
    in_h, in_w = img.shape[:2]
    if (scale is None) == (output_shape is None):
        raise IPTError("imresize: give exactly one of scale and output_shape")
    if scale is not None:
        sh, sw = (scale, scale) if np.isscalar(scale) else tuple(scale)
        sh, sw = float(sh), float(sw)
        if sh <= 0 or sw <= 0:
            raise IPTError(f"imresize: scale must be positive, got {scale}")
        out_h, out_w = _out_len(in_h, sh), _out_len(in_w, sw)
    else:
        out_h, out_w = (int(v) for v in output_shape)
        if out_h <= 0 or out_w <= 0:
            raise IPTError(f"imresize: output_shape must be positive, got {output_shape}")
        sh, sw = out_h / in_h, out_w / in_w
    if in_h == 0 or in_w == 0:
        raise IPTError(f"imresize: empty image of shape {img.shape}")

    is_int = np.issubdtype(img.dtype, np.integer)
    # MATLAB sorts the scales (stable): smaller scale first, rows first on a tie.
    order = (0, 1) if sh <= sw else (1, 0)
    is_u8 = img.dtype == np.uint8
    x = img
    for axis in order:
        s, n_in, n_out = (sh, in_h, out_h) if axis == 0 else (sw, in_w, out_w)
        f32 = is_u8 and n_in <= _DENSE_MAX_IN and _exact_in_float32(n_in, n_out, s, bool(antialiasing))
        x = _resize_axis(x.astype(np.float32 if f32 else np.float64, copy=False), axis, n_in, n_out, s,
                         bool(antialiasing), f32)
        if is_int:
            # Quantise after every pass: the next pass starts from the integer image.
            x = _round_saturate(np.ascontiguousarray(x), img.dtype)
    return x.astype(img.dtype)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Cut H and W down to multiples of ``scale`` (top-left kept), as benchmark HR is."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
