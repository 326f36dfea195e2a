"""Helpers shared by the training tests (and the msrun worker script)."""

from __future__ import annotations

import numpy as np

from ipt_ms.data.seeding import rng_from


class ArraySource:
    """A deterministic in-memory batch source with the `BatchSource` interface.

    Global batch g of an epoch is a fixed function of (seed, epoch, g) and holds
    `batch_size * num_shards` images; rank r trains on rows [r*b, (r+1)*b). So N ranks
    with batch b see exactly the images 1 rank with batch N*b sees, which is what the
    data-parallel equivalence test needs. `nan_at` puts a NaN in the input of that
    (epoch, step) batch.
    """

    def __init__(self, tasks=(("denoise_30", 1),), batch_size=4, patch_size=24, steps_per_epoch=6, seed=0,
                 num_shards=1, shard_id=0, nan_at=None):
        self.tasks = list(tasks)
        self.batch_size = batch_size
        self.patch_size = patch_size
        self.steps = steps_per_epoch
        self.seed = seed
        self.num_shards = num_shards
        self.shard_id = shard_id
        self.nan_at = nan_at

    def __len__(self) -> int:
        return self.steps

    def get_batch(self, epoch: int, step: int):
        rng = rng_from(self.seed, "array-source", epoch, step)
        task = int(rng.integers(len(self.tasks)))
        scale = self.tasks[task][1]
        n = self.batch_size * self.num_shards
        p = self.patch_size
        coarse = rng.uniform(0, 255, (n, 3, p * scale // 4, p * scale // 4)).astype(np.float32)
        hr = np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3)
        lr = hr[:, :, ::scale, ::scale] + rng.normal(0, 20, (n, 3, p, p)).astype(np.float32)
        rows = slice(self.shard_id * self.batch_size, (self.shard_id + 1) * self.batch_size)
        lr, hr = np.ascontiguousarray(lr[rows], np.float32), np.ascontiguousarray(hr[rows], np.float32)
        if self.nan_at == (epoch, step):
            lr[0, 0, 0, 0] = np.nan
        return lr, hr, np.int32(task)

    def __getitem__(self, step: int):
        return self.get_batch(0, step)


def tiny_config(out_dir, **sections):
    """A validated TrainConfig for the tiny test model (single task denoise_30 unless told)."""
    from ipt_ms.train.config import load_train_config

    data = {
        "kind": "pretrain",
        "model": {"tasks": ["denoise_30"], "n_feats": 8, "patch_size": 24, "patch_dim": 3, "num_heads": 2,
                  "num_layers": 1},
        "data": {"batch_size": 4, "num_workers": 0, "root": "unused"},
        "optim": {"lr": 1e-3, "grad_clip_norm": 1.0},
        "schedule": {"epochs": 3, "milestones": [1], "gamma": 0.5},
        "output": {"dir": str(out_dir), "log_every": 1, "checkpoint_every": 2, "keep_last": 2, "progress": False,
                   "plot": False},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return load_train_config(data=data)


def same_checkpoint(a, b) -> bool:
    """Two .ckpt files hold the same arrays and metadata, provenance aside: it names the run
    folder (`ipt_ms.provenance`), which differs between two runs that must agree bit for bit."""
    from ipt_ms.convert.ms_checkpoint import read_ckpt
    from ipt_ms.provenance import PROVENANCE_METADATA_KEY

    left, right = read_ckpt(a), read_ckpt(b)
    left.pop(PROVENANCE_METADATA_KEY, None)
    right.pop(PROVENANCE_METADATA_KEY, None)
    if left.keys() != right.keys():
        return False
    return all(np.array_equal(left[k], right[k]) if isinstance(left[k], np.ndarray) else left[k] == right[k]
               for k in left)
