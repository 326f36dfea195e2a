"""Training checkpoints of a run with `train.ema_decay`: readable everywhere, EMA by default, raw on request.

A real tiny training (4 steps, EMA on) writes the checkpoint; `info`, `restore` and
`finetune --init` then read it as a user would (issue 18, item 12: they all failed
with "unexpected 44: ema.body.decoder...").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ipt_ms.data.imageio import read_image
from tests.hostile.conftest import Snapshot, assert_one_line_error, run_cli

RUN = {
    "kind": "pretrain",
    "model": {"tasks": ["denoise_30"], "n_feats": 8, "patch_size": 24, "patch_dim": 3, "num_heads": 2,
              "num_layers": 1},
    "data": {"source": "images", "batch_size": 4, "samples_per_epoch": 8, "num_workers": 0},
    "loss": {"contrastive": "none"},
    "optim": {"lr": 1.0e-2},
    "schedule": {"epochs": 2, "milestones": []},
    "train": {"ema_decay": 0.5},
    "output": {"log_every": 1, "checkpoint_every": 4, "keep_last": 2, "plot": False, "progress": False,
               "tensorboard": False},
}


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory) -> Path:
    """A finished 4-step run with EMA: run/model.ckpt (the averages) and run/checkpoints/step_000000004.ckpt."""
    from ipt_ms.eval.photos import write_sample_photos

    root = tmp_path_factory.mktemp("ema")
    write_sample_photos(root / "photos", ("astronaut", "chelsea"), height=64, width=64)
    (root / "cfg.yaml").write_text(yaml.safe_dump(RUN))
    proc = run_cli("pretrain", "--config", "cfg.yaml", "--data", "photos", "-o", "run", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "run/checkpoints/step_000000004.ckpt").is_file()
    return root


def test_info_reads_an_ema_checkpoint_and_says_both_sets_are_there(ema_run):
    ckpt = ema_run / "run/checkpoints/step_000000004.ckpt"
    proc = run_cli("info", ckpt, cwd=ema_run)
    assert proc.returncode == 0, proc.stderr
    assert "both the moving averages (EMA, 44 tensors) and the raw weights are present; using the EMA" in proc.stdout
    raw = run_cli("info", ckpt, "--weights-variant", "raw", cwd=ema_run)
    assert raw.returncode == 0, raw.stderr
    assert "using the raw weights" in raw.stdout


def test_restore_uses_the_averages_by_default_and_the_raw_weights_on_request(ema_run):
    """EMA = what the run exported (model.ckpt holds the averages): bit-identical outputs."""
    ckpt = ema_run / "run/checkpoints/step_000000004.ckpt"
    photo = ema_run / "photos" / sorted(p.name for p in (ema_run / "photos").iterdir())[0]
    before = Snapshot.take(ckpt, photo)
    outputs = {}
    for name, weights, extra in (("exported", ema_run / "run/model.ckpt", ()), ("ema", ckpt, ()),
                                 ("raw", ckpt, ("--weights-variant", "raw"))):
        proc = run_cli("restore", photo, "--weights", weights, "-o", f"out_{name}", "--device", "CPU",
                       "--compile-cache", "off", *extra, cwd=ema_run)
        assert proc.returncode == 0, proc.stderr
        outputs[name] = read_image(next((ema_run / f"out_{name}").iterdir())).astype(np.int16)
        if name == "ema":
            assert "using the EMA weights" in proc.stderr
    Snapshot.take(ckpt, photo).assert_same(before)
    assert np.array_equal(outputs["ema"], outputs["exported"])
    assert np.abs(outputs["raw"] - outputs["ema"]).max() > 0  # lr 1e-2, decay 0.5: the two sets differ


def test_asking_for_averages_a_file_lacks_is_one_line(ema_run):
    proc = run_cli("info", ema_run / "run/model.ckpt", "--weights-variant", "ema", cwd=ema_run)
    assert_one_line_error(proc, "model.ckpt", "not a training checkpoint")


def test_finetune_starts_from_an_ema_checkpoint(ema_run):
    cfg = dict(RUN, kind="finetune", schedule={"epochs": 1, "milestones": []})
    (ema_run / "ft.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_cli("finetune", "--config", "ft.yaml", "--data", "photos", "-o", "ft",
                   "--init", "run/checkpoints/step_000000004.ckpt", "--set", "train.max_steps=1", cwd=ema_run)
    assert proc.returncode == 0, proc.stderr
    assert (ema_run / "ft/model.ckpt").is_file()
