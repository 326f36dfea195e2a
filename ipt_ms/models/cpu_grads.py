"""Softmax with its backward pass written out, for MindSpore 2.10's CPU.

The forward pass is MindSpore's own kernel, so inference, exports and the parity stages
compute exactly what they did. Only the gradient takes another route: MindSpore expands
softmax's gradient into Mul / ReduceSum / Sub / Mul over the (B*H, L, S) scores, and on
CPU a ReduceSum over the last axis of a 3-D tensor is ~14x slower than the same sum over
a 2-D view (4.7 against 0.33 ms for 24x256x256 on an AMD EPYC). Here the sum runs on the
2-D view: 13 -> 4 ms per attention of the full model, ~0.3 s of a batch-2 training step.
The same sums in the same order: no approximation.

Cells with a `cpu_gradients` flag use it (`set_cpu_gradients`; `build_ipt` sets it on CPU
only); GPU/Ascend keep MindSpore's fused kernels. A written-out LayerNorm gradient was
tried too and not kept (docs/runtime.md): Graph mode on CPU keeps every intermediate of a
custom backward pass until the step ends, +1.7 GB for the full model's 60 LayerNorms.
"""

from __future__ import annotations

from mindspore import nn, ops


class SoftmaxLastAxis(nn.Cell):
    """`ops.softmax(x, axis=-1)` whose gradient sums over a 2-D view of the rows
    (`MultiheadAttention` uses it with `cpu_gradients` set, `ops.softmax` otherwise)."""

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
        grad = (y * (dy - self.row_sum(dy * y, -1))).reshape(shape)
        return (grad if grad.dtype == x.dtype else grad.astype(x.dtype),)


def set_cpu_gradients(net: nn.Cell, enabled: bool) -> None:
    """Use the written-out gradients in every cell of `net` that has them (True) or
    MindSpore's own (False)."""
    for _, cell in net.cells_and_names():
        if hasattr(cell, "cpu_gradients"):
            cell.cpu_gradients = bool(enabled)
