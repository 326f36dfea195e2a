"""`ipt-ms convert SRC DST`: PyTorch (.pt/.pth/.safetensors) <-> MindSpore (.ckpt)."""

from __future__ import annotations

from ipt_ms.cli._common import add_architecture_overrides, architecture_overrides


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert weights between PyTorch and MindSpore",
        description="Convert IPT weights; the direction comes from the extensions (.pt/.pth/.safetensors "
                    "<-> .ckpt). The architecture is inferred from the weights and stored in .ckpt and "
                    ".safetensors outputs. Nothing is written when keys or shapes do not match.")
    p.add_argument("src", help="source weights file")
    p.add_argument("dst", help="destination weights file")
    add_architecture_overrides(p)
    p.add_argument("--verbose", action="store_true", help="list every mismatched key on failure")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ipt_ms.convert.weights import convert_file, describe
    from ipt_ms.errors import WeightsMismatchError

    try:
        spec = convert_file(args.src, args.dst, **architecture_overrides(args))
    except WeightsMismatchError as err:
        if args.verbose:
            print(err.details(), file=sys.stderr)
        raise
    print(f"wrote {args.dst}")
    print(describe(spec))
    return 0
