"""`ipt-ms` command line: a thin layer that parses options and calls library functions.

Each sub-command lives in its own module under `ipt_ms.cli` and exposes
`register(subparsers)`, which adds its parser and sets `func`. Modules import
MindSpore / PyTorch lazily inside their handlers so `ipt-ms --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ipt_ms.cli._common import OneLineParser
from ipt_ms.errors import IPTError, sanitize

# Sub-command modules, in the order `ipt-ms --help` lists them.
COMMAND_MODULES = [
    "restore",
    "convert",
    "parity",
    "compare",
    "info",
    "pretrain",
    "finetune",
    "train",
    "make_weights",
    "synth",
    "eval",
    "parity_bench",
    "export",
    "doctor",
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="ipt-ms",
        description="Image Processing Transformer (IPT) in MindSpore, with PyTorch parity tools.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"ipt_ms.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ipt_ms import signals

    signals.install()  # first: before NumPy/MindSpore start threads (see ipt_ms.signals)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "compile_cache", None) is not None:
        from ipt_ms import compile_cache

        compile_cache.set_cache_dir(args.compile_cache)
    try:
        code = args.func(args)
    except IPTError as err:
        print(f"ipt-ms {args.command}: error: {sanitize(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:  # ipt_ms.signals.Interrupted for SIGINT/SIGTERM
        from ipt_ms.signals import exit_code, signal_name

        signum = getattr(err, "signum", 2)
        detail = getattr(err, "detail", "") or getattr(err, "ipt_detail", "")
        print(f"ipt-ms {args.command}: interrupted by {signal_name(signum)}" + (f": {sanitize(detail)}" if detail
                                                                               else ""), file=sys.stderr)
        return exit_code(signum)
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
