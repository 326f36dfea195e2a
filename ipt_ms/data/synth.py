"""``ipt-ms synth``: degrade a folder of clean images into benchmark-layout folders.

Output layout (every folder readable by the loaders in :mod:`ipt_ms.data.folders`)::

    OUT/HR/<name>.png                          clean images (as PNG)
    OUT/LR_bicubic/X<s>/<name>x<s>.png         sr_x<s>   -> sr_benchmark(OUT, s)
    OUT/denoise_<sigma>/<name>.png             denoise_<sigma> (rounded PNG; the float
                                               input is denoise_benchmark(OUT/HR, sigma, seed))
    OUT/derain/rainy/rain-<name>.png           derain    -> rain_pairs(OUT/derain)
    OUT/derain/norain-<name>.png
    OUT/deblur/test/synth/{blur,sharp}/<name>.png   deblur -> gopro(OUT/deblur)
    OUT/deblur/kernels/<name>.npy              the blur kernel of each image (sum 1)
    OUT/synth.json                             seed, and the settings of the tasks made (sigma and
                                               clipping, rain, blur, bicubic)

All random draws are seeded by (seed, image name), so re-running on a subset or on
another machine writes the same images.

Nothing is written until every input has been decoded once and the output folder (and
preview file) checked, so a bad image, a name clash, an image too small for a task's
scale or an unwritable folder stops the command with one line and no files. The set is
built in a hidden sibling folder (``.OUT.partial-...``) with the manifest written last,
and moved to OUT only when complete: after Ctrl-C, a full disk or a crash there is no
half-made OUT for `ipt-ms eval` to score (a folder left by a killed run is removed by
the next synth into the same OUT). ``overwrite`` replaces a previous synth set whole
(images of photos no longer in SRC do not survive); entries of OUT that synth does not
make are kept. OUT is never read as input, even inside SRC with ``recursive``, and the
preview never replaces an input.

The preview sheet is drawn by `ipt_ms.data.synth_preview`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.data.blur import BlurConfig
from ipt_ms.data.degrade import Degrader
from ipt_ms.data.imageio import list_images, read_image, write_image
from ipt_ms.data.rain import StreakLayers
from ipt_ms.data.synth_preview import PREVIEW_MAX_IMAGES, _crop_pair, make_preview
from ipt_ms.errors import IPTError
from ipt_ms.fileio import (
    OVERWRITE_HINT,
    atomic_output,
    check_name_part,
    check_new_output,
    check_output_dir,
    staged_folder,
)
from ipt_ms.tasks import PRETRAIN_TASKS, Task, parse_task

__all__ = ["SynthReport", "make_preview", "synthesize", "task_output_dir", "unfinished_synth_set"]


MANIFEST = "synth.json"


@dataclass
class SynthReport:
    """What :func:`synthesize` wrote."""

    out_dir: Path
    tasks: list[str]
    names: list[str]
    files_written: int = 0
    preview: Path | None = None
    manifest: Path | None = None
    folders: dict[str, str] = field(default_factory=dict)


def task_output_dir(task: Task) -> str:
    """Folder (relative to OUT) that holds the degraded images of ``task``."""
    if task.kind == "sr":
        return f"LR_bicubic/X{task.scale}"
    if task.kind == "denoise":
        return f"denoise_{task.sigma:g}"
    if task.kind == "derain":
        return "derain"
    if task.kind == "deblur":
        return "deblur/test/synth"
    raise IPTError(f"task {task.name} cannot be synthesised")


#: top-level entries of OUT that synth makes (what ``overwrite`` replaces)
_MADE_HERE = ("HR", "LR_bicubic", "derain", "deblur", MANIFEST)


def _made_by_synth(entry: str) -> bool:
    return entry in _MADE_HERE or entry.startswith("denoise_")


#: the hidden folders `staged_folder` builds a set in (`.OUT.partial-PID-HEX`, `.OUT.replaced-...`)
_STAGING_NAME = re.compile(r"^\..+\.(?:partial|replaced)-\d+-[0-9a-f]{8}$")
#: how deep below OUT synth writes an image (OUT/deblur/test/synth/sharp/x.png)
_DEEPEST = 5


def _synth_only_marks(folder: Path) -> list[str]:
    """Entries of `folder` that only synth makes beside HR/ (a hand-made benchmark folder has none)."""
    if _STAGING_NAME.match(folder.name):
        return ["a synth staging folder name"]
    if not (folder / "HR").is_dir():
        return []
    marks = []
    with contextlib.suppress(OSError):
        marks += [f"{e.name}/" for e in os.scandir(folder) if e.name.startswith("denoise_") and e.is_dir()]
    marks += [mark for mark in ("deblur/kernels", "derain/rainy") if (folder / mark).is_dir()]
    return marks


def _image_name(rel: Path) -> str | None:
    """The synth image name a file inside OUT belongs to (`rel`: its path relative to OUT)."""
    parts, stem = rel.parts, rel.stem
    if parts[0] == "LR_bicubic" and len(parts) == 3:
        return re.sub(r"x\d+$", "", stem)
    if parts[0] == "derain":
        return re.sub(r"^(?:no)?rain-", "", stem)
    if parts[0] == "deblur" and parts[1:2] == ("kernels",):
        return None
    return stem


def unfinished_synth_set(files: list[Path]) -> str | None:
    """Why the images `files` (what eval is about to score) come from a set `synthesize` did
    not finish, or None.

    A file counts when it lies in one of the folders synth makes (HR, LR_bicubic, denoise_*,
    derain, deblur) of a folder OUT that synth made: OUT holds synth.json (written last, so
    the set was complete), or, without it, something only synth makes beside HR/ (a
    denoise_<sigma>/ folder, deblur/kernels/, derain/rainy/) or a staging folder's name. Then:

    * no synth.json: the run was interrupted (Ctrl-C, full disk, crash) before this version
      built sets in a staging folder, or the folder was copied half-way;
    * a synth.json that is not a JSON object: damaged;
    * an image that synth.json does not list: left by an earlier synth into the same OUT
      (before --overwrite replaced sets whole) or added by hand.

    A hand-made benchmark folder (HR/ + LR_bicubic/, Set5 layout) has none of these marks and
    is never refused. Neither is an SR-only set of an older synth that was interrupted: its
    files are laid out exactly as a hand-made one, so nothing tells them apart.
    """
    verdicts: dict[Path, tuple[str | None, set[str] | None]] = {}
    for file in files:
        file = Path(os.path.abspath(file))
        for out in list(file.parents)[1:_DEEPEST + 1]:
            rel = file.relative_to(out)
            if not _made_by_synth(rel.parts[0]) or rel.parts[0] == MANIFEST:
                continue
            if out not in verdicts:
                verdicts[out] = _verdict(out)
            problem, listed = verdicts[out]
            if problem:
                return problem
            name = _image_name(rel)
            if listed is not None and name is not None and name not in listed:
                return (f"{str(file)!r} is not among the images of {str(out / MANIFEST)!r}: it was left by an earlier "
                        "synth into that folder or added by hand")
    return None


def _verdict(out: Path) -> tuple[str | None, set[str] | None]:
    """(problem, image names synth.json lists) of a folder that may be a synth OUT."""
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            record = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            return f"{str(manifest)!r} cannot be read ({type(err).__name__}): the synth set is damaged", None
        if not isinstance(record, dict):
            return f"{str(manifest)!r} is not a synth record (not a JSON object): the synth set is damaged", None
        images = record.get("images")
        listed = {str(n) for n in images} if isinstance(images, list) else None
        return None, listed
    marks = _synth_only_marks(out)
    if marks:
        return (f"{str(out)!r} was made by ipt-ms synth ({', '.join(marks[:3])}) but holds no {MANIFEST}: the run "
                "that wrote it did not finish", None)
    return None, None


def _inside(path: Path, folder: Path) -> bool:
    path, folder = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return path == folder or folder in path.parents


def _names_for(folder: Path, files: list[Path], recursive: bool) -> list[str]:
    names = []
    for p in files:
        rel = p.relative_to(folder).with_suffix("").as_posix()
        names.append(rel.replace("/", "_") if recursive else rel)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise IPTError(f"several input files map to the same name: {', '.join(dupes[:5])}")
    return names


def synthesize(
    source: os.PathLike | str,
    out_dir: os.PathLike | str,
    tasks: list[str] | tuple[str, ...] = PRETRAIN_TASKS,
    seed: int = 0,
    clip: bool = True,
    rain_streaks: os.PathLike | str | None = None,
    rain_preset: str = "light",
    blur: str = "trajectory",
    preview: os.PathLike | str | None = None,
    preview_size: int = 128,
    recursive: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> SynthReport:
    """Write degraded versions of every image in ``source`` for ``tasks`` (layout in the
    module docstring) and optionally a preview sheet. Returns what was written."""
    from tqdm import tqdm

    source, out_dir = Path(source), Path(out_dir)
    parsed = [parse_task(t) for t in tasks]
    if not parsed:
        raise IPTError("no tasks given")
    if out_dir.resolve() == source.resolve():
        raise IPTError("the output folder must differ from the input folder")
    if _inside(source, out_dir):
        raise IPTError(f"the input folder {str(source)!r} is inside the output folder {str(out_dir)!r}")
    files = [p for p in list_images(source, recursive=recursive, what="clean image folder")
             if not _inside(p, out_dir)]  # never an earlier output read back as a clean image
    if not files:
        raise IPTError(f"clean image folder {str(source)!r} holds no images outside the output folder")
    names = _names_for(source, files, recursive)
    if out_dir.exists() and not out_dir.is_dir():
        raise IPTError(f"output path {str(out_dir)!r} exists and is not a folder")
    existing = sorted(os.listdir(out_dir)) if out_dir.is_dir() else []
    if existing and not overwrite:
        raise IPTError(f"output folder {str(out_dir)!r} is not empty (use --overwrite to replace the set in it)")
    if existing and MANIFEST not in existing and any(_made_by_synth(e) for e in existing):
        raise IPTError(f"output folder {str(out_dir)!r} holds no {MANIFEST}: it is not a complete synth set, "
                       "so --overwrite does not replace it; remove it or choose another folder")
    check_output_dir(out_dir)
    for path, name in zip(files, names):  # every input decodes before the first file is written
        shape = read_image(path).shape
        for task in parsed:
            if task.kind == "sr" and min(shape[:2]) < task.scale:
                raise IPTError(f"{str(path)!r} is {shape[1]}x{shape[0]} pixels, too small for {task.name}: its "
                               f"low-resolution image would be empty")
        check_name_part(name, path)  # a newline, ESC or bidi override never reaches a file name
    if preview is not None:  # after the inputs are read: it may be none of them
        check_new_output(preview, overwrite, OVERWRITE_HINT, "preview")

    rain = StreakLayers(rain_streaks) if rain_streaks is not None else rain_preset
    blur_cfg = BlurConfig(kind=blur)
    degraders = [Degrader(t, clip=clip, rain=rain, blur=blur_cfg) for t in parsed]
    report = SynthReport(out_dir=out_dir, tasks=[t.name for t in parsed], names=names)
    report.folders = {t.name: task_output_dir(t) for t in parsed}
    # One crop size for every row: a multiple of all SR scales.
    step = math.lcm(*[t.scale for t in parsed])
    crop = max(step, preview_size - preview_size % step)

    with staged_folder(out_dir, keep=lambda entry: not _made_by_synth(entry)) as staging:
        preview_rows = _write_set(staging, files, names, parsed, degraders, seed, report, preview, crop, progress,
                                  tqdm)
        _write_manifest(staging, report, source, seed, names, parsed, clip, rain_streaks, rain_preset, blur_cfg)
    report.manifest = out_dir / MANIFEST
    if preview is not None:
        report.preview = make_preview(preview_rows, preview, total_images=len(names), overwrite=overwrite)
    return report


def _write_set(out_dir: Path, files, names, parsed, degraders, seed, report, preview, crop, progress, tqdm) -> list:
    """Every image and its degraded versions into `out_dir`; returns the preview rows."""
    preview_rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    bar = tqdm(list(zip(files, names)), desc="synth", unit="img", disable=not progress)
    for path, name in bar:
        clean = read_image(path)
        write_image(out_dir / "HR" / f"{name}.png", clean)
        report.files_written += 1
        panels: list[tuple[str, np.ndarray]] = []
        for task, deg in zip(parsed, degraders):
            lq, target = deg(clean, seed, name)
            sub = out_dir / task_output_dir(task)
            if task.kind == "sr":
                write_image(sub / f"{name}x{task.scale}.png", lq)
            elif task.kind == "denoise":
                write_image(sub / f"{name}.png", lq)
            elif task.kind == "derain":
                write_image(sub / "rainy" / f"rain-{name}.png", lq)
                write_image(sub / f"norain-{name}.png", target)
                report.files_written += 1
            else:
                write_image(sub / "blur" / f"{name}.png", lq)
                write_image(sub / "sharp" / f"{name}.png", target)
                with atomic_output(out_dir / "deblur" / "kernels" / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
                    np.save(fh, deg.kernel_for(seed, name))
                report.files_written += 2
            report.files_written += 1
            if preview is not None and len(preview_rows) < PREVIEW_MAX_IMAGES:
                lq_c, gt_c = _crop_pair(lq, target, task.scale, crop)
                panels += ([("clean", gt_c)] if not panels else []) + [(task.name, lq_c)]
        if panels:
            preview_rows.append((name, panels))
    bar.close()
    return preview_rows


def _write_manifest(out_dir: Path, report, source, seed, names, parsed, clip, rain_streaks, rain_preset,
                    blur_cfg) -> None:
    """synth.json, written last: its presence means the set is complete."""
    manifest = {
        "source": str(source),
        "seed": int(seed),
        "tasks": report.tasks,
        "folders": report.folders,
        "images": names,
    }
    kinds = {t.kind for t in parsed}  # only the settings of the tasks that were made
    if "sr" in kinds:
        manifest["bicubic"] = "MATLAB imresize, antialiased, uint8 rounding after each pass"
    if "denoise" in kinds:
        manifest["noise"] = {"sigmas": [t.sigma for t in parsed if t.kind == "denoise"], "clip": bool(clip),
                             "rounded_png": True, "note": "float inputs: denoise_benchmark(OUT/HR, sigma, seed, clip)"}
    if "derain" in kinds:
        manifest["rain"] = {"streaks": str(rain_streaks) if rain_streaks is not None else None,
                            "preset": None if rain_streaks is not None else rain_preset}
    if "deblur" in kinds:
        manifest["blur"] = {"kind": blur_cfg.kind, "canvas": blur_cfg.canvas, "max_len": blur_cfg.max_len,
                            "iters": blur_cfg.iters, "length_range": list(blur_cfg.length_range),
                            "padding": "reflect (half-sample symmetric)"}
    with atomic_output(out_dir / MANIFEST) as tmp:  # last: its presence means the folder is complete
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
