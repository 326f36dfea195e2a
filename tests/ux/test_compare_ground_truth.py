"""`ipt-ms compare OUT GT --gt`: eval's PSNR/SSIM against ground truth (issue 18, item 15).

Real files, real subprocesses: restore-style names (`x_sr_x2.png`) pair with the originals
(`x.png`), the task suffix gives the scale and so eval's border shave, and the numbers are
`ipt_ms.metrics` (the one PSNR/SSIM in the project) to the last digit.
"""

from __future__ import annotations

import json

import pytest
from skimage import data

from ipt_ms.data.imageio import read_image, write_image
from ipt_ms.data.imresize import imresize
from ipt_ms.metrics import psnr, ssim
from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli


@pytest.fixture
def restored(tmp_path):
    """HR originals in gt/, x2 bicubic 'restorations' named as restore names them in out/."""
    (tmp_path / "gt").mkdir()
    (tmp_path / "out").mkdir()
    for name, photo in (("astronaut", data.astronaut()[:61, :50]), ("coffee", data.coffee()[:64, :48])):
        write_image(tmp_path / "gt" / f"{name}.png", photo)
        lr = imresize(photo[:photo.shape[0] // 2 * 2], scale=0.5)  # modcrop, as synth does
        write_image(tmp_path / "out" / f"{name}_sr_x2.png", imresize(lr, scale=2.0))
    return tmp_path


def test_folders_pair_restore_names_with_originals_and_score_like_eval(restored):
    before = Snapshot.take(restored / "gt", restored / "out")
    proc = run_cli("compare", "out", "gt", "--gt", "--json", "scores.json", cwd=restored)
    assert proc.returncode == 0, proc.stderr
    Snapshot.take(restored / "gt", restored / "out").assert_same(before)
    scores = json.loads((restored / "scores.json").read_text())
    assert scores["mode"] == "ground-truth" and len(scores["pairs"]) == 2
    for pair in scores["pairs"]:
        stem = pair["output"].removesuffix("_sr_x2.png")
        assert pair["truth"] == f"{stem}.png" and pair["scale"] == 2 and pair["shave"] == 2
        out, gt = read_image(restored / "out" / pair["output"]), read_image(restored / "gt" / pair["truth"])
        assert pair["psnr_y"] == psnr(out, gt, 2)  # Y, shave 2, the odd-height HR modcropped
        assert pair["psnr_rgb"] == psnr(out, gt, 2, channel="rgb")
        assert pair["ssim_y"] == ssim(out, gt, 2)
        assert pair["psnr_y"] != psnr(out, gt, 2, shave=0)  # the shave is applied
    assert "SSIM Y" in proc.stdout and "(x2, shave 2 px)" in proc.stdout


def test_single_files_take_scale_from_the_name_and_limits_fail_with_exit_1(restored):
    proc = run_cli("compare", "out/coffee_sr_x2.png", "gt/coffee.png", "--gt", "--min-psnr", "99", cwd=restored)
    assert proc.returncode == 1 and "FAIL (PSNR Y" in proc.stdout and "(x2, shave 2 px)" in proc.stdout


def test_ground_truth_options_without_gt_and_mismatched_sizes_are_one_line(restored):
    assert_one_line_error(run_cli("compare", "out", "gt", "--shave", "4", cwd=restored), "--gt")
    proc = run_cli("compare", "out/coffee_sr_x2.png", "gt/astronaut.png", "--gt", cwd=restored)
    assert_one_line_error(proc, "coffee_sr_x2.png", "astronaut.png")
