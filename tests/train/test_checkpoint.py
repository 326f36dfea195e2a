"""Checkpoint files, metrics log, task selection for fine-tuning: no training needed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ipt_ms.errors import IPTError
from ipt_ms.train.checkpoint import (
    TrainState,
    capture_rng,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)


def _tensors(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"head.0.0.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "exp_avg.head.0.0.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "state_step": np.array([7.0], np.float32), "loss_scale": np.array(1024.0, np.float32),
            "loss_scale_good_steps": np.array(3, np.int32)}


def test_round_trip_and_keep_last(tmp_path):
    for step in (2, 4, 6):
        state = TrainState(global_step=step, epoch=1, step_in_epoch=step % 5, steps_per_epoch=5, lr=1e-4,
                           config={"optim": {"lr": 1e-4}}, rng=capture_rng())
        save_checkpoint(tmp_path, _tensors(step), state, '{"x": 1}', keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000000004.ckpt", "step_000000006.ckpt"]
    tensors, state, spec_json = load_checkpoint(latest_checkpoint(tmp_path))
    for key, value in _tensors(6).items():
        np.testing.assert_array_equal(tensors[key], value)
        assert tensors[key].dtype == value.dtype
    assert (state.global_step, state.epoch, state.step_in_epoch, state.lr) == (6, 1, 1, 1e-4)
    assert state.config == {"optim": {"lr": 1e-4}} and spec_json == '{"x": 1}'


def test_failed_write_keeps_previous_checkpoints(tmp_path, monkeypatch):
    import mindspore as ms

    save_checkpoint(tmp_path, _tensors(0), TrainState(global_step=1), "{}", keep_last=3)

    def crash(*args, **kwargs):
        with open(args[1], "wb") as handle:
            handle.write(b"half a file")
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(ms, "save_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, _tensors(1), TrainState(global_step=2), "{}", keep_last=1)
    assert [p.name for p in tmp_path.iterdir()] == ["step_000000001.ckpt"]
    # a stray partial file (a kill -9 gives no chance to clean up) is never picked
    (tmp_path / ".step_000000003.ckpt.partial-x.ckpt").write_bytes(b"junk")
    assert latest_checkpoint(tmp_path).name == "step_000000001.ckpt"


def test_weights_file_is_not_a_training_checkpoint(tmp_path, tiny_ckpt):
    with pytest.raises(IPTError, match="not a training checkpoint.*--init"):
        load_checkpoint(tiny_ckpt)
    with pytest.raises(IPTError, match="not found"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_rng_states_round_trip():
    import mindspore as ms

    random.seed(1)
    np.random.seed(2)
    ms.set_seed(3)
    saved = capture_rng()
    expected = (random.random(), np.random.rand(), ms.get_rng_state().asnumpy().copy())
    random.random()
    np.random.rand()
    restore_rng(saved)
    assert random.random() == expected[0] and np.random.rand() == expected[1]
    np.testing.assert_array_equal(ms.get_rng_state().asnumpy(), expected[2])


def test_metrics_truncate_and_plot(tmp_path):
    from ipt_ms.train.metrics import MetricsLog, plot_loss_curves, read_metrics

    log = MetricsLog(tmp_path / "m.jsonl")
    for step in range(1, 9):
        log.write({"step": step, "task": "sr_x2" if step % 2 else "derain", "loss": 10.0 / step, "l1": 9.0 / step,
                   "contrastive": 1.0})
    log.close()
    with open(tmp_path / "m.jsonl", "a") as handle:
        handle.write('{"step": 9, "task": "sr')  # a line cut by kill -9
    assert len(read_metrics(tmp_path / "m.jsonl")) == 8
    log.truncate_after(5)
    assert [r["step"] for r in read_metrics(tmp_path / "m.jsonl")] == [1, 2, 3, 4, 5]
    png = plot_loss_curves(tmp_path / "m.jsonl", tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_draws_l1_of_logged_records_beside_every_steps_loss(tmp_path):
    """A contrastive run logs L1 every log_every steps but the loss of every step: both drawn."""
    from ipt_ms.train.metrics import MetricsLog, plot_loss_curves

    log = MetricsLog(tmp_path / "m.jsonl")
    for step in (4, 8, 12):
        log.write({"step": step, "task": "sr_x2", "loss": 10.0 / step, "l1": 9.0 / step, "contrastive": 1.0,
                   "step_losses": [[s, "sr_x2", 10.0 / s] for s in range(step - 3, step + 1)]})
    log.close()
    png = plot_loss_curves(tmp_path / "m.jsonl", tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_task_keeps_one_head_tail_query(tiny_spec, tiny_state):
    import torch

    from ipt_ms.train.weights import select_task
    from parity.torch_runner import build_torch_model

    spec, state = select_task(tiny_spec, tiny_state, "sr_x3")
    assert spec.task_names == ("sr_x3",) and spec.scales == (3,) and spec.num_queries == 1
    assert set(state) == set(spec.torch_state_shapes())
    assert not any(k.startswith(("head.1.", "tail.1.")) for k in state)
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (1, 3, 24, 24)).astype(np.float32))
    with torch.no_grad():
        full = build_torch_model(tiny_spec, tiny_state)(x, 1)
        single = build_torch_model(spec, state)(x, 0)
    np.testing.assert_array_equal(single.numpy(), full.numpy())


def test_initial_weights_for_finetuning(tmp_path, tiny_spec, tiny_pt):
    from ipt_ms.config import ConfigError
    from ipt_ms.train.weights import initial_weights
    from tests.train.helpers import tiny_config

    model = {"tasks": ["sr_x4"], "n_feats": 8, "patch_size": 24, "num_heads": 2, "num_layers": 1}
    cfg = tiny_config(tmp_path, kind="finetune", model=model, train={"init": str(tiny_pt)},
                      loss={"contrastive": "none"})
    spec, state = initial_weights(cfg)
    assert spec.task_names == ("sr_x4",) and state["body.query_embed.weight"].shape[0] == 1
    cfg = tiny_config(tmp_path, kind="finetune", model={**model, "n_feats": 16}, train={"init": str(tiny_pt)},
                      loss={"contrastive": "none"})
    with pytest.raises(ConfigError, match="n_feats: 8 vs 16"):
        initial_weights(cfg)
    cfg = tiny_config(tmp_path, kind="finetune", model={**model, "tasks": ["derain"]}, train={"init": str(tiny_pt)},
                      loss={"contrastive": "none"})
    with pytest.raises(ConfigError, match="no 'derain' head"):
        initial_weights(cfg)
