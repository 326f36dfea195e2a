"""Training batch sources: IPT pre-training (several tasks) and single-task fine-tuning.

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

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ipt_ms.data.blur import BlurConfig, blur_patch_valid, random_kernel
from ipt_ms.data.degrade import SUPPORTED_KINDS, add_gaussian_noise
from ipt_ms.data.folders import PairDataset
from ipt_ms.data.imageio import ImageReadError, image_size, list_images
from ipt_ms.data.imresize import imresize
from ipt_ms.data.rain import ProceduralStreakBank, StreakLayers, add_rain, streak_source
from ipt_ms.data.seeding import rng_from
from ipt_ms.data.store import ImageStore
from ipt_ms.errors import IPTError
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

log = logging.getLogger("ipt_ms.data")


# ----------------------------------------------------------------------------- helpers


def augment(img: np.ndarray, hflip: bool, vflip: bool, rot90: bool) -> np.ndarray:
    """EDSR's ``augment``: horizontal flip, vertical flip, transpose (H <-> W)."""
    if hflip:
        img = img[:, ::-1]
    if vflip:
        img = img[::-1]
    if rot90:
        img = img.transpose(1, 0, 2)
    return img


def _to_chw_batch(patches: list[np.ndarray]) -> np.ndarray:
    """HWC patches (uint8 or float) -> one contiguous float32 NCHW array, in one pass."""
    h, w, c = patches[0].shape
    out = np.empty((len(patches), c, h, w), dtype=np.float32)
    for k, patch in enumerate(patches):
        out[k] = patch.transpose(2, 0, 1)
    return out


def scan_images(
    folder: os.PathLike | str | Sequence[os.PathLike | str],
    min_size: int,
    validate: bool = True,
    what: str = "training folder",
) -> list[Path]:
    """Image files of a training folder (recursively), minus unreadable or tiny ones.

    With ``validate`` every file's header is read (~60 us each: ~1.5 min for ImageNet);
    each unreadable file or image with a side below ``min_size`` is skipped with one
    warning line, and a summary line counts them. An empty folder (or one where nothing
    is usable) raises IPTError naming it. Files that pass the header check but fail to
    decode later (truncated data) are skipped at load time, also with one warning.
    """
    if isinstance(folder, (str, os.PathLike)):
        paths = list_images(folder, recursive=True, what=what)
        label = str(folder)
    else:
        paths = [Path(p) for p in folder]
        label = f"{len(paths)} listed files"
        if not paths:
            raise IPTError(f"{what}: the list of images is empty")
    if not validate:
        return paths
    from tqdm import tqdm

    good, unreadable, tiny = [], 0, 0
    # A progress bar only for big trees (ImageNet: ~1.3M headers, about a minute).
    for p in tqdm(paths, desc="checking images", unit="img", disable=len(paths) < 20000):
        try:
            h, w = image_size(p, note_conversions=True)
        except ImageReadError as err:
            log.warning("skipping unreadable image %s: %s", p, err.reason)
            unreadable += 1
            continue
        if min(h, w) < min_size:
            log.warning("skipping tiny image %s: %dx%d is below %d px", p, w, h, min_size)
            tiny += 1
            continue
        good.append(p)
    if unreadable or tiny:
        log.warning(
            "%s: skipped %d of %d images (%d unreadable, %d smaller than %d px)",
            label, unreadable + tiny, len(paths), unreadable, tiny, min_size,
        )
    if not good:
        raise IPTError(f"{what} {label} has no usable images (all {len(paths)} skipped)")
    return good


class KernelBank:
    """``count`` blur kernels drawn lazily from (seed, index): the same in every worker.

    A trajectory kernel costs ~2 ms to draw, more than the rest of a training sample, so
    patches pick from a fixed bank instead.
    """

    def __init__(self, config: BlurConfig | None = None, seed: int = 0, count: int = 256):
        self.config = config or BlurConfig()
        self.seed = int(seed)
        self.count = int(count)
        self._cache: dict[int, np.ndarray] = {}

    def warm_up(self) -> None:
        """Draw every kernel now (~0.5 s for 256) instead of lazily during training."""
        for i in range(self.count):
            self.kernel(i)

    def kernel(self, i: int) -> np.ndarray:
        if i not in self._cache:
            self._cache[i] = random_kernel(rng_from(self.seed, "kernel-bank", i), self.config)
        return self._cache[i]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.kernel(int(rng.integers(self.count)))


# ----------------------------------------------------------------------------- base


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
        return _to_chw_batch(lrs), _to_chw_batch(hrs), np.int32(self.task_ids[pos])

    def __getitem__(self, step: int) -> tuple[np.ndarray, np.ndarray, np.int32]:
        return self.get_batch(self.epoch, int(step))

    def __iter__(self):
        for j in range(len(self)):
            yield self.get_batch(self.epoch, j)


# ----------------------------------------------------------------------------- pre-training


class PretrainSource(BatchSource):
    """IPT pre-training batches from a folder of clean images (ImageNet layout or any tree).

    Per sample: one image, a random crop of P*s (SR) or P (noise / rain / blur) from it,
    optional flip/rot augmentation of the clean crop, then the degradation:
    SR ``imresize(crop, 1/s)`` (MATLAB-exact, uint8 per pass); noise ``clip(crop +
    sigma*N)``; rain ``clip(crop + S)`` with S a crop of a real RainTrainL layer
    (``rain_streaks``) or of a procedural layer bank (``rain_preset``); blur: a kernel
    from a seeded bank, applied with real image content under the whole kernel.

    Images whose shorter side is below the crop are enlarged (bilinear, aspect kept) as
    the official code does; images below ``min_size`` (default: patch_size) are skipped
    at start-up (``validate``), and files that fail to decode are replaced by another
    image, chosen deterministically, with one warning per file.

    ``task_ids`` maps each task to the returned ``task_idx`` (default 0..T-1).
    """

    def __init__(
        self,
        images: os.PathLike | str | Sequence[os.PathLike | str],
        tasks: Sequence[str | Task] = PRETRAIN_TASKS,
        batch_size: int = 64,
        patch_size: int = 48,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        num_shards: int = 1,
        shard_id: int = 0,
        same_task_across_ranks: bool = False,
        augment: bool = False,
        rain_streaks: os.PathLike | str | None = None,
        rain_preset: str = "light",
        blur: BlurConfig | None = None,
        clip_noise: bool = True,
        min_size: int | None = None,
        validate: bool = True,
        task_ids: Sequence[int] | None = None,
        store: ImageStore | None = None,
    ):
        super().__init__(
            tasks, batch_size, patch_size, seed, samples_per_epoch, num_shards, shard_id,
            same_task_across_ranks, task_ids,
        )
        self.min_size = int(min_size if min_size is not None else patch_size)
        self.paths = scan_images(images, self.min_size, validate=validate)
        self.augment = bool(augment)
        self.clip_noise = bool(clip_noise)
        self.store = store or ImageStore()
        needs_rain = any(t.kind == "derain" for t in self.tasks)
        self.rain: StreakLayers | ProceduralStreakBank | None = (
            streak_source(rain_streaks, rain_preset, seed) if needs_rain else None
        )
        needs_blur = any(t.kind == "deblur" for t in self.tasks)
        self.kernels = KernelBank(blur, seed) if needs_blur else None
        self._bad: set[int] = set()
        self._check_len()

    def _num_items(self) -> int:
        return len(self.paths)

    def warm_up(self) -> None:
        """Build the rain-streak and blur-kernel banks now. They are otherwise built lazily,
        in every worker process; built before the workers start, they travel with the
        source (a few MB) instead. ``create_mindspore_dataset`` calls this."""
        if self.rain is not None:
            self.rain.warm_up()
        if self.kernels is not None:
            self.kernels.warm_up()

    def _load(self, item: int, rng: np.random.Generator) -> np.ndarray:
        """Decode image ``item``; an undecodable file is replaced by a random other one."""
        for _ in range(16):
            if item not in self._bad:
                try:
                    img = self.store.load(self.paths[item])
                    if min(img.shape[:2]) >= self.min_size:
                        return img
                    reason = f"{img.shape[1]}x{img.shape[0]} is below {self.min_size} px"
                except ImageReadError as err:
                    reason = err.reason
                self._bad.add(item)
                log.warning(
                    "skipping image %s: %s (%d skipped so far in this process)",
                    self.paths[item], reason, len(self._bad),
                )
            item = int(rng.integers(len(self.paths)))
        raise IPTError(f"too many unreadable images in the training set (last tried {self.paths[item]})")

    @staticmethod
    def _random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        if min(h, w) < size:
            import cv2

            f = size / min(h, w)
            nh, nw = max(size, math.ceil(h * f)), max(size, math.ceil(w * f))
            img = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_LINEAR)
            h, w = nh, nw
        y = int(rng.integers(h - size + 1))
        x = int(rng.integers(w - size + 1))
        return img[y : y + size, x : x + size]

    def _maybe_augment(self, patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.augment:
            return patch
        flips = rng.random(3) < 0.5
        return augment(patch, bool(flips[0]), bool(flips[1]), bool(flips[2]))

    def _make_sample(self, item: int, task_pos: int, rng: np.random.Generator):
        task = self.tasks[task_pos]
        img = self._load(item, rng)
        p = self.patch_size
        if task.kind == "sr":
            hr = self._maybe_augment(self._random_crop(img, p * task.scale, rng), rng)
            hr = np.ascontiguousarray(hr)
            return imresize(hr, 1.0 / task.scale), hr
        if task.kind == "deblur":
            kernel = self.kernels.sample(rng)
            r = kernel.shape[0] // 2
            big = self._maybe_augment(self._random_crop(img, p + 2 * r, rng), rng)
            hr = big[r : r + p, r : r + p]
            return blur_patch_valid(big, kernel), hr
        hr = self._maybe_augment(self._random_crop(img, p, rng), rng)
        if task.kind == "denoise":
            return add_gaussian_noise(hr, task.sigma, rng, clip=self.clip_noise), hr
        return add_rain(hr, self.rain.sample(p, p, rng)), hr


# ----------------------------------------------------------------------------- fine-tuning


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

    ``data`` is either stored pairs (a :class:`~ipt_ms.data.folders.PairDataset` from
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
