"""The evaluation loop shared by `ipt-ms eval` and `ipt-ms parity-bench`.

A *runner* is one framework's predictor for one task (anything `create_predictor` makes,
so an ONNX Runtime predictor plugs in without changes here). `evaluate` feeds every image
of every set to every runner with the same tiles (same protocol, same input array, hence
the same seeded noise), scores the outputs and appends one JSON line per image to
``results.jsonl`` as soon as it is computed. The first line records the settings that
determine the numbers (weights digests, task, protocol, self-ensemble, noise seed and
clipping, LR source, shave); a re-run with the same settings skips the images already
there, a run with different settings refuses to mix them. Reports are written by the
callers, atomically, only after every selected image is done, so an interrupted run
leaves the log (resumable) and no half-written report.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ipt_ms.convert.weights import check_regular_file
from ipt_ms.errors import IPTError, sanitize
from ipt_ms.eval.sets import EvalSet
from ipt_ms.fileio import atomic_output
from ipt_ms.metrics import SSIM_WINDOW, default_shave, mean_score, psnr, quantize, ssim
from ipt_ms.spec import IPTSpec
from ipt_ms.tasks import Task, parse_task

__all__ = ["EvalSettings", "ResultsLog", "Runner", "baseline_label", "create_runner", "evaluate", "is_task_name",
           "score", "score_baseline", "summarize", "weights_digest"]

RESULTS_FILE = "results.jsonl"
_LOG_KIND = "ipt-ms-eval-results"
_LOG_VERSION = 1

#: hook(set name, pair, {label: output HWC float32}, {label: metrics}) -> extra fields for the record
ImageHook = Callable[[str, object, dict[str, np.ndarray], dict[str, dict]], dict]


@dataclass(frozen=True)
class EvalSettings:
    """Everything besides the weights that changes the numbers of an evaluation."""

    task: str
    protocol: str = "official"
    self_ensemble: bool = False
    seed: int = 0
    clip: bool = True
    lr: str = "files"
    shave: int | None = None
    ssim: bool = True

    @property
    def parsed_task(self) -> Task:
        return parse_task(self.task)

    def to_dict(self) -> dict:
        return asdict(self)


def weights_digest(path: os.PathLike | str, **overrides) -> str:
    """sha256 of the weights' content (official keys, dtypes, shapes, values, architecture).

    Identifies the weights a result came from independently of the file: torch.save
    writes a random serialization id, and a .pt and its converted .ckpt hold the same
    model, so neither the bytes nor the format may decide whether a log can be resumed.
    """
    from ipt_ms.convert.weights import load_weights, state_digest

    if Path(path).suffix.lower() == ".onnx":  # an `ipt-ms export` file: its recorded identity
        from ipt_ms.onnx_runtime import onnx_weights_digest

        return onnx_weights_digest(path)
    return state_digest(*load_weights(path, **overrides))


class Runner:
    """One framework's predictor for one task, with what identifies its weights."""

    def __init__(self, label: str, predictor, spec: IPTSpec, weights: str, weights_id: str):
        self.label, self.predictor, self.spec = label, predictor, spec
        self.weights, self.weights_id = str(weights), weights_id
        self.scale = int(predictor.scale)
        self.task = spec.task_names[predictor.task_idx]
        self.tiles = 0

    def _predict(self, tiles: np.ndarray) -> np.ndarray:
        self.tiles += len(tiles)
        return self.predictor(tiles)

    def restore(self, image: np.ndarray, protocol: str, self_ensemble: bool = False) -> np.ndarray:
        """Whole H x W x 3 image -> float32 H*s x W*s x 3 (unclipped), tiled by `protocol`."""
        from ipt_ms.inference import restore_array

        return restore_array(self._predict, image, scale=self.scale, patch=self.spec.patch_size, protocol=protocol,
                             self_ensemble=self_ensemble)

    def describe(self) -> dict:
        return {"label": self.label, "framework": getattr(self.predictor, "framework", self.label),
                "weights": self.weights, "sha256": self.weights_id, "task": self.task}


def _resolve_task_kind(spec: IPTSpec, predictor) -> None:
    name = spec.task_names[predictor.task_idx]
    if parse_task(name).kind == "restore":
        raise IPTError(f"the weights do not say what head {predictor.task_idx} ({name}) restores; name the task, "
                       "e.g. --task denoise_30, --task derain or --task deblur")


def create_runner(framework: str, weights: str, task: str, *, label: str | None = None, batch_size: int = 64,
                  device: str = "auto", mode: str = "graph", progress: bool = False, levers: str | None = None,
                  **overrides) -> Runner:
    """Load `weights` in `framework` for `task` (via `create_predictor`, which applies `levers`).

    A single-task checkpoint that does not record its task name (the released
    IPT_dn30.pt, IPT_derain.pt, ...) is accepted when `task` is a well-formed task name
    (denoise_30, derain) of the same scale (`IPTSpec.name_placeholder_task`).
    """
    from ipt_ms.predictors import create_predictor

    check_regular_file(weights)
    predictor, spec = create_predictor(framework, weights, task, batch_size=batch_size, device=device, mode=mode,
                                       progress=progress, levers=levers, **overrides)
    _resolve_task_kind(spec, predictor)
    digest = weights_digest(weights, **overrides)
    return Runner(label or getattr(predictor, "framework", framework), predictor, spec, weights, digest)


def is_task_name(task: str) -> bool:
    try:
        parse_task(task)
    except IPTError:
        return False
    return True


_GENERIC_STEM = re.compile(r"^(model|weights|checkpoint|step_\d+|best_.+)$")


def weights_name(path: os.PathLike | str, printable: bool = True) -> str:
    """How reports name weights: the file name, with its run folder when the name alone says
    nothing (`model.ckpt`, `step_000000300.ckpt`, `best_sr_x2.ckpt` -> `tiny_finetune/model.ckpt`).
    `printable`: control characters escaped (`ipt_ms.errors.sanitize`), as tables and titles
    print it; else as the file system spells it."""
    path = Path(path)
    if not _GENERIC_STEM.match(path.stem):
        name = path.name
    else:
        folder = path.resolve().parent
        if folder.name == "checkpoints":
            folder = folder.parent
        name = f"{folder.name}/{path.name}" if folder.name else path.name
    return sanitize(name) if printable else name


class ResultsLog:
    """Append-only JSON-lines log of per-image results, headed by the run's settings.

    A record that does not parse, or parses without what every record holds (set, name,
    sizes, a score per runner), is left out with one warning and computed again; the log
    is rewritten without it, so the warning is not repeated."""

    def __init__(self, path: os.PathLike | str, settings: dict, restart: bool = False):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))  # canonical (tuples -> lists)
        self.records: dict[tuple[str, str], dict] = {}
        if restart or not self.path.exists():
            self._start()
        else:
            self._load()

    def _start(self) -> None:
        header = {"kind": _LOG_KIND, "version": _LOG_VERSION, "settings": self.settings}
        with atomic_output(self.path, overwrite=True) as tmp:  # eval's own results file
            tmp.write_text(json.dumps(header) + "\n")

    def _load(self) -> None:
        raw = self.path.read_bytes()
        *lines, tail = raw.split(b"\n")  # every complete record ends with a newline
        try:
            header = json.loads(lines[0]) if lines else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("kind") != _LOG_KIND:
            raise IPTError(f"{self.path} is not an ipt-ms results log; use another --out, or --restart")
        if header.get("settings") != self.settings:
            old = header.get("settings") or {}
            changed = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
            raise IPTError(f"{self.path} holds results made with different settings ({', '.join(changed)}); "
                           "use another --out, or --restart to discard them")
        labels = [r.get("label") for r in self.settings.get("runners", []) if isinstance(r, dict)]
        kept, dropped = [lines[0]], []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not _complete_record(record, labels):
                dropped.append(number)
                continue
            self.records[(record["set"], record["name"])] = record
            kept.append(line)
        if dropped:
            logging.getLogger("ipt_ms.eval").warning(
                "%s: %d damaged or incomplete line(s) ignored (line %s); those images are computed again",
                self.path, len(dropped), ", ".join(map(str, dropped[:5])) + (", ..." if len(dropped) > 5 else ""))
            with atomic_output(self.path, overwrite=True) as tmp:  # eval's own results file
                tmp.write_bytes(b"\n".join(kept) + b"\n")
        elif tail:  # a record cut off by an interruption: drop it, it will be recomputed
            with open(self.path, "r+b") as fh:
                fh.truncate(len(raw) - len(tail))

    def append(self, record: dict) -> None:
        """Add one image's record durably (flushed and synced before returning)."""
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records[(record["set"], record["name"])] = record


def _complete_record(record, labels: list) -> bool:
    """Whether a logged record holds what the reports read: set, name, sizes, a PSNR per runner."""
    if not isinstance(record, dict) or not isinstance(record.get("runs"), dict):
        return False
    if not all(isinstance(record.get(k), str) for k in ("set", "name")):
        return False
    if not all(isinstance(record.get(k), list) and len(record[k]) == 2 for k in ("input_size", "output_size")):
        return False
    runs = record["runs"]
    return all(isinstance(runs.get(label), dict) and isinstance(runs[label].get("psnr"), (int, float))
               for label in labels)


def score(output: np.ndarray, target: np.ndarray, scale: int, settings: EvalSettings) -> dict:
    """PSNR-Y, PSNR-RGB and (if enabled and the image is large enough) SSIM-Y of one output."""
    shave = default_shave(scale) if settings.shave is None else settings.shave
    result = {"psnr": psnr(output, target, scale, shave=shave),
              "psnr_rgb": psnr(output, target, scale, channel="rgb", shave=shave), "ssim": None}
    if settings.ssim and min(output.shape[:2]) - 2 * shave >= SSIM_WINDOW:
        result["ssim"] = ssim(output, target, scale, shave=shave)
    return result


def image_path(out_dir: Path, label: str | None, set_name: str, name: str) -> Path:
    """Where --save-images puts an output (one folder per runner when there are several)."""
    base = out_dir / "images" / label if label else out_dir / "images"
    return base / set_name / f"{name}.png"


def _save_output(path: Path, output: np.ndarray) -> None:
    from ipt_ms.data.imageio import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:  # eval's own image folder, rewritten per run
        write_image(tmp, quantize(output).astype(np.uint8), atomic=False)


def run_settings(settings: EvalSettings, runners: list[Runner]) -> dict:
    """The log header: the settings plus each runner's weights digest and framework."""
    return {**settings.to_dict(), "runners": [{"label": r.label, "sha256": r.weights_id,
                                               "framework": getattr(r.predictor, "framework", r.label)}
                                              for r in runners]}


def baseline_label(settings: EvalSettings) -> str:
    """Key of the no-model baseline in each record's "runs" ("bicubic" for SR, else "input")."""
    from ipt_ms.eval.baseline import baseline_name

    return baseline_name(settings.parsed_task)


def score_baseline(pair, scale: int, settings: EvalSettings) -> dict:
    """The baseline's metrics for one image (`ipt_ms.eval.baseline`), scored like a model output."""
    from ipt_ms.eval.baseline import baseline_output

    start = time.perf_counter()
    out = baseline_output(pair.lq, settings.parsed_task)
    return {**score(out, pair.gt, scale, settings), "seconds": round(time.perf_counter() - start, 4), "tiles": 0}


def evaluate(sets: list[EvalSet], runners: list[Runner], settings: EvalSettings, out_dir: os.PathLike | str, *,
             save_images: bool = False, progress: bool = True, restart: bool = False,
             hook: ImageHook | None = None, baseline: bool = True, reusable=None) -> list[dict]:
    """Evaluate every image of `sets` with every runner; returns the records in set order.

    With `baseline`, each record's "runs" also holds the no-model baseline (bicubic for SR,
    the degraded input otherwise) under `baseline_label(settings)`, scored the same way.
    Images already in ``out_dir/results.jsonl`` (same settings) are not recomputed, unless
    --save-images asks for an output file that is missing or `reusable(record)` is false
    (a hook's fields missing); one line says how many were reused.
    """

    if not runners:
        raise IPTError("nothing to evaluate with: no runner")
    out_dir = Path(out_dir)
    log = ResultsLog(out_dir / RESULTS_FILE, run_settings(settings, runners), restart=restart)
    labels = [r.label for r in runners] if len(runners) > 1 else [None]
    base_label = baseline_label(settings)
    records = []
    reused: list[dict] = []
    try:
        _evaluate_sets(sets, runners, settings, out_dir, log, labels, records, save_images, progress, hook,
                       base_label if baseline else None, reusable or (lambda record: True), reused)
    except KeyboardInterrupt as err:  # SIGINT/SIGTERM (ipt_ms.signals): the log stays resumable
        from ipt_ms.signals import add_detail

        add_detail(err, f"{len(log.records)} image(s) kept in {log.path}; run the same command again to resume")
        raise
    if reused:
        logging.getLogger("ipt_ms.eval").info(
            "reused %d of %d image result(s) from %s (same weights digest and settings); --restart recomputes them",
            len(reused), len(records), log.path)
    return records


def _evaluate_sets(sets, runners, settings, out_dir, log, labels, records, save_images, progress, hook,
                   base_label, reusable, reused) -> None:
    from ipt_ms.progress import progress_bar

    for eval_set in sets:
        names = eval_set.names
        bar = progress_bar(range(len(names)), total=len(names), desc=eval_set.name, unit="img", enable=progress)
        for index in bar:
            name = names[index]
            done = log.records.get((eval_set.name, name))
            wanted = [image_path(out_dir, lb, eval_set.name, name) for lb in labels] if save_images else []
            if done is not None and all(p.is_file() for p in wanted) and reusable(done):
                reused.append(done)
                if base_label is not None and base_label not in done["runs"]:  # a log written before baselines existed
                    done["runs"][base_label] = score_baseline(eval_set.dataset[index], runners[0].scale, settings)
                records.append(done)
                continue
            pair = eval_set.dataset[index]
            outputs, runs = {}, {}
            if base_label is not None:
                runs[base_label] = score_baseline(pair, runners[0].scale, settings)
            for runner in runners:
                runner.tiles = 0
                start = time.perf_counter()
                out = runner.restore(pair.lq, settings.protocol, settings.self_ensemble)
                seconds = time.perf_counter() - start
                outputs[runner.label] = out
                runs[runner.label] = {**score(out, pair.gt, runner.scale, settings), "seconds": round(seconds, 4),
                                      "tiles": runner.tiles}
            for label, path in zip(labels, wanted):
                _save_output(path, outputs[label or runners[0].label])
            record = {"set": eval_set.name, "name": name, "input_size": list(pair.lq.shape[:2]),
                      "output_size": list(next(iter(outputs.values())).shape[:2]), "runs": runs}
            if hook is not None:
                record.update(hook(eval_set.name, pair, outputs, runs))
            log.append(record)
            records.append(record)



@dataclass
class SetSummary:
    """Mean metrics of one runner on one set."""

    images: int
    psnr: float | None
    psnr_rgb: float | None
    ssim: float | None
    seconds: float
    tiles: int = 0
    images_per_second: float | None = field(default=None)


def summarize(records: list[dict], set_names: list[str], labels: list[str]) -> dict[str, dict[str, SetSummary]]:
    """label -> set -> means over that set's records (sets with no records are left out)."""
    summary: dict[str, dict[str, SetSummary]] = {}
    for label in labels:
        summary[label] = {}
        for set_name in set_names:
            runs = [r["runs"][label] for r in records if r["set"] == set_name and label in r["runs"]]
            if not runs:
                continue
            seconds = float(sum(x["seconds"] for x in runs))
            summary[label][set_name] = SetSummary(
                images=len(runs), psnr=mean_score([x["psnr"] for x in runs]),
                psnr_rgb=mean_score([x["psnr_rgb"] for x in runs]), ssim=mean_score([x.get("ssim") for x in runs]),
                seconds=seconds, tiles=int(sum(x.get("tiles", 0) for x in runs)),
                images_per_second=len(runs) / seconds if seconds > 0 else None)
    return summary
