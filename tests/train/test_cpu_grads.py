"""The CPU training levers (written-out softmax gradient, convolutions while training)
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
    from ipt_ms.models.ipt import Conv2d
    from ipt_ms.models.transformer import MultiheadAttention
    from ipt_ms.runtime import cpu_gradients_default
    from ipt_ms.spec import IPTSpec

    def flags(net):
        return ({c.cpu_gradients for _, c in net.cells_and_names() if isinstance(c, MultiheadAttention)},
                {(c.as_matmul, c.native_in_training) for _, c in net.cells_and_names() if isinstance(c, Conv2d)})

    spec = IPTSpec.tiny()
    for key in ("IPT_MS_CPU_GRADIENTS", "IPT_MS_CONV_AS_MATMUL", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("ipt_ms.machine.isa_in_effect", lambda: "AVX2")
    assert flags(build_ipt(spec)) == ({True}, {(True, True)})
    monkeypatch.setattr("ipt_ms.machine.isa_in_effect", lambda: "AVX512_CORE_AMX")
    assert flags(build_ipt(spec)) == ({True}, {(True, False)})
    monkeypatch.setenv("IPT_MS_CPU_GRADIENTS", "0")
    monkeypatch.setenv("IPT_MS_CONV_AS_MATMUL", "0")
    assert flags(build_ipt(spec)) == ({False}, {(False, False)})
    monkeypatch.setenv("IPT_MS_CPU_GRADIENTS", "fast")
    with pytest.raises(IPTError, match="IPT_MS_CPU_GRADIENTS='fast'"):
        cpu_gradients_default()


def test_a_training_step_has_the_same_gradients_with_either_kind(ms_graph, monkeypatch):
    """Whole tiny IPT, L1 loss: the written-out softmax gradient and native convolutions in
    training give the stock gradients (im2col convolutions) to float32 rounding."""
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
            def __init__(self, network):
                super().__init__()
                self.net = network

            def construct(self, low, high):
                return ms_graph.ops.abs(self.net(low, 0) - high).mean()

        loss = Loss(net)
        names = [p.name for p in loss.trainable_params()]
        _, g = ms_graph.value_and_grad(loss, None, loss.trainable_params())(ms_graph.Tensor(lr), ms_graph.Tensor(hr))
        grads[label] = dict(zip(names, (t.asnumpy() for t in g)))
    assert grads["written"].keys() == grads["stock"].keys()
    worst = max(grads["written"], key=lambda k: _rel(grads["written"][k], grads["stock"][k]) if np.abs(
        grads["stock"][k]).max() > 0 else 0)
    ref = grads["stock"][worst]
    assert _rel(grads["written"][worst], ref) < 1e-3, worst
