"""Progress on long steps: real subprocesses, what a user sees on stderr.

The subprocesses' stderr is a pipe, where progress is off by default (its frames would
bury a one-line error); IPT_MS_PROGRESS=1 forces it on, as for a log file."""

from __future__ import annotations

import re

import pytest

from tests.hostile.conftest import assert_one_line_error
from tests.hostile.conftest import run_cli as _run_cli

SHOW = {"IPT_MS_PROGRESS": "1"}


def run_cli(*args, **kwargs):
    return _run_cli(*args, env=SHOW, **kwargs)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    proc = run_cli("make-weights", "--preset", "tiny", "--seed", "1", "-o", folder / "tiny.pt", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder / "tiny.pt"


def _frames(stderr: str) -> list[str]:
    return [f.strip() for f in re.split(r"[\r\n]", stderr) if f.strip()]


def test_parity_names_each_step_and_quiet_silences_it(weights, tmp_path):
    proc = run_cli("parity", weights, "--task", "sr_x2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frames = _frames(proc.stderr)
    for step in ("step 2/6: reading weights", "step 5/6: PyTorch: float32, float64, every stage alone",
                 "step 6/6: MindSpore end to end and each stage alone (graph mode, the first calls compile)"):
        assert any(step in f for f in frames), (step, frames)
    assert all(re.search(r"\[\d\d:\d\d\]$", f) for f in frames if "step" in f)  # elapsed time on every frame
    quiet = run_cli("parity", weights, "--task", "sr_x2", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr.strip() == ""


def test_restore_counts_tiles_not_calls(weights, tmp_path):
    """--batch-size 64 with 8 tiles per MindSpore call on CPU: the bar counts tiles."""
    from skimage import data

    from ipt_ms.data.imageio import write_image

    write_image(tmp_path / "a.png", data.astronaut()[:60, :70])
    proc = run_cli("restore", "--weights", weights, "--task", "sr_x2", tmp_path / "a.png", "-o", tmp_path / "out",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    counts = re.findall(r"tiles:.*?(\d+)/(\d+) \[", proc.stderr)
    assert counts, proc.stderr
    total = {int(t) for _, t in counts}
    assert len(total) == 1 and total.pop() > 8  # one bar over every tile of the image
    assert "tile/s" in proc.stderr or "s/tile" in proc.stderr
    assert "batch" not in proc.stderr


def test_export_names_the_task_being_exported(weights, tmp_path):
    proc = run_cli("export", "--weights", weights, "--task", "all", "--source", "torch", "-o", tmp_path / "x.onnx",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frames = _frames(proc.stderr)
    assert any("export, step 1/2: reading weights" in f for f in frames)
    # --preset tiny has two tasks (sr_x2, denoise_30): one file and one step each
    assert any("step 3/4: exporting sr_x2 (1/2: trace, check, write onnx)" in f for f in frames), frames
    assert any("step 4/4: exporting denoise_30 (2/2" in f for f in frames), frames


def test_progress_stays_off_in_a_pipe_and_never_buries_an_error(weights, tmp_path):
    quiet = _run_cli("parity", weights, "--task", "sr_x2", cwd=tmp_path)  # stderr is a pipe: no frames
    assert quiet.returncode == 0 and quiet.stderr.strip() == ""
    bad = _run_cli("export", "--weights", weights, "--source", "torch", "--opset", "17", "-o", tmp_path / "x.onnx",
                   cwd=tmp_path)
    assert_one_line_error(bad, "opset >= 18")
    assert not (tmp_path / "x.onnx").exists()


TRAIN_CONFIG = """
kind: pretrain
model: {tasks: [sr_x2], n_feats: 8, patch_size: 24, patch_dim: 3, num_heads: 2, num_layers: 1}
data: {root: ROOT, batch_size: 2, samples_per_epoch: 8, num_workers: 0}
loss: {contrastive: none}
train: {max_steps: 3}
output: {log_every: 1, checkpoint_every: 1000, plot: false, tensorboard: false, progress: true}
"""


@pytest.mark.parametrize("forced", [False, True])
def test_training_with_progress_on_runs_in_a_pipe_and_on_a_forced_bar(tmp_path, forced):
    """`ipt-ms pretrain` as under nohup or a cluster scheduler (stderr not a terminal), the
    config's progress on: the run must finish (it once crashed at the first step), with
    the step bar drawn only when IPT_MS_PROGRESS=1 asks for it."""
    from ipt_ms.eval.photos import write_sample_photos

    photos = tmp_path / "photos"
    write_sample_photos(photos, ("astronaut", "coffee"), height=64, width=64)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(TRAIN_CONFIG.replace("ROOT", str(photos)))
    env = dict(SHOW) if forced else {}
    proc = _run_cli("pretrain", "--config", cfg, "-o", tmp_path / "run", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "model.ckpt").is_file()
    bar = re.findall(r"pretrain: .*?\d+/3 \[", proc.stderr)  # tqdm frames "pretrain: 33%|... 1/3 [00:02..."
    assert bool(bar) == forced, proc.stderr
