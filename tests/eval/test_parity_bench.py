"""The real-photo mini benchmark in CI size: seeded tiny weights, scikit-image photos
degraded by `ipt-ms synth`, `ipt-ms parity-bench` MindSpore vs PyTorch (``make bench-mini``
runs the larger form)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ipt_ms.cli import main
from ipt_ms.data.imageio import read_image

TASKS = "sr_x2,denoise_30,derain"


@pytest.fixture(scope="module")
def mini(tmp_path_factory, photo_dir):
    root = tmp_path_factory.mktemp("mini")
    weights = root / "tiny.pt"
    assert main(["make-weights", "--preset", "tiny", "--tasks", TASKS, "--seed", "3", "-o", str(weights)]) == 0
    assert main(["synth", str(photo_dir), str(root / "data" / "Photos"), "--tasks", TASKS, "--quiet"]) == 0
    return root, weights


def _bench(weights, data, out, task, sets, *extra):
    return main(["parity-bench", str(weights), "--task", task, "--data", str(data), "--sets", sets,
                 "--batch-size", "8", "-o", str(out), "-q", *extra])


@pytest.mark.parametrize("task,sets,protocol", [("sr_x2", "Photos", "official"), ("denoise_30", "Photos", "zoo"),
                                                ("derain", "derain", "paper")])
def test_mini_benchmark_parity_passes(mini, tmp_path, capsys, task, sets, protocol):
    root, weights = mini
    data = root / "data" / ("Photos" if sets == "derain" else "")
    out = tmp_path / "out"
    assert _bench(weights, data, out, task, sets, "--protocol", protocol, "--save-images") == 0
    printed = capsys.readouterr().out
    assert "PASS: max |dPSNR|" in printed
    baseline = {"sr_x2": "Bicubic (no model)", "denoise_30": "Input, noisy (no model)",
                "derain": "Input, rainy (no model)"}[task]
    assert f"| {baseline}" in printed and "| gain over" in printed  # the no-model row in the same table
    report = json.loads((out / "parity_bench.json").read_text())
    assert report["ok"] and len(report["images"]) == 3
    for rec in report["images"]:
        ms, pt = rec["runs"]["mindspore"], rec["runs"]["torch"]
        assert abs(ms["psnr"] - pt["psnr"]) <= 0.01
        assert rec["compare"]["dpsnr"] == pytest.approx(ms["psnr"] - pt["psnr"])
        assert rec["compare"]["max_abs_diff"] < 0.05  # float outputs on the 0..255 scale
        assert ms["tiles"] == pt["tiles"] > 0  # the same tiles in both frameworks
        for framework in ("mindspore", "torch"):
            saved = read_image(out / "images" / framework / sets / f"{rec['name']}.png")
            assert list(saved.shape[:2]) == rec["output_size"]
    md = (out / "parity_bench.md").read_text()
    assert "**PASS**" in md and "![strip](strip.png)" in md
    strip = read_image(out / "strip.png")
    assert strip.shape[0] >= 128 + 16 and strip.shape[1] > 5 * 128


def test_parity_bench_fails_on_different_weights(mini, tmp_path, capsys):
    root, weights = mini
    other = tmp_path / "other.pt"
    assert main(["make-weights", "--preset", "tiny", "--tasks", TASKS, "--seed", "4", "-o", str(other)]) == 0
    out = tmp_path / "out"
    rc = _bench(weights, root / "data", out, "sr_x2", "Photos", "--ckpt", str(other), "--mode", "pynative",
                "--limit", "2", "--tol", "0.05")
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "differ beyond float rounding on 2 of 2 image(s)" in err and len(err.splitlines()) == 1
    report = json.loads((out / "parity_bench.json").read_text())  # reports are written before failing
    assert not report["ok"] and report["max_abs_dpsnr"] > 0.05
    assert "**FAIL**" in (out / "parity_bench.md").read_text()
    worst = max(report["images"], key=lambda r: r["compare"]["max_rel_diff"])  # the image strip.png shows
    assert f"{worst['set']}/{worst['name']}" in (out / "parity_bench.md").read_text()
    assert np.isfinite(report["max_abs_dpsnr"])
