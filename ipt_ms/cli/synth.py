"""`ipt-ms synth`: write benchmark-layout degraded sets from a folder of clean images."""

from __future__ import annotations

import argparse

from ipt_ms.cli._common import seed_int
from ipt_ms.tasks import PRETRAIN_TASKS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="degrade clean images into benchmark-layout folders (bicubic LR, noise, rain, blur)",
        description=(
            "Degrade every image in SRC for the chosen tasks and write EDSR / Rain100L / GoPro "
            "style folders under OUT, plus OUT/synth.json recording seed, sigma and settings. "
            "Random draws are seeded per (seed, image name)."
        ),
    )
    parser.add_argument("src", help="folder of clean images")
    parser.add_argument("out", help="output folder (created; must be empty unless --overwrite)")
    parser.add_argument(
        "--tasks",
        default=",".join(PRETRAIN_TASKS),
        help="comma-separated task names: sr_x<s>, denoise_<sigma>, derain, deblur (default: %(default)s)",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="seed for noise/rain/blur (default: 0)")
    parser.add_argument(
        "--no-clip", action="store_true", help="keep noisy values outside [0,255] (DnCNN/SwinIR style)"
    )
    parser.add_argument(
        "--rain-streaks", metavar="DIR", help="RainTrainL folder with rainstreak-N.png layers to use"
    )
    parser.add_argument(
        "--rain-preset", choices=("light", "heavy"), default="light",
        help="procedural rain when no --rain-streaks: light (Rain100L-like) or heavy (Rain100H-like)",
    )
    parser.add_argument(
        "--blur", choices=("trajectory", "linear"), default="trajectory", help="motion-blur kernel family"
    )
    parser.add_argument("--preview", metavar="SHEET.png", help="also write a clean-vs-degraded contact sheet")
    parser.add_argument("--recursive", action="store_true", help="include sub-folders (names become a_b)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the synth set in OUT (whole: no stale pairs; other files in OUT are kept)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ipt_ms.data.synth import synthesize
    from ipt_ms.errors import sanitize
    from ipt_ms.progress import progress_wanted

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    _check_memory(args.src, args.recursive)
    report = synthesize(
        args.src,
        args.out,
        tasks=tasks,
        seed=args.seed,
        clip=not args.no_clip,
        rain_streaks=args.rain_streaks,
        rain_preset=args.rain_preset,
        blur=args.blur,
        preview=args.preview,
        recursive=args.recursive,
        overwrite=args.overwrite,
        progress=progress_wanted(not args.quiet),  # a bar on a terminal only, never into a pipe
    )
    print(sanitize(f"wrote {report.files_written} files for {len(report.names)} images to {report.out_dir}"))
    for task, folder in report.folders.items():
        print(sanitize(f"  {task:<12} {report.out_dir / folder}"))
    print(sanitize(f"  manifest     {report.manifest}"))
    if report.preview is not None:
        print(sanitize(f"  preview      {report.preview}"))
    return 0


def _check_memory(src: str, recursive: bool) -> None:
    """Refuse before any output when the largest photo cannot be degraded in the available memory."""
    from pathlib import Path

    from ipt_ms.data.imageio import list_images
    from ipt_ms.errors import IPTError
    from ipt_ms.memory import check_synth

    try:
        paths = list_images(src, recursive=recursive) if Path(src).is_dir() else [src]
    except IPTError:
        return  # synthesize names the problem with the folder
    check_synth(paths)
