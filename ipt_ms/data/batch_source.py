"""The batch source base: epoch order, sharding, task choice and batch assembly (see `ipt_ms.data.pretrain`).

Subclasses supply the items and how one sample is made from an item; everything that makes
``get_batch(epoch, j)`` a pure function of (seed, epoch, j) lives here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ipt_ms.data.degrade import SUPPORTED_KINDS
from ipt_ms.data.seeding import rng_from
from ipt_ms.errors import IPTError
from ipt_ms.tasks import Task, parse_task


def to_chw_batch(patches: list[np.ndarray]) -> np.ndarray:
    """HWC patches (uint8 or float) -> one contiguous float32 NCHW array, in one pass."""
    h, w, c = patches[0].shape
    out = np.empty((len(patches), c, h, w), dtype=np.float32)
    for k, patch in enumerate(patches):
        out[k] = patch.transpose(2, 0, 1)
    return out


class BatchSource:
    """Epoch / shard / task bookkeeping shared by the pre-training and fine-tuning sources.

    Subclasses implement ``_num_items`` and ``_make_sample(item, task_pos, rng)``.
    """

    def __init__(
        self,
        tasks: Sequence[str | Task],
        batch_size: int,
        patch_size: int,
        seed: int,
        samples_per_epoch: int | None,
        num_shards: int,
        shard_id: int,
        same_task_across_ranks: bool,
        task_ids: Sequence[int] | None,
    ):
        self.tasks = [parse_task(t) if isinstance(t, str) else t for t in tasks]
        if not self.tasks:
            raise IPTError("at least one task is needed")
        for t in self.tasks:
            if t.kind not in SUPPORTED_KINDS:
                raise IPTError(f"task {t.name!r} cannot be synthesised for training")
        self.task_ids = list(range(len(self.tasks))) if task_ids is None else [int(i) for i in task_ids]
        if len(self.task_ids) != len(self.tasks):
            raise IPTError("task_ids must give one index per task")
        if batch_size < 1 or patch_size < 1:
            raise IPTError("batch_size and patch_size must be positive")
        if num_shards < 1 or not 0 <= shard_id < num_shards:
            raise IPTError(f"shard_id must be in [0, {num_shards}), got {shard_id}")
        if seed < 0:
            raise IPTError("seed must be non-negative")
        self.batch_size = int(batch_size)
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self._samples_per_epoch = samples_per_epoch
        self.num_shards = int(num_shards)
        self.shard_id = int(shard_id)
        self.same_task_across_ranks = bool(same_task_across_ranks)
        self.epoch = 0
        self._order_cache: dict[int, np.ndarray] = {}

    # -- subclass hooks
    def _num_items(self) -> int:
        raise NotImplementedError

    def warm_up(self) -> None:
        """Precompute lazily-built state before worker processes copy the source."""

    def _make_sample(self, item: int, task_pos: int, rng: np.random.Generator):
        raise NotImplementedError

    # -- epoch geometry
    @property
    def samples_per_epoch(self) -> int:
        return int(self._samples_per_epoch or self._num_items())

    @property
    def global_batches(self) -> int:
        """Batches per epoch over all shards."""
        return self.samples_per_epoch // self.batch_size

    def __len__(self) -> int:
        """Batches per epoch on this shard."""
        return self.global_batches // self.num_shards

    def _check_len(self) -> None:
        if len(self) == 0:
            raise IPTError(
                f"too few samples for one batch per shard: {self.samples_per_epoch} samples per epoch, "
                f"batch size {self.batch_size}, {self.num_shards} shard(s)"
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that ``source[j]`` refers to (each epoch has its own order)."""
        if epoch < 0:
            raise IPTError("epoch must be non-negative")
        self.epoch = int(epoch)

    def shard(self, num_shards: int, shard_id: int) -> BatchSource:
        """A copy of this source for another sharding (same seed and data)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__getstate__())
        if num_shards < 1 or not 0 <= shard_id < num_shards:
            raise IPTError(f"shard_id must be in [0, {num_shards}), got {shard_id}")
        clone.num_shards, clone.shard_id = int(num_shards), int(shard_id)
        return clone

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_order_cache"] = {}
        return state

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Item index for every sample slot of the epoch (permutations of all items,
        concatenated when an epoch is longer than the data)."""
        order = self._order_cache.get(epoch)
        if order is None:
            n = self._num_items()
            rounds = math.ceil(self.samples_per_epoch / n)
            order = np.concatenate(
                [rng_from(self.seed, "order", epoch, c).permutation(n) for c in range(rounds)]
            )[: self.samples_per_epoch]
            if len(self._order_cache) >= 2:
                self._order_cache.pop(min(self._order_cache))
            self._order_cache[epoch] = order
        return order

    def global_batch_index(self, step: int) -> int:
        return step * self.num_shards + self.shard_id

    def task_position(self, epoch: int, step: int) -> int:
        """Position in ``tasks`` of the task of this rank's batch ``step``."""
        if len(self.tasks) == 1:
            return 0
        if self.same_task_across_ranks:
            rng = rng_from(self.seed, "task-step", epoch, step)
        else:
            rng = rng_from(self.seed, "task", epoch, self.global_batch_index(step))
        return int(rng.integers(len(self.tasks)))

    def batch_items(self, epoch: int, step: int) -> np.ndarray:
        """Item indices of this rank's batch ``step`` of ``epoch``."""
        g = self.global_batch_index(step)
        return self.epoch_order(epoch)[g * self.batch_size : (g + 1) * self.batch_size]

    # -- batches
    def get_batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray, np.int32]:
        """Batch ``step`` of this rank in ``epoch``: (lr, hr, task_idx)."""
        n = len(self)
        if not 0 <= step < n:
            raise IndexError(f"batch index {step} out of range for {n} batches")
        pos = self.task_position(epoch, step)
        g = self.global_batch_index(step)
        lrs, hrs = [], []
        for k, item in enumerate(self.batch_items(epoch, step)):
            rng = rng_from(self.seed, "sample", epoch, g, k)
            lr, hr = self._make_sample(int(item), pos, rng)
            lrs.append(lr)
            hrs.append(hr)
        return to_chw_batch(lrs), to_chw_batch(hrs), np.int32(self.task_ids[pos])

    def __getitem__(self, step: int) -> tuple[np.ndarray, np.ndarray, np.int32]:
        return self.get_batch(self.epoch, int(step))

    def __iter__(self):
        for j in range(len(self)):
            yield self.get_batch(self.epoch, j)
