"""Training batch sources: shapes per task, determinism, sharding, resume, bad images."""

from __future__ import annotations

import logging
import pickle
from collections import Counter

import numpy as np
import pytest

from ipt_ms.data.folders import FilePairs, PairEntry
from ipt_ms.data.imageio import write_image
from ipt_ms.data.imresize import imresize
from ipt_ms.data.pipeline import EpochSpan, iterate_batches
from ipt_ms.data.pretrain import PairedPatchSource, PretrainSource, finetune_source
from ipt_ms.errors import IPTError
from ipt_ms.tasks import PRETRAIN_TASKS


def _hwc_uint8(batch: np.ndarray) -> np.ndarray:
    assert np.array_equal(batch, np.round(batch))  # clean crops are exact integers
    return batch.transpose(0, 2, 3, 1).astype(np.uint8)


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("task", [*PRETRAIN_TASKS, "deblur"])
def test_batch_shapes_and_contents_per_task(image_folder, task):
    src = PretrainSource(image_folder, tasks=[task], batch_size=3, seed=1)
    lr, hr, idx = src[0]
    s = {"sr_x2": 2, "sr_x3": 3, "sr_x4": 4}.get(task, 1)
    assert lr.shape == (3, 3, 48, 48) and hr.shape == (3, 3, 48 * s, 48 * s)
    assert lr.dtype == hr.dtype == np.float32 and lr.flags.c_contiguous
    assert idx.dtype == np.int32 and int(idx) == 0
    assert lr.min() >= 0 and lr.max() <= 255 and hr.min() >= 0 and hr.max() <= 255
    hr8 = _hwc_uint8(hr)
    lr_hwc = lr.transpose(0, 2, 3, 1)
    if s > 1:  # LR is the MATLAB bicubic of the HR patch, exactly
        for k in range(3):
            np.testing.assert_array_equal(lr_hwc[k], imresize(hr8[k], 1 / s))
    elif task.startswith("denoise"):
        sigma = float(task.split("_")[1])
        assert 0.6 * sigma < np.std(lr - hr) < 1.05 * sigma
    elif task == "derain":
        assert np.all(lr >= hr) and np.any(lr > hr)  # additive streaks, clipped
    else:
        assert np.abs(lr - hr).mean() > 0 and abs(lr.mean() - hr.mean()) < 3  # blur keeps brightness


def test_batches_are_a_function_of_seed_epoch_and_index(image_folder):
    a = PretrainSource(image_folder, batch_size=2, seed=5)
    b = pickle.loads(pickle.dumps(PretrainSource(image_folder, batch_size=2, seed=5)))
    assert len(a) == 5  # 10 images / batch 2
    for j in (0, 3):
        assert _same(a.get_batch(2, j), b.get_batch(2, j))
    a.set_epoch(2)
    assert _same(a[3], b.get_batch(2, 3))
    assert not _same(a.get_batch(0, 0), a.get_batch(1, 0))
    c = PretrainSource(image_folder, batch_size=2, seed=6)
    assert not _same(a.get_batch(0, 0), c.get_batch(0, 0))
    with pytest.raises(IndexError):
        a.get_batch(0, 5)


def test_every_epoch_uses_every_image_once(image_folder):
    src = PretrainSource(image_folder, batch_size=2, seed=0)
    for epoch in (0, 1):
        items = np.concatenate([src.batch_items(epoch, j) for j in range(len(src))])
        assert sorted(items.tolist()) == list(range(10))
    assert not np.array_equal(src.epoch_order(0), src.epoch_order(1))
    longer = PretrainSource(image_folder, batch_size=2, seed=0, samples_per_epoch=30)
    counts = Counter(longer.epoch_order(0).tolist())
    assert len(longer) == 15 and set(counts.values()) == {3}


def test_tasks_are_uniform_over_the_pretraining_set(image_folder):
    src = PretrainSource(image_folder, batch_size=1, seed=0, samples_per_epoch=10, validate=False)
    counts = Counter(src.task_position(e, j) for e in range(120) for j in range(10))
    assert set(counts) == set(range(6))
    assert max(counts.values()) < 1.25 * 200 and min(counts.values()) > 0.75 * 200


@pytest.mark.parametrize("num_shards", [2, 3])
def test_shards_are_disjoint_and_cover_the_epoch(image_folder, num_shards):
    base = PretrainSource(image_folder, batch_size=2, seed=3, samples_per_epoch=20)
    shards = [base.shard(num_shards, r) for r in range(num_shards)]
    per_rank = 10 // num_shards
    assert all(len(s) == per_rank for s in shards)
    seen: list[int] = []
    for s in shards:
        for j in range(len(s)):
            seen += list(range(s.global_batch_index(j) * 2, s.global_batch_index(j) * 2 + 2))
    assert len(seen) == len(set(seen))  # disjoint sample slots
    assert sorted(seen) == list(range(per_rank * num_shards * 2))  # covering the kept batches
    # A rank's batch j is exactly the unsharded source's global batch j*N + r.
    r = num_shards - 1
    assert _same(shards[r].get_batch(1, 1), base.get_batch(1, 1 * num_shards + r))


def test_same_task_across_ranks_option(image_folder):
    indep = [PretrainSource(image_folder, batch_size=1, seed=2, num_shards=3, shard_id=r) for r in range(3)]
    same = [
        PretrainSource(image_folder, batch_size=1, seed=2, num_shards=3, shard_id=r, same_task_across_ranks=True)
        for r in range(3)
    ]
    steps = [(e, j) for e in range(5) for j in range(3)]
    assert all(len({s.task_position(e, j) for s in same}) == 1 for e, j in steps)
    assert any(len({s.task_position(e, j) for s in indep}) > 1 for e, j in steps)
    lr, hr, idx = same[1].get_batch(0, 2)
    assert int(idx) == same[0].get_batch(0, 2)[2]


def test_resume_reproduces_the_uninterrupted_stream(image_folder):
    src = PretrainSource(image_folder, tasks=["sr_x2", "denoise_30"], batch_size=2, seed=9)
    full = list(iterate_batches(src, num_epochs=2))
    assert len(full) == 10
    restarted = pickle.loads(pickle.dumps(src))
    resumed = list(iterate_batches(restarted, num_epochs=2, start_epoch=0, start_step=3))
    assert len(resumed) == 7 and all(_same(a, b) for a, b in zip(resumed, full[3:]))
    second = list(iterate_batches(restarted, num_epochs=1, start_epoch=1))
    assert all(_same(a, b) for a, b in zip(second, full[5:]))
    span = EpochSpan(src, num_epochs=3, start_epoch=4, start_step=2)
    assert len(span) == 13 and span.epoch_step(0) == (4, 2) and span.epoch_step(3) == (5, 0)
    with pytest.raises(IPTError):
        EpochSpan(src, start_step=5)


def test_augmentation_keeps_pairs_consistent(image_folder):
    plain = PretrainSource(image_folder, tasks=["sr_x2"], batch_size=4, seed=0)
    aug = PretrainSource(image_folder, tasks=["sr_x2"], batch_size=4, seed=0, augment=True)
    lr, hr, _ = aug[0]
    for k in range(4):
        np.testing.assert_array_equal(lr[k].transpose(1, 2, 0), imresize(_hwc_uint8(hr)[k], 0.5))
    assert not _same(plain[0], aug[0])


def test_unreadable_and_tiny_images_are_skipped_with_warnings(tmp_path, photos, caplog):
    root = tmp_path / "train"
    for i in range(6):
        write_image(root / f"ok{i}.jpg", photos[i % 3][:200, :210])
    write_image(root / "tiny.png", photos[0][:20, :30])
    (root / "garbage.jpg").write_bytes(b"not a jpeg at all")
    good = (root / "ok0.jpg").read_bytes()
    (root / "trunc.jpg").write_bytes(good[: len(good) // 4])  # valid header, truncated data
    with caplog.at_level(logging.WARNING, logger="ipt_ms.data"):
        src = PretrainSource(root, tasks=["denoise_30"], batch_size=7, seed=0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("garbage.jpg" in m for m in messages) and any("tiny.png" in m for m in messages)
    assert any("skipped 2 of 9" in m for m in messages)
    assert len(src.paths) == 7  # the truncated file passes the header check...
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ipt_ms.data"):
        for e in range(3):
            lr, hr, _ = src.get_batch(e, 0)  # ...and is replaced when it fails to decode
            assert lr.shape == (7, 3, 48, 48)
    trunc_msgs = [r for r in caplog.records if "trunc.jpg" in r.getMessage()]
    assert len(trunc_msgs) == 1  # one line per bad file, however often it is drawn


def test_empty_or_unusable_folders_are_errors(tmp_path, photos):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IPTError, match="empty"):
        PretrainSource(tmp_path / "empty")
    with pytest.raises(IPTError, match="missing"):
        PretrainSource(tmp_path / "missing")
    write_image(tmp_path / "small" / "a.png", photos[0][:10, :10])
    with pytest.raises(IPTError, match="no usable images"):
        PretrainSource(tmp_path / "small")
    write_image(tmp_path / "few" / "a.png", photos[0][:60, :60])
    with pytest.raises(IPTError, match="too few samples"):
        PretrainSource(tmp_path / "few", batch_size=4)


def test_images_smaller_than_the_crop_are_enlarged(tmp_path, photos):
    for i in range(2):
        write_image(tmp_path / f"s{i}.png", photos[i][:60, :90])  # < 192 for x4, >= 48
    src = PretrainSource(tmp_path, tasks=["sr_x4"], batch_size=2, seed=0)
    lr, hr, _ = src[0]
    assert lr.shape == (2, 3, 48, 48) and hr.shape == (2, 3, 192, 192)


# ----------------------------------------------------------------------------- fine-tuning


def _box_pairs(root, photos, n=3):
    """LR = rounded 2x2 box mean of HR: any aligned crop/flip/transpose commutes with it."""
    entries = []
    for i in range(n):
        hr = photos[i][:112, :136]
        lr = np.floor(hr.reshape(56, 2, 68, 2, 3).astype(np.float64).mean(axis=(1, 3)) + 0.5).astype(np.uint8)
        entries.append(PairEntry(f"p{i}", write_image(root / f"hr{i}.png", hr), write_image(root / f"lr{i}.png", lr)))
    return FilePairs(entries, scale=2)


def test_paired_patches_are_aligned_under_augmentation(tmp_path, photos):
    pairs = _box_pairs(tmp_path, photos)
    src = finetune_source(pairs, "sr_x2", batch_size=6, patch_size=24, samples_per_epoch=12, seed=4)
    assert isinstance(src, PairedPatchSource) and len(src) == 2
    for j in range(2):
        lr, hr, idx = src[j]
        assert int(idx) == 0 and lr.shape == (6, 3, 24, 24) and hr.shape == (6, 3, 48, 48)
        box = np.floor(hr.reshape(6, 3, 24, 2, 24, 2).mean(axis=(3, 5)) + 0.5)
        np.testing.assert_array_equal(lr, box)
    with pytest.raises(IPTError, match="x2"):
        PairedPatchSource(pairs, "sr_x3")


def test_finetune_from_clean_folder_keeps_the_pretrained_head_index(image_folder):
    src = finetune_source(image_folder, "denoise_50", batch_size=2)
    lr, hr, idx = src[0]
    assert int(idx) == PRETRAIN_TASKS.index("denoise_50") == 4
    assert lr.shape == hr.shape == (2, 3, 48, 48)
    other = finetune_source(image_folder, "deblur", batch_size=2, task_idx=None)
    assert int(other[0][2]) == 0
