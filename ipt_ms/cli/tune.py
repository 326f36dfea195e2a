"""`ipt-ms tune`: measure this machine's fastest CPU levers for a model and store the choice."""

from __future__ import annotations

import argparse

from ipt_ms.cli._common import add_architecture_overrides, add_compile_cache_arg, add_quiet_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tune", help="measure the fastest CPU levers for a model on this machine and store the choice",
        description="A short measured trial, like cuDNN's benchmark mode: build the model with its convolutions "
                    "as im2col + matmul and native, call it with 1 and 8 tiles per Graph-mode call, time warm "
                    "calls (median of 3 after a warm-up) and store the fastest setting per tile beside the "
                    "compile cache, keyed by this CPU model, the oneDNN ISA in effect, the MindSpore version, "
                    "the mode and the model's size. restore and eval then use it (see --levers; "
                    "docs/runtime.md). IPT_MS_CONV_AS_MATMUL=0|1, if set, is kept and only tiles are compared.")
    p.add_argument("model", help="a registered model name (ipt_sr_x2, ipt_tiny, ...) "
                                 "or a weights file (.ckpt, .pt/.pth, .safetensors)")
    p.add_argument("--task", default="0", help="task name or index whose head and tail are timed (default 0)")
    p.add_argument("--mode", default="graph", choices=("graph", "pynative"),
                   help="MindSpore mode to measure (default graph; a choice is kept per mode)")
    add_compile_cache_arg(p)
    add_architecture_overrides(p)
    add_quiet_arg(p)
    p.set_defaults(func=run)


def model_spec_for(model: str, task: str, overrides: dict):
    """The architecture of a registered name or a weights file, with `task` named in it."""
    from pathlib import Path

    from ipt_ms.registry import list_models, model_spec

    variant = overrides.pop("weights_variant", None)
    if model in list_models():
        spec = model_spec(model, **overrides)
    elif Path(model).is_file():
        from ipt_ms.convert.weights import read_weight_file, resolve_spec

        read = read_weight_file(model, variant)
        spec = resolve_spec(read, **overrides)
    else:
        from ipt_ms.errors import IPTError

        raise IPTError(f"{model!r} is neither a registered model ({', '.join(list_models())}) nor a weights file")
    return spec.name_placeholder_task(task)


def run(args: argparse.Namespace) -> int:
    from ipt_ms.cli._common import architecture_overrides, setup_logging
    from ipt_ms.errors import IPTError
    from ipt_ms.levers import levers_dir, run_trial
    from ipt_ms.runtime import configure

    setup_logging(args.quiet)
    if levers_dir() is None:
        raise IPTError("the compile cache is off, and stored levers are kept in it; give --compile-cache DIR "
                       "or unset IPT_MS_COMPILE_CACHE")
    spec = model_spec_for(args.model, args.task, architecture_overrides(args))
    spec.task_index(args.task)  # an unknown task: one line before anything is built
    configure("cpu", args.mode)
    _, _, path, line = run_trial(spec, args.task)
    print(line, flush=True)
    return 0 if path is not None else 1
