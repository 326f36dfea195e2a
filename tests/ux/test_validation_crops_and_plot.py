"""Validation and the loss plot a user picks weights by (issue 18, item 16): real training runs.

`best_<task>.ckpt` was picked from one centre crop per held-out photo, too few pixels for
the PSNR to follow the weights rather than noise: validation now scores `val.crops` fixed
crops per photo (the centre one, then seeded positions, the same at every validation) and
averages them. `loss_curves.png` showed one loss per `output.log_every` steps: metrics.jsonl
now keeps every step's loss, and the plot draws it (light) under the moving average.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.hostile.conftest import run_cli

STEPS, LOG_EVERY, CROPS = 8, 4, 3


def _config(**val) -> dict:
    return {"kind": "pretrain",
            "model": {"tasks": ["denoise_30"], "n_feats": 8, "patch_size": 24, "patch_dim": 3, "num_heads": 2,
                      "num_layers": 1},
            "data": {"source": "images", "batch_size": 2, "samples_per_epoch": 2 * STEPS, "num_workers": 0},
            "loss": {"contrastive": "none"}, "optim": {"lr": 1e-3}, "schedule": {"epochs": 1, "milestones": []},
            "val": {"every": LOG_EVERY, "holdout": 1, "crop": 32, **val},
            "output": {"log_every": LOG_EVERY, "checkpoint_every": STEPS, "plot": True, "progress": False,
                       "tensorboard": False}}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One short training: 8 steps, logged and validated every 4, 3 crops of the held-out photo."""
    from ipt_ms.eval.photos import write_sample_photos

    root = tmp_path_factory.mktemp("valplot")
    write_sample_photos(root / "photos", ("astronaut", "chelsea", "coffee"), height=80, width=96)
    (root / "cfg.yaml").write_text(yaml.safe_dump(_config(crops=CROPS)))
    proc = run_cli("pretrain", "--config", "cfg.yaml", "--data", "photos", "-o", "run", "-q", cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return root / "run"


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_validation_scores_several_crops_of_each_held_out_photo(run):
    vals = [r for r in _records(run) if r.get("kind") == "val"]
    assert [r["step"] for r in vals] == [4, 8]
    for r in vals:
        assert r["tasks"]["denoise_30"]["images"] == 1
        assert r["tasks"]["denoise_30"]["crops"] == CROPS
    assert f"on 1 image(s) ({CROPS} crops)" in (run / "train.log").read_text()


def test_validation_crops_are_fixed_distinct_and_start_with_the_centre(tmp_path):
    """The same crops at every call (seeded by train.seed and the name); crops: 1 is the
    single centre crop of earlier versions."""
    from ipt_ms.eval.photos import write_sample_photos
    from ipt_ms.tasks import parse_task
    from ipt_ms.train.config import load_train_config
    from ipt_ms.train.validation import holdout_pairs

    write_sample_photos(tmp_path, ("astronaut",), height=80, width=96)
    photo = sorted(tmp_path.iterdir())
    task = parse_task("sr_x2")
    cfg = load_train_config(data=_config(crops=4))
    first, again = holdout_pairs(photo, task, cfg), holdout_pairs(photo, task, cfg)
    assert len(first) == 4
    assert [p.name for p in first] == [p.name for p in again]
    assert all(np.array_equal(a.gt, b.gt) and np.array_equal(a.lq, b.lq) for a, b in zip(first, again))
    assert len({p.gt.tobytes() for p in first}) == 4  # four different places of the photo
    assert all(p.gt.shape == (32, 32, 3) and p.lq.shape == (16, 16, 3) for p in first)
    single = holdout_pairs(photo, task, load_train_config(data=_config(crops=1)))
    assert len(single) == 1 and np.array_equal(single[0].gt, first[0].gt)  # the centre crop, as before
    whole = holdout_pairs(photo, task, load_train_config(data=_config(crop=None, crops=4)))
    assert len(whole) == 1 and whole[0].gt.shape == (80, 96, 3)  # the whole photo: one crop


def test_metrics_keep_every_steps_loss_and_the_plot_draws_them(run, monkeypatch):
    logged = [r for r in _records(run) if "loss" in r]
    assert [r["step"] for r in logged] == [4, 8]
    covered = [entry[0] for r in logged for entry in r["step_losses"]]
    assert covered == list(range(1, STEPS + 1))
    assert all(entry[1] == "denoise_30" and isinstance(entry[2], float) for r in logged for entry in r["step_losses"])
    assert (run / "loss_curves.png").stat().st_size > 0

    import ipt_ms.train.metrics as metrics

    figures = []
    monkeypatch.setattr(metrics, "save_figure", lambda fig, path: figures.append(fig) or Path(path))
    metrics.plot_loss_curves(run / "metrics.jsonl", run / "unused.png")
    lines = figures[0].axes[0].get_lines()
    raw = next(line for line in lines if line.get_label().startswith("loss"))
    smooth = next(line for line in lines if line.get_label().startswith("moving avg"))
    assert list(raw.get_xdata()) == list(range(1, STEPS + 1))
    assert list(raw.get_ydata()) == [entry[2] for r in logged for entry in r["step_losses"]]
    assert raw.get_alpha() < 1 and raw.get_zorder() <= smooth.get_zorder()  # light, under the average
    assert len(smooth.get_xdata()) == STEPS
