"""`ipt-ms eval`: PSNR/SSIM of one weights file on benchmark sets, paper-style tables."""

from __future__ import annotations

import argparse

from ipt_ms.cli._common import (
    add_architecture_overrides,
    add_levers_arg,
    add_quiet_arg,
    add_runtime_args,
    add_weights_source,
    architecture_overrides,
    non_negative_int,
    positive_int,
    seed_int,
    setup_logging,
    weights_source,
)
from ipt_ms.tiling import PROTOCOLS


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """Options shared with `ipt-ms parity-bench`."""
    p.add_argument("--task", required=True, help="task name (sr_x2, denoise_30, derain, ...) or head index")
    p.add_argument("--data", required=True,
                   help="folder holding benchmark/<Set>/HR + LR_bicubic/X<s> (EDSR layout), <Set> directly, "
                        "or Rain100L")
    p.add_argument("--sets", default=None,
                   help="comma-separated set names (default for SR: Set5,Set14,B100,Urban100; denoise: "
                        "CBSD68,Urban100; derain: Rain100L)")
    p.add_argument("--protocol", default="official", choices=tuple(PROTOCOLS),
                   help="tiling: official (PyTorch forward_chop, default), zoo (MindSpore chop_new), paper")
    p.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/transposes (forward_x8)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N images of each set")
    p.add_argument("--batch-size", type=positive_int, default=64, help="tiles per forward pass (default 64)")
    p.add_argument("--seed", type=seed_int, default=0, help="noise seed (per seed and image name; default 0)")
    p.add_argument("--no-clip", action="store_true", help="do not clip noisy inputs to [0, 255] (IPT clips)")
    p.add_argument("--lr", default="files", choices=("files", "generate", "auto"),
                   help="SR inputs: official LR_bicubic files (default), MATLAB-exact bicubic from HR, or auto")
    p.add_argument("--shave", type=non_negative_int, default=None,
                   help="border ignored by the metrics (default: the scale for SR, 0 for scale 1, as official)")
    p.add_argument("--no-ssim", action="store_true", help="skip SSIM (faster on large sets)")
    p.add_argument("--allow-mixed-modes", action="store_true",
                   help="accept sets mixing image modes (16-bit, alpha, gray input for RGB target, ...)")
    p.add_argument("--allow-unfinished-synth", action="store_true",
                   help="score a folder made by ipt-ms synth that lacks its synth.json (an interrupted run) or "
                        "holds images its synth.json does not list (refused by default)")
    p.add_argument("-o", "--out", default=None,
                   help="output folder (default eval-results/<weights stem>-<8-digit weights digest>-<task>-"
                        "<framework>-<protocol>); "
                        "re-running with the same settings resumes")
    p.add_argument("--save-images", action="store_true", help="write every restored image as PNG")
    p.add_argument("--restart", action="store_true", help="discard the results log in --out and start over")
    add_runtime_args(p)
    add_levers_arg(p)
    add_architecture_overrides(p)
    add_quiet_arg(p)


def request_from_args(args: argparse.Namespace, weights: str):
    from ipt_ms.eval.run import EvalRequest

    sets = [s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else None
    return EvalRequest(weights=weights, task=args.task, data=args.data, sets=sets, protocol=args.protocol,
                       self_ensemble=args.self_ensemble, batch_size=args.batch_size, device=args.device,
                       mode=args.mode, limit=args.limit, seed=args.seed, clip=not args.no_clip, lr=args.lr,
                       shave=args.shave, ssim=not args.no_ssim, allow_mixed_modes=args.allow_mixed_modes,
                       allow_unfinished_synth=args.allow_unfinished_synth,
                       out=args.out, save_images=args.save_images, restart=args.restart,
                       progress=not args.quiet, levers=args.levers, overrides=architecture_overrides(args))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="benchmark PSNR/SSIM (Set5, Set14, B100, Urban100, CBSD68, Rain100L, ...)",
        description="Restore every image of the benchmark sets with the official tiling and report PSNR-Y "
                    "(exactly as the official code) and SSIM-Y per image and per set, as paper-style tables "
                    "(printed, and saved as Markdown/CSV/JSON in --out). Per-image results are logged as they "
                    "are computed; re-running the same command skips finished images.")
    add_weights_source(p, ".ckpt, .pt/.pth or .safetensors")
    p.add_argument("--framework", default="mindspore",
                   help="mindspore (default), torch (the PyTorch twin) or onnx (ONNX Runtime on an exported file)")
    add_eval_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ipt_ms.errors import sanitize, sanitize_lines
    from ipt_ms.eval.run import run_eval

    setup_logging(args.quiet)
    outcome = run_eval(request_from_args(args, weights_source(args)), framework=args.framework)
    print(sanitize_lines(outcome.printed))
    for path in outcome.paths:
        print(f"wrote {sanitize(path)}")
    return 0
