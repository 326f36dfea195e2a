"""kill -9 in the middle of an epoch, resume, and get exactly the losses of an unbroken run.

The run uses everything a checkpoint must carry: Adam, a warm-up + cosine schedule,
weight averages (EMA), gradient accumulation (2 micro-batches), validation with its
best-so-far scores, augmentation and `mindspore.dataset` loading.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.train.helpers import same_checkpoint

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
kind: pretrain
model: {tasks: [denoise_30], n_feats: 8, patch_size: 24, patch_dim: 3, num_heads: 2, num_layers: 1}
data: {root: ROOT, batch_size: 4, samples_per_epoch: 48, num_workers: 1, augment: true}
loss: {contrastive: eq5, weight: 0.1}
optim: {lr: 1.0e-3, grad_clip_norm: 1.0}
schedule: {epochs: 10, kind: cosine, warmup_steps: 4, min_lr: 1.0e-4, milestones: []}
train: {ema_decay: 0.9, accumulate: 2}
val: {every: 4, holdout: 1, crop: 48}
output: {log_every: 1, checkpoint_every: 5, keep_last: 2, plot: false}
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ipt_ms", *args]


def _losses(run: Path) -> dict[int, tuple]:
    from ipt_ms.train.metrics import read_metrics

    return {r["step"]: (r["loss"], r["l1"], r["contrastive"], r["lr"], r["task"], r["epoch"], r["batch"])
            for r in read_metrics(run / "metrics.jsonl") if r.get("kind") != "val"}


def _validations(run: Path) -> dict[int, dict]:
    from ipt_ms.train.metrics import read_metrics

    return {r["step"]: r["tasks"] for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "val"}


@pytest.mark.slow
def test_resume_after_kill_repeats_the_uninterrupted_losses(tmp_path):
    from ipt_ms.eval.photos import write_sample_photos
    from ipt_ms.train.checkpoint import latest_checkpoint

    photos = tmp_path / "photos"
    write_sample_photos(photos, ("astronaut", "chelsea", "coffee"), height=120, width=160)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("ROOT", str(photos)))
    env = dict(os.environ, MS_OM_PATH=str(tmp_path / "om"))
    killed = tmp_path / "killed"

    proc = subprocess.Popen(_cli("pretrain", "--config", str(cfg), "-o", str(killed), "-q"), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            found = latest_checkpoint(killed / "checkpoints")
            if found is not None and int(found.stem.split("_")[1]) >= 15:
                break
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        else:
            pytest.fail("no checkpoint at step >= 15 within 300 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    resumed_from = int(latest_checkpoint(killed / "checkpoints").stem.split("_")[1])
    assert resumed_from % 12 != 0, "the kill should land mid-epoch (12 steps per epoch)"
    before = _losses(killed)
    stop = str(resumed_from + 10)
    subprocess.run(_cli("pretrain", "--config", str(cfg), "-o", str(killed), "--resume", "--max-steps", stop, "-q"),
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    unbroken = tmp_path / "unbroken"
    subprocess.run(_cli("pretrain", "--config", str(cfg), "-o", str(unbroken), "--max-steps", stop, "-q"),
                   cwd=tmp_path, env=env, check=True, capture_output=True)

    resumed, reference = _losses(killed), _losses(unbroken)
    steps = list(range(resumed_from + 1, resumed_from + 11))
    assert sorted(resumed) == list(range(1, resumed_from + 11))  # each step once: the killed tail was dropped
    assert [resumed[s] for s in steps] == [reference[s] for s in steps]  # bit-exact floats
    lrs = [reference[s][3] for s in steps]
    assert len(set(lrs)) == len(lrs) and lrs == sorted(lrs, reverse=True)  # cosine: a new lr every step
    assert _validations(killed) == _validations(unbroken)  # every 4 steps, best step and PSNR included
    for best in ("best_denoise_30.ckpt",):
        assert same_checkpoint(killed / best, unbroken / best)
    # the steps the killed run logged agree with the unbroken run too
    assert all(before[s] == reference[s] for s in before if s in reference)
    from ipt_ms.convert.weights import load_weights

    a, b = load_weights(killed / "model.ckpt")[1], load_weights(unbroken / "model.ckpt")[1]  # the EMA
    assert all(np.array_equal(a[k], b[k]) for k in a)
    summary = {"resumed_from": resumed_from, "compared_steps": steps,
               "max_abs_loss_diff": max(abs(resumed[s][0] - reference[s][0]) for s in steps)}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    print(summary)
