"""Validation during training: PSNR-Y / SSIM-Y per task, the baseline, the best weights.

Every `val.every` optimizer steps (and at the end of a run) rank 0 restores the
validation images of every task with the weights being trained -- the EMA averages when
`train.ema_decay` is set -- through the evaluation code: the official tiling
(`ipt_ms.inference.restore_array`), and `ipt_ms.eval.engine.score` (PSNR-Y as the
official code, SSIM-Y). The no-model baseline of each image (`ipt_ms.eval.baseline`:
bicubic for SR, the degraded input otherwise) is scored the same way, once.

The images come from either

* ``val.data``: a benchmark-layout folder read by `ipt_ms.eval.sets.load_sets` (Set5,
  CBSD68, Rain100L, ... with seeded noise), ``val.sets`` naming the sets; or
* ``val.holdout``: that many training images (or pairs), picked with the run's seed and
  removed from training, cut into ``val.crops`` crops of ``val.crop`` px (the centre one,
  then positions drawn with the run's seed and the image's name, the same at every
  validation and on resume) and degraded per task by `ipt_ms.data.degrade.Degrader` with
  (seed, name)-seeded draws. The scores of all crops are averaged: one crop of a photo
  is too few pixels to tell two checkpoints apart (the best weights would follow noise).

The best PSNR-Y per task and its step live in the training checkpoint, so a resumed run
keeps comparing against them; each new best is written atomically to
``best_<task>.ckpt`` (weights file, as model.ckpt).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ipt_ms.config import ConfigError
from ipt_ms.data.pairs import Pair
from ipt_ms.errors import IPTError
from ipt_ms.metrics import mean_score
from ipt_ms.spec import IPTSpec
from ipt_ms.tasks import Task

if TYPE_CHECKING:
    from ipt_ms.train.config import TrainConfig

__all__ = ["TaskResult", "ValidationReport", "Validator", "best_weights_name", "split_holdout"]

log = logging.getLogger("ipt_ms.train")


def best_weights_name(task: str) -> str:
    return f"best_{task}.ckpt"


@dataclass
class TaskResult:
    """Mean metrics of one task's validation images at one step."""

    psnr: float
    ssim: float | None
    baseline_psnr: float
    baseline_ssim: float | None
    baseline: str  # "bicubic" or "input"
    images: int
    crops: int  # scored pairs: `val.crops` per held-out image, one per benchmark image
    best_psnr: float
    best_step: int
    improved: bool = False
    strips: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def gain(self) -> float:
        return self.psnr - self.baseline_psnr


@dataclass
class ValidationReport:
    step: int
    tasks: dict[str, TaskResult]

    def as_dict(self) -> dict:
        return {task: {"psnr_y": r.psnr, "ssim_y": r.ssim, "baseline": r.baseline, "baseline_psnr_y": r.baseline_psnr,
                       "baseline_ssim_y": r.baseline_ssim, "images": r.images, "crops": r.crops,
                       "best_psnr_y": r.best_psnr,
                       "best_step": r.best_step} for task, r in self.tasks.items()}

    def lines(self) -> list[str]:
        out = []
        for task, r in self.tasks.items():
            ssim = f" SSIM-Y {r.ssim:.4f}" if r.ssim is not None else ""
            base_ssim = f" / {r.baseline_ssim:.4f}" if r.baseline_ssim is not None else ""
            crops = f" ({r.crops} crops)" if r.crops != r.images else ""
            out.append(f"{task} PSNR-Y {r.psnr:.2f} dB{ssim} on {r.images} image(s){crops}; {r.baseline} "
                       f"{r.baseline_psnr:.2f} dB{base_ssim} ({r.gain:+.2f} dB); best {r.best_psnr:.2f} dB at step "
                       f"{r.best_step}" + (" (new best)" if r.improved else ""))
        return out

    def short(self) -> str:
        """For the progress bar: 'sr_x2 33.10 (+0.52)'."""
        return " ".join(f"{task} {r.psnr:.2f} ({r.gain:+.2f})" for task, r in self.tasks.items())


# ------------------------------------------------------------------------------- data
def split_holdout(items, count: int, seed: int):
    """(training items, held-out items): `count` of them picked with `seed`, order kept.

    `items` is a list of image files or a `PairDataset` of stored pairs."""
    from ipt_ms.data.pairs import PairDataset
    from ipt_ms.data.seeding import rng_from

    n = len(items)
    if count >= n:
        raise ConfigError(f"val.holdout: {count} image(s) held out of {n}: nothing would be left to train on")
    chosen = set(int(i) for i in rng_from(seed, "val-holdout").permutation(n)[:count])
    if isinstance(items, PairDataset):
        names = items.names
        return (items.subset([names[i] for i in range(n) if i not in chosen]),
                items.subset([names[i] for i in sorted(chosen)]))
    return [p for i, p in enumerate(items) if i not in chosen], [items[i] for i in sorted(chosen)]


def _centre(img: np.ndarray, height: int, width: int) -> np.ndarray:
    top, left = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
    return np.ascontiguousarray(img[top:top + height, left:left + width])


def _crop_side(size: int, crop: int | None, scale: int) -> int:
    side = size if crop is None else min(size, crop)
    return side - side % scale


def _extra_corners(height: int, width: int, h: int, w: int, count: int, seed: int, name: str) -> list[tuple[int, int]]:
    """Up to `count` distinct top-left corners of h x w crops inside a height x width grid,
    other than the centre one, drawn with (seed, name): the same at every call."""
    from ipt_ms.data.seeding import rng_from

    centre = ((height - h) // 2, (width - w) // 2)
    spots = (height - h + 1) * (width - w + 1) - 1
    rng = rng_from(seed, "val-crops", name)
    corners: list[tuple[int, int]] = []
    for _ in range(20 * count):
        if len(corners) >= min(count, spots):
            break
        corner = (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)))
        if corner != centre and corner not in corners:
            corners.append(corner)
    return corners


def holdout_pairs(held, task: Task, cfg: TrainConfig) -> list[Pair]:
    """Validation pairs of one task from held-out training images or pairs: the centre
    crop of every image first (the strips show those), then the other `val.crops - 1` crops
    of each image (named ``<name>@<top>,<left>``, in target pixels)."""
    from ipt_ms.data.degrade import Degrader
    from ipt_ms.data.imageio import read_image
    from ipt_ms.data.pairs import PairDataset

    crop, s, seed, extra = cfg.val.crop, task.scale, cfg.train.seed, cfg.val.crops - 1
    centres, others = [], []
    if isinstance(held, PairDataset):
        for pair in held:
            h = _crop_side(pair.gt.shape[0], crop, s) // s
            w = _crop_side(pair.gt.shape[1], crop, s) // s
            centres.append(Pair(_centre(pair.lq, h, w), _centre(pair.gt, h * s, w * s), pair.name))
            lq_h, lq_w = min(pair.lq.shape[0], pair.gt.shape[0] // s), min(pair.lq.shape[1], pair.gt.shape[1] // s)
            for top, left in _extra_corners(lq_h, lq_w, h, w, extra, seed, pair.name):
                others.append(Pair(np.ascontiguousarray(pair.lq[top:top + h, left:left + w]),
                                   np.ascontiguousarray(pair.gt[top * s:(top + h) * s, left * s:(left + w) * s]),
                                   f"{pair.name}@{top * s},{left * s}"))
        return centres + others
    degrader = Degrader(task, clip=cfg.data.clip_noise, rain=cfg.data.rain_preset)
    for path in held:
        clean, name = read_image(path), Path(path).stem
        h, w = _crop_side(clean.shape[0], crop, s), _crop_side(clean.shape[1], crop, s)
        lq, gt = degrader(_centre(clean, h, w), seed, name)
        centres.append(Pair(lq, gt, name))
        # corners on the scale's grid, so an SR crop's low-resolution image lines up with it
        for top, left in _extra_corners(clean.shape[0] // s, clean.shape[1] // s, h // s, w // s, extra, seed, name):
            part = f"{name}@{top * s},{left * s}"
            lq, gt = degrader(np.ascontiguousarray(clean[top * s:top * s + h, left * s:left * s + w]), seed, part)
            others.append(Pair(lq, gt, part))
    return centres + others


def benchmark_pairs(cfg: TrainConfig, task: Task) -> list[Pair]:
    """Validation pairs of one task from `val.data` (the evaluation loaders and checks)."""
    from ipt_ms.eval.sets import default_sets, load_sets

    names = cfg.val.sets or default_sets(task)[:1]
    try:
        sets = load_sets(cfg.val.data, names, task, seed=cfg.train.seed, clip=cfg.data.clip_noise, lr="auto",
                         limit=cfg.val.limit)
    except IPTError as err:
        raise ConfigError(f"val.data: {err}") from None
    return [pair for s in sets for pair in s.dataset]


# ------------------------------------------------------------------------------- running
class Validator:
    """Scores the network on fixed validation pairs per task; tracks the best per task."""

    def __init__(self, cfg: TrainConfig, spec: IPTSpec, pairs: dict[str, list[Pair]], run_dir: Path,
                 images: int | None = None):
        self.cfg, self.spec, self.pairs = cfg, spec, pairs
        self.images = images  # held-out images the pairs are crops of (None: one pair per image)
        self.run_dir = run_dir
        self.best: dict[str, dict] = {}  # task -> {"psnr", "step"}: in the training checkpoint
        self._baselines: dict[str, list[dict]] = {}
        self._net = None

    @classmethod
    def build(cls, cfg: TrainConfig, spec: IPTSpec, held, run_dir: Path) -> Validator:
        pairs = {}
        for task_name, task in zip(spec.task_names, spec.tasks):
            pairs[task_name] = holdout_pairs(held, task, cfg) if held is not None else benchmark_pairs(cfg, task)
            if not pairs[task_name]:
                raise ConfigError(f"val: no validation images for {task_name}")
        return cls(cfg, spec, pairs, run_dir, images=len(held) if held is not None else None)

    def _settings(self, task: str):
        from ipt_ms.eval.engine import EvalSettings

        return EvalSettings(task=task, protocol=self.cfg.val.protocol, seed=self.cfg.train.seed,
                            clip=self.cfg.data.clip_noise, ssim=self.cfg.val.ssim)

    def _eval_net(self, arrays: dict[str, np.ndarray]):
        """A separate inference network holding `arrays` (so the training graph is never recompiled)."""
        import mindspore as ms

        from ipt_ms.inference import build_model

        if self._net is None:
            self._net = build_model(self.spec)
        for p in self._net.get_parameters():
            p.set_data(ms.Tensor(np.ascontiguousarray(arrays[p.name]), dtype=p.dtype))
        return self._net

    def baseline(self, task_name: str) -> list[dict]:
        """Scores of the baseline restoration of every image (computed once per run)."""
        from ipt_ms.eval.baseline import baseline_output
        from ipt_ms.eval.engine import score

        if task_name not in self._baselines:
            task = self.spec.tasks[self.spec.task_index(task_name)]
            self._baselines[task_name] = [score(baseline_output(p.lq, task), p.gt, task.scale,
                                                self._settings(task_name)) for p in self.pairs[task_name]]
        return self._baselines[task_name]

    def run(self, arrays: dict[str, np.ndarray], step: int, should_stop=lambda: False) -> ValidationReport | None:
        """Validate the weights `arrays` (MindSpore names); None if `should_stop()` turned true."""
        from ipt_ms.eval.baseline import baseline_name, baseline_output
        from ipt_ms.eval.engine import score
        from ipt_ms.inference import MindSporePredictor, restore_array
        from ipt_ms.metrics import quantize

        net = self._eval_net(arrays)
        report = ValidationReport(step, {})
        for task_name, pairs in self.pairs.items():
            task = self.spec.tasks[self.spec.task_index(task_name)]
            predictor = MindSporePredictor(net, self.spec, task_name, batch_size=8)
            scores, strips = [], {}
            for k, pair in enumerate(pairs):
                if should_stop():
                    return None
                out = restore_array(predictor, pair.lq, scale=task.scale, patch=self.spec.patch_size,
                                    protocol=self.cfg.val.protocol)
                scores.append(score(out, pair.gt, task.scale, self._settings(task_name)))
                if k < self.cfg.val.strips:
                    shown = baseline_output(pair.lq, task)[:out.shape[0], :out.shape[1]]
                    target = pair.gt[:out.shape[0], :out.shape[1]]
                    strips[pair.name] = np.concatenate([quantize(x) for x in (shown, out, target)],
                                                       axis=1).astype(np.uint8)
            base = self.baseline(task_name)
            psnr = mean_score([s["psnr"] for s in scores])
            best = self.best.get(task_name)
            improved = best is None or psnr > best["psnr"]
            if improved:
                self.best[task_name] = {"psnr": psnr, "step": step}
            report.tasks[task_name] = TaskResult(
                psnr=psnr, ssim=mean_score([s["ssim"] for s in scores]),
                baseline_psnr=mean_score([b["psnr"] for b in base]),
                baseline_ssim=mean_score([b["ssim"] for b in base]), baseline=baseline_name(task),
                images=self.images or len(pairs), crops=len(pairs),
                best_psnr=self.best[task_name]["psnr"], best_step=self.best[task_name]["step"], improved=improved,
                strips=strips)
        return report

    def write_best(self, report: ValidationReport, net, replace: dict[str, np.ndarray] | None) -> list[Path]:
        """best_<task>.ckpt for every task that improved (atomic writes)."""
        from ipt_ms.train.weights import export_weights, run_provenance

        if not self.cfg.val.best:
            return []
        written = []
        for task_name, r in report.tasks.items():
            if r.improved:
                path = self.run_dir / best_weights_name(task_name)
                export_weights(net, self.spec, path, replace=replace,
                               provenance=run_provenance(self.cfg, report.step, self.best, selected=task_name),
                               overwrite=True)  # the run's own best
                written.append(path)
        return written
