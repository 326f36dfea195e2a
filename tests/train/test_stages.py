"""`ipt_ms.train.stages.run_to_end`, what `make train-small` and `make replicate` are built on:
a finished run is skipped without starting a process, a run short of its config's steps is
resumed from its checkpoint (not restarted), and a stopped subprocess is one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ipt_ms.data.imageio import write_image
from ipt_ms.train import stages

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "tiny.yaml"
SMALL = ["data.samples_per_epoch=16", "data.batch_size=8", "val.every=null", "output.checkpoint_every=1",
         "schedule.milestones=[]", "output.log_every=1"]


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(folder / f"p{i}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return folder


def steps_logged(run: Path) -> list[int]:
    import json

    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if '"kind"' not in line]


def test_finished_run_is_skipped_and_a_longer_config_resumes(tmp_path, photos, monkeypatch):
    run = tmp_path / "run"
    one_epoch = [*SMALL, "schedule.epochs=1"]
    assert stages.config_steps(CONFIG, one_epoch) == 2
    assert stages.run_to_end(CONFIG, run, photos, one_epoch) is True
    assert stages.finished_step(run) == 2
    weights = (run / "model.ckpt").read_bytes()

    started = []
    monkeypatch.setattr(stages.subprocess, "run", lambda *a, **k: started.append(a))
    assert stages.run_to_end(CONFIG, run, photos, one_epoch) is False  # done: no process at all
    assert started == [] and (run / "model.ckpt").read_bytes() == weights
    monkeypatch.undo()

    two_epochs = [*SMALL, "schedule.epochs=2"]
    assert stages.run_to_end(CONFIG, run, photos, two_epochs) is True
    assert stages.finished_step(run) == 4
    assert steps_logged(run) == [1, 2, 3, 4]  # resumed at step 3, not trained again from step 1


def test_a_failing_subprocess_is_one_error_naming_the_stage(tmp_path):
    with pytest.raises(stages.StageStoppedError, match=r"\[broken\] stopped \(exit 2\); run the same command again"):
        stages.run_to_end(CONFIG, tmp_path / "run", tmp_path / "no-such-folder", [*SMALL, "schedule.epochs=1"],
                          label="broken")
