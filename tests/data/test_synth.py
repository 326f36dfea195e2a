"""`ipt-ms synth`: layout, manifest, read-back through the loaders, preview, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ipt_ms.cli import main
from ipt_ms.data.folders import denoise_benchmark, gopro, rain_pairs, sr_benchmark
from ipt_ms.data.imageio import read_image, to_uint8, write_image
from ipt_ms.data.imresize import imresize, modcrop
from ipt_ms.data.synth import synthesize
from ipt_ms.errors import IPTError

TASKS = ["sr_x2", "sr_x3", "denoise_30", "derain", "deblur"]


@pytest.fixture()
def clean_dir(tmp_path, photos):
    for i, im in enumerate(photos):
        write_image(tmp_path / "clean" / f"im{i}.png", im[:70 + 5 * i, :83])
    return tmp_path / "clean"


def test_synthesize_writes_loadable_layouts(tmp_path, clean_dir):
    out = tmp_path / "out"
    report = synthesize(clean_dir, out, TASKS, seed=11, preview=tmp_path / "sheet.png", progress=False)
    assert report.names == ["im0", "im1", "im2"]
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["seed"] == 11 and manifest["tasks"] == TASKS and manifest["noise"]["clip"] is True

    sr = sr_benchmark(out, 3, lr="files")
    for pair in sr:
        clean = read_image(clean_dir / f"{pair.name}.png")
        np.testing.assert_array_equal(pair.lq, imresize(modcrop(clean, 3), 1 / 3))
        np.testing.assert_array_equal(pair.gt, modcrop(clean, 3))

    noisy_png = read_image(out / "denoise_30" / "im1.png")
    float_noisy = denoise_benchmark(out / "HR", 30, seed=11).subset(["im1"])[0].lq
    np.testing.assert_array_equal(noisy_png, to_uint8(float_noisy))  # PNG = rounded float input

    rain = rain_pairs(out / "derain")
    assert rain.names == ["im0", "im1", "im2"]
    assert all(np.all(p.lq >= p.gt) for p in rain)

    blur = gopro(out / "deblur")
    assert blur.names == ["synth/im0", "synth/im1", "synth/im2"]
    kernel = np.load(out / "deblur" / "kernels" / "im2.npy")
    assert abs(kernel.sum() - 1) < 1e-9

    sheet = read_image(report.preview)
    # one row per image (3), one column per task (5) after the clean crop and the name strip
    assert 3 * 60 < sheet.shape[0] < 3 * 100 and sheet.shape[1] > 96 + 6 * 60
    assert set(manifest) >= {"bicubic", "noise", "rain", "blur"} and manifest["noise"]["sigmas"] == [30]


def test_synthesize_is_deterministic_and_subset_independent(tmp_path, clean_dir):
    synthesize(clean_dir, tmp_path / "a", ["denoise_50", "derain", "deblur"], seed=2, progress=False)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "im1.png").write_bytes((clean_dir / "im1.png").read_bytes())
    synthesize(tmp_path / "sub", tmp_path / "b", ["denoise_50", "derain", "deblur"], seed=2, progress=False)
    for rel in ["denoise_50/im1.png", "derain/rainy/rain-im1.png", "deblur/test/synth/blur/im1.png"]:
        np.testing.assert_array_equal(read_image(tmp_path / "a" / rel), read_image(tmp_path / "b" / rel))
    synthesize(clean_dir, tmp_path / "c", ["denoise_50"], seed=3, progress=False)
    assert not np.array_equal(
        read_image(tmp_path / "a" / "denoise_50" / "im1.png"), read_image(tmp_path / "c" / "denoise_50" / "im1.png")
    )


def test_synthesize_refuses_to_mix_outputs(tmp_path, clean_dir):
    out = tmp_path / "out"
    synthesize(clean_dir, out, ["sr_x2"], progress=False)
    with pytest.raises(IPTError, match="not empty"):
        synthesize(clean_dir, out, ["sr_x2"], progress=False)
    synthesize(clean_dir, out, ["sr_x4"], overwrite=True, progress=False)
    assert (out / "LR_bicubic" / "X4" / "im0x4.png").is_file()
    with pytest.raises(IPTError, match="restore_1"):
        synthesize(clean_dir, tmp_path / "o2", ["restore_1"], progress=False)


def test_cli(tmp_path, clean_dir, capsys):
    out = tmp_path / "cli_out"
    code = main(["synth", str(clean_dir), str(out), "--tasks", "sr_x4,denoise_30", "--seed", "4",
                 "--no-clip", "--quiet", "--preview", str(tmp_path / "p.png")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "denoise_30" in printed and (tmp_path / "p.png").is_file()
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["noise"]["clip"] is False
    assert "rain" not in manifest and "blur" not in manifest  # only the settings of the tasks made
    sr_only = tmp_path / "sr_only"
    assert main(["synth", str(clean_dir), str(sr_only), "--tasks", "sr_x2", "-q"]) == 0
    assert set(json.loads((sr_only / "synth.json").read_text())) == {"source", "seed", "tasks", "folders", "images",
                                                                      "bicubic"}
    assert main(["synth", str(tmp_path / "nope"), str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert main(["synth", str(tmp_path / "empty"), str(tmp_path / "y"), "--quiet"]) == 2
    assert "empty" in capsys.readouterr().err
