"""MindSpore defaults that differ from PyTorch, made explicit in one place.

* `nn.LayerNorm` defaults to epsilon=1e-7 (PyTorch: 1e-5) and names its parameters
  gamma/beta (the key map renames them).
* `nn.Dropout` took `keep_prob` before MindSpore 2.0 and takes `p` since.
* Graph mode on CPU broadcasts the weight of a 3-D x 2-D matmul (slow, memory-hungry),
  so linear layers here are always fed 2-D tensors (`dense_2d`).
"""

from __future__ import annotations

import inspect

from mindspore import mint, nn, ops


def layer_norm(dim: int, eps: float, enabled: bool = True) -> nn.Cell:
    """LayerNorm over the last axis with an explicit epsilon, or identity (official no_norm)."""
    if not enabled:
        return nn.Identity()
    return nn.LayerNorm((dim,), begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)


def dropout(rate: float) -> nn.Cell:
    """Dropout with drop probability `rate`; identity when rate is 0 (no mask drawn at all)."""
    if rate <= 0:
        return nn.Identity()
    if "p" in inspect.signature(nn.Dropout.__init__).parameters:
        return nn.Dropout(p=rate)
    return nn.Dropout(keep_prob=1.0 - rate)  # MindSpore < 2.0


def dense_2d(layer: nn.Dense, x):
    """Apply `layer` to the last axis of `x` through a 2-D matmul (see module docstring).

    The second-to-last axis (the batch, in the body's (L, B, E) layout) is restored as -1,
    so exported graphs keep a dynamic batch.
    """
    shape = x.shape
    out = layer(x.reshape((-1, shape[-1])))
    return out.reshape(shape[:-2] + (-1, out.shape[-1]))


def permute(x, axes: tuple[int, ...], low_memory: bool = False):
    """`ops.transpose(x, axes)`, or with `low_memory` the same values through `mint.permute`.

    In Graph mode on CPU (MindSpore 2.10) the classic Transpose kernel keeps its input
    allocated until the whole graph has run, so the network's transposes (four per
    attention) hold every activation of a forward pass: 3.05 GB for 8 tiles of the full
    model, against 1.56 GB through mint.permute, which frees them like any other op but runs
    that forward 17% slower. Inference passes `low_memory` (cells: ``not self.training``);
    training keeps the faster kernel, where the backward pass needs the activations anyway
    (mint.permute: 9% less memory, 11% slower step; BENCHMARKS.md, "levers").
    """
    return mint.permute(x, axes) if low_memory else ops.transpose(x, axes)
