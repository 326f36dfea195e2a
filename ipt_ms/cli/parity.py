"""`ipt-ms parity WEIGHTS`: layer-by-layer comparison of MindSpore and the PyTorch twin."""

from __future__ import annotations

from ipt_ms.cli._common import add_architecture_overrides, add_runtime_args, architecture_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "parity", help="compare MindSpore and PyTorch stage by stage",
        description="Run the MindSpore IPT and the PyTorch twin on one input (an image's centre crop, "
                    "or seeded noise) and compare every stage. Exit code 1 when a tolerance is exceeded.")
    p.add_argument("weights", help="weights for the PyTorch side (.pt/.pth/.safetensors, or a .ckpt)")
    p.add_argument("--ckpt", default=None, help="separate MindSpore checkpoint (default: convert WEIGHTS in memory)")
    p.add_argument("--task", default="0", help="task name or index, or 'all' (default: 0)")
    p.add_argument("--input", default=None, help="image whose centre patch is used (default: seeded noise)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise input")
    p.add_argument("--report", default=None, help="directory for report.json, report.md, error_vs_depth.png")
    p.add_argument("--stage-tol", type=float, default=1e-5, help="max rel err per stage (default 1e-5)")
    p.add_argument("--output-tol", type=float, default=1e-4, help="max rel err on the output (default 1e-4)")
    p.add_argument("--floor-factor", type=float, default=4.0,
                   help="a stage above the fixed tolerance still passes if MindSpore is within this factor of "
                        "PyTorch float32's own error against PyTorch float64 (default 4)")
    p.add_argument("--no-fp64", action="store_true",
                   help="skip the float64 reference run: fixed tolerances only")
    add_runtime_args(p)
    add_architecture_overrides(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ipt_ms.convert.weights import load_weights
    from ipt_ms.errors import ToleranceExceededError
    from ipt_ms.fileio import ensure_writable_dir
    from parity.compare import run_parity

    overrides = architecture_overrides(args)
    if args.report:
        ensure_writable_dir(args.report, "report directory")
    tasks = [args.task]
    if args.task == "all":
        spec, _ = load_weights(args.weights, **overrides)
        tasks = list(spec.task_names)
    failed = []
    for task in tasks:
        report = run_parity(args.weights, ckpt=args.ckpt, task=task, image=args.input, seed=args.seed,
                            mode=args.mode, device=args.device, stage_tol=args.stage_tol,
                            output_tol=args.output_tol, fp64_reference=not args.no_fp64,
                            floor_factor=args.floor_factor, **overrides)
        print(report.table())
        print(report.summary())
        if args.report:
            directory = Path(args.report) / report.task if len(tasks) > 1 else Path(args.report)
            for path in report.write(directory):
                print(f"wrote {path}")
        if not report.ok:
            failed.append(report.task)
    if failed:
        raise ToleranceExceededError(f"parity tolerance exceeded for task(s): {', '.join(failed)}")
    return 0
