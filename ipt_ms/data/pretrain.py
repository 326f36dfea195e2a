"""Training batch sources: IPT pre-training (several tasks) and single-task fine-tuning.

The sources live one idea a file and are re-exported here: the base with the bookkeeping
below (`batch_source`), clean images degraded on the fly (`synthetic_source.PretrainSource`),
stored pairs (`paired_source.PairedPatchSource`), the folder scan (`image_scan`), EDSR's
augmentation (`augment`) and the blur kernel bank (`blur.KernelBank`). `finetune_source`
picks between the two sources.

A *batch source* is random-access: ``source[j]`` is the j-th batch of this rank in the
current epoch, a tuple

    lr  float32 (B, 3, P, P)        degraded input, [0, 255]
    hr  float32 (B, 3, P*s, P*s)    clean target, [0, 255]
    task_idx  int32 scalar          which head/tail (index into the source's task list)

with one task per batch. Determinism and resume
------------------------------------------------
``source.get_batch(epoch, j)`` is a pure function of (seed, epoch, j) and the source's
settings: the image order of an epoch is a permutation drawn from (seed, epoch), the task
of a batch from (seed, epoch, batch) and every crop / noise / streak / flip from (seed,
epoch, batch, position). Nothing depends on worker count, on which batches were produced
before, or on process state, so training resumed at (epoch e, step j) sees exactly the
batches an uninterrupted run would have seen: call ``set_epoch(e)`` and continue from
index j (``ipt_ms.data.pipeline`` does this with ``start_epoch`` / ``start_step``).

Sharding and task streams
-------------------------
With ``num_shards`` N and ``shard_id`` r, global batch g = j*N + r of the epoch goes to
rank r at step j; an epoch has ``samples_per_epoch // B`` global batches and each rank
``(samples_per_epoch // B) // N`` (the remainder is dropped, and because the order is
reshuffled every epoch a different remainder each time). Shards are therefore disjoint
and together cover the epoch's batches. By default every rank draws its task
independently (from its global batch index), so one step trains several heads at once;
``same_task_across_ranks=True`` draws the task from the step index instead, so all ranks
train the same head at each step, as the official MindSpore code does.
"""

from __future__ import annotations

import os

from ipt_ms.data.augment import augment
from ipt_ms.data.batch_source import BatchSource
from ipt_ms.data.blur import KernelBank
from ipt_ms.data.image_scan import scan_images
from ipt_ms.data.paired_source import PairedPatchSource
from ipt_ms.data.pairs import PairDataset
from ipt_ms.data.synthetic_source import PretrainSource
from ipt_ms.tasks import PRETRAIN_TASKS, Task, parse_task

__all__ = [
    "BatchSource",
    "KernelBank",
    "PairedPatchSource",
    "PretrainSource",
    "augment",
    "finetune_source",
    "scan_images",
]


def finetune_source(
    data: PairDataset | os.PathLike | str,
    task: str | Task,
    task_idx: int | None = None,
    batch_size: int = 16,
    patch_size: int = 48,
    seed: int = 0,
    augment: bool = True,
    samples_per_epoch: int | None = None,
    num_shards: int = 1,
    shard_id: int = 0,
    **options,
) -> BatchSource:
    """Single-task fine-tuning source.

    ``data`` is either stored pairs (a :class:`~ipt_ms.data.pairs.PairDataset` from
    ``div2k``, ``rain_pairs``, ``gopro``...: aligned crops) or a folder of clean images
    (degraded on the fly like pre-training, with this one task). ``task_idx`` defaults to
    the task's position in ``PRETRAIN_TASKS`` (so fine-tuning the 6-head pre-trained model
    keeps using its own head), or 0 for other tasks. Other ``options`` go to the source.
    """
    task = parse_task(task) if isinstance(task, str) else task
    if task_idx is None:
        task_idx = PRETRAIN_TASKS.index(task.name) if task.name in PRETRAIN_TASKS else 0
    common = dict(
        batch_size=batch_size, patch_size=patch_size, seed=seed, samples_per_epoch=samples_per_epoch,
        num_shards=num_shards, shard_id=shard_id, augment=augment,
    )
    if isinstance(data, PairDataset):
        if all(e.lq is not None for e in data.entries):
            return PairedPatchSource(data, task, task_idx=task_idx, **common, **options)
        data = [e.gt for e in data.entries]
    return PretrainSource(data, tasks=[task], task_ids=[task_idx], **common, **options)
