"""Compare two outputs: images, .npy arrays, or folders of either (`ipt-ms compare A B`).

The question a user asks after restoring the same photo in two frameworks (or two
versions): do these differ by more than rounding? Every pair gets PSNR (RGB and Y, on the
values as stored: float arrays are not rounded first), the max abs and max rel difference,
and how many 8-bit values and pixels would differ once both are saved as PNG (clipped to
[0, 255] and rounded). A pair passes when its max abs difference is at most `max_abs`
(default 1.0: one 8-bit level, so PNGs that differ by rounding pass) and the optional
limits (max rel, min PSNR, fraction of changed 8-bit values) hold. Folders are matched by
file name, then by stem (`x.npy` with `x.png`).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError
from ipt_ms.fileio import note_input
from ipt_ms.metrics import Y_COEFFS

ARRAY_EXTENSIONS = frozenset({".npy"})


@dataclass(frozen=True)
class CompareLimits:
    """What a pair must meet to pass; None switches a limit off."""

    max_abs: float | None = 1.0
    max_rel: float | None = None
    min_psnr: float | None = None
    max_changed: float | None = None  # fraction (0..1) of 8-bit values allowed to differ
    peak: float = 255.0

    def __post_init__(self) -> None:
        for name in ("max_abs", "max_rel", "max_changed"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise IPTError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.max_changed is not None and self.max_changed > 1:
            raise IPTError(f"--max-changed is a fraction in [0, 1], got {self.max_changed}")
        if not self.peak > 0:
            raise IPTError(f"--peak must be > 0, got {self.peak}")

    def describe(self) -> str:
        parts = []
        if self.max_abs is not None:
            parts.append(f"max abs diff <= {self.max_abs:g}")
        if self.max_rel is not None:
            parts.append(f"max rel diff <= {self.max_rel:g}")
        if self.min_psnr is not None:
            parts.append(f"PSNR >= {self.min_psnr:g} dB")
        if self.max_changed is not None:
            parts.append(f"8-bit values changed <= {100 * self.max_changed:g}%")
        return ", ".join(parts) or "no limit (report only)"


@dataclass
class PairResult:
    """The numbers for one pair; `problems` says why it fails (empty: it passes)."""

    a: str
    b: str
    shape: tuple[int, ...] | None = None
    psnr_rgb: float | None = None
    psnr_y: float | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    values: int = 0
    values_changed: int = 0
    pixels: int = 0
    pixels_changed: int = 0
    max_levels: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        if self.shape is None:
            return f"{self.a} vs {self.b}: FAIL ({'; '.join(self.problems)})"
        shape = "x".join(str(d) for d in self.shape)
        y = "" if self.psnr_y is None else f", Y {_db(self.psnr_y)}"
        verdict = "PASS" if self.ok else "FAIL (" + "; ".join(self.problems) + ")"
        return (f"{self.a} vs {self.b} ({shape}): PSNR RGB {_db(self.psnr_rgb)}{y}; max abs diff "
                f"{self.max_abs:.3g}, max rel diff {self.max_rel:.3g}; 8-bit values differing "
                f"{self.values_changed:,} of {self.values:,}"
                + (f" ({self.pixels_changed:,} of {self.pixels:,} pixels)" if self.pixels else "")
                + f", by up to {self.max_levels} level(s): {verdict}")


@dataclass
class CompareResult:
    pairs: list[PairResult]
    only_in_a: list[str]
    only_in_b: list[str]
    limits: CompareLimits

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.pairs) and not self.only_in_a and not self.only_in_b

    def summary(self) -> str:
        failed = sum(1 for p in self.pairs if not p.ok)
        text = (f"compare {'PASS' if self.ok else 'FAIL'}: {len(self.pairs)} pair(s), {failed} outside the limits "
                f"({self.limits.describe()})")
        if self.pairs and all(p.max_abs is not None for p in self.pairs):
            text += f"; worst max abs diff {max(p.max_abs for p in self.pairs):.3g}"
            rgb = [p.psnr_rgb for p in self.pairs if p.psnr_rgb is not None]
            if rgb:
                text += f", lowest PSNR RGB {_db(min(rgb))}"
        if self.only_in_a:
            text += f"; only in A: {_short(self.only_in_a)}"
        if self.only_in_b:
            text += f"; only in B: {_short(self.only_in_b)}"
        return text

    def to_dict(self) -> dict:
        return {"ok": self.ok, "limits": asdict(self.limits),
                "pairs": [{**asdict(p), "ok": p.ok} for p in self.pairs],
                "only_in_a": self.only_in_a, "only_in_b": self.only_in_b}


def _db(value: float) -> str:
    return "inf dB (identical)" if math.isinf(value) else f"{value:.2f} dB"


def _short(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def load_array(path: os.PathLike | str) -> np.ndarray:
    """An image (HxWx3 uint8 via `read_image`) or a .npy array (never unpickled), as float64."""
    path = Path(path)
    if path.suffix.lower() in ARRAY_EXTENSIONS:
        try:
            note_input(path)  # no output of this command may replace it (ipt_ms.fileio)
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise IPTError(f"cannot read array {path}: {str(err).splitlines()[0] if str(err) else err}") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise IPTError(f"cannot read array {path}: expected a numeric array, got dtype {arr.dtype}")
        return arr.astype(np.float64)
    from ipt_ms.data.imageio import read_image

    return read_image(path).astype(np.float64)


def _psnr(diff: np.ndarray, peak: float) -> float:
    from ipt_ms.metrics import psnr_from_mse

    return psnr_from_mse(float(np.mean(np.square(diff / peak))))


def compare_arrays(a: np.ndarray, b: np.ndarray, limits: CompareLimits = CompareLimits(), *, name_a: str = "A",
                   name_b: str = "B") -> PairResult:
    """The numbers for two arrays of one shape (B is the reference for the relative difference)."""
    result = PairResult(name_a, name_b)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        result.problems.append(f"shapes differ: {a.shape} vs {b.shape}")
        return result
    if a.size == 0:
        result.problems.append("empty arrays")
        return result
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.all():
        result.problems.append(f"{int((~finite).sum())} non-finite value(s)")
    diff = np.where(finite, a - b, 0.0)
    result.shape = tuple(a.shape)
    result.max_abs = float(np.max(np.abs(diff)))
    scale = float(np.max(np.abs(np.where(finite, b, 0.0))))
    result.max_rel = result.max_abs / scale if scale > 0 else (0.0 if result.max_abs == 0 else math.inf)
    result.psnr_rgb = _psnr(diff, limits.peak)
    if a.ndim == 3 and a.shape[2] == 3:  # H x W x RGB: luma as the official PSNR mixes it
        result.psnr_y = _psnr(diff @ Y_COEFFS, limits.peak)
    qa, qb = _eight_bit(a, limits.peak), _eight_bit(b, limits.peak)
    changed = qa != qb
    result.values, result.values_changed = int(changed.size), int(changed.sum())
    result.max_levels = int(np.max(np.abs(qa - qb)))
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        result.pixels, result.pixels_changed = a.shape[0] * a.shape[1], int(changed.any(axis=2).sum())
    _judge(result, limits)
    return result


def _eight_bit(arr: np.ndarray, peak: float) -> np.ndarray:
    """What a PNG of the array would hold (scaled to 0..255, `to_uint8`), as int16 for differences."""
    from ipt_ms.data.imageio import to_uint8

    return to_uint8(np.asarray(arr, dtype=np.float64) * (255.0 / peak)).astype(np.int16)


def _judge(r: PairResult, lim: CompareLimits) -> None:
    if lim.max_abs is not None and r.max_abs > lim.max_abs:
        r.problems.append(f"max abs diff {r.max_abs:.3g} > {lim.max_abs:g}")
    if lim.max_rel is not None and r.max_rel > lim.max_rel:
        r.problems.append(f"max rel diff {r.max_rel:.3g} > {lim.max_rel:g}")
    if lim.min_psnr is not None and r.psnr_rgb < lim.min_psnr:
        r.problems.append(f"PSNR RGB {r.psnr_rgb:.2f} dB < {lim.min_psnr:g} dB")
    if lim.max_changed is not None and r.values_changed > lim.max_changed * r.values:
        r.problems.append(f"{100 * r.values_changed / r.values:.3g}% of 8-bit values changed > "
                          f"{100 * lim.max_changed:g}%")


def _is_comparable(path: Path) -> bool:
    from ipt_ms.data.imageio import IMAGE_EXTENSIONS

    suffix = path.suffix.lower()
    return path.is_file() and not path.name.startswith(".") and (suffix in IMAGE_EXTENSIONS
                                                                   or suffix in ARRAY_EXTENSIONS)


def match_folders(a: Path, b: Path) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """Pairs by file name, then by stem among the rest (unique stems only); and the unmatched."""
    files_a = {p.name: p for p in sorted(a.iterdir()) if _is_comparable(p)}
    files_b = {p.name: p for p in sorted(b.iterdir()) if _is_comparable(p)}
    if not files_a or not files_b:
        empty = a if not files_a else b
        raise IPTError(f"folder {empty} holds no images or .npy files")
    pairs = [(files_a[n], files_b[n]) for n in sorted(set(files_a) & set(files_b))]
    rest_a = {n: p for n, p in files_a.items() if n not in files_b}
    rest_b = {n: p for n, p in files_b.items() if n not in files_a}
    stems_a, stems_b = _unique_stems(rest_a.values()), _unique_stems(rest_b.values())
    for stem in sorted(set(stems_a) & set(stems_b)):
        pairs.append((stems_a[stem], stems_b[stem]))
        rest_a.pop(stems_a[stem].name)
        rest_b.pop(stems_b[stem].name)
    if not pairs:
        raise IPTError(f"no file in {a} has a counterpart in {b} (matched by name, then by stem)")
    return pairs, sorted(rest_a), sorted(rest_b)


def _unique_stems(paths) -> dict[str, Path]:
    by_stem: dict[str, list[Path]] = {}
    for p in paths:
        by_stem.setdefault(p.stem, []).append(p)
    return {s: ps[0] for s, ps in by_stem.items() if len(ps) == 1}


def _same_kind_paths(a: os.PathLike | str, b: os.PathLike | str) -> tuple[Path, Path]:
    """Both paths exist and are both files or both folders (one line naming them otherwise)."""
    a, b = Path(a), Path(b)
    for path in (a, b):
        if not path.exists():
            raise IPTError(f"not found: {str(path)!r}")
    if a.is_dir() != b.is_dir():
        raise IPTError(f"compare a file with a file or a folder with a folder: {a} is "
                       f"{'a folder' if a.is_dir() else 'a file'}, {b} is {'a folder' if b.is_dir() else 'a file'}")
    return a, b


def compare_paths(a: os.PathLike | str, b: os.PathLike | str, limits: CompareLimits = CompareLimits(), *,
                  progress: bool = False) -> CompareResult:
    """Compare two files, or every matching pair of two folders (B is the reference)."""
    from ipt_ms.memory import check_compare
    from ipt_ms.progress import progress_bar

    a, b = _same_kind_paths(a, b)
    if a.is_dir():
        pairs, only_a, only_b = match_folders(a, b)
    else:
        pairs, only_a, only_b = [(a, b)], [], []
    results = []
    bar = progress_bar(pairs, total=len(pairs), desc="compare", unit="pair", enable=progress and len(pairs) > 1)
    for pa, pb in bar:  # one pair in memory at a time; an unreadable file is a one-line error naming it
        check_compare(pa, pb)  # refused before loading when the pair cannot fit in memory
        name_a, name_b = (pa.name, pb.name) if a.is_dir() else (str(pa), str(pb))
        results.append(compare_arrays(load_array(pa), load_array(pb), limits, name_a=name_a, name_b=name_b))
    return CompareResult(results, only_a, only_b, limits)
