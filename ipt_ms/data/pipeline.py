"""Feeding batch sources to MindSpore (``mindspore.dataset``) and to PyTorch / plain Python.

Why an epoch span: ``GeneratorDataset`` with ``python_multiprocessing=True`` copies the
source into its worker processes once, so calling ``source.set_epoch(e)`` in the main
process afterwards would not reach them. :class:`EpochSpan` instead makes the epoch part
of the index: item k of the span is batch ``k % n`` of epoch ``start_epoch + k // n``
(shifted by ``start_step`` for resume). One MindSpore pass over the span therefore covers
``num_epochs`` training epochs, with exactly the batches ``source.get_batch`` defines, and
:func:`iterate_batches` yields the identical sequence without MindSpore (for PyTorch or
tests).

MindSpore is imported lazily, only by :func:`create_mindspore_dataset`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ipt_ms.data.pretrain import BatchSource
from ipt_ms.errors import IPTError

if TYPE_CHECKING:  # MindSpore is imported lazily at run time
    from mindspore.dataset import GeneratorDataset

__all__ = ["COLUMN_NAMES", "EpochSpan", "clamp_workers", "create_mindspore_dataset", "iterate_batches"]

#: Column names of the MindSpore dataset, in the order of the source's tuples.
COLUMN_NAMES = ["lr", "hr", "task_idx"]


class EpochSpan:
    """Random-access view of ``num_epochs`` consecutive epochs of a batch source.

    ``span[k]`` = ``source.get_batch(epoch, step)`` with
    ``epoch, step = divmod(start_step + k, len(source))`` offset by ``start_epoch``.
    ``epoch_step(k)`` tells the training loop which (epoch, step) item k is.
    """

    def __init__(self, source: BatchSource, num_epochs: int = 1, start_epoch: int = 0, start_step: int = 0):
        n = len(source)
        if n == 0:
            raise IPTError("the batch source has no batches")
        if num_epochs < 1 or start_epoch < 0 or not 0 <= start_step < n:
            raise IPTError(
                f"invalid span: num_epochs={num_epochs}, start_epoch={start_epoch}, "
                f"start_step={start_step} (epoch has {n} batches)"
            )
        self.source = source
        self.num_epochs = int(num_epochs)
        self.start_epoch = int(start_epoch)
        self.start_step = int(start_step)
        self.steps_per_epoch = n

    def __len__(self) -> int:
        return self.num_epochs * self.steps_per_epoch - self.start_step

    def epoch_step(self, k: int) -> tuple[int, int]:
        if not 0 <= k < len(self):
            raise IndexError(f"span index {k} out of range for {len(self)} batches")
        e, j = divmod(self.start_step + int(k), self.steps_per_epoch)
        return self.start_epoch + e, j

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, np.int32]:
        epoch, step = self.epoch_step(int(k))
        return self.source.get_batch(epoch, step)


def iterate_batches(
    source: BatchSource, num_epochs: int = 1, start_epoch: int = 0, start_step: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray, np.int32]]:
    """Plain-Python batches, identical to what :func:`create_mindspore_dataset` yields with
    ``shuffle=False`` (use with ``torch.from_numpy`` on the PyTorch side)."""
    span = EpochSpan(source, num_epochs, start_epoch, start_step)
    for k in range(len(span)):
        yield span[k]


def clamp_workers(num_parallel_workers: int) -> int:
    """MindSpore rejects more workers than CPUs ("exceeds the boundary"): clamp to [1, cpus]."""
    return max(1, min(int(num_parallel_workers), os.cpu_count() or 1))


def create_mindspore_dataset(
    source: BatchSource,
    num_epochs: int = 1,
    start_epoch: int = 0,
    start_step: int = 0,
    num_parallel_workers: int = 1,
    python_multiprocessing: bool = True,
    shuffle: bool = False,
    num_shards: int | None = None,
    shard_id: int | None = None,
    max_rowsize: int = -1,
) -> GeneratorDataset:
    """A ``mindspore.dataset.GeneratorDataset`` with columns lr, hr, task_idx (one row per
    batch; do not ``.batch()`` it again).

    * ``num_shards`` / ``shard_id``: data parallel. The sharding is done by the source
      (a re-sharded copy is made if these differ from the source's), not by MindSpore's
      sampler, so that the same-task option and exact resume stay possible; the
      GeneratorDataset itself is unsharded.
    * ``shuffle``: the source already reshuffles images every epoch; ``True`` additionally
      lets MindSpore permute the batch order over the whole span. That order then depends
      on ``mindspore.dataset.config`` seeds, so resume is exact only with ``shuffle=False``.
    * ``num_parallel_workers`` is clamped to the CPU count; with
      ``python_multiprocessing`` each worker process holds its own copy of the source.
    * ``max_rowsize``: MB of shared memory per row for worker processes; -1 (default)
      allocates to the actual batch size (an x4 batch of 64 is 28 MB of HR).
    """
    if (num_shards is None) != (shard_id is None):
        raise IPTError("give both num_shards and shard_id, or neither")
    if num_shards is not None and (num_shards, shard_id) != (source.num_shards, source.shard_id):
        source = source.shard(num_shards, shard_id)
    source.warm_up()  # banks are built once here and shipped to the workers
    span = EpochSpan(source, num_epochs, start_epoch, start_step)

    # ipt_ms/__init__ (already imported as our parent package) has set the environment
    # defaults MindSpore must see at import time.
    import mindspore.dataset as ds

    workers = clamp_workers(num_parallel_workers)
    return ds.GeneratorDataset(
        span,
        column_names=list(COLUMN_NAMES),
        shuffle=bool(shuffle),
        num_parallel_workers=workers,
        python_multiprocessing=bool(python_multiprocessing) and workers > 1,
        max_rowsize=int(max_rowsize),
    )
