"""Benchmark-level parity: the same evaluation in two frameworks, image by image.

Both runners see the same input arrays (so the same seeded noise) and the same tiles
(same protocol); per image the report gives both PSNRs and dPSNR = PSNR(first) -
PSNR(second), plus how far the float outputs and the quantised PNGs differ. The run
fails when any |dPSNR| exceeds the tolerance (0.01 dB by default) or when any image's
outputs differ by more than float rounding: max |first - second| / max |second| above
`max_rel` (default DEFAULT_MAX_REL). dPSNR alone cannot see a wrong weight: one decoder
weight scaled by 1.01 moved the tiny model's PSNR by 4.6e-05 dB, while its outputs moved
40-100x more than rounding (measured below).

Measured on the tiny model (make-weights --preset tiny, 3 tasks, seed 3; 3 photos 96 x 96,
sr_x2, official protocol, CPU): an untampered PyTorch file vs its converted .ckpt gives a max
rel diff of 4.2e-07 .. 8.3e-07 per image (max abs 7.6e-05 .. 2.0e-04 on 0..255); the same .pt
with body.decoder.layers.0.self_attn.in_proj_weight x 1.01 gives 6.1e-05 .. 9.0e-05 (max abs
0.011 .. 0.022) at |dPSNR| <= 6.8e-05 dB. The default, 3e-05, is 36x above the first and 2x
below the second. Bigger models round more: the real-photo mini benchmark (1.8M parameters,
BENCHMARKS.md) reached about 8e-06; the full-size model on CPU about 2.5e-05 (sr_x2, official
protocol) and 4.3e-04 (denoise_50, zoo protocol), so full-size scale-1 tasks need --max-rel 1e-3.

The image with the largest relative difference is drawn as a strip: input, first
framework, second framework, their difference on a FIXED scale (black 0, white
STRIP_DIFF_WHITE levels of 0..255 or more; so rounding stays dark and a real error shows)
and the ground truth.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.errors import IPTError
from ipt_ms.eval.engine import EvalSettings, Runner, evaluate, summarize, weights_name
from ipt_ms.eval.report import fmt, markdown_table, strip_image, write_eval_reports
from ipt_ms.eval.sets import EvalSet
from ipt_ms.fileio import atomic_output
from ipt_ms.metrics import quantize

__all__ = ["ParityBenchResult", "delta_psnr", "parity_bench"]

STRIP_FILE = "strip.png"
_STRIP_SOURCE = "strip_source.npz"
_STRIP_CROP = 192
_MIN_PANEL = 128
#: default per-image limit on max |first - second| / max |second| (see the module docstring)
DEFAULT_MAX_REL = 3e-5
#: |difference| (0..255 scale) drawn white in strip.png; the default limit is a bit under its mid-grey
STRIP_DIFF_WHITE = 0.01
_FRAMEWORK_NAMES = {"mindspore": "MindSpore", "torch": "PyTorch", "onnx": "ONNX Runtime"}


def fmt_delta(value: float, signed: bool = True) -> str:
    """A dB difference: 5 decimals, or 2 significant digits when smaller than 1e-4."""
    if value != 0 and abs(value) < 1e-4 and not math.isinf(value):
        return f"{value:+.1e}" if signed else f"{value:.1e}"
    return fmt(value, 5, signed)


def delta_psnr(first: float, second: float) -> float:
    """PSNR difference; 0 when both are infinite (both outputs equal the ground truth)."""
    if math.isinf(first) and math.isinf(second) and first == second:
        return 0.0
    return first - second


@dataclass
class ParityBenchResult:
    """What parity_bench measured and wrote."""

    records: list[dict]
    tolerance: float
    max_abs_dpsnr: float
    worst: tuple[str, str] | None
    paths: list[Path] = field(default_factory=list)
    printed: str = ""
    max_rel: float = DEFAULT_MAX_REL  # the limit on each image's max relative output difference
    max_rel_found: float = 0.0
    sides: tuple[tuple[str, str], tuple[str, str]] = (("first", ""), ("second", ""))  # (framework, weights)

    @property
    def ok(self) -> bool:
        return not self.failures

    def image_ok(self, record: dict) -> bool:
        return abs(record["compare"]["dpsnr"]) <= self.tolerance and record["compare"]["max_rel_diff"] <= self.max_rel

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.records if not self.image_ok(r)]

    def failure_message(self) -> str:
        """One line: which images differ and how, naming both sides (it cannot know which one is wrong)."""
        (fa, wa), (fb, wb) = self.sides
        bad = ", ".join(f"{r['set']}/{r['name']} (max rel diff {r['compare']['max_rel_diff']:.2g}, dPSNR "
                        f"{r['compare']['dpsnr']:+.2g} dB)" for r in self.failures[:3])
        more = f" and {len(self.failures) - 3} more" if len(self.failures) > 3 else ""
        return (f"{fa} ({wa!r}) and {fb} ({wb!r}) differ beyond float rounding on {len(self.failures)} of "
                f"{len(self.records)} image(s): {bad}{more}; limits: max rel diff {self.max_rel:g}, |dPSNR| "
                f"{self.tolerance:g} dB. This compares the two; it cannot tell which weights or framework is wrong "
                "(`ipt-ms parity` localises the first differing layer)")


def framework_name(label: str) -> str:
    return _FRAMEWORK_NAMES.get(label, label)


class _Comparer:
    """Evaluation hook: output differences per image; keeps the worst image's arrays on disk."""

    def __init__(self, first: str, second: str, out_dir: Path):
        self.first, self.second, self.source = first, second, out_dir / _STRIP_SOURCE
        self.worst = -1.0

    def __call__(self, set_name: str, pair, outputs: dict[str, np.ndarray], runs: dict[str, dict]) -> dict:
        from ipt_ms.compare import compare_arrays

        a, b = outputs[self.first], outputs[self.second]
        diff = np.abs(a.astype(np.float64) - b)
        dpsnr = delta_psnr(runs[self.first]["psnr"], runs[self.second]["psnr"])
        max_rel = compare_arrays(a, b).max_rel  # one definition: max |a - b| / max |b|
        if max_rel >= self.worst:
            self.worst = max_rel
            save_strip_source(self.source, set_name, pair, a, b)
        return {"compare": {"dpsnr": dpsnr, "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                            "max_rel_diff": float(max_rel),
                            "quantised_changed": float(np.mean(quantize(a) != quantize(b)))}}


def save_strip_source(path: Path, set_name: str, pair, first: np.ndarray, second: np.ndarray) -> None:
    with atomic_output(path, overwrite=True) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, set=np.array(set_name), name=np.array(pair.name), lq=pair.lq, gt=pair.gt, first=first,
                 second=second)


def _crop_box(diff: np.ndarray, size: int, scale: int) -> tuple[int, int, int]:
    """(top, left, side) of a square window around the largest difference, on the LR grid."""
    h, w = diff.shape[:2]
    side = max(scale, min(size, h, w) // scale * scale)
    y, x = np.unravel_index(int(np.argmax(diff.sum(axis=2))), diff.shape[:2])
    top = int(np.clip(y - side // 2, 0, h - side)) // scale * scale
    left = int(np.clip(x - side // 2, 0, w - side)) // scale * scale
    return top, left, side


def render_strip(lq: np.ndarray, gt: np.ndarray, first: np.ndarray, second: np.ndarray,
                 labels: tuple[str, str], scale: int, size: int = _STRIP_CROP) -> np.ndarray:
    """Input (nearest-upscaled), first, second, |first - second| on a fixed scale, ground truth.

    The difference panel is white at STRIP_DIFF_WHITE (0..255 scale) and above, on every
    run, so float rounding stays dark and a real difference is bright."""
    diff = np.abs(first.astype(np.float64) - second)
    top, left, side = _crop_box(diff, size, scale)
    window = (slice(top, top + side), slice(left, left + side))
    lq_up = np.repeat(np.repeat(lq, scale, axis=0), scale, axis=1) if scale > 1 else lq
    gain = 255.0 / STRIP_DIFF_WHITE
    panels = [("input", lq_up[window]), (labels[0], quantize(first[window])), (labels[1], quantize(second[window])),
              (f"|d| white={STRIP_DIFF_WHITE:g}", np.clip(diff[window] * gain, 0, 255)), ("ground truth", gt[window])]
    zoom = -(-_MIN_PANEL // side)  # small crops are enlarged (nearest) so the labels fit
    if zoom > 1:
        panels = [(t, np.repeat(np.repeat(p, zoom, axis=0), zoom, axis=1)) for t, p in panels]
    return strip_image(panels)


def _strip_for(worst: dict, out_dir: Path, sets: list[EvalSet], runners: list[Runner],
               settings: EvalSettings) -> np.ndarray:
    """The strip of the worst image: from the saved arrays, or recomputed if they are stale."""
    source = out_dir / _STRIP_SOURCE
    data = None
    if source.is_file():
        with np.load(source) as npz:
            if str(npz["set"]) == worst["set"] and str(npz["name"]) == worst["name"]:
                data = {k: npz[k] for k in ("lq", "gt", "first", "second")}
    if data is None:
        eval_set = next(s for s in sets if s.name == worst["set"])
        pair = eval_set.dataset[eval_set.names.index(worst["name"])]
        outs = [r.restore(pair.lq, settings.protocol, settings.self_ensemble) for r in runners]
        data = {"lq": pair.lq, "gt": pair.gt, "first": outs[0], "second": outs[1]}
    return render_strip(data["lq"], data["gt"], data["first"], data["second"],
                        (runners[0].label, runners[1].label), runners[0].scale)


def _diff_table(records: list[dict], labels: tuple[str, str], ok) -> str:
    a, b = labels
    header = ["Set", "Image", f"PSNR {a}", f"PSNR {b}", "dPSNR", f"SSIM {a}", f"SSIM {b}", "max abs diff",
              "max rel diff", "PNG px changed", "ok"]
    rows = []
    for rec in records:
        ra, rb, cmp = rec["runs"][a], rec["runs"][b], rec["compare"]
        rows.append([rec["set"], rec["name"], fmt(ra["psnr"], 4), fmt(rb["psnr"], 4), fmt_delta(cmp["dpsnr"]),
                     fmt(ra.get("ssim"), 5), fmt(rb.get("ssim"), 5), f"{cmp['max_abs_diff']:.2e}",
                     f"{cmp.get('max_rel_diff', 0.0):.2e}", f"{100 * cmp['quantised_changed']:.3f}%",
                     "yes" if ok(rec) else "NO"])
    return markdown_table(header, rows)


def parity_bench(sets: list[EvalSet], runners: list[Runner], settings: EvalSettings, out_dir: os.PathLike | str, *,
                 tolerance: float = 0.01, max_rel: float = DEFAULT_MAX_REL, save_images: bool = False,
                 progress: bool = True, restart: bool = False) -> ParityBenchResult:
    """Evaluate with both runners, compare per image, write parity_bench.md/.json, CSVs and strip.png."""
    if len(runners) != 2:
        raise IPTError(f"parity-bench compares exactly two runners, got {len(runners)}")
    if tolerance < 0:
        raise IPTError(f"the dPSNR tolerance must be >= 0, got {tolerance}")
    if not max_rel >= 0:
        raise IPTError(f"the relative output difference limit must be >= 0, got {max_rel}")
    labels = (runners[0].label, runners[1].label)
    if labels[0] == labels[1]:
        raise IPTError(f"the two runners need different labels, both are {labels[0]!r}")
    out_dir = Path(out_dir)
    hook = _Comparer(labels[0], labels[1], out_dir)
    records = evaluate(sets, runners, settings, out_dir, save_images=save_images, progress=progress,
                       restart=restart, hook=hook,
                       reusable=lambda record: "max_rel_diff" in (record.get("compare") or {}))
    set_names = [s.name for s in sets]
    dpsnrs = [abs(r["compare"]["dpsnr"]) for r in records]
    rels = [r["compare"]["max_rel_diff"] for r in records]
    max_abs = max(dpsnrs) if dpsnrs else 0.0
    worst = records[int(np.argmax(rels))] if records else None
    result = ParityBenchResult(records, tolerance, max_abs, (worst["set"], worst["name"]) if worst else None,
                               max_rel=max_rel, max_rel_found=max(rels) if rels else 0.0,
                               sides=tuple((framework_name(r.label), r.weights) for r in runners))
    verdict = (f"**{'PASS' if result.ok else 'FAIL'}**: max |dPSNR| = {fmt_delta(max_abs, signed=False)} dB, max "
               f"relative output difference {result.max_rel_found:.2g} over {len(records)} images (limits "
               f"{tolerance:g} dB and {max_rel:g} per image; dPSNR = PSNR {labels[0]} - PSNR {labels[1]})")
    per_set = [[s, str(len(d)), fmt_delta(float(np.mean(d))), fmt_delta(float(np.max(np.abs(d))), signed=False)]
               for s in set_names for d in [[r["compare"]["dpsnr"] for r in records if r["set"] == s]] if d]
    extra = ["## Parity", "", verdict, "", markdown_table(["Set", "Images", "mean dPSNR", "max abs dPSNR"], per_set),
             "", _diff_table(records, labels, result.image_ok), ""]
    if worst is not None:
        strip = _strip_for(worst, out_dir, sets, runners, settings)
        from ipt_ms.data.imageio import write_image

        with atomic_output(out_dir / STRIP_FILE, overwrite=True) as tmp:
            write_image(tmp, strip, atomic=False)
        extra += [f"Largest relative output difference: {worst['set']}/{worst['name']} "
                  f"({worst['compare']['max_rel_diff']:.2g}; dPSNR {fmt_delta(worst['compare']['dpsnr'])} dB). "
                  f"Panels: input, {labels[0]}, {labels[1]}, |difference| of the float outputs on a fixed scale "
                  f"(black 0, white {STRIP_DIFF_WHITE:g} of the 0..255 range or more, the same on every run), "
                  "ground truth; crop around the largest difference.", "", f"![strip]({STRIP_FILE})", ""]
        result.paths.append(out_dir / STRIP_FILE)
    summary = summarize(records, set_names, list(labels))
    title = (f"Parity benchmark: {labels[0]} vs {labels[1]}, {settings.task}, {weights_name(runners[1].weights)} "
             f"({runners[1].weights_id[:8]})")
    paths, printed = write_eval_reports(out_dir, title, settings, runners, set_names, records, summary,
                                        extra_markdown="\n".join(extra), stem="parity_bench",
                                        extra_json={"tolerance_db": tolerance, "max_abs_dpsnr": max_abs,
                                                    "max_rel_limit": max_rel,
                                                    "max_rel_diff": result.max_rel_found,
                                                    "strip_diff_white": STRIP_DIFF_WHITE, "ok": result.ok})
    result.paths = paths + result.paths
    result.printed = printed + "\n\n" + verdict.replace("**", "")
    return result
