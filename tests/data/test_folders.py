"""Loaders on miniature versions of every layout, including broken ones."""

from __future__ import annotations

import numpy as np
import pytest

from ipt_ms.data.folders import (
    FilePairs,
    GeneratedSRPairs,
    benchmark,
    denoise_benchmark,
    div2k,
    gopro,
    rain_pairs,
    sr_benchmark,
)
from ipt_ms.data.imageio import write_image
from ipt_ms.data.imresize import imresize, modcrop
from ipt_ms.errors import IPTError


@pytest.fixture()
def crops(photos):
    """Five differently-sized crops (sizes not multiples of 3 or 4)."""
    sizes = [(50, 61), (47, 38), (64, 64), (41, 70), (55, 45)]
    return [np.ascontiguousarray(photos[i % 3][i * 9 : i * 9 + h, i * 7 : i * 7 + w]) for i, (h, w) in enumerate(sizes)]


def _write_sr_set(root, crops, scales=(2, 3)):
    names = ["baby", "bird", "butterfly", "head", "woman"]
    for name, img in zip(names, crops):
        write_image(root / "HR" / f"{name}.png", img)
        for s in scales:
            write_image(root / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png", imresize(modcrop(img, s), 1 / s))
    return names


def test_sr_benchmark_from_files(tmp_path, crops):
    names = _write_sr_set(tmp_path / "Set5", crops)
    ds = sr_benchmark(tmp_path / "Set5", 3)
    assert isinstance(ds, FilePairs) and len(ds) == 5 and ds.scale == 3
    assert sorted(ds.names) == sorted(names)
    for pair, img in zip(ds, [crops[names.index(n)] for n in ds.names]):
        assert pair.gt.shape[:2] == (pair.lq.shape[0] * 3, pair.lq.shape[1] * 3)
        np.testing.assert_array_equal(pair.gt, modcrop(img, 3))  # HR cropped to LR*s
        assert pair.lq.dtype == np.uint8


def test_sr_generated_lr_equals_files(tmp_path, crops):
    _write_sr_set(tmp_path / "Set5", crops)
    files = sr_benchmark(tmp_path / "Set5", 2, lr="files")
    gen = sr_benchmark(tmp_path / "Set5", 2, lr="generate")
    assert isinstance(gen, GeneratedSRPairs)
    for a, b in zip(files, gen):
        assert a.name == b.name
        np.testing.assert_array_equal(a.lq, b.lq)
        np.testing.assert_array_equal(a.gt, b.gt)
    auto = sr_benchmark(tmp_path / "Set5", 4)  # no X4 folder: generated
    assert isinstance(auto, GeneratedSRPairs)


def test_sr_benchmark_broken_layouts(tmp_path, crops):
    with pytest.raises(IPTError, match=str(tmp_path / "Set5" / "HR")):
        sr_benchmark(tmp_path / "Set5", 2)
    _write_sr_set(tmp_path / "Set5", crops)
    (tmp_path / "Set5" / "LR_bicubic" / "X2" / "birdx2.png").unlink()
    with pytest.raises(IPTError, match="birdx2.png"):
        sr_benchmark(tmp_path / "Set5", 2, lr="files")
    with pytest.raises(IPTError, match="X4"):
        sr_benchmark(tmp_path / "Set5", 4, lr="files")
    # LR larger than HR/s
    write_image(tmp_path / "Set5" / "LR_bicubic" / "X3" / "babyx3.png", np.zeros((40, 40, 3), np.uint8),
                overwrite=True)
    ds = sr_benchmark(tmp_path / "Set5", 3)
    with pytest.raises(IPTError, match="babyx3.png"):
        ds[ds.names.index("baby")]
    (tmp_path / "Empty" / "HR").mkdir(parents=True)
    with pytest.raises(IPTError, match="Empty"):
        sr_benchmark(tmp_path / "Empty", 2)


def test_div2k_range_and_layout(tmp_path, crops):
    hr_dir = tmp_path / "DIV2K" / "DIV2K_train_HR"
    for i, img in enumerate(crops, start=1):
        write_image(hr_dir / f"{i:04d}.png", img)
        write_image(
            tmp_path / "DIV2K" / "DIV2K_train_LR_bicubic" / "X2" / f"{i:04d}x2.png", imresize(modcrop(img, 2), 0.5)
        )
    train = div2k(tmp_path, 2, data_range="1-3")
    val = div2k(tmp_path / "DIV2K", 2, data_range="4-5")
    assert train.names == ["0001", "0002", "0003"] and val.names == ["0004", "0005"]
    assert isinstance(div2k(tmp_path, 3, "1-2"), GeneratedSRPairs)
    with pytest.raises(IPTError, match="outside"):
        div2k(tmp_path, 2, data_range="1-800")
    with pytest.raises(IPTError, match="data_range"):
        div2k(tmp_path, 2, data_range="first")
    with pytest.raises(IPTError, match="DIV2K_train_HR"):
        div2k(tmp_path / "nothing", 2)


def test_denoise_benchmark_clean_only(tmp_path, crops):
    for i, img in enumerate(crops):
        write_image(tmp_path / "CBSD68" / f"{i}.png", img)
        write_image(tmp_path / "Urban100" / "HR" / f"img{i:03d}.png", img)
    cbsd = denoise_benchmark(tmp_path / "CBSD68", 50, seed=0)
    urban = denoise_benchmark(tmp_path / "Urban100", 30)
    assert len(cbsd) == len(urban) == 5
    pair = cbsd[0]
    assert pair.lq.dtype == np.float32 and pair.lq.shape == pair.gt.shape
    assert pair.lq.min() >= 0 and pair.lq.max() <= 255
    assert 30 < np.std(pair.lq - pair.gt) < 55
    unclipped = denoise_benchmark(tmp_path / "CBSD68", 50, clip=False)[0].lq
    assert unclipped.min() < 0 or unclipped.max() > 255
    (tmp_path / "E").mkdir()
    with pytest.raises(IPTError, match="contains no images"):
        denoise_benchmark(tmp_path / "E", 30)


def _write_rain(root, crops, n, rainy_subdir):
    streaks = 60 * (np.arange(36) % 7 == 0)[None, :, None]
    rainy_dir = root / rainy_subdir if rainy_subdir else root
    for i in range(1, n + 1):
        img = crops[(i - 1) % len(crops)][:40, :36]
        write_image(rainy_dir / f"rain-{i}.png", np.clip(img.astype(int) + streaks, 0, 255).astype(np.uint8))
        write_image(root / f"norain-{i}.png", img)


def test_rain100l_layout_uses_all_images_in_numeric_order(tmp_path, crops):
    _write_rain(tmp_path / "Rain100L", crops, 12, "rainy")
    ds = rain_pairs(tmp_path / "Rain100L")
    assert len(ds) == 12
    assert ds.names == [str(i) for i in range(1, 13)]
    pair = ds[0]
    assert pair.lq.shape == pair.gt.shape and not np.array_equal(pair.lq, pair.gt)
    via_benchmark = benchmark(tmp_path, "Rain100L", "derain")
    assert via_benchmark.names == ds.names


def test_raintrainl_flat_layout(tmp_path, crops):
    _write_rain(tmp_path / "RainTrainL", crops, 4, None)
    write_image(tmp_path / "RainTrainL" / "rainstreak-1.png", crops[0][:40, :36])
    ds = rain_pairs(tmp_path / "RainTrainL")
    assert ds.names == ["1", "2", "3", "4"]


def test_rain_broken_layouts(tmp_path, crops):
    _write_rain(tmp_path / "R", crops, 3, "rainy")
    (tmp_path / "R" / "norain-2.png").unlink()
    with pytest.raises(IPTError, match="norain-2.png"):
        rain_pairs(tmp_path / "R")
    with pytest.raises(IPTError, match="missing"):
        rain_pairs(tmp_path / "missing")


def test_gopro_layout(tmp_path, crops):
    base = tmp_path / "GOPRO_Large"
    for split, seqs in (("train", ["GOPR0372_07_00"]), ("test", ["GOPR0384_11_00", "GOPR0385_11_01"])):
        for seq in seqs:
            for f in range(2):
                write_image(base / split / seq / "sharp" / f"{f:06d}.png", crops[f][:32, :32])
                write_image(base / split / seq / "blur" / f"{f:06d}.png", crops[f][:32, :32] // 2)
    test = gopro(tmp_path)  # the folder containing GOPRO_Large
    assert test.names == ["GOPR0384_11_00/000000", "GOPR0384_11_00/000001",
                          "GOPR0385_11_01/000000", "GOPR0385_11_01/000001"]
    assert len(gopro(base, split="train")) == 2
    pair = test[1]
    np.testing.assert_array_equal(pair.lq, pair.gt // 2)
    assert benchmark(tmp_path, "GoPro", "deblur").names == test.names
    (base / "test" / "GOPR0385_11_01" / "sharp" / "000001.png").unlink()
    with pytest.raises(IPTError, match="000001.png"):
        gopro(base)
    with pytest.raises(IPTError, match="blur_gamma"):
        gopro(base, split="train", blur_dir="blur_gamma")
    with pytest.raises(IPTError, match="test"):
        gopro(tmp_path / "nowhere")


def test_benchmark_dispatch_and_missing_set(tmp_path, crops):
    _write_sr_set(tmp_path / "benchmark" / "Set5", crops)
    ds = benchmark(tmp_path, "Set5", "sr_x2")
    assert len(ds) == 5 and ds.scale == 2
    for i, img in enumerate(crops):
        write_image(tmp_path / "benchmark" / "CBSD68" / f"{i}.png", img)
    assert len(benchmark(tmp_path, "CBSD68", "denoise_30")) == 5
    with pytest.raises(IPTError, match="Set14"):
        benchmark(tmp_path, "Set14", "sr_x2")


def test_subset_keeps_order_and_rejects_unknown(tmp_path, crops):
    names = _write_sr_set(tmp_path / "Set5", crops)
    ds = sr_benchmark(tmp_path / "Set5", 2)
    sub = ds.subset([names[3], names[0]])
    assert sub.names == [names[3], names[0]] and len(ds) == 5
    with pytest.raises(IPTError):
        ds.subset(["nobody"])


def test_gopro_restormer_layout(tmp_path, crops):
    for split in ("train", "test"):
        for name in ("a", "b"):
            write_image(tmp_path / "GoPro" / split / "target" / f"{name}.png", crops[0][:24, :24])
            write_image(tmp_path / "GoPro" / split / "input" / f"{name}.png", crops[0][:24, :24] // 3)
    ds = gopro(tmp_path, split="train")
    assert ds.names == ["a", "b"]
    np.testing.assert_array_equal(ds[0].lq, ds[0].gt // 3)
