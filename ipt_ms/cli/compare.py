"""`ipt-ms compare A B`: do two outputs (images, .npy, or folders of them) differ by more than rounding?"""

from __future__ import annotations

import argparse

from ipt_ms.cli._common import add_quiet_arg, non_negative_int, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare two outputs (images, .npy, or folders): PSNR, max diff, changed 8-bit pixels",
        description="Compare A with B (the reference): two images, two .npy arrays (e.g. `restore --save-raw` "
                    "outputs), an image with a .npy, or two folders (files matched by name, then by stem). "
                    "Reports PSNR on RGB and Y, max abs and max rel difference, and how many 8-bit values and "
                    "pixels differ once both are saved as PNG. Exit code 0 when every pair is within the limits, "
                    "1 when one is not (or a file has no counterpart), 2 on unreadable input. By default values "
                    "may differ by one 8-bit level (--max-abs 1), so PNGs that differ by rounding pass.\n\n"
                    "--gt: B is the ground truth. Scores A as `ipt-ms eval` does (the same functions): PSNR on Y "
                    "and RGB and SSIM on Y of the quantised output, the SR border shaved (the scale), the ground "
                    "truth modcropped to the output. In folders, restore's x_sr_x2.png pairs with x.png; the task "
                    "suffix gives the scale (else --scale, else 1). Fails only below --min-psnr (Y) / --min-ssim.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="image, .npy file, or folder")
    p.add_argument("b", help="the reference: image, .npy file, or folder")
    p.add_argument("--max-abs", type=float, default=1.0,
                   help="largest allowed |A - B| on the 0..255 scale (default 1: one 8-bit level); -1 = off")
    p.add_argument("--max-rel", type=float, default=None,
                   help="largest allowed max|A - B| / max|B| (off by default; e.g. 1e-4 for float outputs)")
    p.add_argument("--min-psnr", type=float, default=None,
                   help="smallest allowed PSNR, dB: on RGB, or on Y with --gt (off by default)")
    p.add_argument("--max-changed", type=float, default=None, metavar="FRACTION",
                   help="largest allowed fraction of 8-bit values that differ, 0..1 (off by default)")
    p.add_argument("--peak", type=float, default=255.0, help="value range for PSNR and 8-bit rounding (default 255)")
    p.add_argument("--gt", action="store_true",
                   help="ground-truth mode: B holds the clean originals; PSNR-Y/RGB and SSIM-Y as eval scores them")
    p.add_argument("--scale", type=positive_int, default=None,
                   help="--gt: the SR factor (default: from a _sr_x<s> name suffix, else 1)")
    p.add_argument("--shave", type=non_negative_int, default=None,
                   help="--gt: border ignored, px (default: the scale for SR, 0 for scale 1, as eval)")
    p.add_argument("--min-ssim", type=float, default=None, help="--gt: smallest allowed SSIM Y (off by default)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write every number to this JSON file")
    add_quiet_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ipt_ms.cli._common import setup_logging
    from ipt_ms.errors import sanitize
    from ipt_ms.fileio import atomic_output

    setup_logging(args.quiet)
    if args.gt:
        from ipt_ms.compare import compare_to_ground_truth

        result = compare_to_ground_truth(args.a, args.b, scale=args.scale, shave=args.shave, min_psnr=args.min_psnr,
                                         min_ssim=args.min_ssim, progress=not args.quiet)
    else:
        if args.scale is not None or args.shave is not None or args.min_ssim is not None:
            from ipt_ms.errors import IPTError

            raise IPTError("--scale, --shave and --min-ssim belong to the ground-truth mode: add --gt")
        result = _difference(args)
    for pair in result.pairs:  # one line per pair: file names with a newline or ESC are escaped
        print(sanitize(pair.line()))
    print(sanitize(result.summary()))
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {sanitize(args.json)}")
    return 0 if result.ok else 1


def _difference(args: argparse.Namespace):
    from ipt_ms.compare import CompareLimits, compare_paths

    limits = CompareLimits(max_abs=None if args.max_abs is not None and args.max_abs < 0 else args.max_abs,
                           max_rel=args.max_rel, min_psnr=args.min_psnr, max_changed=args.max_changed,
                           peak=args.peak)
    return compare_paths(args.a, args.b, limits, progress=not args.quiet)
