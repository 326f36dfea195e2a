"""The training loop in-process: non-finite losses, refusals, fine-tuning export, PyNative."""

from __future__ import annotations

import numpy as np
import pytest

from ipt_ms.config import ConfigError
from ipt_ms.errors import IPTError
from tests.train.helpers import ArraySource, tiny_config


def test_nan_stops_keeping_last_good_checkpoint_then_resume_checks(tmp_path):
    from ipt_ms.train.checkpoint import list_checkpoints
    from ipt_ms.train.loop import NonFiniteLossError, train
    from ipt_ms.train.metrics import read_metrics

    cfg = tiny_config(tmp_path / "run")
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg, source_factory=lambda world, rank: ArraySource(nan_at=(0, 3)), quiet=True)
    message = str(err.value)
    assert "non-finite loss (nan)" in message and "step 4 (epoch 0, batch 3" in message
    assert "last good checkpoint" in message and "step_000000002.ckpt" in message
    assert "train.on_nonfinite=skip" in message
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_000000002.ckpt"]
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]
    # a fresh run must not mix with the old one; resuming with another recipe says what differs
    with pytest.raises(IPTError, match="already holds checkpoints.*--resume"):
        train(cfg, source_factory=lambda world, rank: ArraySource(), quiet=True)
    changed = tiny_config(tmp_path / "run", optim={"lr": 2e-3}, model={"n_feats": 16})
    with pytest.raises(ConfigError) as err:
        train(changed, resume=True, source_factory=lambda world, rank: ArraySource(), quiet=True)
    assert "model.n_feats: checkpoint 8, now 16" in str(err.value)
    assert "optim.lr" not in str(err.value)  # adjustable on resume (the advice after a NaN stop)


def test_finetune_pynative_skips_nan_batch_and_exports_single_task(tmp_path, tiny_pt, pynative):
    from ipt_ms.convert.weights import load_weights
    from ipt_ms.train.loop import train
    from ipt_ms.train.metrics import read_metrics

    model = {"tasks": ["sr_x2"], "n_feats": 8, "patch_size": 24, "num_heads": 2, "num_layers": 1}
    cfg = tiny_config(tmp_path / "ft", kind="finetune", model=model, loss={"contrastive": "none"},
                      train={"init": str(tiny_pt), "on_nonfinite": "skip", "max_steps": 4, "mode": "pynative"},
                      output={"export": "sr2.pt", "plot": True})
    result = train(cfg, source_factory=lambda w, r: ArraySource((("sr_x2", 2),), steps_per_epoch=2, nan_at=(0, 1)),
                   quiet=True)
    assert result.global_step == 4 and result.skipped_batches == 1
    records = read_metrics(result.metrics)
    assert [r["applied"] for r in records] == [True, False, True, True]
    assert [r["lr"] for r in records] == [1e-3, 1e-3, 5e-4, 5e-4]  # milestone at epoch 1
    assert all(np.isfinite(r["loss"]) for r in records if r["applied"])
    spec, state = load_weights(result.weights)
    assert spec.task_names == ("sr_x2",) and state["body.query_embed.weight"].shape[0] == 1
    assert not any(k.startswith("head.1") for k in state)
    assert result.plot is not None and result.plot.exists()


class _Interrupting(ArraySource):
    """Ctrl-C while the 4th batch is being prepared."""

    def get_batch(self, epoch, step):
        if (epoch, step) == (0, 3):
            raise KeyboardInterrupt
        return super().get_batch(epoch, step)


def test_ctrl_c_writes_a_checkpoint_to_resume_from(tmp_path):
    from ipt_ms.train.checkpoint import list_checkpoints
    from ipt_ms.train.loop import train
    from ipt_ms.train.metrics import read_metrics

    cfg = tiny_config(tmp_path / "run", schedule={"epochs": 1, "milestones": []}, output={"checkpoint_every": 100})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, source_factory=lambda w, r: _Interrupting(), quiet=True)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_000000003.ckpt"]
    result = train(cfg, resume=True, source_factory=lambda w, r: ArraySource(), quiet=True)
    assert result.global_step == 6 and [s for s, _ in result.losses] == [4, 5, 6]
    assert [r["step"] for r in read_metrics(result.metrics)] == [1, 2, 3, 4, 5, 6]
