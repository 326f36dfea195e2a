"""The compiled training step on a toy loss: overflow/NaN gating and dynamic loss scaling."""

from __future__ import annotations

import numpy as np
import pytest


def test_nonfinite_steps_leave_weights_and_adam_untouched_and_scale_adapts():
    import mindspore as ms
    from mindspore import Parameter, nn, ops

    from ipt_ms.train.step import LossScaleSettings, TrainStep, build_adam

    class Toy(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = Parameter(ms.Tensor(np.array([0.5, -1.0, 2.0], np.float32)), name="w")

        def construct(self, x, y, task_idx: int = 0):
            l1 = ops.mean(ops.abs(self.w * x - y))
            return l1, l1, ops.zeros((), ms.float32)

    toy = Toy()
    opt = build_adam(toy.trainable_params(), 0.1)
    step = TrainStep(toy, opt, clip_norm=None, loss_scale=LossScaleSettings(init=2.0**20, factor=4.0, window=2))
    y = ms.Tensor(np.zeros(3, np.float32))

    def run(x):
        before = toy.w.asnumpy().copy()
        out = step(ms.Tensor(np.asarray(x, np.float32)), y, 0).asnumpy()
        return out, before, toy.w.asnumpy().copy(), float(opt.state_step.asnumpy()[0])

    # gradient x * scale overflows float32: skipped, scale / 4
    out, before, after, adam_steps = run([1e34, 1.0, 1.0])
    assert out[3] == 0 and out[5] == 2.0**20 and adam_steps == 0
    np.testing.assert_array_equal(before, after)
    assert float(step.update.loss_scale.asnumpy()) == 2.0**18
    # two finite steps: applied with unscaled gradients, then the scale grows after `window`
    out, before, after, adam_steps = run([1.0, 1.0, 1.0])
    assert out[3] == 1 and adam_steps == 1 and out[4] == pytest.approx(np.sqrt(3) / 3, rel=1e-6)
    np.testing.assert_allclose(after, before - 0.1 * np.sign(before), rtol=1e-5)  # Adam's first step: lr * sign(g)
    run([1.0, 1.0, 1.0])
    assert float(step.update.loss_scale.asnumpy()) == 2.0**20
    # a NaN input: nothing applied, no Adam step, the scale shrinks again
    out, before, after, adam_steps = run([np.nan, 1.0, 1.0])
    assert out[3] == 0 and not np.isfinite(out[0]) and adam_steps == 2
    np.testing.assert_array_equal(before, after)
    assert float(step.update.loss_scale.asnumpy()) == 2.0**18


@pytest.mark.slow
def test_step_compiles_with_as_many_gradients_as_the_full_model():
    """The full 6-task IPT has ~380 parameter tensors; per-gradient Python loops in the
    compiled step nest one call per tensor and overflow Graph mode's depth limit (1000)."""
    import mindspore as ms
    from mindspore import Parameter, ParameterTuple, nn, ops

    from ipt_ms.train.step import TrainStep, build_adam

    class Many(nn.Cell):
        def __init__(self, count: int):
            super().__init__()
            self.ws = ParameterTuple([Parameter(ms.Tensor(np.full(2, 0.1 * (i % 7 + 1), np.float32)), name=f"w{i}")
                                      for i in range(count)])

        def construct(self, x, y, task_idx: int = 0):
            total = ops.addn([ops.sum(ops.abs(w * x - y)) for w in self.ws])
            return total, total, ops.zeros((), ms.float32)

    net = Many(330)
    opt = build_adam(net.trainable_params(), 0.01)
    step = TrainStep(net, opt, clip_norm=1.0)
    out = step(ms.Tensor(np.ones(2, np.float32)), ms.Tensor(np.zeros(2, np.float32)), 0).asnumpy()
    assert out[3] == 1 and float(opt.state_step.asnumpy()[0]) == 1
    np.testing.assert_allclose(net.ws[0].asnumpy(), [0.09, 0.09], rtol=1e-5)  # Adam's first step: lr * sign(g)


def test_adam_matches_torch_for_tiny_and_large_gradients():
    """`nn.Adam` drifts from PyTorch for small gradients (eps before the bias correction);
    ours must not, including weight decay."""
    import mindspore as ms
    import torch
    from mindspore import Parameter

    from ipt_ms.train.step import build_adam, set_learning_rate

    base = np.array([1.0, 1e-3, 1e-6, 1e-8, 1e-9, -1e-7, 0.0], np.float32)
    w0 = np.array([0.5, -0.3, 0.2, 0.1, -0.1, 0.7, 0.0], np.float32)
    param = Parameter(ms.Tensor(w0.copy()), name="w")
    opt = build_adam([param], 1e-3, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.01)

    @ms.jit
    def update(g):
        return opt((g,))

    ref = torch.tensor(w0.copy(), requires_grad=True)
    ref_opt = torch.optim.Adam([ref], lr=1e-3, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.01)
    rng = np.random.default_rng(0)
    for t in range(40):
        if t == 20:
            set_learning_rate(opt, 5e-4)
            ref_opt.param_groups[0]["lr"] = 5e-4
        g = (base * rng.uniform(0.5, 1.5, base.shape)).astype(np.float32)
        update(ms.Tensor(g))
        ref.grad = torch.from_numpy(g)
        ref_opt.step()
    moved = np.abs(ref.detach().numpy() - w0)
    assert moved[:6].min() > 1e-3  # every weight with a gradient (or decay) really moved
    np.testing.assert_allclose(param.asnumpy(), ref.detach().numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(opt.exp_avg_sq[0].asnumpy(), ref_opt.state[ref]["exp_avg_sq"].numpy(), rtol=1e-5)
