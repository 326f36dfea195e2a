"""Hostile input to the training commands: real `ipt-ms` subprocesses on real files.

Configs that are wrong in a way a loader could miss (NaN, 1e400, a key given twice, a
seed NumPy refuses, an export name no writer takes, an unknown kind), outputs that
cannot be written (a file, a path below a file, a full disk), checkpoints that are
stale or corrupt, and a corrupt image inside a paired training set.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli

TINY = {
    "kind": "pretrain",
    "model": {"tasks": ["denoise_30"], "n_feats": 8, "patch_size": 24, "patch_dim": 3, "num_heads": 2,
              "num_layers": 1},
    "data": {"source": "images", "batch_size": 4, "samples_per_epoch": 16, "num_workers": 0},
    "loss": {"contrastive": "none"},
    "optim": {"lr": 1.0e-3},
    "schedule": {"epochs": 20, "milestones": []},
    "output": {"log_every": 1, "checkpoint_every": 5, "keep_last": 2, "plot": False, "progress": False,
               "tensorboard": False},
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from ipt_ms.eval.photos import write_sample_photos

    folder = tmp_path_factory.mktemp("photos")
    write_sample_photos(folder, ("astronaut", "chelsea"), height=64, width=64)
    return folder


def _config(tmp_path: Path, name: str = "cfg.yaml", **changes) -> Path:
    import copy

    import yaml

    data = copy.deepcopy(TINY)
    for section, values in changes.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes, key, words", [
    ({"train": {"seed": 2**32}}, "train.seed", "must be <= 4294967295"),
    ({"optim2": 1}, "optim2", "unknown key"),
    ({"output": {"export": "model.onnx"}}, "output.export", "unknown weights extension"),
    ({"train": {"accumulate": 3}}, "train.accumulate", "does not split"),
    ({"val": {"every": 10}}, "val.every", "val.holdout"),
])
def test_config_errors_before_any_work(tmp_path, photos, changes, key, words):
    cfg = _config(tmp_path, **changes)
    before = Snapshot.take(tmp_path, photos)
    proc = run_cli("pretrain", "--config", cfg, "--data", photos, "-o", tmp_path / "run", cwd=tmp_path, timeout=60)
    line = assert_one_line_error(proc, key, words)
    assert "cfg.yaml" in line
    before.assert_same(Snapshot.take(tmp_path, photos))


@pytest.mark.parametrize("text, key, words", [
    ("optim:\n  lr: .nan\n", "optim.lr", "finite number"),
    ("schedule:\n  gamma: 1e400\n", "schedule.gamma", "finite number"),
    ("optim:\n  lr: 1.0e-4\n  lr: 2.0e-4\n", "'lr'", "appears twice"),
    ("kind: whatever\n", "kind", "must be one of 'pretrain', 'finetune'"),
])
def test_numbers_duplicates_and_kind_are_refused(tmp_path, photos, text, key, words):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    before = Snapshot.take(tmp_path)
    proc = run_cli("pretrain", "--config", cfg, "--data", photos, "-o", tmp_path / "run", cwd=tmp_path, timeout=60)
    line = assert_one_line_error(proc, key, words, "bad.yaml")
    assert "ipt-ms whatever" not in line  # no command that does not exist is suggested
    before.assert_same(Snapshot.take(tmp_path))


@pytest.mark.parametrize("override, key, words", [
    ("optim.lr=-1", "optim.lr", "must be > 0, got -1"),
    ("data.batch_size=true", "data.batch_size", "expected an integer"),
])
def test_bad_set_override_is_one_line(tmp_path, photos, override, key, words):
    """pydantic checks `--set` values too; its multi-line report never reaches the user."""
    cfg = _config(tmp_path)
    before = Snapshot.take(tmp_path, photos)
    proc = run_cli("pretrain", "--config", cfg, "--data", photos, "-o", tmp_path / "run", "--set", override,
                   cwd=tmp_path, timeout=60)
    assert_one_line_error(proc, key, words, "cfg.yaml")
    assert "validation error" not in proc.stderr and "pydantic" not in proc.stderr, proc.stderr
    before.assert_same(Snapshot.take(tmp_path, photos))


def test_output_that_is_a_file_or_below_a_file(tmp_path, photos):
    cfg = _config(tmp_path)
    blocker = tmp_path / "taken"
    blocker.write_bytes(b"not a folder")
    before = Snapshot.take(tmp_path)
    for out in (blocker, blocker / "run"):
        proc = run_cli("pretrain", "--config", cfg, "--data", photos, "-o", out, cwd=tmp_path, timeout=120)
        assert_one_line_error(proc, "output.dir", str(blocker))
    before.assert_same(Snapshot.take(tmp_path))


def _train(tmp_path, photos, run, *args, **changes):
    cfg = _config(tmp_path, **changes)
    return run_cli("pretrain", "--config", cfg, "--data", photos, "-o", run, "-q", *args, cwd=tmp_path, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, photos) -> Path:
    """A run with checkpoints at steps 5, 10 (keep_last 2), trained to step 10."""
    tmp = tmp_path_factory.mktemp("trained")
    proc = _train(tmp, photos, tmp / "run", "--max-steps", "10")
    assert proc.returncode == 0, proc.stderr
    return tmp / "run"


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, copy_function=shutil.copy2)  # keeps write times: "latest" is by write time
    return dst


def test_corrupt_newest_checkpoint_names_the_good_one(tmp_path, photos, trained):
    run = _copy_run(trained, tmp_path / "run")
    newest = run / "checkpoints" / "step_000000010.ckpt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])  # truncated copy
    cfg = _config(tmp_path)
    before = Snapshot.take(tmp_path, photos)
    proc = run_cli("pretrain", "--config", cfg, "--data", photos, "-o", run, "-q", "--resume", cwd=tmp_path)
    assert_one_line_error(proc, "step_000000010.ckpt", "cannot be read", "--resume", "step_000000005.ckpt")
    before.assert_same(Snapshot.take(tmp_path, photos))


def test_resuming_from_an_older_checkpoint_never_deletes_newer_ones(tmp_path, photos, trained):
    run = _copy_run(trained, tmp_path / "run")
    ckpts = run / "checkpoints"
    old, stale = ckpts / "step_000000005.ckpt", ckpts / "step_000000010.ckpt"
    stale_bytes = stale.read_bytes()
    old_bytes = old.read_bytes()
    # keep_last 1 and a checkpoint every step: the old rule (keep the highest steps) deleted
    # what this run had just written and kept step 10
    proc = _train(tmp_path, photos, run, "--resume", str(old), "--max-steps", "8",
                  output={"keep_last": 1, "checkpoint_every": 1})
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in ckpts.iterdir())
    assert names == ["step_000000008.ckpt", "step_000000010.ckpt"], names
    assert stale.read_bytes() == stale_bytes  # the other continuation's checkpoint is untouched
    assert "checkpoints/step_000000008.ckpt" in proc.stdout  # stdout names a file that exists
    # "latest" is the most recently written: step 8 of this continuation, not the stale step 10
    from ipt_ms.train.checkpoint import latest_checkpoint

    assert latest_checkpoint(ckpts).name == "step_000000008.ckpt"
    assert old_bytes != b""  # (the resumed-from checkpoint was rotated out by keep_last 1, as documented)


def test_stale_partial_files_are_cleaned_at_start(tmp_path, photos, trained):
    run = _copy_run(trained, tmp_path / "run")
    dead = subprocess.Popen(["true"])  # a process id that no longer runs: its writes were killed
    dead.wait()
    # the names atomic_output gives (pid + random part, and MindSpore's own suffix beside them), and
    # an earlier ipt-ms version's mkstemp name
    leftovers = [run / "checkpoints" / f".step_000000015.ckpt.partial-{dead.pid}-0123abcd.ckpt",
                 run / "checkpoints" / f".step_000000015.ckpt.partial-{dead.pid}-0123abcd.ckpt.tmp",
                 run / ".model.ckpt.partial-x1y2z3w4.ckpt"]
    for p in leftovers:
        p.write_bytes(b"half a file")
    proc = _train(tmp_path, photos, run, "--resume", "--max-steps", "11")
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in leftovers)
    assert not [p for p in run.rglob("*") if ".partial-" in p.name]


def test_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, photos):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        proc = _train(tmp_path, photos, disk / "run", "--max-steps", "6")
        line = assert_one_line_error(proc, "checkpoint")
        assert "no space left on device" in line.lower(), line
        assert "step_000000005.ckpt" in line
        assert not [p for p in disk.rglob("*") if ".partial-" in p.name]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_truncated_pair_is_skipped_once_and_training_goes_on(tmp_path):
    from ipt_ms.data.imageio import write_image
    from ipt_ms.eval.photos import sample_photo

    rain = tmp_path / "RainTrainL"
    rain.mkdir()
    rng = np.random.default_rng(0)
    clean = sample_photo("astronaut", 64, 64)
    for i in range(1, 4):
        write_image(rain / f"norain-{i}.png", clean)
        streaks = np.clip(clean.astype(np.int16) + rng.integers(0, 60, clean.shape), 0, 255).astype(np.uint8)
        write_image(rain / f"rain-{i}.png", streaks)
    bad = rain / "rain-2.png"
    bad.write_bytes(bad.read_bytes()[:200])
    cfg = _config(tmp_path, "derain.yaml", kind="finetune", model={"tasks": ["derain"]},
                  data={"source": "rain", "samples_per_epoch": 12})
    env = {"MS_OM_PATH": str(tmp_path / ".ms_om")}
    first = run_cli("finetune", "--config", cfg, "--data", rain, "-o", tmp_path / "run", "--max-steps", "6",
                    cwd=tmp_path, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    warnings = [line for line in first.stderr.splitlines() if "rain-2.png" in line]
    assert len(warnings) == 1 and "skipping pair" in warnings[0], first.stderr
    resumed = run_cli("finetune", "--config", cfg, "--data", rain, "-o", tmp_path / "run", "--resume",
                      "--max-steps", "9", cwd=tmp_path, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "step_000000009.ckpt")
