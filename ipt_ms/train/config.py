"""Training configuration: one YAML file per recipe (see configs/ and docs/training.md).

Sections: kind, model, data, loss, optim, schedule, train, val, output. Every key has a
default equal to the paper's pre-training recipe, so a config file lists only what it
changes. Loading validates types and ranges and names the offending key
(`ipt_ms.config`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from pydantic import Field

from ipt_ms.config import ConfigError, Flag, Integer, Number, config_diff, load_config, option
from ipt_ms.errors import IPTError
from ipt_ms.runtime import DEVICE_SPELLINGS
from ipt_ms.spec import IPTSpec
from ipt_ms.tasks import PRETRAIN_TASKS, parse_task
from ipt_ms.tiling import PROTOCOLS

#: Keys that may change between a checkpoint and the run that resumes from it: they do
#: not alter the numbers of the steps already taken or still to come.
RESUME_SAFE_KEYS = (
    "train.max_steps",
    "train.time_limit_min",
    "train.init",
    "train.device",
    "train.compile_cache",
    "schedule.epochs",  # except with the cosine schedule, whose curve depends on it
    "data.num_workers",
    "data.validate_images",
    "val.every",
    "val.strips",
    "val.ssim",
    "train.allow_data_change",
    "output",
)

#: Keys that may change on resume although the steps still to come then differ from an
#: uninterrupted run: what the advice after a non-finite loss asks for (a lower rate,
#: clipping, skipping such batches) and how validation is done. The run says which changed.
RESUME_ADJUSTABLE_KEYS = (
    "optim.lr",
    "optim.grad_clip_norm",
    "train.on_nonfinite",
    "val.data",
    "val.sets",
    "val.crop",
    "val.crops",
    "val.limit",
    "val.protocol",
    "val.best",
)


@dataclass
class ModelConfig:
    """Architecture (see `ipt_ms.spec.IPTSpec`); one head/tail per task, in this order."""

    tasks: list[str] = field(default_factory=lambda: list(PRETRAIN_TASKS))
    n_feats: Integer = option(64, min=1)
    patch_size: Integer = option(48, min=1)
    patch_dim: Integer = option(3, min=1)
    num_heads: Integer = option(12, min=1)
    num_layers: Integer = option(12, min=1)
    num_queries: Optional[Integer] = option(None, min=1, help="default: one per task")
    dropout_rate: Number = option(0.0, min=0.0, max=1.0, max_inclusive=False)
    no_norm: Flag = False
    no_mlp: Flag = False
    pos_every: Flag = False
    no_pos: Flag = False

    def spec(self) -> IPTSpec:
        tasks = [parse_task(t) for t in self.tasks]
        return IPTSpec(scales=tuple(t.scale for t in tasks), task_names=tuple(self.tasks), n_feats=self.n_feats,
                       patch_size=self.patch_size, patch_dim=self.patch_dim, num_heads=self.num_heads,
                       num_layers=self.num_layers, num_queries=self.num_queries or len(self.tasks),
                       dropout_rate=self.dropout_rate, no_norm=self.no_norm, no_mlp=self.no_mlp,
                       pos_every=self.pos_every, no_pos=self.no_pos)

    def validate(self) -> None:
        if not self.tasks:
            raise ConfigError("tasks: at least one task is needed")
        for i, name in enumerate(self.tasks):
            try:
                parse_task(name)
            except IPTError as err:
                raise ConfigError(f"tasks[{i}]: {err}") from None
        try:
            self.spec()
        except IPTError as err:
            raise ConfigError(str(err).replace("invalid IPT architecture: ", "")) from None


@dataclass
class DataConfig:
    """Where training pairs come from (`ipt_ms.data`)."""

    source: Literal["images", "div2k", "rain", "gopro"] = option(
        "images", help="images: clean photos degraded on the fly; div2k/rain/gopro: stored pairs")
    root: Optional[str] = None
    batch_size: Integer = option(256, min=1, help="global batch: split evenly over data-parallel workers")
    samples_per_epoch: Optional[Integer] = option(None, min=1, help="default: one pass over the images/pairs")
    num_workers: Integer = option(2, min=0, help="0: load in the training process")
    same_task_across_ranks: Flag = True
    augment: Optional[Flag] = option(None, help="flips/rot90; default off for pre-training, on for fine-tuning")
    rain_streaks: Optional[str] = None
    rain_preset: str = "light"
    data_range: str = "1-800"
    lr_images: Literal["auto", "files", "generate"] = "auto"
    clip_noise: Flag = True
    validate_images: Flag = True


@dataclass
class LossConfig:
    """L1 + weight * contrastive (Eq. 5 of the paper, or the official code's SupCon)."""

    contrastive: Literal["none", "eq5", "supcon"] = "eq5"
    weight: Number = option(0.1, min=0.0)
    temperature: Number = option(0.07, min=0.0, min_inclusive=False)
    base_temperature: Number = option(0.07, min=0.0, min_inclusive=False)


#: an Adam beta: limits on the items of a list go in the annotation (see `ipt_ms.config.option`)
_Beta = Annotated[Number, Field(ge=0.0, lt=1.0)]


@dataclass
class OptimConfig:
    """Adam with `torch.optim.Adam`'s update rule (`ipt_ms.train.step.Adam`)."""

    lr: Number = option(5e-5, min=0.0, min_inclusive=False)
    betas: tuple[_Beta, _Beta] = (0.9, 0.999)
    eps: Number = option(1e-8, min=0.0)
    weight_decay: Number = option(0.0, min=0.0)
    grad_clip_norm: Optional[Number] = option(None, min=0.0, min_inclusive=False, help="global norm; null: off")


@dataclass
class ScheduleConfig:
    """Learning rate over the steps (`ipt_ms.train.schedules`): optional linear warm-up, then
    step decay by epoch (multistep: lr * gamma ** (number of milestones <= epoch), epochs
    0-based) or cosine decay to `min_lr` at the end of `epochs`."""

    epochs: Integer = option(300, min=1)
    kind: Literal["multistep", "cosine"] = "multistep"
    milestones: list[Annotated[Integer, Field(ge=1)]] = field(default_factory=lambda: [200])
    gamma: Number = option(0.4, min=0.0, min_inclusive=False)
    warmup_steps: Integer = option(0, min=0, help="optimizer steps of linear warm-up from lr/warmup_steps to lr")
    min_lr: Number = option(0.0, min=0.0, help="cosine: the learning rate at the last step")

    def validate(self) -> None:
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ConfigError(f"milestones: must be strictly increasing, got {self.milestones}")

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** sum(1 for m in self.milestones if epoch >= m)


@dataclass
class LossScaleConfig:
    """Dynamic loss scaling for mixed precision (GPU/Ascend)."""

    init: Number = option(65536.0, min=1.0)
    factor: Number = option(2.0, min=1.0, min_inclusive=False)
    window: Integer = option(1000, min=1)


@dataclass
class RuntimeConfig:
    """How and where the run executes."""

    seed: Integer = option(0, min=0, max=2**32 - 1, help="NumPy and MindSpore take seeds below 2^32")
    device: Literal[DEVICE_SPELLINGS] = "auto"
    mode: Literal["graph", "pynative"] = "graph"
    compile_cache: Optional[str] = option(
        None, help="folder for compiled Graph-mode steps kept between runs, or off "
                   "(default: $IPT_MS_COMPILE_CACHE, else ~/.cache/ipt-ms/compile; see ipt_ms.compile_cache)")
    amp: Literal["auto", "O0", "O1", "O2", "O3"] = option(
        "auto", help="auto: O2 on GPU/Ascend, float32 (O0) on CPU")
    loss_scale: LossScaleConfig = field(default_factory=LossScaleConfig)
    on_nonfinite: Literal["stop", "skip"] = "stop"
    max_steps: Optional[Integer] = option(None, min=1, help="stop after this many steps in total")
    time_limit_min: Optional[Number] = option(None, min=0.0, min_inclusive=False,
                                             help="stop (checkpoint, export) after this many minutes; single process")
    init: Optional[str] = option(None, help="weights to start from (.ckpt/.pt/.pth/.safetensors)")
    allow_data_change: Flag = option(False, help="resume although the training images differ from the "
                                                 "checkpoint's (--allow-data-change)")
    accumulate: Integer = option(1, min=1, help="micro-batches per optimizer step (data.batch_size is split into them)")
    ema_decay: Optional[Number] = option(None, min=0.0, max=1.0, max_inclusive=False,
                                        help="keep an exponential moving average of the weights; "
                                             "validation and export use it")


@dataclass
class ValConfig:
    """Validation during training (`ipt_ms.train.validation`): PSNR-Y / SSIM-Y per task with
    the evaluation code, against the no-model baseline, and the best weights per task."""

    every: Optional[Integer] = option(None, min=1, help="optimizer steps between validations; null: none")
    data: Optional[str] = option(None, help="benchmark-layout folder, as `ipt-ms eval --data`")
    sets: Optional[list[str]] = option(None, help="set names in `data` (default: the task's standard sets)")
    holdout: Integer = option(0, min=0, help="with no `data`: training images held out and degraded per task")
    crop: Optional[Integer] = option(192, min=8, help="held-out images: crops of this many pixels per side (null: "
                                                  "the whole image)")
    crops: Integer = option(4, min=1, max=64, help="held-out images: crops per image, the centre one and positions "
                                               "drawn with train.seed (the same at every validation); their "
                                               "scores are averaged")
    limit: Optional[Integer] = option(None, min=1, help="first N images of each set")
    protocol: Literal[tuple(PROTOCOLS)] = option("official", help="tiling (`ipt_ms.tiling`)")
    ssim: Flag = True
    strips: Integer = option(3, min=0, help="input | output | target strips per task logged to TensorBoard")
    best: Flag = option(True, help="keep best_<task>.ckpt, the weights with the highest PSNR-Y so far")

    def validate(self) -> None:
        if self.every is None:
            return
        if self.data is None and self.holdout == 0:
            raise ConfigError("every: set val.data (a benchmark folder) or val.holdout (training images to hold "
                              "out), or val.every: null")
        if self.data is not None and self.holdout:
            raise ConfigError("holdout: give val.data or val.holdout, not both")

    @property
    def enabled(self) -> bool:
        return self.every is not None


@dataclass
class OutputConfig:
    """Run directory, logging and checkpoints (rank 0 only)."""

    dir: str = "runs/pretrain"
    log_every: Integer = option(10, min=1)
    checkpoint_every: Integer = option(1000, min=1, help="steps")
    keep_last: Integer = option(3, min=1)
    progress: Flag = True
    plot: Flag = True
    export: str = option("model.ckpt", help="final weights file in the run directory (.ckpt/.pt/.safetensors)")
    tensorboard: Flag = option(True, help="TensorBoard event files in the run directory")

    def validate(self) -> None:
        from pathlib import PurePath

        from ipt_ms.convert.weights import weights_format

        try:
            weights_format(self.export)
        except IPTError as err:
            raise ConfigError(f"export: {err}") from None
        parts = PurePath(self.export).parts
        # the export is the run's own file: never the init weights, a checkpoint or anything outside the run
        if PurePath(self.export).is_absolute() or ".." in parts or not parts:
            raise ConfigError(f"export: {self.export!r} must be a file name inside the run folder (output.dir), "
                              "not a path outside it")
        if parts[0] == "checkpoints" or (len(parts) == 1 and parts[0].startswith("best_")):
            raise ConfigError(f"export: {self.export!r} is where the run keeps its checkpoints; choose another name")


@dataclass
class TrainConfig:
    """A whole training recipe."""

    kind: Literal["pretrain", "finetune"] = "pretrain"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: RuntimeConfig = field(default_factory=RuntimeConfig)
    val: ValConfig = field(default_factory=ValConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def validate(self) -> None:
        if self.kind == "finetune" and len(self.model.tasks) != 1:
            raise ConfigError(f"model.tasks: fine-tuning trains exactly one task, got {self.model.tasks}")
        if self.kind == "pretrain" and self.data.source != "images":
            raise ConfigError("data.source: pre-training synthesises every task from clean images; use 'images'")
        if self.loss.contrastive != "none" and self.loss.weight > 0 and self.data.batch_size < 2:
            raise ConfigError("data.batch_size: the contrastive loss compares images of a batch; need >= 2")
        if self.data.batch_size % self.train.accumulate:
            raise ConfigError(f"train.accumulate: the batch of {self.data.batch_size} does not split into "
                              f"{self.train.accumulate} equal micro-batches")
        if self.contrastive_on and self.data.batch_size // self.train.accumulate < 2:
            raise ConfigError(f"train.accumulate: micro-batches of {self.data.batch_size // self.train.accumulate} "
                              "image(s), but the contrastive loss compares the images of a micro-batch; need >= 2")
        if self.data.source in ("div2k",) and any(parse_task(t).kind != "sr" for t in self.model.tasks):
            raise ConfigError("data.source: div2k pairs are for super-resolution tasks")
        if self.data.source == "rain" and self.model.tasks != ["derain"]:
            raise ConfigError("data.source: rain pairs are for the derain task")
        if self.data.source == "gopro" and self.model.tasks != ["deblur"]:
            raise ConfigError("data.source: GoPro pairs are for the deblur task")

    @property
    def contrastive_on(self) -> bool:
        return self.loss.contrastive != "none" and self.loss.weight > 0

    @property
    def augment(self) -> bool:
        return self.data.augment if self.data.augment is not None else self.kind == "finetune"


def load_train_config(path: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                      data: dict | None = None) -> TrainConfig:
    """Read and validate a training config (YAML file or mapping) with dotted overrides."""
    return load_config(TrainConfig, path, overrides, data=data)


def resume_adjusted(saved: dict, current: TrainConfig) -> list[str]:
    """The `RESUME_ADJUSTABLE_KEYS` that differ ("key X -> Y"), to say so when resuming."""
    return [f"{key} {old!r} -> {new!r}" for key, old, new in config_diff(saved, current)
            if any(key == k or key.startswith(k + ".") for k in RESUME_ADJUSTABLE_KEYS)]


#: folder keys compared by what they name: `runs/x` and `/home/me/runs/x` are one folder
PATH_KEYS = ("data.root", "data.rain_streaks", "val.data")


def _same_folder(old: object, new: object) -> bool:
    if not (isinstance(old, str) and isinstance(new, str)):
        return False
    try:
        return os.path.samefile(old, new)
    except OSError:
        return False


def resume_mismatch(saved: dict, current: TrainConfig) -> list[str]:
    """Human-readable differences that make resuming unsafe ("key: checkpoint X, now Y")."""
    ignore = RESUME_SAFE_KEYS + RESUME_ADJUSTABLE_KEYS
    if current.schedule.kind == "cosine":  # the cosine curve spans schedule.epochs
        ignore = tuple(k for k in ignore if k != "schedule.epochs")
    return [f"{key}: checkpoint {old!r}, now {new!r}"
            for key, old, new in config_diff(saved, current, ignore=ignore)
            if not (key in PATH_KEYS and _same_folder(old, new))]
