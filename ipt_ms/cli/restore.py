"""`ipt-ms restore`: restore images of any size with the official tiling protocol."""

from __future__ import annotations

from ipt_ms.cli._common import (
    add_architecture_overrides,
    add_levers_arg,
    add_quiet_arg,
    add_runtime_args,
    add_weights_source,
    architecture_overrides,
    positive_int,
    setup_logging,
    weights_source,
)
from ipt_ms.tiling import PROTOCOLS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "restore", help="restore images (super-resolve, denoise, derain, ...)",
        description="Run IPT over whole images: tiled with the official test-time protocol (48-px "
                    "tiles, stride 12, overlaps averaged), any size. PNG/JPEG/BMP/TIFF/WebP/PPM in, PNG out: "
                    "IMAGE.ext becomes OUTPUT/IMAGE_<task>.png (and .npy with --save-raw; -o NAME.png for one image). "
                    "Checked before "
                    "anything runs: two different inputs with the same name stem, or an output that would "
                    "replace one of the inputs, are refused; existing outputs are replaced only with "
                    "--overwrite. Every input is decoded before the model loads. Grayscale stays grayscale "
                    "(run as RGB, written back as the BT.601 luma of the result) and alpha passes through "
                    "(bicubic-resized by the SR factor); 16-bit input becomes 8-bit (round(v/257)).")
    p.add_argument("images", nargs="*", help="image files or folders of images")
    add_weights_source(p, ".ckpt, .pt/.pth, .safetensors, or .onnx with --framework onnx")
    p.add_argument("--task", default="0", help="task name or index (default 0)")
    p.add_argument("-o", "--output", required=True,
                   help="output folder (created if needed), or, for one input image, a file name ending in .png")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that already exist (an input is never replaced)")
    p.add_argument("--framework", default="mindspore",
                   help="mindspore (default), torch (the PyTorch twin) or onnx (ONNX Runtime on an exported file)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="tiles per forward pass (default 64)")
    p.add_argument("--protocol", default="official", choices=tuple(PROTOCOLS),
                   help="tiling protocol (default: official, as the published scores; zoo and paper run "
                        "7-9x fewer tiles, e.g. 49 instead of 361 for a 256x256 input: about 3x faster end to "
                        "end; outputs differ slightly from the official protocol's)")
    p.add_argument("--save-raw", action="store_true",
                   help="also write the float32 output as .npy (the PNG and the .npy are written together)")
    add_runtime_args(p)
    add_levers_arg(p)
    add_architecture_overrides(p)
    add_quiet_arg(p)
    p.set_defaults(func=run)


def collect_inputs(items: list[str]) -> list:
    """Files as given, folders expanded to their images; errors name the missing path.

    A file named twice (directly, or also through its folder) is restored once.
    """
    import os
    from pathlib import Path

    from ipt_ms.data.imageio import list_images
    from ipt_ms.errors import IPTError

    if not items:
        raise IPTError("no input images given")
    paths, seen = [], set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = list_images(path, recursive=False, what="input folder")
        elif path.exists():
            found = [path]
        else:
            raise IPTError(f"input not found: {item!r}")
        for file in found:
            try:
                info = os.stat(file)
                identity = (info.st_dev, info.st_ino)
            except OSError:
                identity = file
            if identity not in seen:
                seen.add(identity)
                paths.append(file)
    return paths


def output_target(output, paths: list):
    """`(folder, file or None)` for `-o OUTPUT`: a name ending in .png that is not a folder
    is the output file of a single input (so `-o restored.png` never makes a folder called
    restored.png); any other image ending is refused, as restore writes PNG only."""
    from pathlib import Path

    from ipt_ms.data.imageio import IMAGE_EXTENSIONS
    from ipt_ms.errors import IPTError

    output = Path(output)
    suffix = output.suffix.lower()
    if output.is_dir() or suffix not in IMAGE_EXTENSIONS:
        return output, None
    if suffix != ".png":
        raise IPTError(f"-o {str(output)!r}: restore writes PNG; name the file .png or give an output folder")
    if len(paths) != 1:
        raise IPTError(f"-o {str(output)!r} names one output file, but {len(paths)} images were given; "
                       "give an output folder")
    return output.parent, output


def plan_outputs(paths: list, out_dir, task: str, save_raw: bool, overwrite: bool,
                 check_existing: bool = True, single_file=None) -> list[tuple]:
    """Output files per input, `[(png, npy or None), ...]`, checked before anything runs.

    Refused with one line naming the files: two inputs mapping to one output (same name
    stem), an output that is one of the inputs, and (unless `overwrite`) an output that
    already exists. `single_file` (one input) replaces the folder's IMAGE_<task>.png.
    """
    import os
    from pathlib import Path

    from ipt_ms.errors import IPTError
    from ipt_ms.fileio import check_name_part

    def identity(path: Path):
        try:
            info = os.stat(path)
            return info.st_dev, info.st_ino
        except OSError:
            return None

    inputs = {identity(Path(p)): Path(p) for p in paths}
    claimed: dict[str, Path] = {}
    plan, existing = [], []
    for path in map(Path, paths):
        check_name_part(path.stem, path)  # a newline or ESC in an input's name never reaches an output's
        png = Path(single_file) if single_file is not None else Path(out_dir) / f"{path.stem}_{task}.png"
        targets = (png, png.with_suffix(".npy") if save_raw else None)
        for target in filter(None, targets):
            other = claimed.setdefault(target.name, path)
            if other != path:
                raise IPTError(f"inputs {str(other)!r} and {str(path)!r} share the name {path.stem!r} and would both "
                               f"be written to {str(target)!r}; restore them into separate output folders")
            if target.is_dir():
                raise IPTError(f"output {str(target)!r} is a folder")
            if not check_existing or not os.path.lexists(target):
                continue
            if identity(target) in inputs:
                raise IPTError(f"the output for {str(path)!r} would be {str(target)!r}, which is one of the inputs; "
                               "choose another output folder")
            existing.append(target)
        plan.append(targets)
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more output(s)" if len(existing) > 1 else ""
        raise IPTError(f"{str(existing[0])!r}{more} already exist; pass --overwrite to replace them")
    return plan


def run(args) -> int:
    import numpy as np

    from ipt_ms.data.imageio import read_image_planes, write_image
    from ipt_ms.errors import sanitize
    from ipt_ms.fileio import OVERWRITE_HINT, atomic_outputs, check_output_dir, output_dir
    from ipt_ms.inference import restore_array, with_input_planes
    from ipt_ms.memory import check_restore
    from ipt_ms.predictors import create_predictor
    from ipt_ms.progress import progress_bar
    from ipt_ms.provenance import warn_if_seeded

    setup_logging(args.quiet)
    weights = weights_source(args)
    paths = collect_inputs(args.images)
    out_dir, single_file = output_target(args.output, paths)
    out_dir = check_output_dir(out_dir)
    plan_outputs(paths, out_dir, "<task>", args.save_raw, args.overwrite, check_existing=False,
                 single_file=single_file)  # name clashes
    images = [read_image_planes(p) for p in paths]  # decode everything first: a bad file stops before any output
    predictor, spec = create_predictor(args.framework, weights, args.task, batch_size=args.batch_size,
                                       device=args.device, mode=args.mode, progress=not args.quiet,
                                       levers=args.levers, **architecture_overrides(args))
    task = spec.task_names[predictor.task_idx]
    check_restore([(str(p), im.rgb.shape[0], im.rgb.shape[1]) for p, im in zip(paths, images)], spec,
                  scale=predictor.scale, protocol=args.protocol,
                  call_tiles=getattr(predictor, "call_tiles", args.batch_size),
                  held_bytes=sum(im.rgb.nbytes + (im.alpha.nbytes if im.alpha is not None else 0) for im in images))
    plan = plan_outputs(paths, out_dir, task, args.save_raw, args.overwrite, single_file=single_file)
    warn_if_seeded(weights, predictor.provenance)  # after every check: an error stays one line
    show = not args.quiet and len(images) > 1
    done = 0
    try:
        with output_dir(out_dir):  # a new folder is removed again if the first write fails
            for path, planes, (png, npy) in progress_bar(list(zip(paths, images, plan)), desc="images",
                                                         unit="img", enable=show):
                image = planes.rgb
                out = restore_array(predictor, image, scale=predictor.scale, patch=spec.patch_size,
                                    protocol=args.protocol)
                written = with_input_planes(out, planes.gray, planes.alpha, predictor.scale)
                with atomic_outputs([png] + ([npy] if npy else []), overwrite=args.overwrite,
                                    hint=OVERWRITE_HINT) as tmps:  # both files or neither, never over another
                    write_image(tmps[0], written, atomic=False)
                    if npy:
                        with open(tmps[1], "wb") as fh:
                            np.save(fh, out.astype(np.float32))
                kept = ", ".join(k for k, on in (("gray", planes.gray), ("alpha", planes.alpha is not None)) if on)
                print(sanitize(f"{path} -> {png} ({image.shape[1]}x{image.shape[0]} -> {out.shape[1]}x"
                               f"{out.shape[0]}" + (f"; {kept} kept" if kept else "") + ")"))
                done += 1
    except KeyboardInterrupt as err:  # SIGINT/SIGTERM (ipt_ms.signals); atomic writes left no partial file
        from ipt_ms.signals import add_detail

        add_detail(err, f"{done} of {len(images)} image(s) written to {out_dir}")
        raise
    return 0
