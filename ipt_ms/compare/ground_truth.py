"""Ground-truth mode (`compare_to_ground_truth`, `ipt-ms compare OUT GT --gt`) scores restored
images against their clean originals as `ipt-ms eval` does, through the same functions
(`ipt_ms.metrics.psnr` / `ssim`: quantised output, PSNR on Y and RGB, SSIM on Y, the SR
border shave, the ground truth modcropped to the output). `restore`'s outputs pair with
their originals by name: `x_sr_x2.png` with `x.png` (the task suffix also gives the scale).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ipt_ms.compare.pairs import _db, _is_comparable, _same_kind_paths, _short, _unique_stems, load_array
from ipt_ms.errors import IPTError


# ------------------------------------------------------------------------------- ground truth
@dataclass
class GroundTruthPair:
    """One restored image scored against its ground truth (as `ipt-ms eval` scores it)."""

    output: str
    truth: str
    scale: int
    shave: int
    psnr_y: float
    psnr_rgb: float
    ssim_y: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        verdict = "" if self.ok else ": FAIL (" + "; ".join(self.problems) + ")"
        return (f"{self.output} vs ground truth {self.truth} (x{self.scale}, shave {self.shave} px): PSNR Y "
                f"{_db(self.psnr_y)}, RGB {_db(self.psnr_rgb)}; SSIM Y {self.ssim_y:.4f}{verdict}")


@dataclass
class GroundTruthResult:
    pairs: list[GroundTruthPair]
    only_in_a: list[str]
    only_in_b: list[str]
    min_psnr: float | None = None
    min_ssim: float | None = None

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.pairs) and not self.only_in_a

    def summary(self) -> str:
        n = len(self.pairs)
        mean = (lambda f: sum(f(p) for p in self.pairs) / n) if n else (lambda f: math.nan)
        text = (f"compare --gt {'PASS' if self.ok else 'FAIL'}: {n} image(s); mean PSNR Y "
                f"{_db(mean(lambda p: p.psnr_y))}, RGB {_db(mean(lambda p: p.psnr_rgb))}; mean SSIM Y "
                f"{mean(lambda p: p.ssim_y):.4f}")
        if self.only_in_a:
            text += f"; no ground truth for: {_short(self.only_in_a)}"
        return text

    def to_dict(self) -> dict:
        return {"ok": self.ok, "mode": "ground-truth", "min_psnr_y": self.min_psnr, "min_ssim_y": self.min_ssim,
                "pairs": [{**asdict(p), "ok": p.ok} for p in self.pairs], "only_in_a": self.only_in_a,
                "only_in_b": self.only_in_b}


def task_suffix(stem: str) -> tuple[str, str | None]:
    """(original stem, task) of a `restore` output name `<stem>_<task>`, else (stem, None)."""
    from ipt_ms.tasks import parse_task

    parts = stem.split("_")
    for i in range(1, len(parts)):
        task = "_".join(parts[i:])
        try:
            parse_task(task)
        except IPTError:
            continue
        return "_".join(parts[:i]), task
    return stem, None


def _scale_of(path: Path, scale: int | None) -> int:
    from ipt_ms.tasks import parse_task

    if scale is not None:
        return scale
    task = task_suffix(path.stem)[1]
    return parse_task(task).scale if task else 1


def match_ground_truth(a: Path, b: Path) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """Outputs in `a` paired with originals in `b`: same name, else same stem, else `x_<task>` with `x`."""
    files_a = {p.name: p for p in sorted(a.iterdir()) if _is_comparable(p)}
    files_b = {p.name: p for p in sorted(b.iterdir()) if _is_comparable(p)}
    if not files_a or not files_b:
        raise IPTError(f"folder {a if not files_a else b} holds no images or .npy files")
    stems_b = _unique_stems(files_b.values())
    pairs, unmatched, used = [], [], set()
    for name, path in files_a.items():
        truth = files_b.get(name) or stems_b.get(path.stem) or stems_b.get(task_suffix(path.stem)[0])
        if truth is None:
            unmatched.append(name)
        else:
            pairs.append((path, truth))
            used.add(truth.name)
    if not pairs:
        raise IPTError(f"no file in {a} has a ground truth in {b} (by name, by stem, or x_sr_x2.png -> x.png)")
    return pairs, unmatched, sorted(set(files_b) - used)


def compare_to_ground_truth(a: os.PathLike | str, b: os.PathLike | str, *, scale: int | None = None,
                            shave: int | None = None, min_psnr: float | None = None,
                            min_ssim: float | None = None, progress: bool = False) -> GroundTruthResult:
    """Score restored image(s) `a` against ground truth `b` with eval's PSNR/SSIM (see module docs).

    `scale` (else from a `_sr_x<s>` name suffix, else 1) sets the border shave (`default_shave`,
    unless `shave` is given) and how much larger a ground truth may be (modcrop remainder).
    """
    from ipt_ms.memory import check_compare
    from ipt_ms.metrics import default_shave, psnr, ssim
    from ipt_ms.progress import progress_bar

    a, b = _same_kind_paths(a, b)
    pairs, only_a, only_b = match_ground_truth(a, b) if a.is_dir() else ([(a, b)], [], [])
    results = []
    for pa, pb in progress_bar(pairs, total=len(pairs), desc="compare", unit="pair",
                               enable=progress and len(pairs) > 1):
        check_compare(pa, pb)
        s = _scale_of(pa, scale)
        border = default_shave(s) if shave is None else shave
        out, truth = load_array(pa), load_array(pb)
        try:
            pair = GroundTruthPair(pa.name if a.is_dir() else str(pa), pb.name if a.is_dir() else str(pb), s, border,
                                   psnr(out, truth, s, shave=border), psnr(out, truth, s, channel="rgb", shave=border),
                                   ssim(out, truth, s, shave=border))
        except IPTError as err:
            raise IPTError(f"{pa} vs {pb}: {err}") from None
        if min_psnr is not None and pair.psnr_y < min_psnr:
            pair.problems.append(f"PSNR Y {pair.psnr_y:.2f} dB < {min_psnr:g} dB")
        if min_ssim is not None and pair.ssim_y < min_ssim:
            pair.problems.append(f"SSIM Y {pair.ssim_y:.4f} < {min_ssim:g}")
        results.append(pair)
    return GroundTruthResult(results, only_a, only_b, min_psnr, min_ssim)
