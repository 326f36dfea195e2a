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

Here: the driver (`run_doctor`); the checks are in `checks`, options and report in `report`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ipt_ms.doctor.checks import (
    _timed,
    check_device,
    check_msrun,
    check_parity,
    check_speed,
    check_training_amp,
    check_training_fp32,
    environment,
    training_spec,
)
from ipt_ms.doctor.report import Check, DoctorOptions, DoctorReport

__all__ = ["Check", "DoctorOptions", "DoctorReport", "environment", "run_doctor", "training_spec"]


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
    from ipt_ms.spec import IPTSpec

    spec = IPTSpec.tiny()
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
