"""`ipt-ms convert SRC DST`: between PyTorch (.pt/.pth/.safetensors), ipt-ms and model-zoo .ckpt layouts."""

from __future__ import annotations

from ipt_ms.cli._common import add_architecture_overrides, architecture_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert weights between PyTorch, MindSpore and the MindSpore model zoo",
        description="Convert IPT weights. SRC may be in any layout ipt-ms reads (official PyTorch, ipt-ms "
                    ".ckpt, MindSpore model zoo / Hub / zoo trainer checkpoint; detected from its keys). The "
                    "format written follows DST's extension (.pt/.pth/.safetensors/.ckpt). In the ipt-ms layout the "
                    "architecture and the provenance (converted from SRC, with SRC's own record) are stored in every "
                    "output: .ckpt, .safetensors and .pt/.pth (the state_dict's _metadata, which the official code "
                    "ignores); zoo layouts carry none. Weights cannot tell "
                    "the number of attention heads: give --num-heads for a file that does not record it (default "
                    "12, the official value). Nothing is written when keys, shapes or values do not check out.")
    p.add_argument("src", help="source weights file")
    p.add_argument("dst", help="destination weights file")
    p.add_argument("--layout", default="ipt-ms", choices=("ipt-ms", "zoo", "zoo-hub"),
                   help="ipt-ms (default); zoo: a .ckpt for the model zoo's eval.py (LayerNorm under "
                        ".layernorm, loaded non-strictly); zoo-hub: the released Hub file naming, which "
                        "mindediting's strict loader needs (with --task for a single-task file)")
    p.add_argument("--task", default=None,
                   help="keep only this task (name or index) as a single-task model, e.g. for mindediting")
    add_architecture_overrides(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing DST (never SRC)")
    p.add_argument("--verbose", action="store_true", help="list every mismatched key on failure")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line (shown for files over 50 MB)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from ipt_ms.convert.weights import convert_file, describe
    from ipt_ms.errors import WeightsMismatchError, sanitize
    from ipt_ms.progress import StepProgress

    src = Path(args.src)
    size = src.stat().st_size if src.is_file() else 0
    try:
        with StepProgress("convert", 1, enable=not args.quiet and size > 50e6) as steps:
            steps.start(f"{src.name} ({size / 1e6:.0f} MB) -> {Path(args.dst).name}")
            spec = convert_file(args.src, args.dst, layout=args.layout, task=args.task, overwrite=args.overwrite,
                                **architecture_overrides(args))
    except WeightsMismatchError as err:
        if args.verbose:
            print(err.details(), file=sys.stderr)
        raise
    print(f"wrote {sanitize(args.dst)}" + ("" if args.layout == "ipt-ms" else f" ({args.layout} layout)"))
    print(describe(spec))
    if args.layout != "ipt-ms":
        print("task order in the file: " + ", ".join(f"{i}={n}" for i, n in enumerate(_zoo_order(spec))))
    return 0


def _zoo_order(spec) -> list[str]:
    from ipt_ms.convert.keymap import zoo_head_order

    return [spec.task_names[i] for i in zoo_head_order(spec.task_names)]
