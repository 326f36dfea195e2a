"""No command replaces an input or a file it did not make (issue 18, items 1, 2, 5, 9).

Outputs are created exclusively: an existing file is replaced only with --overwrite, and
never when it is one of the command's own inputs (same file by device and inode). synth
builds its set in a hidden sibling folder and moves it into place complete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.hostile import crafted
from tests.hostile.conftest import ROOT, Snapshot, assert_one_line_error, run_cli


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    for i in range(3):
        crafted.write_png(folder / f"p{i}.png", crafted.photo(48, 48, seed=i))
    return folder


# ------------------------------------------------------------------------------ compare (item 1)
@pytest.mark.parametrize("target", ["a.png", "b.png", "link.png"])
def test_compare_json_never_replaces_an_input(tmp_path, target):
    crafted.write_png(tmp_path / "a.png", crafted.photo(seed=0))
    crafted.write_png(tmp_path / "b.png", crafted.photo(seed=0))
    os.symlink("b.png", tmp_path / "link.png")  # another name for an input is still the input
    before = Snapshot.take(tmp_path)
    proc = run_cli("compare", "a.png", "b.png", "--json", target, "-q", cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, target, "inputs")
    before.assert_same(Snapshot.take(tmp_path))


def test_compare_json_does_not_replace_an_unrelated_file(tmp_path):
    crafted.write_png(tmp_path / "a.png", crafted.photo(seed=0))
    crafted.write_png(tmp_path / "b.png", crafted.photo(seed=0))
    (tmp_path / "notes.json").write_text("my notes\n")
    before = Snapshot.take(tmp_path)
    proc = run_cli("compare", "a.png", "b.png", "--json", "notes.json", "-q", cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "notes.json", "already exists")
    before.assert_same(Snapshot.take(tmp_path))
    fresh = run_cli("compare", "a.png", "b.png", "--json", "new.json", "-q", cwd=tmp_path, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads((tmp_path / "new.json").read_text())


# ------------------------------------------------------------------------------ synth preview (item 2)
@pytest.mark.parametrize("overwrite", [False, True])
def test_synth_preview_never_replaces_an_input_photo(tmp_path, photos, overwrite):
    before = Snapshot.take(tmp_path, dirs=True)
    proc = run_cli("synth", "photos", "out", "--tasks", "sr_x2", "--preview", "photos/p1.png", "-q",
                   *(["--overwrite"] if overwrite else []), cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "photos/p1.png", "inputs")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))  # refused before any file was written


# ------------------------------------------------------------------------------ convert / make-weights
def test_convert_and_make_weights_replace_only_with_overwrite(tmp_path, tiny_pt):
    (tmp_path / "taken.ckpt").write_bytes(b"someone's checkpoint")
    before = Snapshot.take(tmp_path)
    proc = run_cli("convert", tiny_pt, "taken.ckpt", "-q", cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "taken.ckpt", "--overwrite")
    proc = run_cli("make-weights", "--preset", "tiny", "-o", "taken.ckpt", "-q", cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "taken.ckpt", "--overwrite")
    before.assert_same(Snapshot.take(tmp_path))
    proc = run_cli("convert", tiny_pt, "taken.ckpt", "-q", "--overwrite", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "taken.ckpt").read_bytes() != b"someone's checkpoint"


# ------------------------------------------------------------------------------ restore race (item 5)
def test_two_restores_into_one_output_one_wins_whole(tmp_path, tiny_ckpt):
    """Both pass the "output exists" check before loading their model; the exclusive
    create lets exactly one write, the other says so in one line."""
    crafted.write_png(tmp_path / "a.png", crafted.photo(seed=0))
    env = dict(os.environ, PYTHONPATH=str(ROOT), MS_OM_PATH=str(tmp_path / ".ms_om"))
    procs = [subprocess.Popen([sys.executable, "-m", "ipt_ms", "restore", "--weights", str(tiny_ckpt), "a.png", "-o",
                               "out", "-q", "--compile-cache", "off"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2).strip()
    assert len(loser.splitlines()) == 1 and "out/a_sr_x2.png" in loser, loser
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_sr_x2.png"]


# ------------------------------------------------------------------------------ synth sets (item 9)
def _synth(tmp_path, *args, timeout=120):
    return run_cli("synth", *args, "-q", cwd=tmp_path, timeout=timeout)


def test_synth_overwrite_with_fewer_photos_leaves_no_stale_pairs(tmp_path, photos):
    assert _synth(tmp_path, "photos", "out", "--tasks", "sr_x2,denoise_30").returncode == 0
    (tmp_path / "out" / "README.txt").write_text("my notes about this set\n")
    (photos / "p2.png").unlink()
    proc = _synth(tmp_path, "photos", "out", "--tasks", "sr_x2,denoise_30", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "HR").iterdir()) == ["p0.png", "p1.png"]
    assert sorted(p.name for p in (out / "LR_bicubic" / "X2").iterdir()) == ["p0x2.png", "p1x2.png"]
    assert sorted(p.name for p in (out / "denoise_30").iterdir()) == ["p0.png", "p1.png"]
    assert (out / "README.txt").read_text() == "my notes about this set\n"  # not synth's: kept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_synth_recursive_never_reads_its_own_outputs(tmp_path, photos):
    assert _synth(tmp_path, "photos", "photos/out", "--tasks", "sr_x2", "--recursive").returncode == 0
    again = _synth(tmp_path, "photos", "photos/out", "--tasks", "sr_x2", "--recursive", "--overwrite")
    assert again.returncode == 0, again.stderr
    manifest = json.loads((photos / "out" / "synth.json").read_text())
    assert manifest["images"] == ["p0", "p1", "p2"], manifest["images"]


def test_synth_scale_too_large_names_the_file(tmp_path, photos):
    crafted.write_png(photos / "tiny.png", crafted.photo(6, 6))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = _synth(tmp_path, "photos", "out", "--tasks", "sr_x8")
    assert_one_line_error(proc, "photos/tiny.png", "sr_x8")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_synth_interrupted_leaves_no_half_made_set(tmp_path):
    """SIGINT mid-way: no OUT at all (eval cannot score half a set); the hidden staging
    folder is gone, or, after SIGKILL, removed by the next synth into the same OUT."""
    folder = tmp_path / "photos"
    for i in range(40):
        crafted.write_png(folder / f"p{i:02d}.png", crafted.photo(160, 160, seed=i % 5))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for sig in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen([sys.executable, "-m", "ipt_ms", "synth", "photos", "out", "--tasks",
                                 "sr_x2,deblur", "-q"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and not any((p / "HR").is_dir() for p in [tmp_path / "out",
                                                                                *tmp_path.glob(".out.partial-*")]):
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        assert proc.returncode != 0, proc.stderr.read()
        assert not (tmp_path / "out").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]  # the SIGKILLed one's
    done = _synth(tmp_path, "photos", "out", "--tasks", "sr_x2", timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "synth.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


# ------------------------------------------------------------------------------ eval on synth sets (item 9)
def _eval(tmp_path, weights, task, *extra):
    return run_cli("eval", "--weights", weights, "--task", task, "--data", "data", "--sets", "Photos", "--device",
                   "CPU", "--compile-cache", "off", "-q", *extra, cwd=tmp_path, timeout=300)


@pytest.fixture
def synth_set(tmp_path, photos):
    """data/Photos: a complete synth set of the three photos (sr_x2, denoise_30)."""
    proc = _synth(tmp_path, "photos", "data/Photos", "--tasks", "sr_x2,denoise_30")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "data" / "Photos"


@pytest.mark.parametrize("task", ["sr_x2", "denoise_30"])
def test_eval_refuses_a_synth_set_left_without_its_record(tmp_path, synth_set, tiny_ckpt, task):
    """What an interrupted synth of an earlier version left (it wrote into OUT directly): the
    first images, no synth.json. Eval scored 32 of 200 images silently."""
    (synth_set / "synth.json").unlink()
    for path in [synth_set / "HR/p2.png", synth_set / "LR_bicubic/X2/p2x2.png", synth_set / "denoise_30/p2.png"]:
        path.unlink()
    before = Snapshot.take(tmp_path, dirs=True)
    proc = _eval(tmp_path, tiny_ckpt, task)
    assert_one_line_error(proc, "Photos", "no synth.json", "did not finish", "--allow-unfinished-synth")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))
    anyway = _eval(tmp_path, tiny_ckpt, task, "--allow-unfinished-synth", "-o", "res")
    assert anyway.returncode == 0, anyway.stderr
    rows = [json.loads(line) for line in (tmp_path / "res" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["name"] for r in rows if "name" in r) == ["p0", "p1"], rows


def test_eval_refuses_stale_pairs_that_synth_json_does_not_list(tmp_path, synth_set, tiny_ckpt):
    """An earlier synth's --overwrite with fewer photos wrote over the set and left the pairs
    of the photo gone from SRC: synth.json lists the new images only."""
    manifest = json.loads((synth_set / "synth.json").read_text())
    manifest["images"] = ["p0", "p1"]
    (synth_set / "synth.json").write_text(json.dumps(manifest))
    before = Snapshot.take(tmp_path, dirs=True)
    proc = _eval(tmp_path, tiny_ckpt, "sr_x2")
    assert_one_line_error(proc, "Photos/HR/p2.png", "synth.json", "earlier synth")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_eval_refuses_a_damaged_synth_record(tmp_path, synth_set, tiny_ckpt):
    (synth_set / "synth.json").write_text('{"images": ["p0", "p1", "p2"')
    proc = _eval(tmp_path, tiny_ckpt, "denoise_30")
    assert_one_line_error(proc, "synth.json", "damaged")


def test_eval_refuses_a_synth_staging_folder(tmp_path, synth_set, tiny_ckpt):
    """A killed synth's hidden staging folder, named directly."""
    staging = tmp_path / "data" / ".Photos.partial-999999-0123abcd"
    os.rename(synth_set, staging)
    (staging / "synth.json").unlink()
    proc = run_cli("eval", "--weights", tiny_ckpt, "--task", "sr_x2", "--data", staging, "--device", "CPU",
                   "--compile-cache", "off", "-q", cwd=tmp_path, timeout=300)
    assert_one_line_error(proc, ".Photos.partial-999999-0123abcd", "did not finish")


def test_eval_scores_a_hand_made_benchmark_folder(tmp_path, tiny_ckpt):
    """Set5 layout made by hand (HR + LR_bicubic/X2, no synth at all): never taken for a half-made set."""
    from PIL import Image

    lr_dir = tmp_path / "data" / "Photos" / "LR_bicubic" / "X2"
    lr_dir.mkdir(parents=True)
    for i in range(2):
        hr = crafted.write_png(tmp_path / "data" / "Photos" / "HR" / f"h{i}.png", crafted.photo(48, 48, seed=i))
        Image.open(hr).resize((24, 24), Image.BICUBIC).save(lr_dir / f"h{i}x2.png")
    proc = _eval(tmp_path, tiny_ckpt, "sr_x2", "-o", "res")
    assert proc.returncode == 0, proc.stderr
    clean = _eval(tmp_path, tiny_ckpt, "denoise_30", "-o", "res_dn")
    assert clean.returncode == 0, clean.stderr


def test_eval_after_synth_overwrite_with_fewer_photos_scores_only_those(tmp_path, synth_set, photos, tiny_ckpt):
    (photos / "p2.png").unlink()
    proc = _synth(tmp_path, "photos", "data/Photos", "--tasks", "sr_x2,denoise_30", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    scored = _eval(tmp_path, tiny_ckpt, "sr_x2", "-o", "res")
    assert scored.returncode == 0, scored.stderr
    rows = [json.loads(line) for line in (tmp_path / "res" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["name"] for r in rows if "name" in r) == ["p0", "p1"], rows
