"""What the console says (issue 18, item 16, and eval's damaged log of item 8): real subprocesses.

Eval names the weights by their run folder when the file is `model.ckpt`, says when it
reuses cached results, and survives a valid-but-incomplete line in results.jsonl; the
training start line names the run folder, the init weights, the held-out images and the
TensorBoard command; `synth` draws no progress bar into a pipe; `--version`; `restore
--help` says what `--protocol zoo` buys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ipt_ms import __version__
from tests.hostile.conftest import run_cli

NO_FORCED_PROGRESS = {"IPT_MS_PROGRESS": ""}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    from ipt_ms.eval.photos import write_sample_photos

    root = tmp_path_factory.mktemp("console")
    write_sample_photos(root / "photos", ("astronaut", "chelsea", "coffee"), height=64, width=64)
    (root / "myrun").mkdir()
    proc = run_cli("make-weights", "--preset", "tiny", "--tasks", "denoise_30", "--seed", "2", "-o",
                   "myrun/model.ckpt", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root


def test_synth_draws_no_progress_bar_into_a_pipe(work):
    proc = run_cli("synth", "photos", "data/Photos", "--tasks", "denoise_30", cwd=work, env=NO_FORCED_PROGRESS)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "img/s" not in proc.stderr and "synth:" not in proc.stderr, proc.stderr


def _eval(work: Path):
    return run_cli("eval", "--weights", "myrun/model.ckpt", "--task", "denoise_30", "--data", "data", "--sets",
                   "Photos", "--device", "CPU", "--compile-cache", "off", cwd=work, env=NO_FORCED_PROGRESS)


def test_eval_names_the_run_and_says_when_it_reuses_results(work):
    if not (work / "data/Photos/synth.json").is_file():
        test_synth_draws_no_progress_bar_into_a_pipe(work)
    first = _eval(work)
    assert first.returncode == 0, first.stderr
    folders = [p.name for p in (work / "eval-results").iterdir()]
    assert len(folders) == 1 and folders[0].startswith("myrun-model-"), folders
    assert "IPT myrun/model.ckpt (" in first.stdout
    assert "reused" not in first.stderr
    second = _eval(work)
    assert second.returncode == 0, second.stderr
    assert "reused 3 of 3 image result(s)" in second.stderr and "--restart" in second.stderr
    # item 8: a line that is valid JSON but not a whole record (written by hand, or by another tool)
    log = work / "eval-results" / folders[0] / "results.jsonl"
    lines = log.read_text().splitlines()
    record = json.loads(lines[1])
    del record["runs"]
    log.write_text("\n".join([lines[0], json.dumps(record)] + lines[2:]) + "\n")
    third = _eval(work)
    assert third.returncode == 0, third.stderr
    assert "Traceback" not in third.stderr
    assert "1 damaged or incomplete line(s) ignored (line 2); those images are computed again" in third.stderr
    assert "reused 2 of 3" in third.stderr


def test_training_start_line_names_run_init_holdout_and_tensorboard(work):
    cfg = {"kind": "pretrain",
           "model": {"tasks": ["denoise_30"], "n_feats": 8, "patch_size": 24, "patch_dim": 3, "num_heads": 2,
                     "num_layers": 1},
           "data": {"source": "images", "batch_size": 2, "samples_per_epoch": 2, "num_workers": 0},
           "loss": {"contrastive": "none"}, "optim": {"lr": 1e-3}, "schedule": {"epochs": 1, "milestones": []},
           "val": {"every": 1, "holdout": 1},
           "output": {"log_every": 1, "checkpoint_every": 1, "plot": False, "progress": False, "tensorboard": True}}
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_cli("pretrain", "--config", "cfg.yaml", "--data", "photos", "-o", "trun", cwd=work)
    assert proc.returncode == 0, proc.stderr
    start = next(line for line in proc.stderr.splitlines() if "run folder" in line)
    assert "run folder trun" in start and "init fresh weights" in start
    assert "validation held-out " in start and ".png" in start
    assert "TensorBoard: tensorboard --logdir trun" in start


def test_version_and_restore_help():
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"ipt-ms {__version__}"
    help_text = " ".join(run_cli("restore", "--help").stdout.split())
    assert "about 3x faster" in help_text and "zoo" in help_text
