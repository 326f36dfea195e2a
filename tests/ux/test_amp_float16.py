"""Mixed precision (float16) on CPU: AMP O2/O3 training steps, dynamic loss scaling with an
injected overflow, and the forward pass against the PyTorch twin under float16 autocast.

MindSpore 2.10's CPU kernels run float16 matmul, conv, softmax and LayerNorm, so the AMP
path that GPU/Ascend runs use is exercised here. Tolerances (measured on the tiny model,
n_feats 16, 1+1 layers, two 24x24 patches; float16 has a relative step of 9.8e-4):

* MindSpore O2/O3 output vs PyTorch float32: 1.7e-3 to 2.0e-3 of the output range; PyTorch's
  own float16 autocast is 1.1e-3 away, a `.half()` copy 2.0e-3. So float16 is really in use
  (float32 parity is 1e-6).
* MindSpore O2/O3 vs PyTorch autocast float16: 1.5e-3 to 1.9e-3. Asserted: <= 5e-3, and no
  more than 3x PyTorch autocast's own distance from float32.
* The first training loss, O2 vs autocast: 7e-6 relative (asserted <= 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest

from ipt_ms.spec import IPTSpec

SPEC = IPTSpec(scales=(1,), task_names=("denoise_30",), n_feats=16, patch_size=24, patch_dim=3, num_heads=2,
               num_layers=1)


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def _batch(seed: int = 0):
    from parity.train_parity import make_batches

    lr, hr, task = make_batches(SPEC, 1, batch_size=2, seed=seed)[0]
    return lr, hr, int(task)


@pytest.mark.parametrize("level", ["O2", "O3"])
def test_float16_forward_matches_pytorch_autocast(level, pynative):
    import mindspore as ms
    import torch

    from ipt_ms.inference import build_model
    from parity.seeded import seeded_state
    from parity.torch_runner import build_torch_model

    state = seeded_state(SPEC, 0)
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 24, 24)).astype(np.float32)
    model = build_torch_model(SPEC, state)
    with torch.no_grad():
        ref32 = model(torch.from_numpy(x), 0).numpy()
        with torch.autocast("cpu", dtype=torch.float16):
            ref16 = model(torch.from_numpy(x), 0).float().numpy()
    out = ms.amp.auto_mixed_precision(build_model(SPEC, state), level)(ms.Tensor(x), 0).asnumpy()
    torch_fp16_error = _rel(ref16, ref32)
    assert 1e-4 < torch_fp16_error < 5e-3  # autocast really computes in float16 on CPU
    assert _rel(out, ref32) > 1e-4  # so does MindSpore (float32 parity is ~1e-6)
    assert _rel(out, ref16) <= min(5e-3, 3 * torch_fp16_error)


@pytest.mark.parametrize("level", ["O2", "O3"])
def test_amp_training_steps_scale_down_skip_an_overflow_and_recover(level, pynative):
    import mindspore as ms
    import torch

    from ipt_ms.inference import build_model
    from ipt_ms.train.losses import IPTLoss
    from ipt_ms.train.step import LossScaleSettings, TrainStep, build_adam
    from parity.seeded import seeded_state
    from parity.torch_runner import build_torch_model
    from parity.train_parity import torch_loss

    state = seeded_state(SPEC, 0)
    net = build_model(SPEC, state)
    amp = ms.amp.auto_mixed_precision(net, level)
    amp.set_train(True)
    opt = build_adam(net.trainable_params(), 1e-4)
    step = TrainStep(IPTLoss(amp, "eq5", 0.1), opt, clip_norm=1.0,
                     loss_scale=LossScaleSettings(init=65536.0, factor=2.0, window=1000))
    params = net.trainable_params()

    def run(lr, hr, task):
        before = [p.asnumpy().copy() for p in params]
        adam_before = float(opt.state_step.asnumpy()[0])
        out = step(ms.Tensor(lr), ms.Tensor(hr), task).asnumpy()
        changed = any(not np.array_equal(b, p.asnumpy()) for b, p in zip(before, params))
        return out, changed, float(opt.state_step.asnumpy()[0]) - adam_before

    lr, hr, task = _batch(0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        torch_total = float(torch_loss(build_torch_model(SPEC, state), torch.from_numpy(lr), torch.from_numpy(hr),
                                       task, "eq5", 0.1)[0])
    scales, applied = [], []
    for i in range(8):
        out, changed, adam_steps = run(*_batch(i % 2))
        if i == 0:
            assert np.isfinite(out[0]) and abs(out[0] - torch_total) <= 1e-3 * abs(torch_total)
        # a step either updates (finite float16 gradients) or leaves weights and Adam alone
        assert changed == bool(out[3]) and adam_steps == out[3]
        scales.append(float(out[5]))
        applied.append(bool(out[3]))
        if not out[3]:
            assert float(step.update.loss_scale.asnumpy()) == out[5] / 2  # overflow: the scale halves
    assert scales[0] == 65536.0 and not applied[0]  # 65536 x float16 gradients overflow at first
    assert any(applied) and scales[-1] < 65536.0  # the scale settled where the steps fit

    # an injected overflow: an input far outside float16's range (255e5 > 65504)
    settled = float(step.update.loss_scale.asnumpy())
    out, changed, adam_steps = run(lr * 1e5, hr, task)
    assert not out[3] and not changed and adam_steps == 0 and not np.isfinite(out[0])
    assert float(step.update.loss_scale.asnumpy()) == settled / 2
    out, changed, adam_steps = run(lr, hr, task)  # and it recovers on the next ordinary batch
    assert out[3] == 1 and changed and adam_steps == 1 and np.isfinite(out[0])
