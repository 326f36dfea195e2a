"""The bicubic / degraded-input baseline."""

from __future__ import annotations

import numpy as np

from ipt_ms.eval.baseline import baseline_name, baseline_output
from ipt_ms.tasks import parse_task


def test_sr_baseline_is_matlab_bicubic_of_the_lr_image():
    from skimage import data

    from ipt_ms.data.imresize import imresize
    from ipt_ms.metrics import psnr

    hr = data.astronaut()[100:196, 150:246]  # 96x96, divisible by 2, 3 and 4
    for scale in (2, 3, 4):
        task = parse_task(f"sr_x{scale}")
        lr = imresize(hr, scale=1 / scale)
        out = baseline_output(lr.astype(np.float32), task)
        assert out.shape == hr.shape and out.dtype == np.float32
        np.testing.assert_array_equal(out, imresize(lr, scale=scale).astype(np.float32))
        value = psnr(out, hr.astype(np.float32), scale)
        assert 20 < value < 40, value  # a real photo: bicubic is neither perfect nor garbage
        assert baseline_name(task) == "bicubic"


def test_restoration_baseline_is_the_input_unchanged():
    rng = np.random.default_rng(0)
    noisy = rng.uniform(-20, 275, size=(17, 23, 3)).astype(np.float32)  # noise is not clipped
    task = parse_task("denoise_50")
    out = baseline_output(noisy, task)
    np.testing.assert_array_equal(out, noisy)
    out[0, 0, 0] = 1e6
    assert noisy[0, 0, 0] != 1e6  # a copy: scoring code may quantise in place
    assert baseline_name(task) == "input"
