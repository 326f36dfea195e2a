"""`ipt-ms restore` keeps grayscale as grayscale and passes alpha through (issue 18, item 14).

Real subprocesses on real PNGs: mode L stays L (the BT.601 luma of the RGB result, which the
same image given as RGB produces), LA and RGBA keep their alpha (bicubic-resized for SR,
unchanged for scale-1 tasks), and 16-bit input still becomes 8-bit with its warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from ipt_ms.data.imresize import imresize
from tests.hostile.conftest import Snapshot, run_cli


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("channels")
    proc = run_cli("make-weights", "--preset", "tiny", "--tasks", "sr_x2,denoise_30", "--seed", "1", "-o", "w.pt",
                   cwd=root)
    assert proc.returncode == 0, proc.stderr
    rgb = np.ascontiguousarray(data.astronaut()[100:140, 180:216])
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    Image.fromarray(gray).save(root / "gray.png")
    Image.fromarray(gray).save(root / "grayjpg.jpg", quality=95)  # decoded by OpenCV as 3 equal channels
    Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2)).save(root / "gray_as_rgb.png")
    Image.fromarray(np.dstack([gray, alpha])).save(root / "graya.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(root / "rgba.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(root / "gray16.png")
    return root


def _restore(root: Path, task: str, out: str, *names: str, quiet: bool = True):
    proc = run_cli("restore", *names, "--weights", "w.pt", "--task", task, "-o", out, "--device", "CPU",
                   "--compile-cache", "off", *(["-q"] if quiet else []), cwd=root)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("task, scale", [("sr_x2", 2), ("denoise_30", 1)])
def test_gray_stays_gray_and_alpha_passes_through(work, task, scale):
    before = Snapshot.take(work / "gray.png", work / "graya.png", work / "rgba.png")
    proc = _restore(work, task, f"out_{task}", "gray.png", "gray_as_rgb.png", "graya.png", "rgba.png", "grayjpg.jpg")
    Snapshot.take(work / "gray.png", work / "graya.png", work / "rgba.png").assert_same(before)
    out = work / f"out_{task}"
    names = ("gray", "gray_as_rgb", "graya", "rgba", "grayjpg")
    modes = {name: Image.open(out / f"{name}_{task}.png").mode for name in names}
    assert modes == {"gray": "L", "gray_as_rgb": "RGB", "graya": "LA", "rgba": "RGBA", "grayjpg": "L"}, modes
    src = np.asarray(Image.open(work / "rgba.png"))
    h, w = src.shape[:2]
    gray_out = np.asarray(Image.open(out / f"gray_{task}.png"))
    assert gray_out.shape == (h * scale, w * scale)
    # the documented rule: the luma (0.299, 0.587, 0.114) of what the same image gives as RGB
    rgb_out = np.asarray(Image.open(out / f"gray_as_rgb_{task}.png")).astype(np.float64)
    assert np.abs(gray_out - (rgb_out @ [0.299, 0.587, 0.114])).max() <= 1.0
    alpha = src[:, :, 3]
    expected = alpha if scale == 1 else imresize(alpha, output_shape=(h * scale, w * scale))
    for name in ("graya", "rgba"):
        got = np.asarray(Image.open(out / f"{name}_{task}.png"))[:, :, -1]
        assert np.array_equal(got, expected), name
    assert "alpha kept" in proc.stdout and "gray kept" in proc.stdout
    assert "alpha channel dropped" not in proc.stderr


def test_sixteen_bit_gray_becomes_eight_bit_gray_with_its_warning(work):
    assert Image.open(work / "gray16.png").mode.startswith("I")  # really 16-bit
    proc = _restore(work, "denoise_30", "out16", "gray16.png", quiet=False)
    assert "16-bit image converted to 8-bit" in proc.stderr
    written = Image.open(work / "out16" / "gray16_denoise_30.png")
    assert written.mode == "L"
