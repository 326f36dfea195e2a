"""A full disk (issue item 8): a real ENOSPC on a small tmpfs, for every writer.

Each case: exit 2, one line naming the file and saying the disk is full, no temporary
file left (MindSpore's own ``.tmp`` included), an existing output untouched, and for
`restore --save-raw` never a PNG without its .npy. Skipped, with the reason, where a
tmpfs cannot be mounted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.hostile import crafted
from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli

FULL = "no space left on device"

# tiny weights are ~0.85 MB in every format: 512 KiB cannot hold one file.
WRITERS = {
    "convert_to_ckpt": lambda d, w: (["convert", w["pt"], d / "x.ckpt"], d / "x.ckpt"),
    "convert_to_pt": lambda d, w: (["convert", w["ckpt"], d / "x.pt"], d / "x.pt"),
    "convert_to_safetensors": lambda d, w: (["convert", w["ckpt"], d / "x.safetensors"], d / "x.safetensors"),
    "make_weights_ckpt": lambda d, w: (["make-weights", "--preset", "tiny", "-o", d / "m.ckpt"], d / "m.ckpt"),
    "export_onnx_mindspore": lambda d, w: (["export", "--weights", w["ckpt"], "--task", "sr_x2", "-o", d / "e.onnx"],
                                           d / "e.onnx"),
    "export_onnx_torch": lambda d, w: (["export", "--weights", w["ckpt"], "--task", "sr_x2", "--source", "torch",
                                        "-o", d / "e.onnx"], d / "e.onnx"),
    "export_mindir": lambda d, w: (["export", "--weights", w["ckpt"], "--task", "sr_x2", "--format", "mindir",
                                    "-o", d / "e.mindir"], d / "e.mindir"),
}


@pytest.fixture
def weights(tmp_path, tiny_pt, tiny_ckpt):
    return {"pt": tiny_pt, "ckpt": tiny_ckpt}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_reports_a_full_disk_in_one_line(tmpfs, weights, writer):
    disk = tmpfs(512)
    args, target = WRITERS[writer](disk, weights)
    inputs = Snapshot.take(*weights.values())
    proc = run_cli(*args, cwd=disk.parent)
    assert_one_line_error(proc, str(target), FULL)
    assert list(disk.iterdir()) == [], "temporary files left on the full disk"
    inputs.assert_same(Snapshot.take(*weights.values()))


@pytest.mark.parametrize("target", ["x.ckpt", "e.onnx"])
def test_existing_output_survives_a_full_disk(tmpfs, tmp_path, weights, target):
    """The old file stays byte-identical when the new one does not fit beside it (the
    MindSpore .ckpt writer, and the ONNX export with MindSpore's scratch file)."""
    disk = tmpfs(1400)
    if target == "x.ckpt":
        args = ["convert", weights["pt"], disk / target]
    else:
        args = ["export", "--weights", weights["ckpt"], "--task", "sr_x2", "-o", disk / target]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = Snapshot.take(disk, dirs=True)
    proc = run_cli(*args, "--overwrite", cwd=tmp_path)
    assert_one_line_error(proc, str(disk / target), FULL)
    before.assert_same(Snapshot.take(disk, dirs=True))


@pytest.mark.parametrize("folder", ["", "new/sub"])
def test_restore_save_raw_never_leaves_a_png_without_its_npy(tmpfs, tmp_path, tiny_ckpt, folder):
    """The PNG (about 20 KB) fits, the float32 .npy (92 KB) does not: neither is kept, nor
    a folder created for them."""
    disk = tmpfs(48)
    image = crafted.write_png(tmp_path / "p.png", crafted.photo(40, 48))
    out = disk / folder if folder else disk
    before = Snapshot.take(disk, tmp_path, dirs=True)
    proc = run_cli("restore", "--weights", tiny_ckpt, "--task", "sr_x2", image, "-o", out, "--save-raw", "-q",
                   cwd=tmp_path)
    assert_one_line_error(proc, str(out / "p_sr_x2.png"), str(out / "p_sr_x2.npy"), FULL)
    before.assert_same(Snapshot.take(disk, tmp_path, dirs=True))


def test_stale_temporary_files_of_killed_writers_are_removed(tmp_path):
    """A writer killed with SIGKILL leaves `.NAME.partial-PID-*` files (ours and MindSpore's
    `.tmp`); `remove_stale_partials` deletes those whose process is gone, and only those."""
    from ipt_ms.fileio import remove_stale_partials

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = os.getpid()
    names = {
        f".step_000000010.ckpt.partial-{dead.pid}-0a1b2c3d.ckpt": True,
        f".step_000000010.ckpt.partial-{dead.pid}-0a1b2c3d.tmp": True,  # MindSpore's own writer
        f".step_000000020.ckpt.partial-{alive}-deadbeef.ckpt": False,  # being written right now
        ".step_000000030.ckpt.partial-k2_x9q0a.tmp": True,  # an earlier version's name (no process id)
        "step_000000005.ckpt": False,
        "notes.partial-1-x.txt": False,  # not a name atomic_output makes
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        old = time.time() - 86400  # before this process started: a file still growing is never taken
        os.utime(tmp_path / name, (old, old))
    removed = {p.name for p in remove_stale_partials(tmp_path)}
    assert removed == {n for n, stale in names.items() if stale}
    assert {p.name for p in tmp_path.iterdir()} == {n for n, stale in names.items() if not stale}
