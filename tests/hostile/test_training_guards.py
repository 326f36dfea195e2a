"""Training never replaces what it did not make, and never runs twice in one folder
(issue 18, items 3, 4, 10): real `ipt-ms pretrain` subprocesses on real files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile.conftest import ROOT, Snapshot, assert_one_line_error, run_cli
from tests.hostile.test_training import _config


@pytest.fixture
def photos(tmp_path) -> Path:
    from ipt_ms.eval.photos import write_sample_photos

    folder = tmp_path / "photos"
    write_sample_photos(folder, ("astronaut", "chelsea", "coffee"), height=64, width=64)
    return folder


def _pretrain(tmp_path, cfg, photos, run, *args, timeout=300):
    return run_cli("pretrain", "--config", cfg, "--data", photos, "-o", run, "-q", *args, cwd=tmp_path,
                   timeout=timeout)


# ------------------------------------------------------------------------------ item 3: output.export
@pytest.mark.parametrize("export, words", [
    ("{abs}/elsewhere.ckpt", "inside the run folder"),
    ("../outside.ckpt", "inside the run folder"),
    ("checkpoints/step_000000005.ckpt", "checkpoints"),
    ("best_denoise_30.ckpt", "checkpoints"),
])
def test_export_outside_the_run_or_onto_a_checkpoint_is_refused(tmp_path, photos, export, words):
    export = export.format(abs=tmp_path)
    (tmp_path / "elsewhere.ckpt").write_bytes(b"somebody's weights")
    cfg = _config(tmp_path, output={"export": export})
    before = Snapshot.take(tmp_path)
    proc = _pretrain(tmp_path, cfg, photos, "run", "--max-steps", "2", timeout=120)
    assert_one_line_error(proc, "output.export", words)
    before.assert_same(Snapshot.take(tmp_path))


def test_export_onto_the_init_weights_or_a_file_already_there_is_refused(tmp_path, photos):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.ckpt").write_bytes(b"the weights I start from")
    cfg = _config(tmp_path)
    before = Snapshot.take(tmp_path)
    proc = _pretrain(tmp_path, cfg, photos, "run", "--max-steps", "2", "--set", "train.init=run/model.ckpt",
                     timeout=120)
    assert_one_line_error(proc, "output.export", "run/model.ckpt", "init")
    proc = _pretrain(tmp_path, cfg, photos, "run", "--max-steps", "2", timeout=120)
    assert_one_line_error(proc, "run/model.ckpt", "already exists")
    assert Snapshot.take(tmp_path).files.keys() >= before.files.keys()
    assert (run / "model.ckpt").read_bytes() == b"the weights I start from"


# ------------------------------------------------------------------------------ item 4: one run per folder
def _wait_for(predicate, proc, timeout=240.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the first run ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the first run")


def test_a_running_training_locks_its_folder_and_sigkill_frees_it(tmp_path, photos):
    cfg = _config(tmp_path, schedule={"epochs": 1_000_000, "milestones": []})  # runs until killed
    env = dict(os.environ, PYTHONPATH=str(ROOT), MS_OM_PATH=str(tmp_path / ".ms_om"))
    first = subprocess.Popen([sys.executable, "-m", "ipt_ms", "pretrain", "--config", str(cfg), "--data", str(photos),
                              "-o", "run", "-q", "--max-steps", "100000"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ckpts = tmp_path / "run" / "checkpoints"
        _wait_for(lambda: ckpts.is_dir() and any(ckpts.glob("step_*.ckpt")), first)
        metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
        step = max(int(p.stem.split("_")[1]) for p in ckpts.glob("step_*.ckpt"))
        for args in (["--resume"], []):  # a second run on the folder, continuing it or starting afresh
            proc = _pretrain(tmp_path, cfg, photos, "run", "--max-steps", str(step + 1), *args, timeout=120)
            assert_one_line_error(proc, "'run'", str(first.pid), "in use")
        assert first.poll() is None  # the first run goes on, untouched
        assert (tmp_path / "run" / "metrics.jsonl").read_text().startswith(metrics)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    newest = sorted(ckpts.glob("step_*.ckpt"))[-1]
    step = int(newest.stem.split("_")[1])
    again = _pretrain(tmp_path, cfg, photos, "run", "--resume", "--max-steps", str(step + 1))
    assert again.returncode == 0, again.stderr  # no stale lock after SIGKILL


# ------------------------------------------------------------------------------ item 10: resume and data
def test_output_inside_the_training_data_is_refused(tmp_path, photos):
    cfg = _config(tmp_path)
    before = Snapshot.take(tmp_path, dirs=True)
    for out in (photos, photos / "run"):
        proc = _pretrain(tmp_path, cfg, photos, out, "--max-steps", "2", timeout=120)
        assert_one_line_error(proc, "output.dir", "inside the training data")
    before.assert_same(Snapshot.take(tmp_path, dirs=True))


def test_resume_on_changed_data_is_refused_unless_allowed(tmp_path, photos):
    from ipt_ms.eval.photos import write_sample_photos

    cfg = _config(tmp_path)
    first = _pretrain(tmp_path, cfg, photos, "run", "--max-steps", "5")
    assert first.returncode == 0, first.stderr
    write_sample_photos(photos, ("rocket",), height=64, width=64)  # one more image in --data
    before = Snapshot.take(tmp_path / "run")
    proc = _pretrain(tmp_path, cfg, photos, "run", "--resume", "--max-steps", "6")
    assert_one_line_error(proc, "training data", "3 then, 4 now", "--allow-data-change")
    before.assert_same(Snapshot.take(tmp_path / "run"))
    allowed = _pretrain(tmp_path, cfg, photos, "run", "--resume", "--max-steps", "6", "--allow-data-change")
    assert allowed.returncode == 0, allowed.stderr
    assert "changed training data (3 then, 4 now)" in (tmp_path / "run" / "train.log").read_text()


def test_after_a_nan_stop_the_advice_can_be_followed(tmp_path, photos):
    cfg = _config(tmp_path, optim={"lr": 1.0e30}, output={"checkpoint_every": 1})
    stopped = _pretrain(tmp_path, cfg, photos, "run", "--max-steps", "20")
    assert stopped.returncode == 3, stopped.stderr
    assert "Lower optim.lr" in stopped.stderr
    proc = _pretrain(tmp_path, cfg, photos, "run", "--resume", "--max-steps", "20", "--set", "optim.lr=1e-4",
                     "--set", "optim.grad_clip_norm=1.0", "--set", "train.on_nonfinite=skip")
    assert proc.returncode == 0, proc.stderr
    assert "config differs" not in proc.stderr
    log = (tmp_path / "run" / "train.log").read_text()
    changed = [line for line in log.splitlines() if "resuming with changed settings" in line]
    assert changed and "optim.lr 1e+30 -> 0.0001" in changed[0] and "optim.grad_clip_norm" in changed[0], log
