"""The checks `ipt-ms doctor` runs, one function each, every one returning a `Check`; the driver
(`ipt_ms.doctor.run_doctor`) decides which run and names them.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ipt_ms.doctor.report import Check, DoctorOptions
from ipt_ms.errors import first_line

#: the AMP check: first float16 loss vs the twin under float16 autocast (measured 7e-6 on CPU)
AMP_LOSS_TOLERANCE = 1e-2
AMP_MAX_STEPS = 12


def training_spec():
    """The model every doctor check trains: the one tiny model (`IPTSpec.tiny`), one task (sr_x2)."""
    from ipt_ms.spec import IPTSpec

    return IPTSpec.tiny(task_names=("sr_x2",))


# ------------------------------------------------------------------------------ checks
def _timed(name: str, fn: Callable[[], Check]) -> Check:
    start = time.perf_counter()
    try:
        check = fn()
    except Exception as err:  # a crashing check is a failed check; the others still run
        check = Check(name, "fail", f"{type(err).__name__}: {first_line(err)}")
    check.name = name
    check.seconds = time.perf_counter() - start
    return check


def environment(options: DoctorOptions) -> dict:
    from ipt_ms.doctor.versions import (
        COLLECTIVE_BACKENDS,
        cann_versions,
        cuda_versions,
        package_versions,
        thread_settings,
    )

    env = {"packages": package_versions(), "cuda": cuda_versions(), "cann": cann_versions()}
    try:
        from ipt_ms.runtime import available_devices

        env["device"] = {"requested": options.device, "available": ", ".join(available_devices())}
    except Exception as err:  # MindSpore itself does not import
        env["device"] = {"requested": options.device, "error": first_line(err)}
    env["threads"] = thread_settings()
    from ipt_ms import compile_cache

    env["compile_cache"] = {"graphs": compile_cache.describe(),
                            "setting": f"${compile_cache.ENV_VAR} or --compile-cache"}
    from ipt_ms import levers

    env["levers"] = {"stored": levers.describe(),
                     "setting": f"${levers.ENV_VAR}, --levers or levers= (library); ipt-ms tune"}
    try:
        from ipt_ms.runtime import cpu_training_levers

        env["cpu_training"] = cpu_training_levers()
    except Exception as err:  # e.g. a bad IPT_MS_CONV_AS_MATMUL: report it, keep checking
        env["cpu_training"] = {"error": first_line(err)}
    env["collective"] = {"backend_by_device": ", ".join(f"{d}: {b}" for d, b in COLLECTIVE_BACKENDS.items())}
    return env


def check_device(options: DoctorOptions, env: dict) -> Check:
    import mindspore as ms
    from mindspore import ops

    from ipt_ms.doctor.versions import COLLECTIVE_BACKENDS
    from ipt_ms.runtime import configure

    device = configure(options.device, options.mode)
    env["device"]["resolved"] = device
    env["collective"]["backend"] = COLLECTIVE_BACKENDS.get(device)
    a = ms.Tensor(np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096)
    got = ops.matmul(a, a).asnumpy()
    want = (np.arange(64 * 64, dtype=np.float64).reshape(64, 64) / 4096) @ (np.arange(64 * 64).reshape(64, 64) / 4096)
    err = float(np.abs(got - want).max() / np.abs(want).max())
    status = "pass" if err < 1e-3 else "fail"
    return Check("device", status, f"MindSpore runs on {device} ({options.mode} mode); a 64x64 matmul is off by "
                                   f"{err:.1e} of its range (limit 1e-3)", details={"matmul_rel_err": err})


def check_parity(options: DoctorOptions, weights: Path, task: str, device: str, out: Path) -> Check:
    from parity.compare import run_parity

    report = run_parity(str(weights), task=task, mode=options.mode, device=device, stage_tol=options.stage_tol,
                        output_tol=options.output_tol, floor_factor=options.floor_factor)
    from ipt_ms.fileio import overwriting

    with overwriting():  # the doctor's own report folder, rewritten on every run
        report.write(out / "parity" / task)
    lines = report.summary().splitlines()
    return Check("", "pass" if report.ok else "fail",
                 f"MindSpore {device} vs PyTorch CPU: " + "; ".join(line.strip() for line in lines[:2]),
                 details={"report": str(out / "parity" / task / "report.md"), "verdict": report.verdict()})


def check_training_fp32(options: DoctorOptions) -> Check:
    from parity.train_parity import run_train_parity

    report = run_train_parity(training_spec(), steps=options.train_steps, batch_size=2, clip_norm=1.0)
    return Check("", "pass" if report.ok else "fail", report.summary(), details=report.to_dict())


def check_training_amp(options: DoctorOptions, device: str) -> Check:
    import mindspore as ms
    import torch

    from ipt_ms.inference import build_model
    from ipt_ms.train.losses import IPTLoss
    from ipt_ms.train.step import LossScaleSettings, TrainStep, build_adam
    from parity.seeded import seeded_state
    from parity.torch_runner import build_torch_model
    from parity.train_parity import make_batches, torch_loss

    spec = training_spec()
    state = seeded_state(spec, 0)
    batches = make_batches(spec, AMP_MAX_STEPS, batch_size=2, seed=0)
    lr, hr, task = batches[0]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        reference = float(torch_loss(build_torch_model(spec, state), torch.from_numpy(lr), torch.from_numpy(hr),
                                     task, "eq5", 0.1)[0])
    net = build_model(spec, state)
    model = ms.amp.auto_mixed_precision(net, options.amp)
    model.set_train(True)
    step = TrainStep(IPTLoss(model, "eq5", 0.1), build_adam(net.trainable_params(), 1e-4), clip_norm=1.0,
                     loss_scale=LossScaleSettings(init=65536.0, factor=2.0, window=1000))
    losses, scales, applied = [], [], []
    for lr, hr, task in batches:
        out = step(ms.Tensor(lr), ms.Tensor(hr), int(task)).asnumpy()
        losses.append(float(out[0]))
        scales.append(float(out[5]))
        applied.append(bool(out[3]))
        if sum(applied) >= 2:
            break
    first_err = abs(losses[0] - reference) / abs(reference)
    good = [loss for loss, a in zip(losses, applied) if a]
    ok = first_err <= AMP_LOSS_TOLERANCE and bool(good) and all(np.isfinite(good))
    summary = (f"{options.amp} float16 on {device}: first loss {losses[0]:.4f} vs PyTorch float16 autocast "
               f"{reference:.4f} (rel err {first_err:.1e}, limit {AMP_LOSS_TOLERANCE:.0e}); {sum(applied)} of "
               f"{len(applied)} steps applied, loss scale {scales[0]:g} -> {scales[-1]:g}")
    if not good:
        summary += "; no step applied: float16 gradients overflowed at every scale tried"
    return Check("", "pass" if ok else "fail", summary,
                 details={"losses": losses, "loss_scales": scales, "applied": applied, "torch_autocast": reference})


def check_speed(options: DoctorOptions, device: str) -> Check:
    import mindspore as ms

    from ipt_ms.models import build_ipt
    from ipt_ms.spec import IPTSpec

    spec = IPTSpec.official("sr_x2") if options.speed == "full" else training_spec()
    net = build_ipt(spec)
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).uniform(0, 255, (1, 3, spec.patch_size, spec.patch_size))
                  .astype(np.float32))
    start = time.perf_counter()
    net(x, 0).asnumpy()
    first = time.perf_counter() - start
    times = []
    for _ in range(5):
        start = time.perf_counter()
        net(x, 0).asnumpy()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    what = f"{'full-size' if options.speed == 'full' else 'tiny'} IPT ({spec.num_parameters() / 1e6:.1f}M)"
    return Check("", "info", f"{what}, one {spec.patch_size}x{spec.patch_size} tile per call on {device}: "
                             f"{median * 1e3:.0f} ms per call (median of 5; {1 / median:.1f} tiles/s), first call "
                             f"{first:.1f} s (compile, or loading the graph from the compile cache)",
                 details={"first_call_s": first, "calls_s": times})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_msrun(options: DoctorOptions, device: str, out: Path) -> Check:
    msrun = Path(sys.executable).with_name("msrun")
    command = str(msrun) if msrun.exists() else "msrun"
    work = out / "msrun"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("rank*.json"):
        old.unlink()
    worker = Path(__file__).with_name("msrun_worker.py")
    cmd = [command, "--worker_num=2", "--local_worker_num=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", f"--log_dir={work / 'logs'}", "--join=True",
           f"--cluster_time_out={int(options.msrun_timeout)}", str(worker), "--out", str(work), "--device", device]
    # msrun starts workers as `python SCRIPT` from PATH: make that this interpreter, with this package
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, MS_OM_PATH=str(work / "om"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=options.msrun_timeout + 60, env=env)
    except FileNotFoundError:
        return Check("", "fail", "msrun not found (it ships with MindSpore: is the environment's bin/ on PATH?)")
    except subprocess.TimeoutExpired:
        return Check("", "fail", f"msrun did not finish within {options.msrun_timeout + 60:.0f} s; logs in "
                                 f"{work / 'logs'}")
    ranks = [json.loads(p.read_text()) for p in sorted(work.glob("rank*.json"))]
    details = {"returncode": proc.returncode, "ranks": ranks, "logs": str(work / "logs")}
    if proc.returncode != 0 or len(ranks) != 2:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return Check("", "fail", f"msrun exited {proc.returncode} with {len(ranks)} of 2 worker reports "
                                 f"({' / '.join(tail) or 'no output'}); logs in {work / 'logs'}", details=details)
    same = ranks[0]["weights_sum"] == ranks[1]["weights_sum"] and \
        ranks[0]["weights_abs_sum"] == ranks[1]["weights_abs_sum"]
    reduced = all(r["allreduce_sum"] == 3.0 for r in ranks)
    moved = all(r["applied"] and r["max_weight_change"] > 0 for r in ranks)
    ok = same and reduced and moved
    backend = {"CPU": "mccl", "GPU": "nccl", "Ascend": "hccl"}.get(device, "?")
    return Check("", "pass" if ok else "fail",
                 f"2 workers on {device} ({backend}): all-reduce of rank+1 = "
                 f"{', '.join(str(r['allreduce_sum']) for r in ranks)} (expected 3.0); one data-parallel step, "
                 f"weights {'identical' if same else 'DIFFERENT'} across ranks", details=details)
