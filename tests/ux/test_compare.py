"""`ipt-ms compare`: real files, real subprocesses, exit codes a script can rely on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from ipt_ms.compare import CompareLimits, compare_arrays
from ipt_ms.data.imageio import write_image
from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli


@pytest.fixture
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:200, :160])  # 200x160x3 = 96,000 values


def _one_level_off(photo: np.ndarray, count: int = 9) -> np.ndarray:
    other = photo.copy().reshape(-1)
    idx = np.random.default_rng(0).choice(other.size, count, replace=False)
    other[idx] = np.where(other[idx] < 255, other[idx] + 1, other[idx] - 1)
    return other.reshape(photo.shape)


def test_pngs_that_differ_by_rounding_pass_by_default(tmp_path, photo):
    """The case from the issue: 9 of 96,000 values one level apart; the old script exited 1."""
    a, b = write_image(tmp_path / "a.png", photo), write_image(tmp_path / "b.png", _one_level_off(photo))
    proc = run_cli("compare", a, b, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = proc.stdout.splitlines()[0]
    assert "8-bit values differing 9 of 96,000 (9 of 32,000 pixels), by up to 1 level(s): PASS" in line
    assert "max abs diff 1," in line and "PSNR RGB" in line and ", Y " in line
    assert proc.stdout.splitlines()[-1].startswith("compare PASS: 1 pair(s), 0 outside the limits")
    strict = run_cli("compare", a, b, "--max-abs", "0", cwd=tmp_path)
    assert strict.returncode == 1 and "FAIL (max abs diff 1 > 0)" in strict.stdout


def test_float_outputs_report_psnr_and_relative_difference(tmp_path, photo):
    ref = photo.astype(np.float32) + 0.25
    cand = ref.copy()
    cand[10, 20, 1] += 4e-3
    np.save(tmp_path / "ms.npy", cand)
    np.save(tmp_path / "pt.npy", ref)
    result = compare_arrays(cand, ref)
    assert result.ok and result.values_changed == 0
    assert result.max_abs == pytest.approx(4e-3, rel=1e-3)
    assert result.max_rel == pytest.approx(4e-3 / ref.max(), rel=1e-3)
    d = float(cand[10, 20, 1]) - float(ref[10, 20, 1])  # one value differs: mse = (d/255)^2 / 96,000
    assert result.psnr_rgb == pytest.approx(-10 * np.log10((d / 255) ** 2 / ref.size), abs=1e-6)
    y_weight = 129.057 / 256  # the green channel's share of the official luma
    assert result.psnr_y == pytest.approx(-10 * np.log10((d * y_weight / 255) ** 2 / (ref.size / 3)), abs=1e-6)
    proc = run_cli("compare", tmp_path / "ms.npy", tmp_path / "pt.npy", "--max-rel", "1e-6",
                   "--json", tmp_path / "c.json", cwd=tmp_path)
    assert proc.returncode == 1 and "max rel diff 1.57e-05 > 1e-06" in proc.stdout
    payload = json.loads((tmp_path / "c.json").read_text())
    assert payload["ok"] is False and payload["pairs"][0]["values_changed"] == 0


def test_folders_match_by_name_then_stem_and_report_missing_files(tmp_path, photo):
    a, b = tmp_path / "ms", tmp_path / "pt"
    write_image(a / "x.png", photo)
    write_image(b / "x.png", photo)
    np.save(a / "y.npy", photo.astype(np.float32))
    write_image(b / "y.png", photo)  # y.npy <-> y.png by stem
    proc = run_cli("compare", a, b, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "x.png vs x.png" in proc.stdout and "y.npy vs y.png" in proc.stdout
    write_image(a / "z.png", photo)
    proc = run_cli("compare", a, b, cwd=tmp_path)
    assert proc.returncode == 1 and "only in A: z.png" in proc.stdout


def test_shape_mismatch_fails_and_bad_input_is_a_one_line_error(tmp_path, photo):
    write_image(tmp_path / "a.png", photo)
    write_image(tmp_path / "small.png", photo[:100])
    proc = run_cli("compare", tmp_path / "a.png", tmp_path / "small.png", cwd=tmp_path)
    assert proc.returncode == 1 and "shapes differ: (200, 160, 3) vs (100, 160, 3)" in proc.stdout
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "pickle.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, "
                                          b"'shape': (1,), }" + b" " * 58 + b"\n" + b"\x80\x04N.")
    before = Snapshot.take(tmp_path)
    for bad in ("broken.png", "pickle.npy"):
        proc = run_cli("compare", tmp_path / bad, tmp_path / "a.png", cwd=tmp_path)
        assert_one_line_error(proc, bad)
    assert_one_line_error(run_cli("compare", tmp_path / "a.png", tmp_path, cwd=tmp_path), "a folder")
    assert_one_line_error(run_cli("compare", tmp_path / "nope.png", tmp_path / "a.png", cwd=tmp_path), "nope.png")
    before.assert_same(Snapshot.take(tmp_path))


def test_limits_are_validated():
    from ipt_ms.errors import IPTError

    with pytest.raises(IPTError, match="max-changed"):
        CompareLimits(max_changed=2.0)
    with pytest.raises(IPTError, match="max-abs"):
        CompareLimits(max_abs=float("nan"))
