"""`ipt-ms doctor`: does the port hold on this machine? A self-check to run before a long job.

It records the software stack (MindSpore, PyTorch, CUDA, CANN, the collective backend,
thread settings), then runs, on the chosen MindSpore device:

1. a device smoke test (one matmul, checked);
2. layer-by-layer parity of a tiny seeded IPT (every task) against the PyTorch twin on
   CPU, by the same two rules as `ipt-ms parity` (its reports are kept);
3. training parity in float32: step-1 loss and gradients, then a few Adam steps, against
   the twin (`parity.train_parity`);
4. a mixed-precision (AMP O2, float16) training run with dynamic loss scaling: the first
   loss against the twin under float16 autocast, and at least one applied step;
5. a forward-speed figure (full-size model, one 48x48 tile per call);
6. with `msrun=True`, a 2-worker data-parallel smoke test (all-reduce, one step, ranks
   holding identical weights).

Every check ends as pass, fail, skip (with the reason) or info; a check that raises is a
failure with the error's first line, and the others still run. The report goes to
doctor.md / doctor.json; any failure makes `ipt-ms doctor` exit 1.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError, first_line

__all__ = ["Check", "DoctorOptions", "DoctorReport", "run_doctor", "training_spec"]

STATUSES = ("pass", "fail", "skip", "info")
SKIPPABLE = ("parity", "training", "amp", "speed")
#: the AMP check: first float16 loss vs the twin under float16 autocast (measured 7e-6 on CPU)
AMP_LOSS_TOLERANCE = 1e-2
AMP_MAX_STEPS = 12


@dataclass
class Check:
    name: str
    status: str
    summary: str
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        return f"[{self.status.upper():4}] {self.name}: {self.summary} ({self.seconds:.1f} s)"


@dataclass
class DoctorOptions:
    device: str = "auto"
    mode: str = "graph"
    out: str = "doctor-report"
    amp: str = "O2"  # O2, O3 or off
    speed: str = "full"  # full, tiny or off
    msrun: bool = False
    stage_tol: float = 1e-5
    output_tol: float = 1e-4
    floor_factor: float = 4.0
    train_steps: int = 3
    msrun_timeout: float = 300.0
    skip: tuple[str, ...] = ()  # any of SKIPPABLE


    def check(self) -> None:
        from ipt_ms.runtime import DEVICE_SPELLINGS, MODES

        if str(self.device).lower() not in {d.lower() for d in DEVICE_SPELLINGS}:
            raise IPTError(f"unknown device {self.device!r}; choose one of CPU, GPU, Ascend, auto")
        if self.mode not in MODES:
            raise IPTError(f"unknown mode {self.mode!r}; choose graph or pynative")
        if self.amp not in ("O2", "O3", "off"):
            raise IPTError(f"--amp must be O2, O3 or off, got {self.amp!r}")
        if self.speed not in ("full", "tiny", "off"):
            raise IPTError(f"--speed must be full, tiny or off, got {self.speed!r}")
        for name in ("stage_tol", "output_tol", "floor_factor"):
            if not getattr(self, name) >= 0:
                raise IPTError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.train_steps < 1:
            raise IPTError(f"--train-steps must be >= 1, got {self.train_steps}")
        unknown = sorted(set(self.skip) - set(SKIPPABLE))
        if unknown:
            raise IPTError(f"--skip takes {', '.join(SKIPPABLE)}; unknown: {', '.join(unknown)}")


@dataclass
class DoctorReport:
    options: dict
    environment: dict
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    def verdict(self) -> str:
        failed = [c.name for c in self.checks if c.status == "fail"]
        skipped = [c.name for c in self.checks if c.status == "skip"]
        device = self.environment.get("device", {}).get("resolved") or self.options.get("device")
        ms_version = self.environment.get("packages", {}).get("mindspore")
        head = (f"**{'PASS' if self.ok else 'FAIL'}.** ipt-ms doctor on {device} (MindSpore {ms_version}, "
                f"{self.options.get('mode')} mode): ")
        ran = [c for c in self.checks if c.status in ("pass", "fail")]
        if failed:
            text = f"{len(failed)} of {len(ran)} checks failed: {', '.join(failed)}."
        else:
            text = f"all {len(ran)} checks that ran passed."
        if skipped:
            text += f" Skipped: {', '.join(skipped)} (reasons below)."
        return head + text

    def to_dict(self) -> dict:
        return {"ok": self.ok, "verdict": self.verdict(), "options": self.options, "environment": self.environment,
                "checks": [asdict(c) for c in self.checks]}

    def to_markdown(self) -> str:
        env = self.environment
        rows = ["| check | result | time | summary |", "|---|---|---:|---|"]
        rows += [f"| {c.name} | {'**FAIL**' if c.status == 'fail' else c.status} | {c.seconds:.1f} s | "
                 f"{c.summary.replace('|', '/')} |" for c in self.checks]
        lines = [f"# ipt-ms doctor: {'PASS' if self.ok else 'FAIL'}", "", self.verdict(), "", "## Checks", "",
                 *rows, "", "## Environment", ""]
        for section, values in env.items():
            if isinstance(values, dict):
                shown = ", ".join(f"{k} {v}" for k, v in values.items() if v not in (None, "", [], {})) or "none found"
                lines.append(f"- {section}: {shown}")
            else:
                lines.append(f"- {section}: {values}")
        lines += ["", "## Details", ""]
        for c in self.checks:
            if c.details:
                lines += [f"### {c.name}", "", "```", json.dumps(c.details, indent=2, default=str), "```", ""]
        return "\n".join(lines)

    def write(self, directory: str | os.PathLike) -> list[Path]:
        from ipt_ms.fileio import atomic_output, ensure_writable_dir

        directory = ensure_writable_dir(directory, "doctor report directory")
        written = []
        for name, text in (("doctor.json", json.dumps(self.to_dict(), indent=2, default=str)),
                           ("doctor.md", self.to_markdown())):
            with atomic_output(directory / name, overwrite=True) as tmp:  # its own report, rewritten each run
                tmp.write_text(text + "\n")
            written.append(directory / name)
        return written


def training_spec():
    """The model every doctor check trains: configs/tiny.yaml's architecture, one task (sr_x2)."""
    from ipt_ms.presets import preset_spec
    from ipt_ms.spec import IPTSpec

    tiny = preset_spec("tiny")
    return IPTSpec(scales=(2,), task_names=("sr_x2",), n_feats=tiny.n_feats, patch_size=tiny.patch_size,
                   patch_dim=tiny.patch_dim, num_heads=tiny.num_heads, num_layers=tiny.num_layers)


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


# ------------------------------------------------------------------------------ driver
def run_doctor(options: DoctorOptions, echo: Callable[[str], None] = print) -> DoctorReport:
    """Run every check in order, printing one line per check as it finishes."""
    options.check()
    out = Path(options.out)
    env = environment(options)
    packages = env["packages"]
    echo(f"ipt-ms doctor: MindSpore {packages.get('mindspore')}, PyTorch {packages.get('torch')}, "
         f"Python {packages.get('python')}; devices available to MindSpore: "
         f"{env['device'].get('available', env['device'].get('error'))}")
    checks: list[Check] = []

    def add(check: Check) -> Check:
        checks.append(check)
        echo(check.line())
        return check

    device_check = add(_timed("device", lambda: check_device(options, env)))
    device = env["device"].get("resolved")
    names = []
    from ipt_ms.presets import preset_spec

    spec = preset_spec("tiny")
    names += [f"parity {t}" for t in spec.task_names]
    names += ["training float32", f"training mixed precision ({options.amp})", "forward speed",
              "msrun 2 workers"]
    if device_check.status == "fail":
        for name in names:
            add(Check(name, "skip", "the device check failed"))
        return DoctorReport(asdict(options), env, checks)

    if "parity" in options.skip:
        for task in spec.task_names:
            add(Check(f"parity {task}", "skip", "not asked (--skip parity)"))
    else:
        with tempfile.TemporaryDirectory(prefix="ipt-doctor-") as tmp:
            from ipt_ms.convert.weights import save_weights
            from ipt_ms.provenance import seeded
            from parity.seeded import seeded_state

            weights = Path(tmp) / "tiny.pt"
            save_weights(weights, seeded_state(spec, 0), spec, provenance=seeded(0))
            for task in spec.task_names:
                add(_timed(f"parity {task}", lambda t=task: check_parity(options, weights, t, device, out)))
    if "training" in options.skip:
        add(Check("training float32", "skip", "not asked (--skip training)"))
    else:
        add(_timed("training float32", lambda: check_training_fp32(options)))
    amp_name = f"training mixed precision ({options.amp})"
    if options.amp == "off" or "amp" in options.skip:
        add(Check(amp_name, "skip", "not asked (--amp off / --skip amp)"))
    else:
        amp = _timed(amp_name, lambda: check_training_amp(options, device))
        if amp.status == "fail" and "Unsupported data type" in amp.summary:
            amp.status, amp.summary = "skip", f"{device} kernels refuse float16 here: {amp.summary}"
        add(amp)
    if options.speed == "off" or "speed" in options.skip:
        add(Check("forward speed", "skip", "not asked (--speed off / --skip speed)"))
    else:
        add(_timed("forward speed", lambda: check_speed(options, device)))
    if options.msrun:
        add(_timed("msrun 2 workers", lambda: check_msrun(options, device, out)))
    else:
        add(Check("msrun 2 workers", "skip", "not asked (--msrun)"))
    return DoctorReport(asdict(options), env, checks)
