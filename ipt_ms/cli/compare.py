"""`ipt-ms compare A B`: do two outputs (images, .npy, or folders of them) differ by more than rounding?"""

from __future__ import annotations

import argparse

from ipt_ms.cli._common import add_quiet_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare two outputs (images, .npy, or folders): PSNR, max diff, changed 8-bit pixels",
        description="Compare A with B (the reference): two images, two .npy arrays (e.g. `restore --save-raw` "
                    "outputs), an image with a .npy, or two folders (files matched by name, then by stem). "
                    "Reports PSNR on RGB and Y, max abs and max rel difference, and how many 8-bit values and "
                    "pixels differ once both are saved as PNG. Exit code 0 when every pair is within the limits, "
                    "1 when one is not (or a file has no counterpart), 2 on unreadable input. By default values "
                    "may differ by one 8-bit level (--max-abs 1), so PNGs that differ by rounding pass.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="image, .npy file, or folder")
    p.add_argument("b", help="the reference: image, .npy file, or folder")
    p.add_argument("--max-abs", type=float, default=1.0,
                   help="largest allowed |A - B| on the 0..255 scale (default 1: one 8-bit level); -1 = off")
    p.add_argument("--max-rel", type=float, default=None,
                   help="largest allowed max|A - B| / max|B| (off by default; e.g. 1e-4 for float outputs)")
    p.add_argument("--min-psnr", type=float, default=None, help="smallest allowed PSNR on RGB, dB (off by default)")
    p.add_argument("--max-changed", type=float, default=None, metavar="FRACTION",
                   help="largest allowed fraction of 8-bit values that differ, 0..1 (off by default)")
    p.add_argument("--peak", type=float, default=255.0, help="value range for PSNR and 8-bit rounding (default 255)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write every number to this JSON file")
    add_quiet_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ipt_ms.cli._common import setup_logging
    from ipt_ms.compare import CompareLimits, compare_paths
    from ipt_ms.fileio import atomic_output

    setup_logging(args.quiet)
    limits = CompareLimits(max_abs=None if args.max_abs is not None and args.max_abs < 0 else args.max_abs,
                           max_rel=args.max_rel, min_psnr=args.min_psnr, max_changed=args.max_changed,
                           peak=args.peak)
    result = compare_paths(args.a, args.b, limits, progress=not args.quiet)
    for pair in result.pairs:
        print(pair.line())
    print(result.summary())
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if result.ok else 1
