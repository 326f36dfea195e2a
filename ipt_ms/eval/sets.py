"""Benchmark sets for evaluation: located with the data loaders, checked before any work.

Loading goes through `ipt_ms.data.folders.benchmark` (EDSR layout for SR, clean folders
plus seeded noise for denoising, Rain100L for deraining, GoPro for deblurring). Before a
single tile runs, every selected file's header is read, then every file is decoded once
(and dropped), so that a bad set fails at start-up with one line naming the file:

* a header claiming more pixels than `ipt_ms.data.imageio.max_image_pixels` (checked
  before decoding), a truncated or corrupt file;
* an LR image whose HR partner is not LR*s (up to the s - 1 pixel modcrop remainder) or,
  for scale-1 pairs, not the same size;
* images of different modes in one set: every image must have the set's mode (8-bit RGB,
  8-bit gray, 16-bit, with alpha, ...), and an input must have its ground truth's mode.
  The one exception is the case the official loader was written for: 8-bit grayscale
  images inside an 8-bit RGB set are read as three equal channels (a warning names them).
  ``allow_mixed_modes`` turns the check off (every image is then read as 8-bit RGB);
* a set that `ipt-ms synth` did not finish (no synth.json beside what only synth makes, or
  images its synth.json does not list; `ipt_ms.data.synth.unfinished_synth_set`), unless
  ``allow_unfinished_synth``;
* a missing LR scale folder (``LR_bicubic/X<s>``): by default the official LR files are
  required (``lr="files"``); ``lr="generate"`` makes them with MATLAB-exact bicubic.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ipt_ms.data.folders import BENCHMARK_SETS, PairDataset, benchmark
from ipt_ms.data.imageio import image_header, read_image
from ipt_ms.errors import IPTError
from ipt_ms.fileio import check_name_part
from ipt_ms.tasks import Task

__all__ = ["EvalSet", "check_set", "check_synth_set", "default_sets", "file_mode", "load_sets"]

log = logging.getLogger("ipt_ms.eval")
#: the option that scores a set ipt-ms synth did not finish anyway (`check_synth_set`)
ALLOW_UNFINISHED_SYNTH = "--allow-unfinished-synth"

@dataclass
class EvalSet:
    """A named benchmark set, possibly cut to its first images (``--limit``)."""

    name: str
    dataset: PairDataset

    @property
    def names(self) -> list[str]:
        return self.dataset.names


def default_sets(task: Task) -> list[str]:
    """The sets IPT reports for a task kind (SR: Set5, Set14, B100, Urban100; ...)."""
    return list(BENCHMARK_SETS.get(task.kind, ()))


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode description, (height, width)) from the file header, without decoding pixels."""
    header = image_header(path)  # the pixel limit applies here too
    return header.mode, (header.height, header.width)


def file_mode(path: os.PathLike | str) -> str:
    """How an image file stores its pixels, e.g. '8-bit RGB', '8-bit gray', '16-bit RGB'."""
    return _header(Path(path))[0]


def _compatible(mode: str, reference: str) -> bool:
    return mode == reference or {mode, reference} == {"8-bit RGB", "8-bit gray"}


def _mixed(set_name: str, path: Path, mode: str, other: str) -> IPTError:
    return IPTError(f"{set_name}: {path} is {mode} but {other}; convert it, or pass --allow-mixed-modes "
                    "to read every image as 8-bit RGB as the official loader does")


def check_set(set_name: str, dataset: PairDataset, allow_mixed_modes: bool = False) -> None:
    """Validate sizes and modes of every file of `dataset` (rules in the module docstring), then
    decode every file once, so a truncated image stops the run before any model does."""
    scale = int(dataset.scale)
    for entry in dataset.entries:  # names become rows of the reports and, with --save-images, file names
        check_name_part(entry.name, entry.gt, f"{set_name}: the name of")
    headers = {}
    for entry in dataset.entries:
        for path in (entry.gt, entry.lq):
            if path is not None and path not in headers:
                headers[path] = _header(Path(path))
    for entry in dataset.entries:
        if entry.lq is None:
            continue
        (_, (lh, lw)), (_, (gh, gw)) = headers[entry.lq], headers[entry.gt]
        if not (lh * scale <= gh < (lh + 1) * scale and lw * scale <= gw < (lw + 1) * scale):
            need = f"{lw * scale}x{lh * scale}" + (f" (+ up to {scale - 1} px)" if scale > 1 else "")
            raise IPTError(f"{set_name}: {entry.lq} is {lw}x{lh} but its ground truth {entry.gt} is {gw}x{gh}; "
                           f"expected {need} for x{scale}")
    if not allow_mixed_modes:
        _check_modes(set_name, dataset, headers)
    for path in headers:  # a header can be fine over truncated or corrupt pixel data
        read_image(path)


def _check_modes(set_name: str, dataset: PairDataset, headers: dict) -> None:
    reference = Counter(headers[e.gt][0] for e in dataset.entries).most_common(1)[0][0]
    for entry in dataset.entries:
        gt_mode = headers[entry.gt][0]
        if not _compatible(gt_mode, reference):
            raise _mixed(set_name, entry.gt, gt_mode, f"the set's other images are {reference}")
        if entry.lq is not None and headers[entry.lq][0] != gt_mode:
            raise _mixed(set_name, entry.lq, headers[entry.lq][0], f"its ground truth {entry.gt} is {gt_mode}")
        if gt_mode == "8-bit gray" and reference == "8-bit RGB":
            log.warning("%s: %s is %s; read as 3 equal channels, as the official loader does",
                        set_name, entry.gt, gt_mode)


def check_synth_set(set_name: str, dataset: PairDataset) -> None:
    """Refuse a set that `ipt-ms synth` did not finish (rules in
    `ipt_ms.data.synth.unfinished_synth_set`): scoring it would report numbers on a part of
    the images, or on images of another run."""
    from ipt_ms.data.synth import unfinished_synth_set

    files = [Path(p) for e in dataset.entries for p in (e.gt, e.lq) if p is not None]
    problem = unfinished_synth_set(files)
    if problem:
        raise IPTError(f"{set_name}: {problem}; remove it and run ipt-ms synth again (eval and parity-bench "
                       f"score it as it is with {ALLOW_UNFINISHED_SYNTH})")


def load_sets(data_dir: os.PathLike | str, names: list[str], task: Task, *, seed: int = 0, clip: bool = True,
              lr: str = "files", limit: int | None = None, allow_mixed_modes: bool = False,
              allow_unfinished_synth: bool = False) -> list[EvalSet]:
    """Locate, cut (`limit` first images) and validate every named set; nothing runs yet."""
    if not names:
        raise IPTError(f"no benchmark sets given for task {task.name}")
    if limit is not None and limit < 1:
        raise IPTError(f"--limit must be >= 1, got {limit}")
    if not Path(data_dir).is_dir():
        raise IPTError(f"data folder not found: {data_dir}")
    if len(set(names)) != len(names):
        raise IPTError(f"a benchmark set is listed twice: {', '.join(names)}")
    sets = []
    for name in names:
        dataset = benchmark(data_dir, name, task, seed=seed, clip=clip, lr=lr)
        if limit is not None and limit < len(dataset):
            dataset = dataset.subset(dataset.names[:limit])
        if not allow_unfinished_synth:
            check_synth_set(name, dataset)
        check_set(name, dataset, allow_mixed_modes)
        sets.append(EvalSet(name, dataset))
    return sets
