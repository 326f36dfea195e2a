"""`ipt-ms restore`: restore images of any size with the official tiling protocol."""

from __future__ import annotations

from ipt_ms.cli._common import (
    add_architecture_overrides,
    add_quiet_arg,
    add_runtime_args,
    architecture_overrides,
    setup_logging,
)
from ipt_ms.tiling import PROTOCOLS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "restore", help="restore images (super-resolve, denoise, derain, ...)",
        description="Run IPT over whole images: tiled with the official test-time protocol (48-px "
                    "tiles, stride 12, overlaps averaged), any size. PNG/JPEG/BMP/TIFF/WebP/PPM in, PNG out.")
    p.add_argument("images", nargs="*", help="image files or folders of images")
    p.add_argument("--weights", required=True, help=".ckpt, .pt/.pth, .safetensors, or .onnx with --framework onnx")
    p.add_argument("--task", default="0", help="task name or index (default 0)")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--framework", default="mindspore",
                   help="mindspore (default), torch (the PyTorch twin) or onnx (ONNX Runtime on an exported file)")
    p.add_argument("--batch-size", type=int, default=64, help="tiles per forward pass (default 64)")
    p.add_argument("--protocol", default="official", choices=tuple(PROTOCOLS),
                   help="tiling protocol (default: official)")
    p.add_argument("--save-raw", action="store_true", help="also write the float32 output as .npy")
    add_runtime_args(p)
    add_architecture_overrides(p)
    add_quiet_arg(p)
    p.set_defaults(func=run)


def collect_inputs(items: list[str]) -> list:
    """Files as given, folders expanded to their images; errors name the missing path."""
    from pathlib import Path

    from ipt_ms.data.imageio import list_images
    from ipt_ms.errors import IPTError

    if not items:
        raise IPTError("no input images given")
    paths = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths += list_images(path, recursive=False, what="input folder")
        elif path.exists():
            paths.append(path)
        else:
            raise IPTError(f"input not found: {item!r}")
    return paths


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from ipt_ms.data.imageio import read_image, write_image
    from ipt_ms.fileio import atomic_output, ensure_writable_dir
    from ipt_ms.inference import restore_array
    from ipt_ms.predictors import create_predictor
    from ipt_ms.progress import progress_bar

    setup_logging(args.quiet)
    paths = collect_inputs(args.images)
    out_dir = ensure_writable_dir(args.output)
    images = [read_image(p) for p in paths]  # decode everything first: a bad file stops before any output
    predictor, spec = create_predictor(args.framework, args.weights, args.task, batch_size=args.batch_size,
                                       device=args.device, mode=args.mode, progress=not args.quiet,
                                       **architecture_overrides(args))
    task = spec.task_names[predictor.task_idx]
    show = not args.quiet and len(images) > 1
    done = 0
    try:
        for path, image in progress_bar(list(zip(paths, images)), desc="images", unit="img", enable=show):
            out = restore_array(predictor, image, scale=predictor.scale, patch=spec.patch_size,
                                protocol=args.protocol)
            target = out_dir / f"{Path(path).stem}_{task}.png"
            with atomic_output(target) as tmp:
                write_image(tmp, out)
            if args.save_raw:
                with atomic_output(target.with_suffix(".npy")) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, out.astype(np.float32))
            print(f"{path} -> {target} ({image.shape[1]}x{image.shape[0]} -> {out.shape[1]}x{out.shape[0]})")
            done += 1
    except KeyboardInterrupt as err:  # SIGINT/SIGTERM (ipt_ms.signals); atomic writes left no partial file
        from ipt_ms.signals import add_detail

        add_detail(err, f"{done} of {len(images)} image(s) written to {out_dir}")
        raise
    return 0
