"""MATLAB-compatible bicubic: test vector, tap tables, a literal reference, uint8 rules."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from ipt_ms.data.imresize import contributions, cubic, imresize, modcrop
from ipt_ms.errors import IPTError

# The module itself: ``ipt_ms.data.imresize`` as an attribute is the re-exported function.
imresize_mod = importlib.import_module("ipt_ms.data.imresize")

# ----------------------------------------------------------------------------- reference


def _ref_cubic(x: float) -> float:
    t = abs(x)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def _ref_pass(x: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    """MATLAB's contributions() + resizeAlongDim, transcribed literally (1-based maths)."""
    in_len = x.shape[axis]
    width = 4.0 / scale if scale < 1 else 4.0
    aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
    xm = np.moveaxis(x.astype(np.float64), axis, 0)
    out = np.zeros((out_len,) + xm.shape[1:])
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + p for p in range(math.ceil(width) + 2)]
        if scale < 1:
            w = [scale * _ref_cubic(scale * (u - j)) for j in taps]
        else:
            w = [_ref_cubic(u - j) for j in taps]
        total = sum(w)
        for j, wj in zip(taps, w):
            src = aux[(j - 1) % (2 * in_len)] - 1
            out[i - 1] += (wj / total) * xm[src]
    return np.moveaxis(out, 0, axis)


def _ref_imresize(img: np.ndarray, out_shape: tuple[int, int], per_pass_uint8: bool) -> np.ndarray:
    sh, sw = out_shape[0] / img.shape[0], out_shape[1] / img.shape[1]
    order = [0, 1] if sh <= sw else [1, 0]
    x = img.astype(np.float64)
    for axis in order:
        x = _ref_pass(x, axis, out_shape[axis], sh if axis == 0 else sw)
        if per_pass_uint8:
            x = np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), 0, 255)
    return x


# ----------------------------------------------------------------------------- tests


def test_test_vector():
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    expected = [[0.7506, 2.1004, 3.4503], [6.1501, 7.5000, 8.8499], [11.5497, 12.8996, 14.2494]]
    np.testing.assert_allclose(imresize(x, output_shape=(3, 3)), expected, atol=6e-5)


def test_cubic_kernel_values():
    np.testing.assert_allclose(cubic(np.array([0, 0.5, 1, 1.5, 2, 2.5])), [1, 0.5625, 0, -0.0625, 0, 0])


@pytest.mark.parametrize(
    "scale, taps",
    [
        (2, [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]),
        (3, [-0.012346, -0.024691, 0.111111, 0.259259, 0.333333, 0.259259, 0.111111, -0.024691, -0.012346]),
        (4, [-0.00170898, -0.01098633, -0.01831055, -0.01196289, 0.02270508, 0.09741211, 0.18188477,
             0.24096680, 0.24096680, 0.18188477, 0.09741211, 0.02270508, -0.01196289, -0.01831055,
             -0.01098633, -0.00170898]),
    ],
)
def test_interior_tap_tables(scale, taps):
    weights, idx = contributions(60 * scale, 60, 1.0 / scale)
    row = 30  # far from both borders
    assert weights.shape[1] == len(taps)
    np.testing.assert_allclose(weights[row], taps, atol=5e-7)
    assert abs(weights[row].sum() - 1) < 1e-12
    assert np.all(np.diff(idx[row]) > 0)  # consecutive input pixels, no reflection inside


def test_x3_drops_zero_taps_at_distance_3():
    weights, idx = contributions(180, 60, 1.0 / 3)
    row = 30
    centre = idx[row][np.argmax(weights[row])]
    assert list(idx[row] - centre) == [-5, -4, -2, -1, 0, 1, 2, 4, 5]


def test_x2_x4_weights_are_exact_dyadics():
    for s in (2, 4):
        weights, _ = contributions(40 * s, 40, 1.0 / s)
        scaled = weights * 4096
        assert np.array_equal(scaled, np.round(scaled))


def test_x3_weights_are_multiples_of_one_81st():
    # The float32 fast path relies on this (see imresize._exact_in_float32).
    weights, _ = contributions(120, 40, 1.0 / 3)
    scaled = weights * 81
    np.testing.assert_allclose(scaled, np.round(scaled), atol=1e-9)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_float32_fast_path_rounds_exactly_like_float64(photos, monkeypatch, s):
    rng = np.random.default_rng(s)
    n = 24 * s
    images = [rng.integers(0, 256, (n, n + s, 3), dtype=np.uint8) for _ in range(20)]
    images += [(rng.integers(0, 2, (n, n, 3)) * 255).astype(np.uint8) for _ in range(20)]  # saturating
    images += [np.ascontiguousarray(p[:n, : 2 * n]) for p in photos]
    fast = [imresize(im, 1 / s) for im in images]
    monkeypatch.setattr(imresize_mod, "_exact_in_float32", lambda *args: False)
    for im, f in zip(images, fast):
        np.testing.assert_array_equal(f, imresize(im, 1 / s))


def test_border_taps_use_half_sample_symmetric_reflection():
    weights, idx = contributions(16, 8, 0.5)
    # Output 1 centres at input 1.5 (1-based): taps -2..5 -> mirrored [2,1,0,0,1,2,3,4] 0-based.
    assert list(idx[0]) == [2, 1, 0, 0, 1, 2, 3, 4]
    assert list(idx[-1]) == [11, 12, 13, 14, 15, 15, 14, 13]


@pytest.mark.parametrize(
    "in_shape, out_shape",
    [((48, 60), (24, 30)), ((45, 57), (15, 19)), ((64, 48), (16, 12)), ((20, 30), (40, 60)),
     ((17, 23), (51, 69)), ((50, 40), (37, 55)), ((9, 7), (4, 3))],
)
def test_matches_literal_matlab_transcription(photo, in_shape, out_shape):
    img = photo[: in_shape[0], : in_shape[1]]
    float_out = imresize(img.astype(np.float64), output_shape=out_shape)
    np.testing.assert_allclose(float_out, _ref_imresize(img, out_shape, False), atol=1e-9)
    uint8_out = imresize(img, output_shape=out_shape)
    assert uint8_out.dtype == np.uint8
    np.testing.assert_array_equal(uint8_out, _ref_imresize(img, out_shape, True))


def test_dense_and_tap_paths_agree(photo, monkeypatch):
    img = photo[:96, :120]
    fast = imresize(img, 0.25)
    monkeypatch.setattr(imresize_mod, "_DENSE_MAX_IN", 0)
    slow = imresize(img, 0.25)
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_shape_rules(s):
    img = np.zeros((50, 37, 3), np.uint8)
    lr = imresize(img, 1 / s)
    assert lr.shape == (math.ceil(50 / s), math.ceil(37 / s), 3)
    assert imresize(lr, s).shape == (math.ceil(50 / s) * s, math.ceil(37 / s) * s, 3)
    hr = modcrop(img, s)
    assert imresize(imresize(hr, 1 / s), s).shape == hr.shape
    # float error in 1/3 * 144 must not create an extra row
    assert imresize(np.zeros((144, 144)), 1 / 3).shape == (48, 48)


def test_dtype_is_preserved(photo):
    img = photo[:40, :40]
    assert imresize(img, 0.5).dtype == np.uint8
    assert imresize(img.astype(np.float32), 0.5).dtype == np.float32
    assert imresize(img.astype(np.float64), 0.5).dtype == np.float64
    assert imresize(img.astype(np.uint16) * 257, 0.5).dtype == np.uint16


def test_uint8_rounds_after_each_pass_not_at_the_end(photos):
    img = np.ascontiguousarray(photos[1][:120, :120])
    per_pass = imresize(img, 0.5)
    float_then_round = np.clip(np.floor(imresize(img.astype(np.float64), 0.5) + 0.5), 0, 255)
    diff = per_pass.astype(int) - float_then_round
    assert np.count_nonzero(diff) > 0  # the intermediate quantisation matters somewhere...
    assert np.abs(diff).max() <= 2  # ...but only by a level or two


def test_half_rounding_goes_away_from_zero(photo):
    # Width-only x2 pass (rows have scale 1, an identity), so uint8 == one rounding of float.
    img = photo[:, :, 1][:, :128]
    exact = imresize(img.astype(np.float64), output_shape=(img.shape[0], 64))
    got = imresize(img, output_shape=(img.shape[0], 64)).astype(np.float64)
    ties = np.abs(exact - np.floor(exact) - 0.5) < 1e-12
    assert ties.sum() > 10  # x2 weights are dyadic: exact .5 values occur
    np.testing.assert_array_equal(got, np.clip(np.floor(exact + 0.5), 0, 255))
    bankers = np.clip(np.round(exact), 0, 255)
    assert np.any(got[ties] != bankers[ties])  # numpy's half-to-even would differ


def test_saturation_and_overshoot():
    edge = np.zeros((16, 16), np.uint8)
    edge[:, 8:] = 255
    up_float = imresize(edge.astype(np.float64), 2)
    assert up_float.min() < 0 and up_float.max() > 255  # cubic overshoot
    up = imresize(edge, 2)
    assert up.min() == 0 and up.max() == 255


def test_constant_image_is_preserved():
    img = np.full((33, 47, 3), 173, np.uint8)
    for scale in (0.5, 1 / 3, 0.25, 2, 3, 0.7):
        np.testing.assert_array_equal(imresize(img, scale), 173)


def test_bad_arguments():
    img = np.zeros((8, 8), np.uint8)
    with pytest.raises(IPTError):
        imresize(img)
    with pytest.raises(IPTError):
        imresize(img, 0.5, output_shape=(4, 4))
    with pytest.raises(IPTError):
        imresize(img, -1)
    with pytest.raises(IPTError):
        imresize(np.zeros((2, 2, 2, 2)), 0.5)
