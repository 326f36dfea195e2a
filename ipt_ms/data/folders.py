"""Benchmark and fine-tuning loaders for the standard folder layouts.

Every loader is a random-access sequence of :class:`Pair` ``(lq, gt, name)``: ``lq`` the
degraded input and ``gt`` the clean target, numpy HxWx3 ([0, 255]; uint8 when read from
files or made by bicubic downscaling, float32 when noise / rain / blur is synthesised on
the fly), ``name`` the image's name in its set. Layouts (see ipt-conventions.md section 6):

* EDSR benchmark: ``<set>/HR/<name>.png`` + ``<set>/LR_bicubic/X<s>/<name>x<s>.png``
  (:func:`sr_benchmark`; HR is cropped to LR*s as EDSR does);
* DIV2K: ``DIV2K/DIV2K_train_HR/0001.png`` + ``DIV2K_train_LR_bicubic/X<s>/0001x<s>.png``,
  ``data_range`` "1-800" indexing the sorted HR list (:func:`div2k`);
* CBSD68 / Urban100 denoising: clean images only (``<set>/*.png`` or ``<set>/HR/*.png``);
  noise is added per (seed, name) (:func:`denoise_benchmark`);
* Rain100L: ``rainy/rain-N.png`` + ``norain-N.png`` (all images; IPT's MindSpore eval
  scores only 1 in 10 by default) and RainTrainL: flat ``rain-N.png`` / ``norain-N.png``
  (:func:`rain_pairs`);
* GoPro: ``{train,test}/<SEQ>/{blur,sharp}/<frame>.png``, or the Restormer repackaging
  ``{train,test}/{input,target}/<name>.png`` (:func:`gopro`).

A missing folder or file raises ``IPTError`` saying which path was expected.

The pair datasets these loaders return are in `ipt_ms.data.pairs`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ipt_ms.data.degrade import Degrader
from ipt_ms.data.imageio import IMAGE_EXTENSIONS, list_images
from ipt_ms.data.pairs import FilePairs, GeneratedSRPairs, Pair, PairDataset, PairEntry, SyntheticPairs
from ipt_ms.errors import IPTError
from ipt_ms.tasks import Task, parse_task

__all__ = [
    "BENCHMARK_SETS",
    "Pair",
    "PairEntry",
    "PairDataset",
    "FilePairs",
    "GeneratedSRPairs",
    "SyntheticPairs",
    "benchmark",
    "denoise_benchmark",
    "div2k",
    "gopro",
    "rain_pairs",
    "sr_benchmark",
    "synthetic_pairs",
]


#: Names IPT evaluates on, per task kind.
BENCHMARK_SETS = {
    "sr": ("Set5", "Set14", "B100", "Urban100"),
    "denoise": ("CBSD68", "Urban100"),
    "derain": ("Rain100L",),
    "deblur": ("GoPro",),
}


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        if path.exists():
            raise IPTError(f"{what} {path} is a file, not a folder")
        raise IPTError(f"{what} not found: expected a folder at {path}")
    return path


def _image_files(folder: Path, what: str) -> list[Path]:
    return list_images(folder, recursive=False, what=what)


def _find_with_stem(folder: Path, stem: str) -> Path | None:
    for ext in (".png", ".PNG", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"):
        candidate = folder / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


def _lr_mode(lr: str) -> str:
    if lr not in ("auto", "files", "generate"):
        raise IPTError(f"lr must be 'auto', 'files' or 'generate', got {lr!r}")
    return lr


def _sr_pairs(hr_files: list[Path], lr_dir: Path, scale: int, lr: str, what: str) -> PairDataset:
    entries = [PairEntry(name=p.stem, gt=p) for p in hr_files]
    mode = _lr_mode(lr)
    if mode == "auto":
        mode = "files" if lr_dir.is_dir() else "generate"
    if mode == "generate":
        return GeneratedSRPairs(entries, scale)
    _require_dir(lr_dir, f"{what} LR folder for x{scale}")
    paired = []
    for e in entries:
        lq = _find_with_stem(lr_dir, f"{e.name}x{scale}")
        if lq is None:
            expected = lr_dir / f"{e.name}x{scale}.png"
            raise IPTError(f"{what}: LR image for {e.gt.name} not found: expected {expected}")
        paired.append(PairEntry(e.name, e.gt, lq))
    return FilePairs(paired, scale=scale, description=what)


def sr_benchmark(set_dir: os.PathLike | str, scale: int, lr: str = "auto") -> PairDataset:
    """EDSR-layout SR set (``<set_dir>/HR``, ``<set_dir>/LR_bicubic/X<s>``).

    ``lr``: "files" needs the LR PNGs, "generate" makes LR with MATLAB-exact bicubic from
    modcropped HR, "auto" uses the files when ``LR_bicubic/X<s>`` exists.
    """
    set_dir = Path(set_dir)
    hr_dir = _require_dir(set_dir / "HR", f"HR folder of {set_dir.name}")
    hr_files = _image_files(hr_dir, "HR folder")
    return _sr_pairs(hr_files, set_dir / "LR_bicubic" / f"X{scale}", scale, lr, set_dir.name)


def div2k(
    root: os.PathLike | str,
    scale: int,
    data_range: str = "1-800",
    lr: str = "auto",
) -> PairDataset:
    """DIV2K in the EDSR layout; ``data_range`` "a-b" (1-based, inclusive) picks from the
    sorted HR list, so "801-810" needs 0801.png... in the same DIV2K_train_HR folder.

    ``root`` may be the folder containing ``DIV2K`` or ``DIV2K`` itself.
    """
    root = Path(root)
    base = root / "DIV2K" if (root / "DIV2K").is_dir() else root
    hr_dir = _require_dir(base / "DIV2K_train_HR", "DIV2K HR folder")
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", data_range)
    if not match:
        raise IPTError(f"DIV2K data_range must look like '1-800', got {data_range!r}")
    first, last = int(match.group(1)), int(match.group(2))
    hr_all = _image_files(hr_dir, "DIV2K HR folder")
    if first < 1 or last < first or last > len(hr_all):
        raise IPTError(
            f"DIV2K data_range {data_range} is outside the {len(hr_all)} images in {hr_dir}"
        )
    return _sr_pairs(
        hr_all[first - 1 : last], base / "DIV2K_train_LR_bicubic" / f"X{scale}", scale, lr, "DIV2K"
    )


def _clean_folder(folder: Path) -> Path:
    """A clean-only set: the images directly, or its HR/ subfolder (EDSR Urban100)."""
    _require_dir(folder, "clean image folder")
    direct = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not direct and (folder / "HR").is_dir():
        return folder / "HR"
    return folder


def synthetic_pairs(
    folder: os.PathLike | str,
    task: Task | str,
    seed: int = 0,
    recursive: bool = False,
    **degrader_options,
) -> SyntheticPairs:
    """Clean images of ``folder`` degraded for ``task`` on the fly (names: relative paths
    without extension). ``degrader_options`` go to :class:`Degrader` (clip, rain, blur)."""
    folder = _clean_folder(Path(folder))
    files = list_images(folder, recursive=recursive, what="clean image folder")
    entries = [PairEntry(name=p.relative_to(folder).with_suffix("").as_posix(), gt=p) for p in files]
    return SyntheticPairs(entries, Degrader(task, **degrader_options), seed=seed)


def denoise_benchmark(
    folder: os.PathLike | str, sigma: float, seed: int = 0, clip: bool = True
) -> SyntheticPairs:
    """CBSD68 / Urban100 denoising: clean images + Gaussian noise seeded per (seed, name).

    ``clip=True`` (IPT) or ``False`` (DnCNN / SwinIR). The noisy input is float32, not
    rounded, as IPT's test code feeds it.
    """
    task = parse_task(f"denoise_{sigma:g}")
    return synthetic_pairs(folder, task, seed=seed, clip=clip)


_RAIN_RE = re.compile(r"^rain-(.+)$", re.IGNORECASE)


def rain_pairs(root: os.PathLike | str) -> FilePairs:
    """Rain100L (``rainy/rain-N.png`` + ``norain-N.png``) or RainTrainL (flat ``rain-N.png``
    + ``norain-N.png``). Uses every pair, sorted by N; names are the N part."""
    root = Path(root)
    _require_dir(root, "rain dataset folder")
    rainy_dir = root / "rainy" if (root / "rainy").is_dir() else root
    rainy = [p for p in _image_files(rainy_dir, "rainy image folder") if _RAIN_RE.match(p.stem)]
    if not rainy:
        raise IPTError(f"no rain-N images in {rainy_dir} (expected {rainy_dir / 'rain-1.png'} ...)")
    entries = []
    for p in rainy:
        suffix = _RAIN_RE.match(p.stem).group(1)
        gt = _find_with_stem(root, f"norain-{suffix}")
        if gt is None:
            raise IPTError(f"clean image for {p} not found: expected {root / f'norain-{suffix}.png'}")
        entries.append(PairEntry(name=suffix, gt=gt, lq=p))

    def order(e: PairEntry):
        return (0, int(e.name), e.name) if e.name.isdigit() else (1, 0, e.name)

    return FilePairs(sorted(entries, key=order), scale=1, description=f"rain pairs in {root}")


def gopro(root: os.PathLike | str, split: str = "test", blur_dir: str = "blur") -> FilePairs:
    """GoPro ``{train,test}/<SEQ>/{blur,blur_gamma,sharp}/<frame>.png`` (names: SEQ/frame),
    or ``{train,test}/{input,target}/<name>.png`` (Restormer layout; names: file stem).

    ``root`` may be ``GOPRO_Large`` itself or a folder containing it (or ``GoPro``).
    """
    if split not in ("train", "test"):
        raise IPTError(f"GoPro split must be 'train' or 'test', got {split!r}")
    if blur_dir not in ("blur", "blur_gamma"):
        raise IPTError(f"GoPro blur_dir must be 'blur' or 'blur_gamma', got {blur_dir!r}")
    root = Path(root)
    base = root
    for candidate in ("GOPRO_Large", "GoPro"):
        if not (root / split).is_dir() and (root / candidate / split).is_dir():
            base = root / candidate
    split_dir = _require_dir(base / split, f"GoPro {split} folder")
    if (split_dir / "input").is_dir() and (split_dir / "target").is_dir():
        # Restormer-style repackaging: {train,test}/{input,target}/<name>.png
        entries = []
        for b in _image_files(split_dir / "input", "GoPro input folder"):
            s = _find_with_stem(split_dir / "target", b.stem)
            if s is None:
                raise IPTError(f"target for {b} not found: expected {split_dir / 'target' / b.name}")
            entries.append(PairEntry(name=b.stem, gt=s, lq=b))
        return FilePairs(entries, scale=1, description=f"GoPro {split} pairs")
    seqs = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not seqs:
        raise IPTError(
            f"GoPro {split} folder {split_dir} has no sequence folders (expected {split_dir}/SEQ/blur)"
        )
    entries = []
    for seq in seqs:
        bdir = _require_dir(seq / blur_dir, f"GoPro {blur_dir} folder")
        sdir = _require_dir(seq / "sharp", "GoPro sharp folder")
        for b in _image_files(bdir, f"GoPro {blur_dir} folder"):
            s = _find_with_stem(sdir, b.stem)
            if s is None:
                raise IPTError(f"sharp frame for {b} not found: expected {sdir / b.name}")
            entries.append(PairEntry(name=f"{seq.name}/{b.stem}", gt=s, lq=b))
    return FilePairs(entries, scale=1, description=f"GoPro {split} pairs")


def benchmark(
    dir_data: os.PathLike | str,
    name: str,
    task: Task | str,
    seed: int = 0,
    clip: bool = True,
    lr: str = "auto",
) -> PairDataset:
    """A named evaluation set for a task, from the IPT/EDSR ``dir_data`` layout:

    SR ``<dir_data>/benchmark/<name>``; denoise ``<dir_data>/benchmark/<name>`` (clean);
    derain ``<dir_data>/<name>`` or ``<dir_data>/benchmark/<name>`` (Rain100L layout);
    deblur ``<dir_data>`` containing ``GOPRO_Large`` (test split). ``dir_data`` may also be
    the set folder itself.
    """
    task = parse_task(task) if isinstance(task, str) else task
    dir_data = Path(dir_data)
    candidates = [dir_data / "benchmark" / name, dir_data / name, dir_data]
    if task.kind == "deblur":
        return gopro(dir_data, split="test")

    def pick(check) -> Path:
        for c in candidates:
            if check(c):
                return c
        raise IPTError(
            f"benchmark {name} for {task.name} not found: expected {candidates[0]} or {candidates[1]}"
        )

    if task.kind == "sr":
        return sr_benchmark(pick(lambda c: (c / "HR").is_dir()), task.scale, lr=lr)
    if task.kind == "denoise":
        return denoise_benchmark(pick(lambda c: c.is_dir() and c.name == name), task.sigma, seed, clip)
    if task.kind == "derain":
        return rain_pairs(pick(lambda c: (c / "rainy").is_dir() or any(c.glob("rain-*"))))
    raise IPTError(f"no benchmark layout for task {task.name}")
