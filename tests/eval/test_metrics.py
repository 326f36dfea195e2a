"""PSNR-Y / PSNR-RGB / SSIM-Y against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ipt_ms.errors import IPTError
from ipt_ms.metrics import default_shave, luma, match_target, mean_score, psnr, quantize, ssim


def flat(h, w, rgb):
    return np.broadcast_to(np.array(rgb, np.float64), (h, w, 3)).copy()


def test_constant_red_error_psnr_y():
    # d = 10 on R only: Y difference = 10 * 65.738 / 256 / 255 = 0.0100702..., PSNR = -20 log10(that)
    hr = flat(20, 20, (100, 100, 100))
    sr = hr + np.array([10.0, 0, 0])
    assert psnr(sr, hr, scale=1) == pytest.approx(39.9392, abs=1e-4)
    assert psnr(sr, hr, scale=1) == pytest.approx(-20 * math.log10(10 * 65.738 / 256 / 255), abs=1e-12)


def test_equal_error_on_all_channels_psnr_y_and_rgb():
    # d = 2 on R, G and B: Y difference = 2 * (65.738 + 129.057 + 25.064) / 256 / 255 = 2 * 219.859 / 65280
    hr = flat(16, 12, (50, 60, 70))
    sr = hr + 2.0
    assert psnr(sr, hr, 1) == pytest.approx(-20 * math.log10(2 * 219.859 / 65280), abs=1e-12)
    assert psnr(sr, hr, 1) == pytest.approx(43.4321, abs=1e-4)
    # RGB: mse = (2/255)^2, PSNR = 20 log10(255/2) = 42.1102
    assert psnr(sr, hr, 1, channel="rgb") == pytest.approx(42.1102, abs=1e-4)


def test_rgb_error_on_one_channel_is_averaged_over_three():
    hr = flat(8, 8, (10, 20, 30))
    sr = hr + np.array([0.0, 0.0, 6.0])
    # mse = 36 / 3 / 255^2 -> 10 log10(255^2 * 3 / 36)
    assert psnr(sr, hr, 1, channel="rgb") == pytest.approx(10 * math.log10(255**2 * 3 / 36), abs=1e-12)


def test_output_is_quantised_half_to_even_and_clipped():
    hr = flat(10, 10, (100, 100, 100))
    assert math.isinf(psnr(hr + 0.5, hr, 1))  # 100.5 -> 100 (half to even, like torch.round)
    assert psnr(hr + 1.5, hr, 1) == pytest.approx(psnr(hr + 2.0, hr, 1))  # 101.5 -> 102
    assert psnr(hr + 0.4, hr, 1, quantize=False) < 60  # unquantised: the 0.4 counts
    white = flat(10, 10, (255, 255, 255))
    assert math.isinf(psnr(white + 40.0, white, 1))  # clipped to 255
    np.testing.assert_array_equal(quantize(np.array([0.5, 1.5, 2.5, -3.0, 256.7])), [0, 2, 2, 0, 255])


def test_shave_is_scale_for_sr_and_zero_for_scale_one():
    assert default_shave(1) == 0 and default_shave(2) == 2 and default_shave(4) == 4
    hr = flat(20, 24, (80, 90, 100))
    sr = hr.copy()
    sr[:2] += 30  # an error only inside the x2 border
    assert math.isinf(psnr(sr, hr, scale=2))
    assert math.isfinite(psnr(sr, hr, scale=1))
    assert math.isfinite(psnr(sr, hr, scale=2, shave=0))
    sr = hr.copy()
    sr[2, 2:22, 0] += 10.0  # R only, 20 pixels of the 16 x 20 left after shaving 2
    mse = (10 * 65.738 / 256 / 255) ** 2 * 20 / (16 * 20)
    assert psnr(sr, hr, scale=2) == pytest.approx(-10 * math.log10(mse), abs=1e-9)


def test_target_is_cropped_to_the_output_like_the_official_loader():
    hr = np.random.default_rng(0).integers(0, 256, (21, 23, 3)).astype(np.float64)
    sr = hr[:20, :22].copy()
    assert math.isinf(psnr(sr, hr, scale=2))  # modcrop remainder (1 px) is cut
    assert match_target(sr, hr, 2).shape == (20, 22, 3)
    with pytest.raises(IPTError, match="ground truth is 23x21"):
        psnr(sr, hr, scale=1)
    with pytest.raises(IPTError, match="ground truth"):
        psnr(hr, sr, scale=2)  # target smaller than the output
    with pytest.raises(IPTError, match="H x W x 3"):
        psnr(sr[..., 0], hr, scale=2)


def test_luma_matches_bt601():
    # MATLAB rgb2ycbcr: 16 + (65.481, 128.553, 24.966) . rgb / 255; the official /256 coefficients agree to 4e-6
    rgb = np.array([[[255.0, 128.0, 0.0]]])
    matlab = 16 + (65.481 * 255 + 128.553 * 128) / 255
    assert luma(rgb)[0, 0] == pytest.approx(matlab, rel=1e-5)


def test_ssim_of_constant_images_by_hand():
    a, b = flat(30, 30, (100, 100, 100)), flat(30, 30, (110, 110, 110))
    ya, yb = 16 + 100 * 219.859 / 256, 16 + 110 * 219.859 / 256
    c1 = (0.01 * 255) ** 2
    expected = (2 * ya * yb + c1) / (ya**2 + yb**2 + c1)  # variances are 0: the contrast term is C2/C2
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0)


def test_ssim_matches_scikit_image_gaussian_ssim():
    from skimage import data
    from skimage.metrics import structural_similarity

    hr = data.astronaut()[:96, :80].astype(np.float64)
    sr = np.clip(hr + np.random.default_rng(1).normal(0, 12, hr.shape), 0, 255)
    for scale in (1, 2, 3):
        b = scale if scale > 1 else 0
        ya = luma(quantize(sr))[b:96 - b, b:80 - b]
        yb = luma(hr)[b:96 - b, b:80 - b]
        ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255)
        assert ssim(sr, hr, scale) == pytest.approx(ref, abs=1e-10)


def test_ssim_needs_an_11_pixel_window():
    img = flat(14, 30, (1, 2, 3))
    assert ssim(img, img, scale=1) == pytest.approx(1.0)
    with pytest.raises(IPTError, match="at least 11x11"):
        ssim(img, img, scale=2)
    with pytest.raises(IPTError, match="no pixels left"):
        psnr(flat(4, 4, (0, 0, 0)), flat(4, 4, (0, 0, 0)), scale=2)


def test_mean_score_skips_missing_and_keeps_inf():
    """The one mean of per-image scores that eval's summaries and training's validation share."""
    assert mean_score([30.0, None, 32.0]) == 31.0
    assert mean_score([None, None]) is None
    assert mean_score([]) is None
    assert mean_score([30.0, math.inf]) == math.inf  # an exact restoration scores inf PSNR
