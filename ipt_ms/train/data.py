"""Batch sources for a training config, built on `ipt_ms.data` (one task per batch).

The sources are random-access and deterministic in (seed, epoch, step, rank), which is
what makes resume exact: the data position in a checkpoint is just (epoch, step).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ipt_ms.config import ConfigError
from ipt_ms.spec import IPTSpec
from ipt_ms.train.config import TrainConfig

if TYPE_CHECKING:
    from ipt_ms.data.pretrain import BatchSource


def per_rank_batch(cfg: TrainConfig, world_size: int) -> int:
    """The global batch split over `world_size` workers (it must divide evenly, and each
    worker's share must split into `train.accumulate` micro-batches)."""
    batch, k = cfg.data.batch_size, cfg.train.accumulate
    if batch % (world_size * k):
        micro = f" x {k} micro-batches (train.accumulate)" if k > 1 else ""
        raise ConfigError(f"data.batch_size: the global batch {batch} does not split evenly over "
                          f"{world_size} workers{micro}")
    per_rank = batch // world_size
    if cfg.contrastive_on and per_rank // k < 2:
        micro = " and micro-batch" if k > 1 else ""
        raise ConfigError(f"data.batch_size: {per_rank // k} image(s) per worker{micro}, but the contrastive loss "
                          "needs at least 2 (it compares the images of a worker's batch)")
    return per_rank


def training_items(cfg: TrainConfig, spec: IPTSpec):
    """What `data` points at: a list of image files (`source: images`) or stored pairs."""
    from ipt_ms.data import folders
    from ipt_ms.data.pretrain import scan_images

    d = cfg.data
    if not d.root:
        raise ConfigError("data.root: set the training data folder (in the config or with --data PATH)")
    if d.source == "images":
        return scan_images(d.root, spec.patch_size, validate=d.validate_images)
    task = spec.tasks[0]
    if d.source == "div2k":
        return folders.div2k(d.root, task.scale, data_range=d.data_range, lr=d.lr_images)
    if d.source == "rain":
        return folders.rain_pairs(d.root)
    return folders.gopro(d.root, split="train")


def build_source(cfg: TrainConfig, spec: IPTSpec, world_size: int = 1, rank: int = 0, items=None) -> BatchSource:
    """The `ipt_ms.data` batch source for this config and rank.

    `items` (from `training_items`, possibly minus a validation hold-out) defaults to
    everything `data` points at. Fine-tuning from `source: images` synthesises the
    task's pairs on the fly, as pre-training does.
    """
    from ipt_ms.data.pretrain import PretrainSource, finetune_source

    d = cfg.data
    if items is None:
        items = training_items(cfg, spec)
    common = dict(batch_size=per_rank_batch(cfg, world_size), patch_size=spec.patch_size, seed=cfg.train.seed,
                  samples_per_epoch=d.samples_per_epoch, num_shards=world_size, shard_id=rank,
                  augment=cfg.augment)
    synth = dict(rain_streaks=d.rain_streaks, rain_preset=d.rain_preset, clip_noise=d.clip_noise,
                 validate=False)  # `items` were checked by `training_items`
    if cfg.kind == "pretrain":
        return PretrainSource(items, tasks=list(spec.task_names), same_task_across_ranks=d.same_task_across_ranks,
                              **synth, **common)
    task = spec.tasks[0]
    if d.source == "images":
        return finetune_source(items, task, task_idx=0, **common, **synth)
    return finetune_source(items, task, task_idx=0, **common)


def batches(source: BatchSource, start_epoch: int, start_step: int, num_epochs: int,
            num_workers: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, int]]:
    """(epoch, step, lr, hr, task_idx) from the data position on, for `num_epochs` epochs.

    With workers, a `mindspore.dataset` pipeline prepares batches in parallel processes
    (`ipt_ms.data.pipeline`); with 0 they are made in this process. Both yield the same
    sequence, so the choice never changes the numbers.
    """
    from ipt_ms.data.pipeline import EpochSpan, create_mindspore_dataset

    span = EpochSpan(source, num_epochs, start_epoch, start_step)
    if num_workers == 0:
        for k in range(len(span)):
            lr, hr, task = span[k]
            yield (*span.epoch_step(k), lr, hr, int(task))
        return
    dataset = create_mindspore_dataset(source, num_epochs, start_epoch, start_step,
                                       num_parallel_workers=num_workers, python_multiprocessing=num_workers > 1)
    for k, (lr, hr, task) in enumerate(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)):
        yield (*span.epoch_step(k), lr, hr, int(task))
