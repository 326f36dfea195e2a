"""Pre-training batches: clean images cropped and degraded on the fly, one task per batch."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np

from ipt_ms.data.augment import augment
from ipt_ms.data.batch_source import BatchSource
from ipt_ms.data.blur import BlurConfig, KernelBank, blur_patch_valid
from ipt_ms.data.degrade import add_gaussian_noise
from ipt_ms.data.image_scan import scan_images
from ipt_ms.data.imageio import ImageReadError
from ipt_ms.data.imresize import imresize
from ipt_ms.data.rain import ProceduralStreakBank, StreakLayers, add_rain, streak_source
from ipt_ms.data.store import ImageStore
from ipt_ms.errors import IPTError
from ipt_ms.tasks import PRETRAIN_TASKS, Task

log = logging.getLogger("ipt_ms.data")


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
