"""Training metrics: one JSON object per logged step (metrics.jsonl) and loss-curve plots."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ipt_ms.fileio import atomic_output, save_figure

#: key of a logged record holding ``[step, task, loss]`` of every step since the previous logged one
STEP_LOSSES = "step_losses"


class MetricsLog:
    """Append-only JSONL writer, flushed per line so a killed run keeps what it logged.

    `truncate_after(step)` drops records beyond a step: a resumed run repeats the steps
    taken after its checkpoint, and the file should hold each step once.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = None

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        with atomic_output(self.path, overwrite=True) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        self._handle.write(json.dumps(record, allow_nan=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl; a line cut short by a kill is ignored."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def _moving_average(values: list[float], window: int) -> list[float]:
    out, total, queue = [], 0.0, []
    for v in values:
        queue.append(v)
        total += v
        if len(queue) > window:
            total -= queue.pop(0)
        out.append(total / len(queue))
    return out


def step_losses(records: list[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Per task, (steps, losses) of every training step the logged records cover, in step
    order: their ``step_losses`` (`STEP_LOSSES`), or the logged step alone in a log of an
    earlier version. Non-finite losses (a skipped step) are left out."""
    by_task: dict[str, dict[int, float]] = {}
    for r in records:
        if "loss" not in r or "task" not in r:
            continue
        entries = r.get(STEP_LOSSES)
        if not isinstance(entries, list):
            entries = [[r.get("step", 0), r["task"], r["loss"]]]
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 3):
                continue
            step, task, loss = entry
            if isinstance(loss, (int, float)) and math.isfinite(loss) and isinstance(step, int):
                by_task.setdefault(str(task), {})[step] = float(loss)
    return {task: (sorted(steps), [steps[s] for s in sorted(steps)]) for task, steps in by_task.items()}


def plot_loss_curves(metrics_path: str | os.PathLike, out_path: str | os.PathLike) -> Path | None:
    """One panel per task: the raw loss of every step (light) under its moving average,
    and (when the run validated) one panel per task of validation PSNR-Y against its
    baseline (PNG).

    Returns None when there is nothing to plot or matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a runtime dependency (pyproject.toml)
        return None
    everything = read_metrics(metrics_path)
    records = [r for r in everything if "loss" in r and math.isfinite(r["loss"])]
    vals = [r for r in everything if r.get("kind") == "val"]
    per_step = step_losses(everything)
    tasks = list(per_step)
    if not tasks:
        return None
    val_tasks = list(dict.fromkeys(t for r in vals for t in r["tasks"]))
    panels = len(tasks) + len(val_tasks)
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        mine = [r for r in records if r["task"] == task]
        steps, losses = per_step[task]
        ax.plot(steps, losses, lw=0.6, alpha=0.35, color="C0", label="loss (every step)")
        window = max(1, len(losses) // 20)
        ax.plot(steps, _moving_average(losses, window), lw=1.5, color="C0", label=f"moving avg ({window} steps)")
        if any(r.get("contrastive", 0.0) for r in mine):
            # L1 is logged per record (every log_every steps), not per step
            ax.plot([r["step"] for r in mine], [r["l1"] for r in mine], lw=0.8, color="C1", alpha=0.7, label="L1")
        ax.set_title(task)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax, task in zip(list(axes.flat)[len(tasks):], val_tasks):
        mine = [(r["step"], r["tasks"][task]) for r in vals if task in r["tasks"]]
        steps = [s for s, _ in mine]
        ax.plot(steps, [v["psnr_y"] for _, v in mine], marker="o", ms=3, color="C2", label="model")
        ax.plot(steps, [v["baseline_psnr_y"] for _, v in mine], ls="--", color="C7", label=mine[0][1]["baseline"])
        ax.set_title(f"{task}: validation")
        ax.set_xlabel("step")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, out_path)
