"""Softmax and LayerNorm with their backward passes written out, for MindSpore 2.10's CPU.

The forward passes are MindSpore's own kernels, so inference, exports and the parity
stages compute exactly what they did. Only the gradients take another route, because
the built-in ones are slow on CPU (BENCHMARKS.md, "Training step ... AMD EPYC"):

* Softmax's gradient is expanded into Mul / ReduceSum / Sub / Mul over the (B*H, L, S)
  scores, and a ReduceSum over the last axis of a 3-D tensor is ~14x slower than the
  same sum over a 2-D view (4.7 against 0.33 ms for 24x256x256 on an AMD EPYC). Here
  the sum runs on the 2-D view: 13 -> 4 ms per attention of the full model.
* LayerNormGrad runs ~30x slower than PyTorch's (5 ms for 512x576). Here it is the
  textbook formula, with the row and column sums done as matrix-vector products.

Both are the same sums in another order (float32 rounding, no approximation). The cells
carry a `cpu_gradients` flag (`set_cpu_gradients`; `build_ipt` sets it on CPU only): off,
they are MindSpore's softmax and LayerNorm, gradients included, as GPU/Ascend want them.
The price on CPU is memory: Graph mode keeps each of the written-out gradient's
intermediates until the step ends (+1.4 GB in a full-size batch-2 step; docs/runtime.md).
"""

from __future__ import annotations

from mindspore import nn, ops


class SoftmaxLastAxis(nn.Cell):
    """`ops.softmax(x, axis=-1)` whose gradient sums over a 2-D view of the rows
    (callers use it only with `cpu_gradients` set, `ops.softmax` otherwise)."""

    def __init__(self):
        super().__init__()
        self.row_sum = ops.ReduceSum(keep_dims=True)

    def construct(self, x):
        return ops.softmax(x, axis=-1)

    def bprop(self, x, out, dout):
        # d softmax: y * (dy - sum(dy * y)) per row
        shape = out.shape
        y = out.reshape((-1, shape[-1]))
        dy = dout.reshape((-1, shape[-1]))
        return ((y * (dy - self.row_sum(dy * y, -1))).reshape(shape),)


class _LayerNormLastAxis(nn.Cell):
    """LayerNorm over the last axis as a function of (x, gamma, beta), with its gradient.

    Returns the primitive's (y, mean, variance) so the backward pass can read the
    statistics instead of recomputing them; callers take [0]. Parameters are inputs
    because a custom `bprop` gives gradients to inputs only.
    """

    def __init__(self, epsilon: float):
        super().__init__()
        self.epsilon = epsilon
        self.norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=epsilon)
        self.rows_times = ops.MatMul()  # (N, E) @ (E, 1): a sum over each row
        self.cols_times = ops.MatMul(transpose_a=True)  # (N, E)^T @ (N, 1): a sum over each column

    def construct(self, x, gamma, beta):
        return self.norm(x, gamma, beta)

    def bprop(self, x, gamma, beta, out, dout):
        width = x.shape[-1]
        x2 = x.reshape((-1, width))
        dy = dout[0].reshape((-1, width))
        rstd = ops.rsqrt(out[2].reshape((-1, 1)) + self.epsilon)
        xhat = (x2 - out[1].reshape((-1, 1))) * rstd
        g = dy * gamma
        mean_of = ops.fill(x.dtype, (width, 1), 1.0 / width)
        dx = (g - self.rows_times(g, mean_of) - xhat * self.rows_times(g * xhat, mean_of)) * rstd
        ones = ops.ones_like(rstd)
        dgamma = self.cols_times(dy * xhat, ones).reshape(gamma.shape)
        dbeta = self.cols_times(dy, ones).reshape(beta.shape)
        return dx.reshape(x.shape), dgamma, dbeta


class LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` over the last axis (same parameters, names and outputs) with the
    written-out gradient. A subclass, so mixed precision keeps it in float32 like the original."""

    cpu_gradients = False

    def __init__(self, width: int, epsilon: float):
        super().__init__((width,), begin_norm_axis=-1, begin_params_axis=-1, epsilon=epsilon)
        self.with_grad = _LayerNormLastAxis(epsilon)

    def construct(self, input_x):
        if self.cpu_gradients:
            return self.with_grad(input_x, self.gamma, self.beta)[0]
        return self.layer_norm(input_x, self.gamma, self.beta)[0]


def set_cpu_gradients(net: nn.Cell, enabled: bool) -> None:
    """Use the written-out gradients in every cell of `net` that has them (True) or
    MindSpore's own (False)."""
    for _, cell in net.cells_and_names():
        if hasattr(cell, "cpu_gradients"):
            cell.cpu_gradients = bool(enabled)
