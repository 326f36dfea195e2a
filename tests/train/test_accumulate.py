"""Gradient accumulation: K micro-batches per optimizer step.

L1 only, K=2 x batch 4 must match batch 8 (the loss is a mean over images); with the
contrastive term, the step must follow its documented definition: the contrastive loss
is computed within each micro-batch, and the applied gradient is the mean of the
micro-batch gradients. Both compare the gradient norm the step reports (before clipping
and Adam, which would hide a constant factor such as a sum instead of a mean).
"""

from __future__ import annotations

import numpy as np
import pytest

STEPS = 3


def _batches(scale: int, n: int = 8, p: int = 24):
    rng = np.random.default_rng(5)
    out = []
    for _ in range(STEPS):
        hr = rng.uniform(0, 255, (n, 3, p * scale, p * scale)).astype(np.float32)
        lr = hr[:, :, ::scale, ::scale] + rng.normal(0, 10, (n, 3, p, p)).astype(np.float32)
        out.append((np.ascontiguousarray(lr), hr))
    return out


def _train(spec, state, contrastive: str, accumulate: int, batches):
    import mindspore as ms

    from ipt_ms.inference import build_model
    from ipt_ms.train.losses import IPTLoss
    from ipt_ms.train.step import TrainStep, build_adam
    from ipt_ms.train.weights import network_arrays

    ms.set_seed(0)
    net = build_model(spec, state)
    net.set_train(True)
    loss = IPTLoss(net, contrastive, 0.1, 0.07, 0.07)
    opt = build_adam(net.trainable_params(), 1e-3)
    step = TrainStep(loss, opt, clip_norm=1.0, accumulate=accumulate)
    outs = []
    for lr, hr in batches:
        b = len(lr) // accumulate
        for k in range(accumulate):
            piece = slice(k * b, (k + 1) * b)
            out = step(ms.Tensor(lr[piece]), ms.Tensor(hr[piece]), 0, k == accumulate - 1).asnumpy()
        outs.append(out)
    return network_arrays(net), np.array(outs)


@pytest.fixture(scope="module")
def tiny_sr():
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(task_names=("sr_x2",), n_feats=8)  # the tolerances below were measured at 8 features
    return spec, seeded_state(spec, seed=4)


def test_two_micro_batches_of_4_equal_one_batch_of_8_with_l1(tiny_sr, ms_mode):
    spec, state = tiny_sr
    batches = _batches(2)
    whole, out1 = _train(spec, state, "none", 1, batches)
    split, out2 = _train(spec, state, "none", 2, batches)
    np.testing.assert_allclose(out2[:, 0], out1[:, 0], rtol=2e-6)  # mean loss over the 8 images
    # the applied gradient is the mean over the micro-batches, i.e. the gradient of the batch of 8:
    # its norm (out[:, 4], before clipping; Adam and the clip would hide a constant factor) at step 1,
    # from the same weights, equals the whole batch's (summed micro-batch gradients double it)
    np.testing.assert_allclose(out2[0, 4], out1[0, 4], rtol=1e-5, err_msg="grad_norm of step 1: K=2 x 4 vs 8")
    np.testing.assert_allclose(out2[:, 4], out1[:, 4], rtol=1e-3)
    worst = max(float(np.abs(split[k] - whole[k]).max()) / (float(np.abs(whole[k]).max()) or 1.0) for k in whole)
    print(f"{ms_mode}: K=2 x 4 vs batch 8 after {STEPS} steps: max rel weight diff {worst:.2e}, "
          f"loss {float(np.max(np.abs(out2[:, 0] - out1[:, 0]) / out1[:, 0])):.2e}")
    # float rounding of the sum, amplified by Adam's sign-like first steps; largest on the
    # LayerNorm betas (started at 0, so their scale is ~3 lr). Measured: 8.3e-5 with oneDNN
    # capped at AVX2, 8.0e-4 with its AVX-512 matmul kernels (the default since the convolutions
    # run as matmuls); a wrong accumulation (no mean, a dropped micro-batch) is off by O(1).
    assert worst < 2e-3, worst
    moved = max(float(np.abs(whole[k] - state_ms).max()) for k, state_ms in _initial(spec, state).items())
    assert moved > 1e-3  # the comparison is between trained weights, not the start


def _initial(spec, state):
    from ipt_ms.inference import build_model
    from ipt_ms.train.weights import network_arrays

    return network_arrays(build_model(spec, state))


def test_contrastive_under_accumulation_is_per_micro_batch(tiny_sr):
    """One step with K=2 (Eq. 5 on) == Adam on the mean of the two micro-batch gradients,
    each computed with the loss (L1 + 0.1 x contrastive) of its own 4 images."""
    import mindspore as ms

    from ipt_ms.inference import build_model
    from ipt_ms.train.losses import IPTLoss

    spec, state = tiny_sr
    (lr, hr), = _batches(2)[:1]
    accumulated, out = _train(spec, state, "eq5", 2, [(lr, hr)])

    net = build_model(spec, state)
    net.set_train(True)
    loss = IPTLoss(net, "eq5", 0.1, 0.07, 0.07)
    weights = net.trainable_params()
    grad_fn = ms.value_and_grad(loss, None, weights, has_aux=True)
    grads, totals, cons = [], [], []
    for piece in (slice(0, 4), slice(4, 8)):
        (total, _, con), g = grad_fn(ms.Tensor(lr[piece]), ms.Tensor(hr[piece]), 0)
        grads.append([x.asnumpy() for x in g])
        totals.append(float(total.asnumpy()))
        cons.append(float(con.asnumpy()))
    assert min(cons) > 0  # the term is on
    np.testing.assert_allclose(out[0, 0], np.mean(totals), rtol=1e-5)
    np.testing.assert_allclose(out[0, 2], np.mean(cons), rtol=1e-5)
    # torch.optim.Adam's first step on the clipped mean gradient g: w -= lr * g / (|g| + eps)
    mean = [(a + b) / 2 for a, b in zip(*grads)]
    norm = float(np.sqrt(sum(float(np.sum(np.square(g.astype(np.float64)))) for g in mean)))
    # the norm the step reports (before clipping) is that of the mean, not of the sum
    np.testing.assert_allclose(out[0, 4], norm, rtol=1e-5, err_msg="grad_norm vs the mean micro-batch gradient")
    coef = min(1.0, 1.0 / (norm + 1e-6))
    start = {p.name: p.asnumpy() for p in weights}
    worst = 0.0
    for p, g in zip(weights, mean):
        g = g.astype(np.float64) * coef
        expected = start[p.name] - 1e-3 * g / (np.abs(g) + 1e-8)
        worst = max(worst, float(np.abs(accumulated[p.name] - expected).max()))
    print(f"contrastive per micro-batch: update vs Adam on the mean micro-batch gradient: max abs diff {worst:.2e}")
    assert worst < 1e-6, worst
