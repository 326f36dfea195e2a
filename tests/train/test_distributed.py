"""Data parallel on CPU with msrun (MCCL) through scripts/train_distributed.sh.

* 2 workers start from identical weights and hold bit-identical weights after every
  step; with the contrastive term off and rows of one global batch split over the ranks
  (`ArraySource`), 2 workers x batch b match 1 worker x batch 2b up to float rounding.
* A SIGINT to the launcher stops both workers after the same step, rank 0 writes a
  checkpoint; resuming under msrun gives, step by step, the weights of the
  uninterrupted run.
* A taken master port fails within seconds, in one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.train.helpers import same_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_distributed.sh"
WORKER = ROOT / "tests" / "train" / "dist_worker.py"
STEPS = 24

CONFIG = """
kind: pretrain
model: {tasks: [sr_x2], n_feats: 8, patch_size: 24, patch_dim: 3, num_heads: 2, num_layers: 1}
data: {root: unused, batch_size: 4, num_workers: 0}
loss: {contrastive: none}
optim: {lr: 1.0e-3, grad_clip_norm: 1.0}
schedule: {epochs: 6, milestones: []}
train: {max_steps: STEPS}
output: {log_every: 1, checkpoint_every: 10, plot: false, progress: false, tensorboard: false}
""".replace("STEPS", str(STEPS))


def _env(tmp_path: Path, logs: str | None = None, **extra: str) -> dict:
    env = {**os.environ, "PYTHON": sys.executable, "TRAIN_ENTRY": str(WORKER), "CLUSTER_TIMEOUT": "120",
           "MS_OM_PATH": str(tmp_path / "om"), "SHOW_WORKER_LOG": "0", **extra}
    if logs is not None:
        env["LOG_DIR"] = str(tmp_path / logs)
    return env


def _launch(tmp_path: Path, cfg: Path, out: Path, run: Path, tag: str, *extra: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(SCRIPT), "2", str(cfg), "--out", str(out), "--tag", tag,
                             "--set", f"output.dir={run}", *extra], cwd=tmp_path, env=_env(tmp_path, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_state(pid: int) -> str:
    """SigBlk / SigIgn of a process (bit 2 of either means SIGINT cannot reach a bash trap)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as err:
        return str(err)
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigBlk", "SigIgn")))


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dp")
    cfg = tmp / "dp.yaml"
    cfg.write_text(CONFIG)
    out = tmp / "weights"
    proc = _launch(tmp, cfg, out, tmp / "dp_run", "", SHOW_WORKER_LOG="1")  # logs: the default place
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    return tmp, cfg, out, err


@pytest.mark.slow
def test_console_shows_rank0_steps_and_summary_and_logs_stay_in_the_run(unbroken):
    tmp_path, _, _, console = unbroken
    run = tmp_path / "dp_run"
    lines = console.splitlines()
    assert lines[0].startswith("train_distributed.sh: 2 worker(s) (2 on this node)"), console
    assert f"logs in {run}/logs/attempt-1" in lines[0]
    steps = [line for line in lines if line.startswith("step ") and "grad_norm" in line]
    assert [int(line.split()[1]) for line in steps] == list(range(1, STEPS + 1)), console
    assert lines[-1].startswith(f"step {STEPS}: weights {run}/model.ckpt"), console  # the summary, last
    assert not any(line.startswith("[") for line in lines), console  # no MindSpore [INFO]/[WARNING] lines
    assert "SIGINT is ignored or blocked" not in console  # started in the foreground: no false warning
    assert "\r" not in console  # no progress bar frames in a pipe
    logs = run / "logs" / "attempt-1"
    assert sorted(p.name for p in logs.iterdir()) == ["msrun.log", "scheduler.log", "worker_0.log", "worker_1.log"]
    assert (run / "logs" / "launcher.log").read_text().count("logs in") == 1


REAL_CONFIG = """
kind: pretrain
model: {tasks: [sr_x2], n_feats: 8, patch_size: 24, patch_dim: 3, num_heads: 2, num_layers: 1}
data: {root: unused, batch_size: 4, samples_per_epoch: 8, num_workers: 0}
loss: {contrastive: none}
train: {max_steps: 3}
output: {log_every: 1, checkpoint_every: 1000, plot: false, tensorboard: false, progress: true}
"""


@pytest.mark.slow
def test_ipt_ms_train_under_the_launcher_shows_steps_and_summary(tmp_path):
    """What a user runs: `ipt-ms train` on an image folder with 2 workers ("resumed from" on the
    console: the restart test below)."""
    from ipt_ms.eval.photos import write_sample_photos

    photos = tmp_path / "photos"
    write_sample_photos(photos, ("astronaut", "coffee"), height=64, width=64)
    cfg = tmp_path / "real.yaml"
    cfg.write_text(REAL_CONFIG)
    run = tmp_path / "run"
    env = _env(tmp_path, SHOW_WORKER_LOG="1")
    del env["TRAIN_ENTRY"]
    command = ["bash", str(SCRIPT), "2", str(cfg), "--data", str(photos), "-o", str(run)]
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stderr.splitlines()
    assert "ipt-ms: training pretrain: CPU tasks sr_x2, 2 step(s) per epoch, global batch 4 on 2 worker(s), graph" \
        in lines, first.stderr
    steps = [int(line.split()[1]) for line in lines if line.startswith("step ") and "grad_norm" in line]
    assert steps == [1, 2, 3], first.stderr
    assert lines[-1].startswith(f"step 3: weights {run}/model.ckpt, checkpoint {run}/checkpoints/step_000000003.ckpt")
    assert "\r" not in first.stderr and "%|" not in first.stderr  # progress: true, but a pipe: no bar
    assert (run / "logs" / "attempt-1" / "worker_0.log").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [
    (["--set", "optim.lrr=1"], "override 'optim.lrr=1': unknown key 'optim.lrr' (did you mean 'optim.lr'?)"),
    (["--resume"], "nothing to resume: no checkpoint in"),
])
def test_bad_overrides_and_paths_fail_before_msrun_starts(tmp_path, args, expected):
    cfg = tmp_path / "dp.yaml"
    cfg.write_text(CONFIG)
    start = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), "2", str(cfg), "--out", str(tmp_path / "w"), "--set",
                           f"output.dir={tmp_path / 'run'}", *args], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - start
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("train_distributed.sh: error: ") and expected in lines[0], lines[0]
    assert not (tmp_path / "run" / "logs").exists()  # msrun never started
    assert seconds < 10, seconds


@pytest.mark.slow
def test_missing_data_folder_of_the_real_entry_fails_before_msrun_starts(tmp_path):
    cfg = tmp_path / "dp.yaml"
    cfg.write_text(CONFIG)
    env = _env(tmp_path)
    del env["TRAIN_ENTRY"]  # `ipt-ms train`: its options and its data folder are checked
    proc = subprocess.run(["bash", str(SCRIPT), "2", str(cfg), "--data", str(tmp_path / "nowhere"), "-o",
                           str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"train_distributed.sh: error: data.root '{tmp_path / 'nowhere'}' is not a folder"


@pytest.mark.slow
def test_two_workers_match_one_worker_with_twice_the_batch(unbroken):
    tmp_path, cfg, out, _ = unbroken
    single = subprocess.run([sys.executable, str(WORKER), "--config", str(cfg), "--out", str(out),
                             "--set", "train.max_steps=4", "--set", f"output.dir={tmp_path / 'single_run'}"],
                            cwd=tmp_path, env=dict(os.environ, MS_OM_PATH=str(tmp_path / "om")),
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]

    r0, r1, one = (np.load(out / name) for name in ("rank0_of2.npz", "rank1_of2.npz", "rank0_of1.npz"))
    initial = [k for k in r0.files if k.startswith("initial/")]
    at4 = [k for k in r0.files if k.startswith("step4/")]
    assert initial and at4 and len(r0["losses"]) == STEPS and len(one["losses"]) == 4
    for key in initial:  # an identical start: copies taken before the first step...
        np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)
    # ...that really are the start (a live view of the parameters would equal the final weights)
    assert any(not np.array_equal(r0[k], r0[k.replace("initial/", "final/")]) for k in initial)
    # bit-identical weights on both ranks after every one of the steps
    assert list(r0["steps"]) == list(range(1, STEPS + 1)) and list(r0["digests"]) == list(r1["digests"])
    assert len(set(r0["digests"])) == STEPS  # the weights changed at every step
    # the logged loss is the mean over ranks: with the contrastive term off, the loss of the whole batch
    # of 4 (equal at step 1; then the two runs' weights differ by float rounding)
    np.testing.assert_allclose(r0["losses"][0], one["losses"][0], rtol=1e-6)
    np.testing.assert_allclose(r0["losses"][:4], one["losses"], rtol=1e-5)
    # the reduced gradient is the mean of the ranks' gradients, i.e. the gradient of the whole
    # batch: its norm (logged before clipping, which with Adam would hide a constant factor)
    # equals the one-worker norm at twice the batch (a sum over ranks doubles it)
    np.testing.assert_allclose(r0["grad_norms"][0], one["grad_norms"][0], rtol=1e-5,
                               err_msg="grad_norm of step 1: 2 workers x 2 vs 1 worker x 4")
    np.testing.assert_allclose(r0["grad_norms"][:4], one["grad_norms"], rtol=1e-4)
    np.testing.assert_array_equal(r0["grad_norms"], r1["grad_norms"])
    worst = 0.0
    for key in at4:
        scale = float(np.abs(one[key]).max()) or 1.0
        worst = max(worst, float(np.abs(r0[key] - one[key]).max()) / scale)
    # float rounding of the mean over 2 ranks vs over one batch of 4, amplified by Adam's sign-like steps
    print(f"2 workers x 2 vs 1 worker x 4 after 4 Adam steps: max rel weight diff {worst:.2e}")
    assert worst < 3e-4, worst
    run = tmp_path / "dp_run"  # rank 0 alone writes logs, checkpoints, the model
    assert len((run / "metrics.jsonl").read_text().splitlines()) == STEPS
    assert (run / "model.ckpt").exists()


@pytest.mark.slow
def test_signal_to_the_launcher_stops_every_rank_at_one_step_and_resume_is_exact(unbroken):
    tmp_path, cfg, out, _ = unbroken
    run = tmp_path / "stopped_run"
    proc = _launch(tmp_path, cfg, out, run, "_stopped")
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.02)
    state = _signal_state(proc.pid)  # recorded for the message below
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"launcher signal state {state}; stderr: {err}"
    r0, r1 = (np.load(out / f"rank{r}_of2_stopped.npz") for r in (0, 1))
    stopped = int(r0["steps"][-1])
    assert 3 <= stopped < STEPS and int(r1["steps"][-1]) == stopped  # every rank stopped after the same step
    assert err.strip().splitlines()[-1] == (f"train_distributed.sh: interrupted at step {stopped}: checkpoint "
                                            f"{run}/checkpoints/step_{stopped:09d}.ckpt; continue with --resume")
    assert (run / "checkpoints" / f"step_{stopped:09d}.ckpt").exists()

    resumed = _launch(tmp_path, cfg, out, run, "_resumed", "--resume")
    _, err = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, err[-3000:]
    reference = np.load(out / "rank0_of2.npz")
    again = [np.load(out / f"rank{r}_of2_resumed.npz") for r in (0, 1)]
    assert list(again[0]["steps"]) == list(range(stopped + 1, STEPS + 1))
    digests = list(r0["digests"]) + list(again[0]["digests"])
    assert digests == list(reference["digests"])  # the weights of the uninterrupted run after every step
    assert list(again[0]["digests"]) == list(again[1]["digests"])


@pytest.mark.slow
def test_accumulation_and_a_time_limit_under_msrun(unbroken):
    """train.accumulate=2 on each of 2 workers: the step-1 gradient is still the whole batch's;
    train.time_limit_min: the ranks agree on the stop step (an all-reduce of the decision)."""
    tmp_path, cfg, out, _ = unbroken
    run = tmp_path / "limited_run"
    proc = _launch(tmp_path, cfg, out, run, "_limited", "--set", "train.accumulate=2", "--set",
                   "train.time_limit_min=0.02", SHOW_WORKER_LOG="1")
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    r0, r1 = (np.load(out / f"rank{r}_of2_limited.npz") for r in (0, 1))
    stopped = int(r0["steps"][-1])
    assert int(r1["steps"][-1]) == stopped and stopped < STEPS, (stopped, err)  # 1.2 s: not all 24 steps
    assert list(r0["digests"]) == list(r1["digests"])
    assert f"time limit of 0.02 min reached at step {stopped}" in err
    assert (run / "checkpoints" / f"step_{stopped:09d}.ckpt").exists() and (run / "model.ckpt").exists()
    reference = np.load(out / "rank0_of2.npz")  # 2 workers, no accumulation (= 1 worker x 4, tested above)
    np.testing.assert_allclose(r0["losses"][0], reference["losses"][0], rtol=1e-6)
    np.testing.assert_allclose(r0["grad_norms"][0], reference["grad_norms"][0], rtol=1e-5)


@pytest.mark.slow
def test_a_second_signal_under_msrun_aborts_at_once(unbroken):
    tmp_path, cfg, out, _ = unbroken
    run = tmp_path / "aborted_run"
    proc = _launch(tmp_path, cfg, out, run, "_aborted")
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 300
    victims = [_worker_pid("_aborted", rank, deadline) for rank in (0, 1)]
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "train_distributed.sh: aborted by a second SIGINT", err
    assert time.monotonic() - start < 10
    time.sleep(0.5)
    assert not [pid for pid in victims if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]


@pytest.mark.slow
def test_taken_master_port_fails_at_once(tmp_path):
    cfg = tmp_path / "dp.yaml"
    cfg.write_text(CONFIG)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        proc = subprocess.run(["bash", str(SCRIPT), "2", str(cfg)], cwd=tmp_path,
                              env={**_env(tmp_path, "logs"), "MASTER_PORT": str(port)}, capture_output=True,
                              text=True, timeout=120)
        seconds = time.monotonic() - start
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"MASTER_PORT {port} on 127.0.0.1 is already in use" in lines[0]
    assert seconds < 10, seconds
    print(f"taken port reported in {seconds:.2f} s")


# Stand-ins for `ipt-ms train` under msrun, to test the launcher's watch on the scheduler
# without MindSpore: the scheduler (MS_ROLE=MS_SCHED) and the workers do what --fake says.
FAKE_ENTRY = """
import os, signal, sys, time
mode = sys.argv[sys.argv.index("--fake") + 1]
if os.environ.get("MS_ROLE") == "MS_SCHED":
    if mode == "bind-error":
        print("[ERROR] DISTRIBUTED tcp_server.cc Failed to call bind, port in use", flush=True)
        sys.exit(1)
    time.sleep(1)
    if mode == "scheduler-killed":
        os.kill(os.getpid(), signal.SIGKILL)  # an OOM kill: nothing in its log
    sys.exit(0)  # the end of a good run, or a silent death: the log says nothing either way
if mode == "worker-fails":
    print("fake_entry.py: error: out of memory (a stand-in)", file=sys.stderr, flush=True)
    sys.exit(1)
time.sleep(5 if mode == "ends-first" else 300)
"""


def _fake_launch(tmp_path: Path, mode: str, grace: int, **extra: str) -> tuple[subprocess.CompletedProcess, float]:
    entry = tmp_path / "fake_entry.py"
    entry.write_text(FAKE_ENTRY)
    cfg = tmp_path / "dp.yaml"
    cfg.write_text(CONFIG)
    env = {**_env(tmp_path, "logs"), "TRAIN_ENTRY": str(entry), "SCHEDULER_GRACE": str(grace), **extra}
    start = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), "2", str(cfg), "--fake", mode], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - start


@pytest.mark.slow
def test_scheduler_that_leaves_just_before_the_workers_is_a_good_end(tmp_path):
    # CI once failed a finished run: the scheduler exits when the workers finalize, moments
    # before they exit themselves, and the launcher took that for a crash
    proc, _ = _fake_launch(tmp_path, "ends-first", grace=20)
    assert proc.returncode == 0, proc.stderr
    assert "scheduler exited" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode, expected", [
    ("bind-error", "the scheduler exited: [ERROR] DISTRIBUTED tcp_server.cc Failed to call bind"),
    ("silent-death", "the scheduler exited and the workers were still running 3 s later"),
    ("scheduler-killed", "the scheduler killed by signal 9 (KILL)"),
])
def test_scheduler_that_dies_stops_the_launch(tmp_path, mode, expected):
    proc, seconds = _fake_launch(tmp_path, mode, grace=3)
    assert proc.returncode == 1, proc.stderr
    assert f"train_distributed.sh: {expected}" in proc.stderr
    assert seconds < 30, seconds  # the workers would have slept 300 s
    print(f"{mode}: reported in {seconds:.1f} s")


@pytest.mark.slow
def test_a_job_that_fails_more_than_max_restarts_times_exits_naming_the_cause(tmp_path):
    proc, seconds = _fake_launch(tmp_path, "worker-fails", grace=3, MAX_RESTARTS="2")
    assert proc.returncode == 1, proc.stderr
    cause = "a worker exited with status 1: fake_entry.py: error: out of memory (a stand-in)"
    assert proc.stderr.count(f"train_distributed.sh: {cause}; restart ") == 2, proc.stderr
    assert "restart 2 of 2 from the start (no checkpoint yet)" in proc.stderr
    assert f"failed 3 times (MAX_RESTARTS=2): giving up; last cause: {cause}" in proc.stderr.splitlines()[-1]
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["attempt-1", "attempt-2", "attempt-3", "launcher.log"]
    assert (logs / "launcher.log").read_text().count("restart ") == 2
    again, _ = _fake_launch(tmp_path, "worker-fails", grace=3)  # a later launch keeps the earlier attempts' logs
    assert again.returncode == 1 and (logs / "attempt-4" / "msrun.log").is_file() and (logs / "attempt-1").is_dir()
    print(f"3 failed attempts reported in {seconds:.1f} s")


QUICK_MSRUN = """#!/usr/bin/env bash
# stands in for msrun when a worker fails at once: msrun logs the exit and is gone before
# the launcher's next look (seen in a fresh-clone `.ci/run` on a fast Intel Xeon)
for arg; do [[ $arg == --log_dir=* ]] && dir=${arg#--log_dir=}; done
echo "fake_entry.py: error: out of memory (a stand-in)" > "$dir/worker_0.log"
echo "[ERROR] ME(1:1,MainProcess):_api.py:365] Worker process 4242 exit with exception. Error code: 1."
exit 1
"""


def test_a_worker_failure_is_named_when_msrun_ends_before_the_launcher_looks(tmp_path):
    msrun = tmp_path / "quick_msrun"
    msrun.write_text(QUICK_MSRUN)
    msrun.chmod(0o755)
    proc, _ = _fake_launch(tmp_path, "worker-fails", grace=3, MSRUN=str(msrun))
    assert proc.returncode == 1, proc.stderr
    cause = "train_distributed.sh: a worker exited with status 1: fake_entry.py: error: out of memory (a stand-in)"
    assert cause in proc.stderr.splitlines() and "msrun failed" not in proc.stderr, proc.stderr


def _worker_pid(tag: str, rank: int, deadline: float) -> int:
    """The pid of the msrun worker of `rank` started with --tag `tag` (its environment says which)."""
    while time.time() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if tag.encode() in cmdline and b"MS_ROLE=MS_WORKER" in environ and f"RANK_ID={rank}".encode() in environ:
                return int(entry.name)
        time.sleep(0.1)
    raise AssertionError(f"no worker of rank {rank} with tag {tag}")


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_restarted_from_the_checkpoint_to_the_same_weights(unbroken):
    tmp_path, cfg, out, _ = unbroken
    run = tmp_path / "restarted_run"
    proc = _launch(tmp_path, cfg, out, run, "_restarted", MAX_RESTARTS="1", SHOW_WORKER_LOG="1")
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 300
    victim = _worker_pid("_restarted", 1, deadline)
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 13):  # past the checkpoint at 10
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.02)
    os.kill(victim, signal.SIGKILL)
    killed_at, killed_wall = time.monotonic(), time.time()
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    restart = [line for line in err.splitlines() if "restart 1 of 1" in line]
    assert restart == [f"train_distributed.sh: a worker was killed by signal 9 (KILL); restart 1 of 1 from "
                       f"{run}/checkpoints/step_000000010.ckpt"], err
    assert f"resumed from {run}/checkpoints/step_000000010.ckpt at step 10" in err
    logs = run / "logs"
    said = [line for line in (logs / "launcher.log").read_text().splitlines() if "restart 1 of 1" in line]
    assert len(said) == 1, said
    noticed = time.mktime(time.strptime(said[0][:19], "%Y-%m-%d %H:%M:%S"))  # whole seconds
    assert noticed - killed_wall < 5, (said[0], killed_wall)  # the rest stopped and the restart began within seconds
    assert (logs / "attempt-1" / "worker_1.log").is_file() and (logs / "attempt-2" / "worker_1.log").is_file()
    # the final weights of the uninterrupted run, to the bit
    assert same_checkpoint(run / "model.ckpt", tmp_path / "dp_run" / "model.ckpt")
    print(f"worker killed at step >= 13; run finished {time.monotonic() - killed_at:.1f} s later")


@contextlib.contextmanager
def _two_hosts():
    """Two network namespaces joined by a veth pair, 10.231.0.1 and 10.231.0.2 (each with its
    own loopback): two "nodes" on one machine. Deleted again whatever happens."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) here")
    tag = f"ipt{os.getpid() % 100000}"
    names = [f"{tag}a", f"{tag}b"]
    made: list[str] = []
    try:
        for name in names:
            added = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
            if added.returncode != 0:
                pytest.skip(f"`ip netns add` not permitted here: {added.stderr.strip()}")
            made.append(name)
        commands = [["ip", "link", "add", f"v{tag}a", "type", "veth", "peer", "name", f"v{tag}b"]]
        for name, addr in zip(names, ("10.231.0.1/24", "10.231.0.2/24")):
            dev = f"v{name}"
            commands += [["ip", "link", "set", dev, "netns", name], ["ip", "-n", name, "addr", "add", addr, "dev", dev],
                         ["ip", "-n", name, "link", "set", dev, "up"], ["ip", "-n", name, "link", "set", "lo", "up"]]
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot set up the namespaces ({' '.join(command)}): {done.stderr.strip()}")
        yield names
    finally:
        for name in made:  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def _node(namespace: str, tmp_path: Path, cfg: Path, out: Path, run: Path, rank: int, port: int,
          **env: str) -> subprocess.Popen:
    node_env = _env(tmp_path, MASTER_ADDR="10.231.0.1", MASTER_PORT=str(port), NODE_RANK=str(rank),
                    LOCAL_WORKERS="1", SHOW_WORKER_LOG="1", **env)
    return subprocess.Popen(["ip", "netns", "exec", namespace, "bash", str(SCRIPT), "2", str(cfg), "--out", str(out),
                             "--tag", f"_node{rank}", "--set", f"output.dir={run}"], cwd=tmp_path, env=node_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_nodes_in_network_namespaces_match_one_node_with_two_workers(unbroken):
    tmp_path, cfg, out, _ = unbroken
    run = tmp_path / "two_nodes_run"
    with _two_hosts() as (first, second):
        nodes = [_node(ns, tmp_path, cfg, out, run, rank, 29517) for rank, ns in enumerate((first, second))]
        try:
            errs = [node.communicate(timeout=400)[1] for node in nodes]
        finally:
            for node in nodes:
                if node.poll() is None:
                    node.kill()
    for rank, (node, err) in enumerate(zip(nodes, errs)):
        assert node.returncode == 0, f"node {rank}: {err[-3000:]}"
        assert err.startswith(f"train_distributed.sh [node {rank} of 2]: 2 worker(s) (1 on this node), scheduler "
                              f"10.231.0.1:29517, run {run}, logs in {run}/logs/node-{rank}/attempt-1"), err
    assert f"step {STEPS}: weights {run}/model.ckpt" in errs[0]  # rank 0's summary on node 0's console
    # the weights of one node with two workers, to the bit
    assert same_checkpoint(run / "model.ckpt", tmp_path / "dp_run" / "model.ckpt")


@pytest.mark.slow
def test_a_node_that_never_arrives_fails_the_other_within_the_cluster_timeout(tmp_path):
    cfg = tmp_path / "dp.yaml"
    cfg.write_text(CONFIG)
    with _two_hosts() as (first, _):
        start = time.monotonic()
        node = _node(first, tmp_path, cfg, tmp_path / "w", tmp_path / "run", 0, 29518, CLUSTER_TIMEOUT="10")
        _, err = node.communicate(timeout=120)
        seconds = time.monotonic() - start
    lines = err.strip().splitlines()
    assert node.returncode == 1, err
    assert lines[-1] == (f"train_distributed.sh [node 0 of 2]: the cluster did not form within CLUSTER_TIMEOUT=10 s: "
                         "not every worker joined (a node that never started, or one with another MASTER_ADDR, "
                         f"MASTER_PORT or NUM_WORKERS); logs in {tmp_path}/run/logs/node-0/attempt-1"), err
    assert seconds < 10 + 30, seconds
    print(f"missing node reported in {seconds:.1f} s (CLUSTER_TIMEOUT=10)")


@pytest.mark.slow
def test_two_nodes_on_one_host_with_a_loopback_master_say_why_in_one_line(tmp_path):
    cfg = tmp_path / "dp.yaml"
    cfg.write_text(CONFIG)
    proc = subprocess.run(["bash", str(SCRIPT), "2", str(cfg)], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(tmp_path, MASTER_ADDR="127.0.0.1", MASTER_PORT="29519", NODE_RANK="1",
                                   LOCAL_WORKERS="1"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("train_distributed.sh [node 1 of 2]: MASTER_ADDR 127.0.0.1 is a loopback address: "
                                   "msrun starts a scheduler on every node that owns MASTER_ADDR, so on several nodes "
                                   "set it to the first node's network address")
