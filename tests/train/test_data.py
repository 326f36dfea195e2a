"""Batch sources built from training configs (benchmark layouts), no network needed."""

from __future__ import annotations

import numpy as np
import pytest

from ipt_ms.config import ConfigError
from tests.train.helpers import tiny_config


@pytest.fixture(scope="module")
def crops():
    from ipt_ms.eval.photos import sample_photo

    return [sample_photo(name, 96, 120) for name in ("astronaut", "coffee", "rocket")]


def test_div2k_pairs_for_sr_finetuning(tmp_path, crops):
    from ipt_ms.data.imageio import write_image
    from ipt_ms.train.data import build_source

    for i, img in enumerate(crops, start=1):
        write_image(tmp_path / "DIV2K" / "DIV2K_train_HR" / f"{i:04d}.png", img)
    model = {"tasks": ["sr_x2"], "n_feats": 8, "patch_size": 24, "num_heads": 2, "num_layers": 1}
    cfg = tiny_config(tmp_path / "run", kind="finetune", model=model, loss={"contrastive": "none"},
                      data={"source": "div2k", "root": str(tmp_path), "data_range": "1-3", "lr_images": "generate",
                            "batch_size": 4, "samples_per_epoch": 8})
    source = build_source(cfg, cfg.model.spec())
    lr, hr, task = source.get_batch(0, 1)
    assert lr.shape == (4, 3, 24, 24) and hr.shape == (4, 3, 48, 48) and int(task) == 0 and len(source) == 2
    assert lr.dtype == np.float32 and lr.min() >= 0 and hr.max() <= 255


def test_rain_pairs_and_sharding(tmp_path, crops):
    from ipt_ms.data.imageio import write_image
    from ipt_ms.train.data import build_source

    for i, img in enumerate(crops, start=1):
        write_image(tmp_path / f"norain-{i}.png", img)
        write_image(tmp_path / f"rain-{i}.png", np.clip(img.astype(int) + 40, 0, 255).astype(np.uint8))
    model = {"tasks": ["derain"], "n_feats": 8, "patch_size": 24, "num_heads": 2, "num_layers": 1}
    cfg = tiny_config(tmp_path / "run", kind="finetune", model=model, loss={"contrastive": "none"},
                      data={"source": "rain", "root": str(tmp_path), "batch_size": 4, "samples_per_epoch": 16})
    shards = [build_source(cfg, cfg.model.spec(), world_size=2, rank=r) for r in (0, 1)]
    assert [s.batch_size for s in shards] == [2, 2] and [len(s) for s in shards] == [4, 4]  # 16 samples an epoch
    a, b = shards[0].get_batch(0, 0), shards[1].get_batch(0, 0)
    assert a[0].shape == (2, 3, 24, 24) and not np.array_equal(a[1], b[1])  # disjoint shards
    assert np.all(a[0] >= a[1] - 1e-3)  # the rainy input is the brighter one


def test_batch_must_split_over_workers(tmp_path):
    from ipt_ms.train.data import per_rank_batch

    cfg = tiny_config(tmp_path, data={"batch_size": 6})
    assert per_rank_batch(cfg, 3) == 2
    with pytest.raises(ConfigError, match="does not split evenly over 4 workers"):
        per_rank_batch(cfg, 4)
    with pytest.raises(ConfigError, match="1 image\\(s\\) per worker"):
        per_rank_batch(cfg, 6)
