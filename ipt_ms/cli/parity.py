"""`ipt-ms parity WEIGHTS`: layer-by-layer comparison of MindSpore and the PyTorch twin."""

from __future__ import annotations

from ipt_ms.cli._common import (
    add_architecture_overrides,
    add_quiet_arg,
    add_runtime_args,
    architecture_overrides,
    non_negative_float,
    seed_int,
)


def draws_int(text: str) -> int:
    from ipt_ms.cli._common import _number

    return _number(text, int, "an integer from 0 to 100", lambda v: 0 <= v <= 100)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "parity", help="compare MindSpore and PyTorch stage by stage",
        description="Run the MindSpore IPT and the PyTorch twin on one input (an image's centre crop, "
                    "or seeded noise) and compare every stage. Exit code 1 when a tolerance is exceeded.")
    p.add_argument("weights", help="weights for the PyTorch side (.pt/.pth/.safetensors, or a .ckpt)")
    p.add_argument("--ckpt", default=None, help="separate MindSpore checkpoint (default: convert WEIGHTS in memory)")
    p.add_argument("--task", default="0", help="task name or index, or 'all' (default: 0)")
    p.add_argument("--input", default=None, help="image whose centre patch is used (default: seeded noise)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the noise input")
    p.add_argument("--report", default=None, help="directory for report.json, report.md, error_vs_depth.png")
    p.add_argument("--stage-tol", type=non_negative_float, default=1e-5,
                   help="max rel err per stage end to end, used with --no-fp64 (default 1e-5)")
    p.add_argument("--output-tol", type=non_negative_float, default=1e-4,
                   help="max rel err on the output (default 1e-4)")
    p.add_argument("--floor-factor", type=non_negative_float, default=4.0,
                   help="each stage, computed alone from the float64 run's inputs, passes when MindSpore's own "
                        "error there is within this factor of PyTorch float32's (default 4)")
    p.add_argument("--draws", type=draws_int, default=3,
                   help="PyTorch float32 runs on inputs moved by up to one ulp, beside the plain one, whose "
                        "worst error sets each stage's float32 rounding (default 3)")
    p.add_argument("--no-fp64", action="store_true",
                   help="skip the float64 runs: every stage judged end to end by fixed tolerances")
    p.add_argument("--framework", choices=("onnx",), default=None,
                   help="add a third framework: onnx = export the model now (with every stage exposed) and run it "
                        "in ONNX Runtime; compared with PyTorch by the same rules")
    p.add_argument("--onnx-source", choices=("mindspore", "torch"), default="mindspore",
                   help="which network --framework onnx exports (default mindspore)")
    p.add_argument("--onnx", nargs="+", default=None, metavar="FILE",
                   help="add ONNX Runtime with files from `ipt-ms export` (the one holding each task is used; "
                        "stages are compared where the file exposes them, i.e. exported --with-stages)")
    add_runtime_args(p)
    add_architecture_overrides(p)
    add_quiet_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ipt_ms.convert.weights import load_weights
    from ipt_ms.errors import ToleranceExceededError, sanitize, sanitize_lines
    from ipt_ms.fileio import check_output_dir
    from parity.compare import run_parity

    overrides = architecture_overrides(args)
    if args.report:
        check_output_dir(args.report, "report directory")  # created when the first report is written
    tasks = [args.task]
    if args.task == "all":
        spec, _ = load_weights(args.weights, **overrides)
        tasks = list(spec.task_names)
    onnx_files = _onnx_files_by_task(args.onnx, tasks) if args.onnx else {}
    failed = []
    for task in tasks:
        if args.onnx and not onnx_files.get(task):
            print(f"note: no ONNX file holds task {task}; ONNX Runtime is not compared for it")
        report = run_parity(args.weights, ckpt=args.ckpt, task=task, image=args.input, seed=args.seed,
                            mode=args.mode, device=args.device, stage_tol=args.stage_tol,
                            output_tol=args.output_tol, fp64_reference=not args.no_fp64,
                            floor_factor=args.floor_factor, draws=args.draws, onnx=onnx_files.get(task),
                            onnx_export=args.onnx_source if args.framework == "onnx" and not args.onnx else None,
                            progress=not args.quiet, **overrides)
        if task == tasks[0]:
            print(f"machine: {report.environment['cpu']}; MindSpore convolutions: "
                  f"{report.environment['mindspore convolutions']}")
        print(sanitize_lines(report.table()))
        print(sanitize_lines(report.summary()))
        if args.report:
            directory = Path(args.report) / report.task if len(tasks) > 1 else Path(args.report)
            from ipt_ms.fileio import overwriting

            with overwriting():  # the report folder's own files, rewritten on every run (never an input)
                written = report.write(directory)
            for path in written:
                print(f"wrote {sanitize(path)}")
        if not report.ok:
            failed.append(report.task)
    if failed:
        raise ToleranceExceededError(f"parity tolerance exceeded for task(s): {', '.join(failed)}")
    return 0


def _onnx_files_by_task(files: list[str], tasks: list[str]) -> dict[str, list[str]]:
    """Which of the given ONNX files hold which of the requested tasks (by name or index)."""
    from ipt_ms.errors import IPTError
    from ipt_ms.export import read_onnx_info

    infos = {path: read_onnx_info(path) for path in files}
    found: dict[str, list[str]] = {}
    for task in tasks:
        for path, info in infos.items():
            if task in (info.task, str(info.task_index)):
                found.setdefault(task, []).append(path)
    if not found:
        held = ", ".join(f"{path} ({info.task})" for path, info in infos.items())
        raise IPTError(f"none of the ONNX files holds the task(s) asked for ({', '.join(tasks)}): {held}")
    return found
