"""Noise, rain and blur: determinism (runs, subsets, processes), statistics and ranges."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ipt_ms.data.blur import (
    BlurConfig,
    blur_image,
    blur_patch_valid,
    linear_kernel,
    random_kernel,
    trajectory_kernel,
)
from ipt_ms.data.degrade import Degrader, add_gaussian_noise, noisy_image
from ipt_ms.data.imageio import write_image
from ipt_ms.data.rain import (
    ProceduralStreakBank,
    StreakLayers,
    add_rain,
    procedural_streaks,
)
from ipt_ms.data.seeding import image_rng, rng_from, stable_hash
from ipt_ms.errors import IPTError

# ----------------------------------------------------------------------------- noise


def test_noise_is_seeded_by_seed_and_name(photo):
    a = noisy_image(photo, 30, seed=0, name="baby")
    b = noisy_image(photo, 30, seed=0, name="baby")
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert not np.array_equal(a, noisy_image(photo, 30, seed=0, name="bird"))
    assert not np.array_equal(a, noisy_image(photo, 30, seed=1, name="baby"))


def test_noise_statistics_and_clipping():
    flat = np.full((256, 256, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    n = add_gaussian_noise(flat, 30, rng, clip=False) - 128
    assert abs(n.mean()) < 0.3 and abs(n.std() - 30) < 0.3
    dark = np.full((64, 64, 3), 5, np.uint8)
    clipped = noisy_image(dark, 50, 0, "d")
    unclipped = noisy_image(dark, 50, 0, "d", clip=False)
    assert clipped.min() == 0 and clipped.max() <= 255
    assert unclipped.min() < -50
    np.testing.assert_array_equal(clipped, np.clip(unclipped, 0, 255))


def test_sigmas_share_one_normal_field(photo):
    flat = np.full((32, 32, 3), 128, np.uint8)
    n30 = noisy_image(flat, 30, 0, "x", clip=False) - 128
    n50 = noisy_image(flat, 50, 0, "x", clip=False) - 128
    np.testing.assert_allclose(n50, n30 * (50 / 30), rtol=1e-4, atol=1e-3)


def test_noise_independent_of_subset_and_order(tmp_path, photos):
    from ipt_ms.data.folders import denoise_benchmark

    for i, im in enumerate(photos):
        write_image(tmp_path / "CBSD68" / f"{i:03d}.png", im[:40, :50])
    full = denoise_benchmark(tmp_path / "CBSD68", 30, seed=7)
    by_name = {p.name: p.lq for p in full}
    sub = full.subset(["002", "000"])
    for pair in sub:
        np.testing.assert_array_equal(pair.lq, by_name[pair.name])
    # the same noise as the per-image helper, i.e. nothing depends on the folder
    np.testing.assert_array_equal(by_name["001"], noisy_image(photos[1][:40, :50], 30, 7, "001"))


def test_stable_across_processes_with_different_hash_seeds():
    code = (
        "import numpy as np; from ipt_ms.data.seeding import image_rng;"
        "print(repr(image_rng(3, 'img_001', 'denoise').standard_normal(3).tolist()))"
    )
    outs = set()
    for hash_seed in ("1", "12345"):
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"},
        )
        outs.add(res.stdout.strip())
    assert len(outs) == 1
    assert outs.pop() == repr(image_rng(3, "img_001", "denoise").standard_normal(3).tolist())


def test_seeding_rejects_negative_and_hash_is_fixed():
    assert stable_hash("abc") == stable_hash("abc") != stable_hash("abd")
    assert 0 <= stable_hash("abc") < 2**64
    with pytest.raises(IPTError):
        rng_from(-1)


# ----------------------------------------------------------------------------- rain


@pytest.mark.parametrize("preset", ["light", "heavy"])
def test_procedural_rain_deterministic_and_in_range(preset):
    a = procedural_streaks(96, 80, rng_from(1, preset), preset)
    b = procedural_streaks(96, 80, rng_from(1, preset), preset)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (96, 80) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 255 and a.max() > 30
    assert not np.array_equal(a, procedural_streaks(96, 80, rng_from(2, preset), preset))


def test_heavy_rain_is_heavier_than_light():
    cover = {
        p: np.mean([(procedural_streaks(128, 128, rng_from(i, p), p) > 20).mean() for i in range(4)])
        for p in ("light", "heavy")
    }
    assert cover["heavy"] > 1.5 * cover["light"] > 0


def test_light_rain_streaks_are_near_vertical():
    s = procedural_streaks(160, 160, rng_from(5), "light").astype(np.float64)
    s -= s.mean()
    # Streaks run top-to-bottom: neighbours along a column correlate far more than along a row.
    vert = (s[1:] * s[:-1]).mean()
    horiz = (s[:, 1:] * s[:, :-1]).mean()
    assert vert > 2 * horiz


def test_add_rain_is_clipped_sum(photo):
    streak = np.zeros(photo.shape[:2], np.float32)
    streak[10:40, 20] = 200.0
    out = add_rain(photo, streak)
    expect = np.clip(photo.astype(np.float32) + streak[:, :, None], 0, 255)
    np.testing.assert_array_equal(out, expect)
    with pytest.raises(IPTError):
        add_rain(photo, streak[:10])


def test_real_streak_layers(tmp_path, photo):
    for i in (1, 2, 10):
        layer = np.zeros((60, 70), np.uint8)
        layer[:, i * 3] = 100 + i
        write_image(tmp_path / f"rainstreak-{i}.png", layer)
    write_image(tmp_path / "norain-1.png", photo[:60, :70])  # ignored: not a streak layer
    layers = StreakLayers(tmp_path)
    assert [p.name for p in layers.paths] == ["rainstreak-1.png", "rainstreak-2.png", "rainstreak-10.png"]
    s = layers.sample(48, 48, rng_from(0))
    assert s.shape == (48, 48) and s.dtype == np.float32
    big = layers.sample(100, 90, rng_from(0))  # larger than the layer: reflected
    assert big.shape == (100, 90)
    np.testing.assert_array_equal(layers.sample(48, 48, rng_from(3)), layers.sample(48, 48, rng_from(3)))
    empty = tmp_path / "none"
    empty.mkdir()
    write_image(empty / "x.png", photo[:8, :8])
    with pytest.raises(IPTError, match="rainstreak"):
        StreakLayers(empty)


def test_streak_bank_is_the_same_in_every_process():
    import pickle

    bank = ProceduralStreakBank("light", seed=4, count=3, size=64)
    fresh = pickle.loads(pickle.dumps(bank))  # a worker that builds its layers itself
    bank.warm_up()
    first = bank.layer(2)
    shipped = pickle.loads(pickle.dumps(bank))  # a worker receiving the built bank
    np.testing.assert_array_equal(fresh.layer(2), first)
    np.testing.assert_array_equal(shipped.layer(2), first)
    assert not np.array_equal(ProceduralStreakBank("light", seed=5, count=3, size=64).layer(2), first)


# ----------------------------------------------------------------------------- blur


def _centroid(k):
    ys, xs = np.mgrid[: k.shape[0], : k.shape[1]]
    return (k * ys).sum(), (k * xs).sum()


@pytest.mark.parametrize("i", range(6))
def test_trajectory_kernels_sum_to_one_and_are_centred(i):
    k = trajectory_kernel(rng_from(11, i))
    assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.min() >= 0 and abs(k.sum() - 1) < 1e-12
    cy, cx = _centroid(k)
    c = k.shape[0] // 2
    assert abs(cy - c) <= 0.5 + 1e-9 and abs(cx - c) <= 0.5 + 1e-9
    np.testing.assert_array_equal(k, trajectory_kernel(rng_from(11, i)))


def test_full_exposure_is_wider_than_instant():
    rng_a, rng_b = rng_from(9), rng_from(9)
    short = trajectory_kernel(rng_a, fraction=1 / 1000)
    full = trajectory_kernel(rng_b, fraction=1.0)
    assert short.shape[0] <= 5 < full.shape[0]


def test_linear_kernel_matches_fspecial_for_axis_lines():
    k = linear_kernel(9, 0)
    row = k[k.shape[0] // 2]
    np.testing.assert_allclose(row[row > 0], np.full(9, 1 / 9))
    assert abs(k.sum() - 1) < 1e-12 and np.count_nonzero(k) == 9
    v = linear_kernel(5, 90)
    np.testing.assert_allclose(v[:, v.shape[1] // 2], np.full(5, 0.2))
    d = linear_kernel(11, 30)
    assert abs(d.sum() - 1) < 1e-12 and d.min() >= 0


def test_blur_image_keeps_range_and_constants(photo):
    k = random_kernel(rng_from(2), BlurConfig())
    out = blur_image(photo, k)
    assert out.dtype == np.float32 and out.shape == photo.shape
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    flat = np.full((40, 40, 3), 99, np.uint8)
    np.testing.assert_allclose(blur_image(flat, k), 99, atol=1e-3)
    assert np.abs(out - photo).mean() > 0.5  # it does blur
    with pytest.raises(IPTError):
        blur_image(photo, np.ones((4, 4)) / 16)


def test_blur_is_a_true_convolution_with_symmetric_border():
    impulse = np.zeros((15, 15), np.float32)
    impulse[7, 7] = 1.0
    k = np.zeros((5, 5))
    k[0, 0], k[2, 2] = 0.25, 0.75
    out = np.squeeze(blur_image(impulse, k))
    # Convolving an impulse reproduces the kernel itself (correlation would flip it).
    assert out[5, 5] == pytest.approx(0.25) and out[7, 7] == pytest.approx(0.75)
    assert out[9, 9] == 0
    edge = np.zeros((6, 6), np.float32)
    edge[5, :] = 1.0
    up = np.zeros((3, 3))
    up[0, 1] = 1.0  # out[y] = in[y + 1]
    shifted = np.squeeze(blur_image(edge, up))
    np.testing.assert_allclose(shifted[4], 1.0)
    # Row 6 does not exist: half-sample symmetric padding repeats row 5 (whole-sample
    # reflection would bring row 4 = 0 instead).
    np.testing.assert_allclose(shifted[5], 1.0)


def test_valid_patch_blur_uses_real_context(photo):
    k = linear_kernel(7, 45)
    r = k.shape[0] // 2
    patch = blur_patch_valid(photo[: 48 + 2 * r, : 48 + 2 * r], k)
    full = blur_image(photo, k)
    assert patch.shape == (48, 48, 3)
    np.testing.assert_allclose(patch, full[r : r + 48, r : r + 48], atol=1e-3)


# ----------------------------------------------------------------------------- degrader


@pytest.mark.parametrize("task", ["sr_x2", "sr_x3", "denoise_30", "derain", "deblur"])
def test_degrader_whole_image(photos, task):
    photo = photos[0]
    deg = Degrader(task)
    lq, gt = deg(photo[:121, :157], seed=0, name="n")
    s = deg.scale
    assert gt.shape == (121 - 121 % s, 157 - 157 % s, 3)
    assert lq.shape == (gt.shape[0] // s, gt.shape[1] // s, 3)
    assert lq.dtype == (np.uint8 if s > 1 else np.float32)
    assert lq.min() >= 0 and lq.max() <= 255
    lq2, _ = deg(photo[:121, :157], seed=0, name="n")
    np.testing.assert_array_equal(lq, lq2)


def test_degrader_kernel_for_matches_the_blur_used(photo):
    deg = Degrader("deblur", blur=BlurConfig(kind="linear"))
    lq, gt = deg(photo, 5, "img")
    np.testing.assert_allclose(lq, blur_image(gt, deg.kernel_for(5, "img")), atol=1e-4)


def test_degrader_rejects_unknown_tasks():
    with pytest.raises(IPTError):
        Degrader("restore_0")
    with pytest.raises(IPTError):
        Degrader("sr_x2", blur=BlurConfig(kind="zigzag"))
