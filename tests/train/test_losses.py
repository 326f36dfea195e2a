"""Losses against independent computations written straight from their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest


def eq5_by_definition(f: np.ndarray) -> float:
    """Eq. 5 of the IPT paper with explicit loops (float64)."""
    B, N, _ = f.shape

    def d(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    total = 0.0
    for j in range(B):
        for i1 in range(N):
            for i2 in range(N):
                numerator = math.exp(d(f[j, i1], f[j, i2]))
                denominator = sum(math.exp(d(f[j, i1], f[k, i2])) for k in range(B) if k != j)
                total += -math.log(numerator / denominator)
    return total / (B * N * N)


def supcon_by_definition(f: np.ndarray, t: float = 0.07) -> float:
    """The official SupCon variant (conventions section 8) with explicit loops (float64)."""
    B, N, _ = f.shape
    unit = f / np.linalg.norm(f, axis=-1, keepdims=True)
    rows = [(n, b) for n in range(N) for b in range(B)]  # the official row order r = n*B + b
    z = np.array([[unit[b1, n1] @ unit[b2, n2] / t for (n2, b2) in rows] for (n1, b1) in rows])
    losses = []
    for r, (_, b) in enumerate(rows):
        log_den = math.log(sum(math.exp(z[r, c]) for c in range(len(rows)) if c != r))
        pos = [z[r, c] - log_den for c, (_, b2) in enumerate(rows) if c != r and b2 == b]
        losses.append(-sum(pos) / (N - 1))
    return float(np.mean(losses))


@pytest.fixture
def features():
    rng = np.random.default_rng(5)
    f = rng.standard_normal((3, 4, 6)).astype(np.float32)
    f[1] += 0.7 * f[0]  # correlated images: a non-trivial loss
    return f


def test_eq5_matches_the_paper_definition(pynative, features):
    import mindspore as ms

    from ipt_ms.train.losses import contrastive_eq5

    got = float(contrastive_eq5(ms.Tensor(features)).asnumpy())
    assert got == pytest.approx(eq5_by_definition(features.astype(np.float64)), rel=1e-5)
    # cosine similarity: the scale of a feature vector must not matter
    scaled = features * np.array([3.0, 0.2, 7.0], np.float32)[:, None, None]
    assert float(contrastive_eq5(ms.Tensor(scaled)).asnumpy()) == pytest.approx(got, rel=1e-5)


def test_supcon_matches_the_official_definition(pynative, features):
    import mindspore as ms

    from ipt_ms.train.losses import supcon

    got = float(supcon(ms.Tensor(features)).asnumpy())
    assert got == pytest.approx(supcon_by_definition(features.astype(np.float64)), rel=1e-4)
    assert float(supcon(ms.Tensor(features), 0.5, 0.5).asnumpy()) == pytest.approx(
        supcon_by_definition(features.astype(np.float64), 0.5), rel=1e-4)


@pytest.mark.parametrize("variant", ["eq5", "supcon"])
def test_contrastive_gradients_match_pytorch(pynative, features, variant):
    import mindspore as ms
    import torch

    from ipt_ms.train.losses import contrastive_eq5, supcon
    from parity.train_parity import torch_eq5, torch_supcon

    ms_fn, torch_fn = (contrastive_eq5, torch_eq5) if variant == "eq5" else (supcon, torch_supcon)
    value, grad = ms.value_and_grad(ms_fn)(ms.Tensor(features))
    tf = torch.tensor(features, requires_grad=True)
    ref = torch_fn(tf)
    ref.backward()
    assert float(value.asnumpy()) == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(grad.asnumpy(), tf.grad.numpy(), rtol=1e-4, atol=1e-6 * np.abs(tf.grad.numpy()).max())


def test_l1_is_the_mean_absolute_error(pynative):
    import mindspore as ms

    from ipt_ms.train.losses import l1_loss

    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 255, (2, 3, 5, 5)).astype(np.float32), rng.uniform(0, 255, (2, 3, 5, 5)).astype(np.float32)
    assert float(l1_loss(ms.Tensor(a), ms.Tensor(b)).asnumpy()) == pytest.approx(np.abs(a - b).mean(), rel=1e-6)


@pytest.fixture
def two_task_net():
    from ipt_ms.inference import build_model
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny(scales=(2, 1), task_names=("sr_x2", "denoise_30"))
    net = build_model(spec, seeded_state(spec, 1))
    net.set_train(True)
    return spec, net


def _batch(spec, task, seed=0):
    import mindspore as ms

    rng = np.random.default_rng(seed)
    s, p = spec.scales[task], spec.patch_size
    return (ms.Tensor(rng.uniform(0, 255, (3, 3, p, p)).astype(np.float32)),
            ms.Tensor(rng.uniform(0, 255, (3, 3, p * s, p * s)).astype(np.float32)))


def test_total_is_l1_plus_weighted_contrastive_and_tail_uses_the_body(pynative, two_task_net):
    from ipt_ms.train.losses import IPTLoss, contrastive_eq5

    spec, net = two_task_net
    lr, hr = _batch(spec, 0)
    total, l1, con = (float(v.asnumpy()) for v in IPTLoss(net, "eq5", 0.1)(lr, hr, 0))
    assert total == pytest.approx(l1 + 0.1 * con, rel=1e-6)
    out_plain = net(lr, 0).asnumpy()
    out, features = net(lr, 0, False, True)
    # the same reconstruction with and without features: the tail consumes body + head output in both
    np.testing.assert_array_equal(out.asnumpy(), out_plain)
    assert con == pytest.approx(float(contrastive_eq5(features).asnumpy()), rel=1e-6)
    assert l1 == pytest.approx(np.abs(out_plain - hr.asnumpy()).mean(), rel=1e-5)


@pytest.mark.parametrize("contrastive", ["none", "eq5", "supcon"])
def test_body_gets_gradient_from_l1(pynative, two_task_net, contrastive):
    """The official code's bug (tail skipping the body when the contrastive loss is on)
    would leave the transformer without any L1 gradient; here it must have one."""
    import mindspore as ms

    from ipt_ms.train.losses import IPTLoss

    spec, net = two_task_net
    loss = IPTLoss(net, contrastive, 0.1)
    params = net.trainable_params()
    names = [p.name for p in params]
    lr, hr = _batch(spec, 1)

    def l1_only(a, b):
        return loss(a, b, 1)[1]

    grads = ms.grad(l1_only, None, params)(lr, hr)
    norms = {n: float(np.abs(g.asnumpy()).max()) for n, g in zip(names, grads)}
    body = [n for n in names if n.startswith("body.encoder") or n.startswith("body.decoder")]
    assert body and all(norms[n] > 0 for n in body), [n for n in body if norms[n] == 0]
    assert norms["body.mlp_head.3.weight"] > 0 and norms["body.linear_encoding.weight"] > 0
    # the batch's own head and tail learn; the other task's do not
    assert norms["head.1.0.weight"] > 0 and norms["tail.1.1.weight"] > 0
    assert norms["head.0.0.weight"] == 0 and norms["tail.0.1.weight"] == 0
