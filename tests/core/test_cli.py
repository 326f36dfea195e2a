"""`ipt-ms` smoke tests and the bad-input contract: one clear line, exit code 2, no output."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ipt_ms.cli import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, *fragments):
    lines = [line for line in err.splitlines() if line.startswith("ipt-ms ")]
    assert code == 2, err
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_make_weights_convert_info_round_trip(tmp_path, capsys):
    pt, ckpt, back = tmp_path / "m.pt", tmp_path / "m.ckpt", tmp_path / "back.pth"
    assert run_cli(capsys, "make-weights", "--preset", "tiny", "--tasks", "sr_x2,denoise_50", "-o", pt)[0] == 0
    code, out, _ = run_cli(capsys, "convert", pt, ckpt)
    assert code == 0 and "denoise_50 (x1)" in out
    assert run_cli(capsys, "convert", ckpt, back)[0] == 0
    a, b = torch.load(pt, weights_only=True), torch.load(back, weights_only=True)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    code, out, _ = run_cli(capsys, "info", ckpt, "--json")
    assert code == 0 and '"num_heads": 2' in out


def test_restore_both_frameworks_agree(tmp_path, capsys, tiny_ckpt, tiny_pt, photo_png):
    code, out, _ = run_cli(capsys, "restore", "--weights", tiny_ckpt, "--task", "sr_x2", photo_png,
                           "-o", tmp_path / "ms", "--save-raw", "-q")
    assert code == 0 and "85x70 -> 170x140" in out
    code, _, _ = run_cli(capsys, "restore", "--weights", tiny_pt, "--task", "0", photo_png,
                         "-o", tmp_path / "pt", "--framework", "torch", "--save-raw", "-q")
    assert code == 0
    ms_raw = np.load(tmp_path / "ms" / "astronaut_sr_x2.npy")
    pt_raw = np.load(tmp_path / "pt" / "astronaut_sr_x2.npy")
    assert ms_raw.shape == (140, 170, 3)
    assert np.abs(ms_raw - pt_raw).max() / np.abs(pt_raw).max() < 1e-5
    png = np.asarray(Image.open(tmp_path / "ms" / "astronaut_sr_x2.png"))
    np.testing.assert_array_equal(png, np.clip(np.floor(ms_raw + 0.5), 0, 255).astype(np.uint8))


def test_parity_cli_writes_report_and_passes(tmp_path, capsys, tiny_pt, tiny_ckpt):
    code, out, _ = run_cli(capsys, "parity", tiny_pt, "--ckpt", tiny_ckpt, "--task", "all",
                           "--report", tmp_path / "rep", "--mode", "pynative")
    assert code == 0, out
    assert out.count("parity PASS") == 4
    assert (tmp_path / "rep" / "denoise_30" / "report.md").exists()


def test_parity_cli_fails_with_exit_code_1(tmp_path, capsys, tiny_spec, tiny_state):
    from ipt_ms.convert.weights import save_weights

    save_weights(tmp_path / "a.pt", tiny_state, tiny_spec)
    bad = {**tiny_state, "tail.0.1.bias": tiny_state["tail.0.1.bias"] + 1.0}
    save_weights(tmp_path / "b.ckpt", bad, tiny_spec)
    code, out, err = run_cli(capsys, "parity", tmp_path / "a.pt", "--ckpt", tmp_path / "b.ckpt", "--no-fp64")
    assert code == 1 and "parity FAIL" in out and "tolerance exceeded" in err


# ----------------------------------------------------------------------------- bad input
@pytest.fixture
def bad_images(tmp_path):
    from skimage import data

    folder = tmp_path / "bad"
    folder.mkdir()
    good = data.chelsea()[:40, :50]
    Image.fromarray(good).save(folder / "good.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    png = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.parametrize("name", ["corrupt.png", "truncated.png", "notes.txt"])
def test_unreadable_images(tmp_path, capsys, tiny_ckpt, bad_images, name):
    out_dir = tmp_path / "out"
    code, _, err = run_cli(capsys, "restore", "--weights", tiny_ckpt, bad_images / "good.png", bad_images / name,
                           "-o", out_dir, "-q")
    assert_clean_error(code, err, name)
    assert not out_dir.exists()  # nothing written, not even the output folder


def test_gray_rgba_16bit_are_converted_with_a_note(tmp_path, capsys, caplog, tiny_ckpt):
    caplog.set_level("INFO", logger="ipt_ms.data")
    from skimage import data

    gray = tmp_path / "gray.png"
    Image.fromarray(data.camera()[:30, :30]).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([data.chelsea()[:30, :30], np.full((30, 30), 128, np.uint8)])).save(rgba)
    deep = tmp_path / "deep.png"
    Image.fromarray(data.camera()[:30, :30].astype(np.uint16) * 257).save(deep)
    code, out, err = run_cli(capsys, "restore", "--weights", tiny_ckpt, gray, rgba, deep, "-o", tmp_path / "o")
    assert code == 0, err
    assert len(list((tmp_path / "o").glob("*.png"))) == 3
    notes = " ".join(r.getMessage() for r in caplog.records)
    assert "deep.png: 16-bit image converted" in notes
    assert "(30x30 -> 60x60; gray kept)" in out and "(30x30 -> 60x60; alpha kept)" in out
    assert Image.open(tmp_path / "o" / "gray_sr_x2.png").mode == "L"  # grayscale stays grayscale (issue 18)
    assert Image.open(tmp_path / "o" / "rgba_sr_x2.png").mode == "RGBA"  # alpha passes through


def test_bad_weights(tmp_path, capsys, tiny_spec, tiny_state, photo_png):
    state = {**tiny_state, "head.0.0.weight": np.zeros((8, 3, 5, 5), np.float32)}
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "shapes.pt")
    code, _, err = run_cli(capsys, "convert", tmp_path / "shapes.pt", tmp_path / "x.ckpt")
    assert_clean_error(code, err, "head.0.0.weight", "expected (8, 3, 3, 3)")
    assert not (tmp_path / "x.ckpt").exists()
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    code, _, err = run_cli(capsys, "restore", "--weights", tmp_path / "other.pt", photo_png, "-o", tmp_path / "o")
    assert_clean_error(code, err, "not an IPT checkpoint")


def test_code_in_pickle_is_refused(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    code, _, err = run_cli(capsys, "convert", tmp_path / "evil.pt", tmp_path / "evil.ckpt")
    assert_clean_error(code, err, "refused", "weights_only")
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


def test_unknown_task_lists_known_ones(tmp_path, capsys, tiny_ckpt, photo_png):
    code, _, err = run_cli(capsys, "restore", "--weights", tiny_ckpt, "--task", "deblur", photo_png,
                           "-o", tmp_path / "o")
    assert_clean_error(code, err, "unknown task 'deblur'", "0=sr_x2", "3=denoise_30")


def test_output_not_writable(tmp_path, capsys, tiny_ckpt, photo_png):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "restore", "--weights", tiny_ckpt, photo_png, "-o", blocker / "sub")
    assert_clean_error(code, err, "is a file, not a folder")


def test_empty_input_list(tmp_path, capsys, tiny_ckpt):
    code, _, err = run_cli(capsys, "restore", "--weights", tiny_ckpt, "-o", tmp_path / "o")
    assert_clean_error(code, err, "no input images")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_console_script_and_module_entry_points():
    for cmd in (["ipt-ms", "--help"], [sys.executable, "-m", "ipt_ms", "--help"]):
        exe = os.path.join(os.path.dirname(sys.executable), "ipt-ms") if cmd[0] == "ipt-ms" else cmd[0]
        result = subprocess.run([exe] + cmd[1:], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "restore" in result.stdout and "parity" in result.stdout


def test_released_single_task_file_runs_under_its_task_name(tmp_path, capsys, photo_png):
    """IPT_dn30.pt does not record its task: `--task denoise_30` names its only head."""
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(1,), task_names=("denoise_30",))
    state = seeded_state(spec, 0)
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "IPT_dn30.pt")  # bare, like a release
    code, out, err = run_cli(capsys, "restore", "--weights", tmp_path / "IPT_dn30.pt", "--num-heads", "2",
                             "--task", "denoise_30", photo_png, "-o", tmp_path / "o", "-q")
    assert code == 0, err
    assert (tmp_path / "o" / "astronaut_denoise_30.png").exists()
    code, _, err = run_cli(capsys, "restore", "--weights", tmp_path / "IPT_dn30.pt", "--num-heads", "2",
                           "--task", "sr_x2", photo_png, "-o", tmp_path / "o2", "-q")
    assert_clean_error(code, err, "unknown task 'sr_x2'", "0=restore_0")
