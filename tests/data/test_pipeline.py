"""The mindspore.dataset wrapper yields exactly the plain iterator's batches."""

from __future__ import annotations

import numpy as np
import pytest

from ipt_ms.data.pipeline import clamp_workers, create_mindspore_dataset, iterate_batches
from ipt_ms.data.pretrain import PretrainSource
from ipt_ms.errors import IPTError


def _rows(dataset):
    return list(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))


def _equal(rows, ref) -> bool:
    return len(rows) == len(ref) and all(
        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and int(a[2]) == int(b[2])
        for a, b in zip(rows, ref)
    )


def test_clamp_workers():
    import os

    assert clamp_workers(0) == 1
    assert clamp_workers(10_000) == (os.cpu_count() or 1)


@pytest.mark.slow
def test_generator_dataset_matches_plain_iterator_with_workers_and_shards(image_folder):
    src = PretrainSource(image_folder, tasks=["sr_x2", "denoise_30", "derain"], batch_size=2, seed=3)
    ref = list(iterate_batches(src, num_epochs=2, start_step=1))
    # Worker processes (clamped to the CPU count) each hold a copy of the source.
    ds = create_mindspore_dataset(src, num_epochs=2, start_step=1, num_parallel_workers=64)
    assert ds.get_col_names() == ["lr", "hr", "task_idx"]
    assert _equal(_rows(ds), ref)
    # Sharding through the function: rank 1 of 2 sees the sharded source's batches.
    rank1 = create_mindspore_dataset(src, num_epochs=1, num_shards=2, shard_id=1, python_multiprocessing=False)
    assert _equal(_rows(rank1), list(iterate_batches(src.shard(2, 1))))
    with pytest.raises(IPTError):
        create_mindspore_dataset(src, num_shards=2)
