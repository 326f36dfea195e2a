"""Report writing shared by `ipt-ms eval` and `ipt-ms parity-bench`.

Tables like the paper's (one row per method, one column per benchmark set, published
numbers as a reference row), per-image tables, and the files: Markdown, CSV and JSON,
each written atomically (a crash leaves the previous file or none, never half of one).
Also the labelled side-by-side PNG strip used by parity-bench.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ipt_ms.eval.engine import EvalSettings, Runner, SetSummary
from ipt_ms.eval.reference import paper_value
from ipt_ms.fileio import atomic_output
from ipt_ms.tasks import Task

__all__ = ["fmt", "markdown_table", "method_name", "paper_table", "per_image_table", "settings_lines",
           "strip_image", "summary_rows", "write_csv", "write_eval_reports", "write_json", "write_text"]

Table = tuple[list[str], list[list[str]]]


def fmt(value: float | None, digits: int = 2, signed: bool = False) -> str:
    """A number for a table: fixed digits, 'inf' for identical images, '-' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table with padded columns (readable as plain text too)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def write_text(path: os.PathLike | str, text: str) -> Path:
    path = Path(path)
    with atomic_output(path, overwrite=True) as tmp:  # the report of the results folder, rewritten per run
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: os.PathLike | str, payload: dict) -> Path:
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_csv(path: os.PathLike | str, header: list[str], rows: list[list]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def task_label(task: Task) -> str:
    """The task column of a paper-style table: x2, sigma 30, rain, blur."""
    if task.kind == "sr":
        return f"x{task.scale}"
    if task.kind == "denoise":
        return f"sigma {task.sigma:g}"
    return {"derain": "rain", "deblur": "blur"}.get(task.kind, task.name)


def method_name(runner: Runner, settings: EvalSettings) -> str:
    """Row label: weights file (with its run folder when named model.ckpt, step_*, best_*) and the
    first 8 hex digits of its content digest (two runs that both export `model.ckpt` stay
    apart), framework, protocol (+x8)."""
    ensemble = " +x8" if settings.self_ensemble else ""
    from ipt_ms.eval.engine import weights_name

    return (f"IPT {weights_name(runner.weights)} ({runner.weights_id[:8]}) "
            f"[{runner.label}, {settings.protocol}{ensemble}]")


def baseline_short_name(task: Task) -> str:
    """The no-model baseline in a phrase: bicubic, noisy input, rainy input, blurred input."""
    if task.scale > 1:
        return "bicubic"
    return {"denoise": "noisy", "derain": "rainy", "deblur": "blurred"}.get(task.kind, "degraded") + " input"


def baseline_row_name(task: Task) -> str:
    """Row label of the no-model baseline (`ipt_ms.eval.baseline`)."""
    if task.scale > 1:
        return "Bicubic (no model)"
    return f"Input, {baseline_short_name(task).split()[0]} (no model)"


def paper_table(summary: dict[str, dict[str, SetSummary]], settings: EvalSettings, set_names: list[str],
                methods: dict[str, str], metric: str = "psnr", digits: int = 2,
                baseline: dict[str, SetSummary] | None = None) -> Table:
    """Method x set table of one metric: the published number first when known, then the
    no-model baseline, each method, and each method's gain over the baseline."""
    task = settings.parsed_task
    header = ["Method", "Task"] + list(set_names)
    rows = []
    published = [paper_value(task.name, s, metric) for s in set_names]
    if metric in ("psnr", "ssim") and any(v is not None for v in published):
        rows.append(["IPT (paper)", task_label(task)] + [fmt(v, digits if metric == "psnr" else 4) for v in published])
    base = [getattr(baseline.get(s), metric, None) for s in set_names] if baseline else None
    if base is not None:
        rows.append([baseline_row_name(task), task_label(task)] + [fmt(v, digits) for v in base])
    gains = []
    for label, name in methods.items():
        cells = [getattr(summary[label].get(s), metric, None) if s in summary[label] else None for s in set_names]
        rows.append([name, task_label(task)] + [fmt(v, digits) for v in cells])
        if base is not None:
            diff = [None if v is None or b is None or (math.isinf(v) and math.isinf(b)) else v - b
                    for v, b in zip(cells, base)]
            gains.append([f"  gain over {baseline_short_name(task)}",
                          task_label(task)] + [fmt(d, digits, signed=True) for d in diff])
    if len(methods) == 1:
        rows += gains
    else:  # several methods: each gain row names its method
        rows += [[f"{row[0].strip()} ({name.split(' [')[-1].rstrip(']')})"] + row[1:]
                 for row, name in zip(gains, methods.values())]
    return header, rows


def below_baseline(summary: dict[str, dict[str, SetSummary]], baseline: dict[str, SetSummary],
                   methods: dict[str, str], task: Task) -> list[str]:
    """One note per (method, set) whose PSNR-Y is below the no-model baseline's."""
    notes = []
    for label, name in methods.items():
        for set_name, s in summary.get(label, {}).items():
            b = baseline.get(set_name)
            if b is not None and s.psnr is not None and b.psnr is not None and s.psnr < b.psnr:
                notes.append(f"{name} is below the {baseline_short_name(task)} baseline on "
                             f"{set_name}: PSNR-Y {s.psnr:.2f} dB vs {b.psnr:.2f} dB ({s.psnr - b.psnr:+.2f} dB)")
    return notes


def summary_rows(summary: dict[str, dict[str, SetSummary]], task: str) -> Table:
    """One CSV row per (runner, set) with every mean and the timing."""
    header = ["runner", "set", "images", "psnr_y", "psnr_rgb", "ssim_y", "seconds", "images_per_second",
              "tiles", "paper_psnr"]
    rows = []
    for label, per_set in summary.items():
        for set_name, s in per_set.items():
            rows.append([label, set_name, s.images, s.psnr, s.psnr_rgb, s.ssim, round(s.seconds, 3),
                         None if s.images_per_second is None else round(s.images_per_second, 4), s.tiles,
                         paper_value(task, set_name)])
    return header, rows


def per_image_table(records: list[dict], labels: list[str], digits: int = 4) -> Table:
    """Set, image and each runner's PSNR-Y / SSIM-Y / seconds."""
    header = ["Set", "Image"]
    for label in labels:
        header += [f"PSNR {label}", f"SSIM {label}", f"s {label}"]
    rows = []
    for rec in records:
        row = [rec["set"], rec["name"]]
        for label in labels:
            run = rec["runs"].get(label, {})
            row += [fmt(run.get("psnr"), digits), fmt(run.get("ssim"), 4), fmt(run.get("seconds"), 2)]
        rows.append(row)
    return header, rows


def settings_lines(settings: EvalSettings, runners: list[Runner], sets: list[str]) -> list[str]:
    """Markdown bullet list of what produced the numbers."""
    task = settings.parsed_task
    lines = [f"- task: `{settings.task}`; sets: {', '.join(sets)}",
             f"- tiling protocol: `{settings.protocol}`; self-ensemble x8: {'yes' if settings.self_ensemble else 'no'}",
             f"- PSNR/SSIM on Y (BT.601, official coefficients), output quantised; shave: "
             f"{settings.shave if settings.shave is not None else 'scale for SR, none for scale 1 (official)'}"]
    if task.kind == "denoise":
        lines.append(f"- noise: sigma {task.sigma:g}, seeded per (seed {settings.seed}, image name), "
                     f"{'clipped to [0, 255]' if settings.clip else 'not clipped'}, not rounded")
    if task.kind == "sr":
        source = f"official files (LR_bicubic/X{task.scale})" if settings.lr == "files" else settings.lr
        lines.append(f"- LR images: {source}")
    for r in runners:
        lines.append(f"- {r.label}: `{r.weights}` (sha256 {r.weights_id[:12]})")
    return lines


def write_eval_reports(out_dir: os.PathLike | str, title: str, settings: EvalSettings, runners: list[Runner],
                       set_names: list[str], records: list[dict], summary: dict[str, dict[str, SetSummary]],
                       extra_markdown: str = "", extra_json: dict | None = None,
                       stem: str = "report") -> tuple[list[Path], str]:
    """Write <stem>.md/.json, summary.csv and per_image.csv; returns (paths, the printed tables)."""
    from ipt_ms.eval.engine import baseline_label, summarize

    out_dir = Path(out_dir)
    methods = {r.label: method_name(r, settings) for r in runners}
    labels = [r.label for r in runners]
    base_label = baseline_label(settings)
    has_baseline = any(base_label in rec["runs"] for rec in records)
    baseline = summarize(records, set_names, [base_label])[base_label] if has_baseline else None
    tables = [("PSNR (dB, Y)", paper_table(summary, settings, set_names, methods, "psnr", baseline=baseline))]
    if settings.ssim:
        tables.append(("SSIM (Y)", paper_table(summary, settings, set_names, methods, "ssim", digits=4,
                                               baseline=baseline)))
    tables.append(("PSNR (dB, RGB)", paper_table(summary, settings, set_names, methods, "psnr_rgb",
                                                 baseline=baseline)))
    notes = below_baseline(summary, baseline, methods, settings.parsed_task) if baseline else []
    printed = "\n\n".join(f"{name}\n{markdown_table(*table)}" for name, table in tables[:2])
    if notes:
        printed += "\n\n" + "\n".join(f"note: {n}" for n in notes)
    timing_rows = [[lb, ss, str(s.images), fmt(s.seconds, 1), fmt(s.images_per_second, 3), str(s.tiles)]
                   for lb, per in summary.items() for ss, s in per.items()]
    parts = [f"# {title}", "", *settings_lines(settings, runners, set_names), ""]
    if baseline:
        parts[-1:-1] = [f"- baseline: {baseline_row_name(settings.parsed_task)}, scored with the same metric code"
                        + (" (MATLAB-exact bicubic upscaling of the LR input)" if settings.parsed_task.scale > 1
                           else " (the degraded input itself)")]
    for name, table in tables:
        parts += [f"## {name}", "", markdown_table(*table), ""]
    if notes:
        parts += [f"**Note:** {n}." for n in notes] + [""]
    if baseline:
        summary = {**summary, base_label: baseline}  # the CSV and JSON carry the baseline too
        labels = labels + [base_label]
    if extra_markdown:
        parts += [extra_markdown.rstrip(), ""]
    parts += ["## Timing", "", markdown_table(["Runner", "Set", "Images", "Seconds", "Images/s", "Tiles"],
                                              timing_rows), "",
              "## Per image", "", markdown_table(*per_image_table(records, labels)), ""]
    means = {lb: {s: asdict(v) for s, v in per.items()} for lb, per in summary.items()}
    payload = {"title": title, "settings": settings.to_dict(), "runners": [r.describe() for r in runners],
               "sets": set_names, "summary": means,
               "paper_psnr": {s: paper_value(settings.task, s) for s in set_names}, "images": records}
    if baseline:
        payload["baseline"] = {"label": base_label, "method": baseline_row_name(settings.parsed_task)}
        payload["below_baseline"] = notes
    if extra_json:
        payload.update(extra_json)
    csv_rows = [[rec["set"], rec["name"], lb, rec["runs"][lb]["psnr"], rec["runs"][lb]["psnr_rgb"],
                 rec["runs"][lb].get("ssim"), rec["runs"][lb]["seconds"], rec["runs"][lb].get("tiles")]
                for rec in records for lb in labels if lb in rec["runs"]]
    paths = [write_text(out_dir / f"{stem}.md", "\n".join(parts)),
             write_json(out_dir / f"{stem}.json", payload),
             write_csv(out_dir / "summary.csv", *summary_rows(summary, settings.task)),
             write_csv(out_dir / "per_image.csv", ["set", "image", "runner", "psnr_y", "psnr_rgb", "ssim_y",
                                                   "seconds", "tiles"], csv_rows)]
    return paths, printed


def _label_panel(panel: np.ndarray, text: str) -> np.ndarray:
    """A panel with a black title bar above it (PIL's built-in bitmap font)."""
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (panel.shape[1], 16), (0, 0, 0))
    ImageDraw.Draw(bar).text((3, 2), text, fill=(255, 255, 255))
    return np.concatenate([np.asarray(bar), panel], axis=0)


def strip_image(panels: list[tuple[str, np.ndarray]], gap: int = 4) -> np.ndarray:
    """Labelled H x W x 3 panels side by side (uint8), separated by white gaps."""
    from ipt_ms.data.imageio import to_uint8

    height = max(p.shape[0] for _, p in panels)
    columns = []
    for title, panel in panels:
        panel = to_uint8(panel)
        panel = np.pad(panel, ((0, height - panel.shape[0]), (0, 0), (0, 0)))
        columns += [_label_panel(panel, title), np.full((height + 16, gap, 3), 255, np.uint8)]
    return np.concatenate(columns[:-1], axis=1)
