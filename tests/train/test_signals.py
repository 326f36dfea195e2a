"""Real SIGINT/SIGTERM sent to real `ipt-ms` processes (MindSpore replaces Python's SIGINT
handler once an operation has run, so only an outside signal tests anything).

Training finishes the current step, writes a checkpoint at it, prints one line and exits
128 + signal; resuming from that checkpoint repeats the uninterrupted run's losses
exactly. A second signal aborts at once. `restore` and `eval` stop cleanly: one line,
exit 130, no partial file, and eval resumes from its results log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipt_ms.train.metrics import read_metrics

CONFIG = """
kind: pretrain
model: {tasks: [sr_x2, denoise_30], n_feats: 8, patch_size: 24, patch_dim: 3, num_heads: 2, num_layers: 1}
data: {root: ROOT, batch_size: 4, samples_per_epoch: 32, num_workers: 0, augment: true}
loss: {contrastive: eq5, weight: 0.1}
optim: {lr: 1.0e-3, grad_clip_norm: 1.0}
schedule: {epochs: 20, milestones: [2], gamma: 0.5}
train: {mode: MODE}
output: {log_every: 1, checkpoint_every: 1000, keep_last: 2, plot: false, tensorboard: false}
"""


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "ipt_ms", *map(str, args)]


def _env(tmp_path: Path) -> dict:
    return dict(os.environ, MS_OM_PATH=str(tmp_path / "om"))


def _start(tmp_path: Path, *args) -> subprocess.Popen:
    return subprocess.Popen(_cli(*args), cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"exited early ({proc.returncode}) waiting for {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def _logged_steps(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(read_metrics(path)) if path.exists() else 0


def _losses(run: Path) -> dict[int, tuple]:
    return {r["step"]: (r["loss"], r["l1"], r["contrastive"], r["lr"], r["task"]) for r in read_metrics(
        run / "metrics.jsonl")}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from ipt_ms.eval.photos import write_sample_photos

    folder = tmp_path_factory.mktemp("photos")
    write_sample_photos(folder, ("astronaut", "chelsea", "coffee"), height=96, width=120)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("mode, sig", [("graph", signal.SIGINT), ("pynative", signal.SIGTERM)])
def test_signal_stops_after_the_step_and_resume_is_exact(tmp_path, photos, mode, sig):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("ROOT", str(photos)).replace("MODE", mode))
    run = tmp_path / "stopped"
    proc = _start(tmp_path, "pretrain", "--config", cfg, "-o", run, "-q")
    _wait_for(lambda: _logged_steps(run) >= 5, proc, "5 logged steps")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    stopped = _logged_steps(run)
    assert lines[0] == (f"interrupted at step {stopped}: checkpoint {run}/checkpoints/step_{stopped:09d}.ckpt; "
                        "continue with --resume")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"step_{stopped:09d}.ckpt"]
    assert (run / "model.ckpt").exists()

    stop = stopped + 6  # across the epoch boundary at step 8 for stops at 5..7 (8 steps per epoch)
    resumed = subprocess.run(_cli("pretrain", "--config", cfg, "-o", run, "--resume", "--max-steps", stop, "-q"),
                             cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "unbroken"
    unbroken = subprocess.run(_cli("pretrain", "--config", cfg, "-o", reference, "--max-steps", stop, "-q"),
                              cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert unbroken.returncode == 0, unbroken.stderr
    a, b = _losses(run), _losses(reference)
    assert sorted(a) == list(range(1, stop + 1))
    assert [a[s] for s in range(1, stop + 1)] == [b[s] for s in range(1, stop + 1)]  # bit-exact


@pytest.mark.slow
def test_second_signal_aborts_at_once(tmp_path, photos):
    cfg = tmp_path / "cfg.yaml"  # plot: the orderly stop then takes a second (the loss plot) to interrupt
    cfg.write_text(CONFIG.replace("ROOT", str(photos)).replace("MODE", "graph").replace("plot: false", "plot: true"))
    run = tmp_path / "run"
    proc = _start(tmp_path, "pretrain", "--config", cfg, "-o", run, "-q")
    _wait_for(lambda: _logged_steps(run) >= 3, proc, "3 logged steps")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.15)  # two signals sent at once are one pending signal to the kernel
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "second SIGINT: stopping now" in err and "interrupted at step" not in err, err


def _tiny_weights(tmp_path: Path) -> Path:
    from ipt_ms.convert.weights import save_weights
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(2,), task_names=("sr_x2",))
    path = tmp_path / "tiny.ckpt"
    save_weights(path, seeded_state(spec, seed=1), spec)
    return path


@pytest.mark.slow
def test_restore_stops_cleanly(tmp_path):
    from ipt_ms.data.imageio import read_image, write_image
    from ipt_ms.eval.photos import sample_photo

    weights = _tiny_weights(tmp_path)
    inputs = tmp_path / "in"
    for i in range(40):
        write_image(inputs / f"img{i:02d}.png", sample_photo("astronaut", 72 + i, 72))
    out = tmp_path / "out"
    proc = _start(tmp_path, "restore", inputs, "--weights", weights, "-o", out, "-q")
    _wait_for(lambda: out.is_dir() and len([p for p in out.glob("*.png") if not p.name.startswith(".")]) >= 2,
              proc, "2 restored images")
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ipt-ms restore: interrupted by SIGINT"), err
    written = sorted(out.iterdir())
    assert 2 <= len(written) < 40 and all(p.suffix == ".png" for p in written)  # no partial file
    for p in written:
        assert read_image(p).shape[0] >= 144  # complete images


@pytest.mark.slow
def test_eval_stops_cleanly_and_resumes(tmp_path):
    from ipt_ms.data.imageio import write_image
    from ipt_ms.eval.engine import RESULTS_FILE
    from ipt_ms.eval.photos import sample_photo

    weights = _tiny_weights(tmp_path)
    hr = tmp_path / "data" / "Photos" / "HR"
    for i in range(30):
        write_image(hr / f"img{i:02d}.png", sample_photo("coffee", 96, 96 + 2 * i))
    out = tmp_path / "results"
    args = ("eval", "--weights", weights, "--task", "sr_x2", "--data", tmp_path / "data", "--sets", "Photos",
            "--lr", "generate", "-o", out, "-q")
    proc = _start(tmp_path, *args)
    log = out / RESULTS_FILE
    _wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 4, proc, "3 evaluated images")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted by SIGINT" in lines[0] and str(log) in lines[0], err
    assert sorted(p.name for p in out.iterdir()) == [RESULTS_FILE]  # no report, no partial file
    done = len(log.read_text().splitlines()) - 1
    assert 3 <= done < 30
    again = subprocess.run(_cli(*args), cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    names = [line for line in log.read_text().splitlines()[1:]]
    assert len(names) == 30 and len(set(names)) == 30  # each image once: finished ones were not redone
