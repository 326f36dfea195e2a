"""`ipt-ms convert SRC DST`: PyTorch (.pt/.pth/.safetensors) <-> MindSpore (.ckpt)."""

from __future__ import annotations

from ipt_ms.cli._common import add_architecture_overrides, architecture_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert weights between PyTorch and MindSpore",
        description="Convert IPT weights; the direction comes from the extensions (.pt/.pth/.safetensors "
                    "<-> .ckpt). The architecture is read from the source (or inferred from its shapes when it "
                    "records none, as the official releases) and stored in every output: .ckpt, .safetensors and "
                    ".pt/.pth (the state_dict's _metadata, which the official code ignores). Weights cannot tell "
                    "the number of attention heads: give --num-heads for a file that does not record it (default "
                    "12, the official value). Nothing is written when keys or shapes do not match.")
    p.add_argument("src", help="source weights file")
    p.add_argument("dst", help="destination weights file")
    add_architecture_overrides(p)
    p.add_argument("--verbose", action="store_true", help="list every mismatched key on failure")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line (shown for files over 50 MB)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from ipt_ms.convert.weights import convert_file, describe
    from ipt_ms.errors import WeightsMismatchError
    from ipt_ms.progress import StepProgress

    src = Path(args.src)
    size = src.stat().st_size if src.is_file() else 0
    try:
        with StepProgress("convert", 1, enable=not args.quiet and size > 50e6) as steps:
            steps.start(f"{src.name} ({size / 1e6:.0f} MB) -> {Path(args.dst).name}")
            spec = convert_file(args.src, args.dst, **architecture_overrides(args))
    except WeightsMismatchError as err:
        if args.verbose:
            print(err.details(), file=sys.stderr)
        raise
    print(f"wrote {args.dst}")
    print(describe(spec))
    return 0
