"""`ipt-ms parity-bench`: the benchmark evaluation in MindSpore and PyTorch, compared per image."""

from __future__ import annotations

import argparse

from ipt_ms.cli._common import non_negative_float, setup_logging
from ipt_ms.cli.eval import add_eval_args, request_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "parity-bench", help="same benchmark in MindSpore and PyTorch; per-image dPSNR",
        description="Evaluate the same weights in two frameworks (default: MindSpore vs the PyTorch twin) on "
                    "the same tiles and the same seeded inputs; report per-image PSNR in both and the difference, "
                    "write parity_bench.md/.json, CSVs and strip.png in --out. Exit code 1 when any |dPSNR| "
                    "exceeds --tol or any image's outputs differ by more than --max-rel.")
    p.add_argument("weights", help="weights for both sides (.pt/.pth/.safetensors/.ckpt)")
    p.add_argument("--ckpt", default=None, help="separate weights for the first framework (e.g. a converted .ckpt)")
    p.add_argument("--frameworks", default="mindspore,torch",
                   help="the two frameworks, compared first minus second (default mindspore,torch)")
    p.add_argument("--tol", type=non_negative_float, default=0.01, help="max |dPSNR| in dB per image (default 0.01)")
    p.add_argument("--max-rel", type=non_negative_float, default=None,
                   help="max |first - second| / max |second| of the float outputs per image (default 3e-05, "
                        "ipt_ms.eval.parity_bench.DEFAULT_MAX_REL: float rounding on small models stays below "
                        "1e-5; the full-size model on CPU reached 4.3e-4, pass 1e-3 there)")
    add_eval_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ipt_ms.errors import IPTError, sanitize, sanitize_lines
    from ipt_ms.eval.run import raise_on_failure, run_parity_bench

    setup_logging(args.quiet)
    frameworks = tuple(f.strip() for f in args.frameworks.split(",") if f.strip())
    if len(frameworks) != 2:
        raise IPTError(f"--frameworks needs exactly two names, got {args.frameworks!r}")
    result = run_parity_bench(request_from_args(args, args.weights), frameworks, first_weights=args.ckpt,
                              tolerance=args.tol, max_rel=args.max_rel)
    print(sanitize_lines(result.printed))
    for path in result.paths:
        print(f"wrote {sanitize(path)}")
    raise_on_failure(result)
    return 0
