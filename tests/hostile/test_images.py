"""Crafted and broken images against every command that decodes images (issue items 5, 12, 14, 16).

* decompression bombs (a valid 16-bit PNG that inflates to 600 MB, JPEG/PNG/BMP headers
  claiming 20000^2 to 100000^2 pixels) are refused from the header, before decoding:
  one line naming the file, exit 2, and the process stays small;
* a truncated image anywhere in the input stops eval, parity-bench and synth before any
  model runs or any file is written;
* libjpeg / libpng / OpenCV messages never reach stderr;
* symlink loops in a data folder are listed once.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from tests.hostile import crafted
from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli

# A refused image must not be decoded: a run that decoded the 16-bit bomb peaks above 700 MB.
# Commands that fail before importing MindSpore stay far below this.
SMALL_PROCESS_MB = 450


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    files = {
        "png16_inflates_600MB.png": _bomb16(),
        "jpeg_20000.jpg": crafted.jpeg_claiming(20_000, 20_000),
        "jpeg_65000.jpg": crafted.jpeg_claiming(65_000, 65_000),
        "png_100000.png": crafted.png_bytes(100_000, 100_000),
        "bmp_30000.bmp": crafted.bmp_claiming(30_000, 30_000),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


BOMBS = ["png16_inflates_600MB.png", "jpeg_20000.jpg", "jpeg_65000.jpg", "png_100000.png", "bmp_30000.bmp"]


def _inputs(tmp_path, *extra: tuple[str, bytes]):
    folder = tmp_path / "in"
    crafted.write_png(folder / "a.png", crafted.photo(seed=0))
    crafted.write_png(folder / "b.png", crafted.photo(seed=1))
    for name, data in extra:
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("bomb", BOMBS)
def test_restore_refuses_bombs_before_decoding(tmp_path, tiny_ckpt, bomb_files, bomb):
    folder = _inputs(tmp_path, (bomb, bomb_files[bomb].read_bytes()))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("restore", "--weights", tiny_ckpt, folder, "-o", tmp_path / "out", "-q", cwd=tmp_path)
    line = assert_one_line_error(proc, bomb, "pixels")
    assert "IPT_MS_MAX_IMAGE_PIXELS" in line
    assert proc.peak_rss_mb < SMALL_PROCESS_MB, f"peak RSS {proc.peak_rss_mb:.0f} MB: the bomb was decoded"
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_synth_refuses_a_bomb_among_good_images(tmp_path, bomb_files):
    folder = _inputs(tmp_path, ("c.png", bomb_files["png16_inflates_600MB.png"].read_bytes()))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("synth", folder, tmp_path / "out", "--tasks", "sr_x2,denoise_30", "--quiet", cwd=tmp_path)
    assert_one_line_error(proc, "c.png", "pixels")
    assert proc.peak_rss_mb < SMALL_PROCESS_MB, f"peak RSS {proc.peak_rss_mb:.0f} MB: the bomb was decoded"
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_parity_input_bomb(tmp_path, tiny_pt, bomb_files):
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("parity", tiny_pt, "--input", bomb_files["jpeg_65000.jpg"], "--report", tmp_path / "rep",
                   "--no-fp64", cwd=tmp_path)
    assert_one_line_error(proc, "jpeg_65000.jpg", "pixels")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


# ------------------------------------------------------------------------- eval / parity-bench
def _benchmark(tmp_path, third: bytes) -> tuple:
    """<root>/benchmark/Mini/HR with two good photos and `third` as c.png (denoise layout)."""
    hr = tmp_path / "data" / "benchmark" / "Mini" / "HR"
    crafted.write_png(hr / "a.png", crafted.photo(seed=0))
    crafted.write_png(hr / "b.png", crafted.photo(seed=1))
    (hr / "c.png").write_bytes(third)
    return tmp_path / "data", hr / "c.png"


def _truncated_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(crafted.photo(seed=2)).save(buf, "PNG")
    return buf.getvalue()[: len(buf.getvalue()) * 2 // 3]


@functools.lru_cache(maxsize=1)
def _bomb16() -> bytes:
    return crafted.png16_bomb(10_000)


THIRD_IMAGES = {
    "truncated": _truncated_png,
    "bomb16": _bomb16,
    "jpeg_bomb_as_png_name": lambda: crafted.jpeg_claiming(20_000, 20_000),
}


@pytest.mark.parametrize("command", ["eval", "parity-bench"])
@pytest.mark.parametrize("third", list(THIRD_IMAGES))
def test_eval_and_parity_bench_check_every_image_before_any_model_runs(tmp_path, tiny_pt, command, third):
    data, bad = _benchmark(tmp_path, THIRD_IMAGES[third]())
    out = tmp_path / "results"
    before = Snapshot.take(tmp_path, dirs=True)
    head = ["eval", "--weights", tiny_pt] if command == "eval" else ["parity-bench", tiny_pt]
    proc = run_cli(*head, "--task", "denoise_30", "--data", data, "--sets", "Mini", "-o", out, "-q", cwd=tmp_path)
    assert_one_line_error(proc, str(bad))
    assert not out.exists(), "a results folder was created before the inputs were checked"
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_synth_checks_every_image_before_writing(tmp_path):
    folder = _inputs(tmp_path, ("c.png", _truncated_png()))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("synth", folder, tmp_path / "out", "--tasks", "sr_x2,denoise_30,derain,deblur", "--quiet",
                   cwd=tmp_path)
    assert_one_line_error(proc, "c.png")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


# ------------------------------------------------------------------------- native decoder messages
def _photo16() -> np.ndarray:
    return crafted.photo(seed=3).astype(np.uint16) * 257


NATIVE_FAILURES = {
    "corrupt_16bit.png": lambda: crafted.corrupt_png16(_photo16()),  # libpng error
    "truncated_16bit.png": lambda: crafted.png16(_photo16())[:2000],  # OpenCV warning
    "truncated_with_eoi.jpg": lambda: crafted.truncated_jpeg_with_end_marker(crafted.photo(seed=4)),  # libjpeg
}


@pytest.mark.parametrize("name", list(NATIVE_FAILURES))
def test_native_decoder_messages_stay_off_stderr(tmp_path, tiny_ckpt, name):
    folder = _inputs(tmp_path, (name, NATIVE_FAILURES[name]()))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("restore", "--weights", tiny_ckpt, folder, "-o", tmp_path / "out", "-q", cwd=tmp_path)
    line = assert_one_line_error(proc, name)
    assert "libpng" not in proc.stderr.replace(line, "") and "WARN" not in line
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_jpeg_that_libjpeg_warns_about_but_decodes_is_restored_quietly(tmp_path, tiny_ckpt):
    """Corrupt entropy data with a proper end marker: libjpeg prints 'Corrupt JPEG data';
    Pillow decodes it. The run succeeds and stderr stays empty."""
    raw = bytearray(crafted.jpeg_bytes(crafted.photo(40, 48, seed=5)))
    middle = len(raw) // 2
    raw[middle : middle + 40] = b"\x55" * 40
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "odd.jpg").write_bytes(bytes(raw))
    proc = run_cli("restore", "--weights", tiny_ckpt, folder / "odd.jpg", "-o", tmp_path / "out", "-q",
                   "--task", "denoise_30", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    assert (tmp_path / "out" / "odd_denoise_30.png").is_file()


# ------------------------------------------------------------------------- symlink loops
def test_symlink_loop_in_a_data_folder_lists_each_image_once(tmp_path):
    src = tmp_path / "clean"
    crafted.write_png(src / "x.png", crafted.photo(seed=0))
    crafted.write_png(src / "sub" / "y.png", crafted.photo(seed=1))
    (src / "sub" / "back").symlink_to(src)  # a loop: sub/back/sub/back/...
    (src / "again").symlink_to(src / "sub")  # another way to reach y.png
    (src / "x_link.png").symlink_to(src / "x.png")  # a second name for x.png
    proc = run_cli("synth", src, tmp_path / "out", "--tasks", "sr_x2", "--recursive", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    manifest = json.loads((tmp_path / "out" / "synth.json").read_text())
    assert manifest["images"] == ["sub_y", "x"]  # real names, each once
    assert sorted(p.name for p in (tmp_path / "out" / "HR").iterdir()) == ["sub_y.png", "x.png"]
