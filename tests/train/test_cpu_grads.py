"""The written-out CPU gradients (softmax, LayerNorm, im2col convolutions while training)
against float64 references and against MindSpore's own gradients."""

from __future__ import annotations

import numpy as np
import pytest

import ipt_ms  # noqa: F401  (environment defaults before MindSpore loads)


@pytest.fixture(scope="module")
def ms_graph():
    from ipt_ms.runtime import configure

    configure("CPU", "graph")
    import mindspore as ms

    return ms


def _grads(ms, net, x, weights, with_params: bool):
    """Input gradient (and parameter gradients) of sum(net(x) * weights)."""
    from mindspore import nn

    class Loss(nn.Cell):
        def __init__(self):
            super().__init__()
            self.net = net
            self.weights = ms.Tensor(weights)

        def construct(self, inputs):
            return (self.net(inputs) * self.weights).sum()

    loss = Loss()
    params = loss.trainable_params() if with_params else None
    _, grads = ms.value_and_grad(loss, 0, params)(ms.Tensor(x))
    if with_params:
        return grads[0].asnumpy(), [g.asnumpy() for g in grads[1]]
    return grads.asnumpy(), []


def _rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_softmax_gradient_matches_float64(ms_graph):
    from ipt_ms.models.cpu_grads import SoftmaxLastAxis

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 9, 13)) * 3).astype(np.float32)
    w = rng.standard_normal(x.shape).astype(np.float32)
    dx, _ = _grads(ms_graph, SoftmaxLastAxis(), x, w, with_params=False)
    y = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    y /= y.sum(-1, keepdims=True)
    ref = y * (w - (w * y).sum(-1, keepdims=True))
    assert _rel(dx, ref) < 1e-6


@pytest.mark.parametrize("shape", [(7, 3, 20), (11, 20)])
def test_layer_norm_gradients_match_float64_and_mindspore(ms_graph, shape):
    from mindspore import nn

    from ipt_ms.models.cpu_grads import LayerNorm

    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    w = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.standard_normal(shape[-1]).astype(np.float32)
    beta = rng.standard_normal(shape[-1]).astype(np.float32)
    written = LayerNorm(shape[-1], 1e-5)
    written.cpu_gradients = True
    stock = nn.LayerNorm((shape[-1],), begin_norm_axis=-1, begin_params_axis=-1, epsilon=1e-5)
    results = []
    for net in (written, stock):
        net.gamma.set_data(ms_graph.Tensor(gamma))
        net.beta.set_data(ms_graph.Tensor(beta))
        results.append(_grads(ms_graph, net, x, w, with_params=True))
    (dx, (dgamma, dbeta)), (dx_ms, (dgamma_ms, dbeta_ms)) = results

    xd, wd = x.astype(np.float64), w.astype(np.float64)
    rstd = 1 / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
    xhat = (xd - xd.mean(-1, keepdims=True)) * rstd
    g = wd * gamma
    ref_dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    axes = tuple(range(len(shape) - 1))
    ref_dgamma, ref_dbeta = (wd * xhat).sum(axes), wd.sum(axes)
    for got, stock_got, ref in ((dx, dx_ms, ref_dx), (dgamma, dgamma_ms, ref_dgamma), (dbeta, dbeta_ms, ref_dbeta)):
        assert got.shape == ref.shape
        # as close to float64 as MindSpore's own LayerNormGrad (x 4, and float32's floor)
        assert _rel(got, ref) <= max(4 * _rel(stock_got, ref), 1e-6)


def test_layer_norm_forward_is_mindsporess_either_way(ms_graph):
    from ipt_ms.models.cpu_grads import LayerNorm

    x = np.random.default_rng(2).standard_normal((5, 2, 16)).astype(np.float32)
    net = LayerNorm(16, 1e-5)
    net.set_train(False)
    off = net(ms_graph.Tensor(x)).asnumpy()
    net.cpu_gradients = True
    on = net(ms_graph.Tensor(x)).asnumpy()
    assert np.array_equal(on, off)
    assert [name for name, _ in net.parameters_and_names()] == ["gamma", "beta"]  # checkpoint keys kept


@pytest.mark.parametrize("in_ch,out_ch,size", [(4, 6, 10), (6, 3, 12)])
def test_im2col_convolution_trains_like_the_native_one(ms_graph, in_ch, out_ch, size):
    from ipt_ms.models.ipt import Conv2d

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, in_ch, size, size)).astype(np.float32)
    w = rng.standard_normal((2, out_ch, size, size)).astype(np.float32)
    results = {}
    for label, as_matmul in (("native", False), ("im2col", True)):
        ms_graph.set_seed(0)
        conv = Conv2d(in_ch, out_ch, 3, pad_mode="pad", padding=1, has_bias=True, weight_init="normal",
                      bias_init="normal")
        conv.as_matmul = as_matmul
        conv.set_train(True)  # the per-image matmuls of a training step
        results[label] = _grads(ms_graph, conv, x, w, with_params=True)
    (dx_n, (dw_n, db_n)), (dx_m, (dw_m, db_m)) = results["native"], results["im2col"]
    for got, ref in ((dx_m, dx_n), (dw_m, dw_n), (db_m, db_n)):
        assert _rel(got, ref) < 1e-5


def test_build_ipt_sets_the_cpu_levers_and_the_setting_is_checked(ms_graph, monkeypatch):
    from ipt_ms.errors import IPTError
    from ipt_ms.models import build_ipt
    from ipt_ms.models.cpu_grads import LayerNorm
    from ipt_ms.models.transformer import MultiheadAttention
    from ipt_ms.runtime import cpu_gradients_default
    from ipt_ms.spec import IPTSpec

    def flags(net):
        return {(type(c).__name__, c.cpu_gradients) for _, c in net.cells_and_names()
                if isinstance(c, (LayerNorm, MultiheadAttention))}

    spec = IPTSpec.tiny()
    monkeypatch.delenv("IPT_MS_CPU_GRADIENTS", raising=False)
    assert flags(build_ipt(spec)) == {("LayerNorm", True), ("MultiheadAttention", True)}
    monkeypatch.setenv("IPT_MS_CPU_GRADIENTS", "0")
    assert flags(build_ipt(spec)) == {("LayerNorm", False), ("MultiheadAttention", False)}
    monkeypatch.setenv("IPT_MS_CPU_GRADIENTS", "fast")
    with pytest.raises(IPTError, match="IPT_MS_CPU_GRADIENTS='fast'"):
        cpu_gradients_default()


def test_a_training_step_has_the_same_gradients_with_either_kind(ms_graph, monkeypatch):
    """Whole tiny IPT, L1 loss: written-out softmax / LayerNorm gradients and native convolutions
    in training give MindSpore's stock gradients to float32 rounding."""
    from mindspore import nn

    from ipt_ms.inference import build_model
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state

    spec = IPTSpec.tiny()
    state = seeded_state(spec, 0)
    rng = np.random.default_rng(4)
    lr = rng.uniform(0, 255, (2, 3, spec.patch_size, spec.patch_size)).astype(np.float32)
    hr = rng.uniform(0, 255, (2, 3, 2 * spec.patch_size, 2 * spec.patch_size)).astype(np.float32)
    grads = {}
    for label, env in (("written", {}), ("stock", {"IPT_MS_CPU_GRADIENTS": "0", "IPT_MS_CONV_AS_MATMUL": "1"})):
        for key in ("IPT_MS_CPU_GRADIENTS", "IPT_MS_CONV_AS_MATMUL"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        net = build_model(spec, state)  # build_ipt: the levers follow the environment
        net.set_train(True)

        class Loss(nn.Cell):
            def __init__(self):
                super().__init__()
                self.net = net

            def construct(self, low, high):
                return ms_graph.ops.abs(self.net(low, 0) - high).mean()

        loss = Loss()
        names = [p.name for p in loss.trainable_params()]
        _, g = ms_graph.value_and_grad(loss, None, loss.trainable_params())(ms_graph.Tensor(lr), ms_graph.Tensor(hr))
        grads[label] = dict(zip(names, (t.asnumpy() for t in g)))
    assert grads["written"].keys() == grads["stock"].keys()
    worst = max(grads["written"], key=lambda k: _rel(grads["written"][k], grads["stock"][k]) if np.abs(
        grads["stock"][k]).max() > 0 else 0)
    ref = grads["stock"][worst]
    assert _rel(grads["written"][worst], ref) < 1e-3, worst
