"""Fine-tuning batches from stored pairs: aligned random crops of LR/HR (rain/clean, blur/sharp) files."""

from __future__ import annotations

import logging

import numpy as np

from ipt_ms.data.augment import augment
from ipt_ms.data.batch_source import BatchSource
from ipt_ms.data.imageio import ImageReadError
from ipt_ms.data.pairs import PairDataset
from ipt_ms.data.store import ImageStore
from ipt_ms.errors import IPTError
from ipt_ms.tasks import Task

log = logging.getLogger("ipt_ms.data")


class PairedPatchSource(BatchSource):
    """Fine-tuning batches of aligned random crops from stored pairs (DIV2K LR/HR,
    RainTrainL rain/norain, GoPro blur/sharp), EDSR-style: LR patch P at (y, x), HR patch
    P*s at (y*s, x*s), then the same hflip / vflip / transpose on both (``augment``).
    Every batch has the one task given; ``task_idx`` is fixed."""

    def __init__(
        self,
        pairs: PairDataset,
        task: str | Task,
        task_idx: int = 0,
        batch_size: int = 16,
        patch_size: int = 48,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        num_shards: int = 1,
        shard_id: int = 0,
        augment: bool = True,
        store: ImageStore | None = None,
    ):
        super().__init__(
            [task], batch_size, patch_size, seed, samples_per_epoch, num_shards, shard_id, False, [task_idx]
        )
        if any(e.lq is None for e in pairs.entries):
            raise IPTError("PairedPatchSource needs stored pairs; use finetune_source() for clean folders")
        self.entries = list(pairs.entries)
        self.scale = int(pairs.scale)
        if self.scale != self.tasks[0].scale:
            raise IPTError(f"pairs are x{self.scale} but task {self.tasks[0].name} is x{self.tasks[0].scale}")
        self.augment = bool(augment)
        self.store = store or ImageStore(memory_mb=512)
        self._bad: set[int] = set()
        self._check_len()

    def _num_items(self) -> int:
        return len(self.entries)

    def _load_pair(self, item: int, rng: np.random.Generator):
        """Decode pair ``item``; an undecodable pair is replaced by a random other one
        (drawn from ``rng``, so the choice is the same in every run and after resume)."""
        for _ in range(16):
            entry = self.entries[item]
            if item not in self._bad:
                try:
                    return entry, self.store.load(entry.lq), self.store.load(entry.gt)
                except ImageReadError as err:
                    self._bad.add(item)
                    log.warning("skipping pair %s: %s (%d skipped so far in this process)", err.path, err.reason,
                                len(self._bad))
            item = int(rng.integers(len(self.entries)))
        raise IPTError(f"too many unreadable pairs in the training set (last tried {self.entries[item].lq})")

    def _make_sample(self, item: int, task_pos: int, rng: np.random.Generator):
        entry, lq, gt = self._load_pair(item, rng)
        s, p = self.scale, self.patch_size
        h, w = lq.shape[:2]
        if gt.shape[0] < h * s or gt.shape[1] < w * s:
            raise IPTError(f"{entry.gt} is smaller than {entry.lq} x{s}")
        if h < p or w < p:
            raise IPTError(f"{entry.lq} ({w}x{h}) is smaller than the {p} px patch")
        y = int(rng.integers(h - p + 1))
        x = int(rng.integers(w - p + 1))
        lq_patch = lq[y : y + p, x : x + p]
        gt_patch = gt[y * s : (y + p) * s, x * s : (x + p) * s]
        if self.augment:
            flips = rng.random(3) < 0.5
            lq_patch = augment(lq_patch, *map(bool, flips))
            gt_patch = augment(gt_patch, *map(bool, flips))
        return np.ascontiguousarray(lq_patch), np.ascontiguousarray(gt_patch)
