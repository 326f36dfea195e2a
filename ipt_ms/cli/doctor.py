"""`ipt-ms doctor`: check that the port holds on this machine before a long job."""

from __future__ import annotations

import argparse

from ipt_ms.cli._common import add_compile_cache_arg, add_quiet_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor", help="self-check of this machine: device, versions, parity, training, speed (msrun optional)",
        description="Report the device, MindSpore/PyTorch/CUDA/CANN versions, the collective backend and thread "
                    "settings; then run a tiny-model parity (MindSpore on the chosen device against the PyTorch "
                    "twin on CPU), training parity in float32, a mixed-precision (float16) training run, a "
                    "forward-speed figure and, with --msrun, a 2-worker data-parallel smoke test. Writes doctor.md "
                    "and doctor.json (and the parity reports) into --out. Exit code 1 when any check fails.")
    p.add_argument("--device", default="auto", help="CPU, GPU, Ascend or auto (default: the best available)")
    p.add_argument("--mode", default="graph", choices=("graph", "pynative"), help="MindSpore mode (default graph)")
    add_compile_cache_arg(p)
    p.add_argument("-o", "--out", default="doctor-report", help="report folder (default doctor-report)")
    p.add_argument("--amp", default="O2", choices=("O2", "O3", "off"),
                   help="mixed-precision level of the float16 training check (default O2)")
    p.add_argument("--speed", default="full", choices=("full", "tiny", "off"),
                   help="forward-speed figure on the full-size model (default), the tiny one, or none")
    p.add_argument("--msrun", action="store_true", help="also run a 2-worker msrun data-parallel smoke test")
    p.add_argument("--stage-tol", type=float, default=1e-5, help="parity: max rel err per stage (default 1e-5)")
    p.add_argument("--output-tol", type=float, default=1e-4, help="parity: max rel err on the output (default 1e-4)")
    p.add_argument("--floor-factor", type=float, default=4.0,
                   help="parity: the float32-floor rule's factor (default 4; see `ipt-ms parity --help`)")
    p.add_argument("--train-steps", type=int, default=3, help="Adam steps of the float32 training check (default 3)")
    p.add_argument("--skip", default="", metavar="CHECKS",
                   help="comma-separated checks not to run: parity, training, amp, speed (the device check always "
                        "runs)")
    add_quiet_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ipt_ms.cli._common import setup_logging
    from ipt_ms.doctor import DoctorOptions, run_doctor
    from ipt_ms.fileio import ensure_writable_dir

    setup_logging(args.quiet)
    options = DoctorOptions(device=args.device, mode=args.mode, out=args.out, amp=args.amp, speed=args.speed,
                            msrun=args.msrun, stage_tol=args.stage_tol, output_tol=args.output_tol,
                            floor_factor=args.floor_factor, train_steps=args.train_steps,
                            skip=tuple(c.strip() for c in args.skip.split(",") if c.strip()))
    options.check()
    ensure_writable_dir(args.out, "doctor report directory")  # before minutes of checks, not after
    report = run_doctor(options, echo=lambda line: print(line, flush=True))
    for path in report.write(args.out):
        print(f"wrote {path}")
    print(report.verdict().replace("**", ""), file=sys.stdout)
    return 0 if report.ok else 1
