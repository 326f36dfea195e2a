"""Where outputs go (issue items 1, 7, 9, 10, 13): never onto an input, never two inputs onto
one output, existing files replaced only when asked, folders where files belong refused,
any file name accepted, the umask respected, read-only folders reported in one line."""

from __future__ import annotations

import os
import stat

import pytest

from tests.hostile import crafted
from tests.hostile.conftest import UNPRIVILEGED, Snapshot, assert_one_line_error, run_cli


@pytest.fixture
def photos(tmp_path):
    """a/photo.png, b/photo.png and photo.jpg (three different images, one name stem)."""
    from PIL import Image

    crafted.write_png(tmp_path / "a" / "photo.png", crafted.photo(seed=0))
    crafted.write_png(tmp_path / "b" / "photo.png", crafted.photo(seed=1))
    Image.fromarray(crafted.photo(seed=2)).save(tmp_path / "photo.jpg")
    return tmp_path


# ------------------------------------------------------------------------------ restore plan
def test_restore_two_inputs_one_output_is_refused_before_running(photos, tiny_ckpt):
    before = Snapshot.take(photos, dirs=True)
    proc = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "b/photo.png", "photo.jpg", "-o", "out", "-q",
                   cwd=photos)
    assert_one_line_error(proc, "a/photo.png", "b/photo.png", "out/photo_")
    before.assert_same(Snapshot.take(photos, dirs=True))


@pytest.mark.parametrize("overwrite", [False, True])
def test_restore_never_writes_onto_an_input(tmp_path, tiny_ckpt, overwrite):
    d = tmp_path / "d"
    crafted.write_png(d / "a.png", crafted.photo(seed=0))
    crafted.write_png(d / "a_sr_x2.png", crafted.photo(seed=1))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("restore", "--weights", tiny_ckpt, "d", "-o", "d", "-q", *(["--overwrite"] if overwrite else []),
                   cwd=tmp_path)
    assert_one_line_error(proc, "d/a.png", "d/a_sr_x2.png", "one of the inputs")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_restore_replaces_existing_outputs_only_with_overwrite(photos, tiny_ckpt):
    first = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "-o", "out", "-q", "--save-raw", cwd=photos)
    assert first.returncode == 0, first.stderr
    (photos / "out" / "photo_sr_x2.png").write_bytes(b"an older result")
    before = Snapshot.take(photos, dirs=True)
    proc = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "-o", "out", "-q", "--save-raw", cwd=photos)
    assert_one_line_error(proc, "out/photo_sr_x2.png", "--overwrite")
    before.assert_same(Snapshot.take(photos, dirs=True))
    again = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "-o", "out", "-q", "--save-raw",
                    "--overwrite", cwd=photos)
    assert again.returncode == 0, again.stderr
    assert (photos / "out" / "photo_sr_x2.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["photo_sr_x2.npy", "photo_sr_x2.png"]


def test_restore_to_a_png_name_writes_that_file_not_a_folder(photos, tiny_ckpt):
    proc = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "-o", "restored.png", "-q", "--save-raw",
                   cwd=photos)
    assert proc.returncode == 0, proc.stderr
    assert (photos / "restored.png").is_file() and (photos / "restored.png").read_bytes()[:4] == b"\x89PNG"
    assert (photos / "restored.npy").is_file()
    before = Snapshot.take(photos, dirs=True)
    again = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "-o", "restored.png", "-q", cwd=photos)
    assert_one_line_error(again, "restored.png", "--overwrite")
    onto_input = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "-o", "a/photo.png", "-q",
                         "--overwrite", cwd=photos)
    assert_one_line_error(onto_input, "a/photo.png", "one of the inputs")
    many = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "photo.jpg", "-o", "two.png", "-q", cwd=photos)
    assert_one_line_error(many, "two.png", "2 images", "folder")
    jpeg = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "-o", "out.jpg", "-q", cwd=photos)
    assert_one_line_error(jpeg, "out.jpg", "PNG")
    before.assert_same(Snapshot.take(photos, dirs=True))


def test_restore_same_file_twice_is_restored_once(photos, tiny_ckpt):
    proc = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "a/photo.png", "a", "-o", "out", "-q",
                   cwd=photos)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (photos / "out").iterdir()] == ["photo_sr_x2.png"]


@pytest.mark.parametrize("case", ["output_file_is_a_folder", "output_folder_is_a_file", "output_below_a_file"])
def test_restore_target_of_the_wrong_kind(photos, tiny_ckpt, case):
    if case == "output_file_is_a_folder":
        (photos / "out" / "photo_sr_x2.png").mkdir(parents=True)
        out, named = "out", "out/photo_sr_x2.png"
    elif case == "output_folder_is_a_file":
        (photos / "out").write_text("a file")
        out, named = "out", "'out'"
    else:
        (photos / "out").write_text("a file")
        out, named = "out/sub", "out/sub"
    before = Snapshot.take(photos, dirs=True)
    proc = run_cli("restore", "--weights", tiny_ckpt, "a/photo.png", "-o", out, "-q", cwd=photos)
    assert_one_line_error(proc, named)
    before.assert_same(Snapshot.take(photos, dirs=True))


# ------------------------------------------------------------------------------ weight files
@pytest.mark.parametrize("command", ["convert_to_ckpt", "convert_to_pt", "convert_to_safetensors", "make_weights",
                                     "convert_onto_its_source"])
def test_weights_output_that_is_a_folder_or_the_input(tmp_path, tiny_pt, tiny_ckpt, command):
    src = tmp_path / "src.pt"
    src.write_bytes(tiny_pt.read_bytes())
    if command == "convert_onto_its_source":
        args, named = ["convert", src, src], "is the source file"
    else:
        suffix = {"convert_to_ckpt": ".ckpt", "convert_to_pt": ".pt", "convert_to_safetensors": ".safetensors",
                  "make_weights": ".pt"}[command]
        target = tmp_path / f"taken{suffix}"
        target.mkdir()
        (target / "keep.txt").write_text("folder contents")
        args = (["make-weights", "--preset", "tiny", "-o", target] if command == "make_weights"
                else ["convert", tiny_ckpt if suffix != ".ckpt" else src, target])
        named = str(target)
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli(*args, cwd=tmp_path)
    assert_one_line_error(proc, named)
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


# ------------------------------------------------------------------------------ file names
def test_any_output_name_works_for_every_writer(tmp_path, tiny_pt):
    """MindSpore's exporters refuse spaces and non-ASCII names themselves; ipt-ms writes
    through a scratch name they accept and renames."""
    out = tmp_path / "with space ünïcødé 日本"
    out.mkdir()
    for args in (["convert", tiny_pt, out / "m é.ckpt"],
                 ["export", "--weights", out / "m é.ckpt", "--task", "sr_x2", "-o", out / "m é.onnx"],
                 ["export", "--weights", out / "m é.ckpt", "--task", "sr_x2", "--format", "mindir",
                  "-o", out / "m é.mindir"]):
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip() == "", proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["m é.ckpt", "m é.mindir", "m é.onnx"]
    check = run_cli("info", out / "m é.ckpt", cwd=tmp_path)
    assert check.returncode == 0 and "tasks" in check.stdout


# ------------------------------------------------------------------------------ permissions
def test_new_files_follow_the_umask(tmp_path, tiny_pt):
    """mkstemp's 0600 and MindSpore's 0400 are replaced by what the umask allows (0666 & ~umask)."""
    umask = 0o002  # group-writable results, as on shared cluster storage
    out = tmp_path / "out"
    crafted.write_png(tmp_path / "p.png", crafted.photo())
    runs = [["convert", tiny_pt, out / "w.ckpt"], ["convert", out / "w.ckpt", out / "w.safetensors"],
            ["make-weights", "--preset", "tiny", "-o", out / "m.pt"],
            ["restore", "--weights", out / "w.ckpt", "--task", "sr_x3", tmp_path / "p.png", "-o", out, "-q",
             "--save-raw"],
            ["export", "--weights", out / "w.ckpt", "--task", "sr_x2", "-o", out / "e.onnx"]]
    for args in runs:
        proc = run_cli(*args, cwd=tmp_path, umask=umask)
        assert proc.returncode == 0, proc.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert set(modes) == {"w.ckpt", "w.safetensors", "m.pt", "p_sr_x3.png", "p_sr_x3.npy", "e.onnx"}
    assert modes == dict.fromkeys(modes, 0o664)
    private = run_cli("convert", tiny_pt, out / "private.ckpt", cwd=tmp_path, umask=0o077)
    assert private.returncode == 0, private.stderr
    assert stat.S_IMODE((out / "private.ckpt").stat().st_mode) == 0o600


READ_ONLY_CASES = {
    "synth": lambda src, ro, w: ["synth", src, ro / "out", "--tasks", "sr_x2", "--quiet"],
    "synth_into_existing": lambda src, ro, w: ["synth", src, ro, "--tasks", "sr_x2", "--quiet", "--overwrite"],
    "restore": lambda src, ro, w: ["restore", "--weights", w, src / "a.png", "-o", ro, "-q"],
    "convert": lambda src, ro, w: ["convert", w, ro / "w.pt"],
    "make_weights": lambda src, ro, w: ["make-weights", "--preset", "tiny", "-o", ro / "sub" / "m.pt"],
    "export": lambda src, ro, w: ["export", "--weights", w, "--task", "sr_x2", "-o", ro / "m.onnx"],
}


@pytest.mark.parametrize("case", list(READ_ONLY_CASES))
def test_read_only_output_folder_as_an_unprivileged_user(shared_tmp, tiny_ckpt, case):
    folder, env = shared_tmp
    src = folder / "src"
    crafted.write_png(src / "a.png", crafted.photo())
    weights = folder / "w.ckpt"
    weights.write_bytes(tiny_ckpt.read_bytes())
    for path in (src, src / "a.png", weights):
        path.chmod(0o755 if path.is_dir() else 0o644)
    ro = folder / "read_only"
    ro.mkdir()
    (ro / "existing.txt").write_text("kept")
    ro.chmod(0o555)
    before = Snapshot.take(src, ro, weights, dirs=True)
    proc = run_cli(*READ_ONLY_CASES[case](src, ro, weights), cwd=folder, env=env, user=UNPRIVILEGED)
    assert_one_line_error(proc, str(ro))
    before.assert_same(Snapshot.take(src, ro, weights, dirs=True))
    assert not [p for p in ro.iterdir() if p.name != "existing.txt"]
    assert os.geteuid() != 0 or ro.stat().st_mode & 0o777 == 0o555
