"""IPT (Chen et al., "Pre-Trained Image Processing Transformer", CVPR 2021) in MindSpore.

Reference implementation: huawei-noah/Pretrained-IPT `model/ipt.py`, `model/common.py`.
Per-task heads and tails around one shared transformer body; the task is chosen by an
index passed to `construct` (a compile-time constant in Graph mode, so each task
compiles once and switching tasks can never be silently ignored).
"""

from __future__ import annotations

import numpy as np
from mindspore import Tensor, nn, ops

from ipt_ms.compile_cache import CompileCached
from ipt_ms.models import compat
from ipt_ms.models.transformer import VisionTransformer
from ipt_ms.spec import IPTSpec


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` (same parameters, names and results) that can run as im2col + a matmul.

    With `as_matmul` set (`set_conv_as_matmul`; `build_ipt` does it on CPU) the 'same'
    convolution is `ops.unfold` (Im2Col: every k x k neighbourhood as a column) followed by
    one matmul with the (out, in*k*k) weight: the same sums in another order. On CPU this
    keeps the convolutions off oneDNN's plain-NCHW convolution, whose only fast kernel
    needs the ISA capped at AVX2 -- a cap that also slows every matmul of the transformer
    by a quarter to a half (docs/runtime.md). Exports use the native
    convolution (`ipt_ms.models.exported_form`).
    """

    as_matmul = False
    # with as_matmul: native all the same while training, where oneDNN's convolution
    # gradients beat im2col's (set by `set_conv_as_matmul`; docs/runtime.md)
    native_in_training = False
    weight_times = ops.MatMul()

    def construct(self, x):
        if not self.as_matmul or (self.training and self.native_in_training):
            # nn.Conv2d's own construct (super() recurses in Graph mode)
            output = self.conv2d(x, self.weight)
            return self.bias_add(output, self.bias) if self.has_bias else output
        _, _, h, w = x.shape
        k = self.kernel_size[0]
        if k == 1:
            cols = x.reshape((x.shape[0], x.shape[1], h * w))
        else:
            cols = ops.unfold(x, k, padding=k // 2)  # (B, C*k*k, H*W), rows in the weight's (c, kh, kw) order
        weight = self.weight.reshape((self.out_channels, -1))
        if self.training:
            # one 2-D matmul per image: the gradient of the broadcast (O, K) x (B, K, H*W)
            # matmul transposes every column matrix (131 ms of a full-size step on an AMD EPYC)
            out = ops.stack([self.weight_times(weight, image_cols) for image_cols in ops.unstack(cols, 0)], 0)
        else:
            out = ops.matmul(weight, cols)
        if self.has_bias:
            out = out + self.bias.reshape((1, -1, 1))
        return out.reshape((-1, self.out_channels, h, w))


def default_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """'Same' convolution with bias, as the official `common.default_conv`."""
    return Conv2d(in_channels, out_channels, kernel_size, pad_mode="pad",
                  padding=kernel_size // 2, has_bias=True)


class MeanShift(Conv2d):
    """Fixed 1x1 convolution adding (sign=+1) or subtracting (-1) rgb_range * rgb_mean."""

    def __init__(self, rgb_range: float, rgb_mean: tuple[float, ...], sign: int):
        channels = len(rgb_mean)
        weight = np.eye(channels, dtype=np.float32).reshape(channels, channels, 1, 1)
        bias = (sign * rgb_range * np.asarray(rgb_mean)).astype(np.float32)
        super().__init__(channels, channels, 1, pad_mode="valid", has_bias=True,
                         weight_init=Tensor(weight), bias_init=Tensor(bias))
        self.weight.requires_grad = False
        self.bias.requires_grad = False


def set_conv_as_matmul(net: nn.Cell, enabled: bool, native_in_training: bool = False) -> None:
    """Run every convolution of `net` as im2col + matmul (True) or natively (False);
    `native_in_training`: natively all the same while the network trains."""
    for _, cell in net.cells_and_names():
        if isinstance(cell, Conv2d):
            cell.as_matmul = bool(enabled)
            cell.native_in_training = bool(native_in_training)


class ResBlock(nn.Cell):
    """conv -> ReLU -> conv plus identity skip (`body.0`, `body.2` as in the official)."""

    def __init__(self, n_feats: int, kernel_size: int):
        super().__init__()
        self.body = nn.SequentialCell([
            default_conv(n_feats, n_feats, kernel_size), nn.ReLU(), default_conv(n_feats, n_feats, kernel_size),
        ])

    def construct(self, x):
        return self.body(x) + x


class PixelShuffle(nn.Cell):
    """`nn.PixelShuffle` (torch's channel order) with the batch reshaped as -1.

    `ops.pixel_shuffle` reshapes to the traced batch size, which MindSpore's ONNX/MindIR
    exporters bake in as a constant; this form keeps exported graphs batch-agnostic.
    """

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor
        self.free_transposes = True  # inference: mint.permute (`compat.permute`)

    def construct(self, x):
        _, channels, height, width = x.shape
        r = self.factor
        x = x.reshape((-1, channels // (r * r), r, r, height, width))
        x = compat.permute(x, (0, 1, 4, 2, 5, 3), self.free_transposes and not self.training)
        return x.reshape((-1, channels // (r * r), height * r, width * r))


class Upsampler(nn.SequentialCell):
    """conv(n -> r^2 n) + PixelShuffle(r) per factor: x2^k as k steps, x3 as one; x1 empty."""

    def __init__(self, factors: list[int], n_feats: int):
        cells = []
        for r in factors:
            cells += [default_conv(n_feats, r * r * n_feats, 3), PixelShuffle(r)]
        super().__init__(cells)


def make_head(spec: IPTSpec) -> nn.SequentialCell:
    """conv3x3 (colors -> n_feats) then two 5x5 ResBlocks."""
    return nn.SequentialCell([
        default_conv(spec.n_colors, spec.n_feats, 3), ResBlock(spec.n_feats, 5), ResBlock(spec.n_feats, 5),
    ])


def make_tail(spec: IPTSpec, scale: int) -> nn.SequentialCell:
    """Upsampler then conv3x3 (n_feats -> colors)."""
    return nn.SequentialCell([
        Upsampler(spec.upsampler_factors(scale), spec.n_feats), default_conv(spec.n_feats, spec.n_colors, 3),
    ])


class IPT(CompileCached, nn.Cell):
    """The multi-task IPT network.

    Called from Python in Graph mode, its compiled graphs go through the persistent
    compile cache (`ipt_ms.compile_cache`).

    Args:
        spec: the architecture (see `ipt_ms.spec.IPTSpec`).

    Inputs:
        x: (B, n_colors, patch_size, patch_size) float32 in [0, rgb_range].
        task_idx: which head/tail/query to use (Python int; see `IPTSpec.task_index`).
        with_stages: also return every intermediate result named by `spec.stage_names`.
        with_features: also return the body's (B, tokens, E) patch features.

    Returns `out` (B, n_colors, patch_size*s, patch_size*s), or a tuple
    (out, features) / (out, stages) / (out, features, stages) when asked.
    """

    def __init__(self, spec: IPTSpec):
        super().__init__()
        self.spec = spec
        self.sub_mean = MeanShift(spec.rgb_range, spec.rgb_mean, sign=-1)
        self.add_mean = MeanShift(spec.rgb_range, spec.rgb_mean, sign=1)
        self.head = nn.CellList([make_head(spec) for _ in spec.scales])
        self.body = VisionTransformer(spec)
        self.tail = nn.CellList([make_tail(spec, s) for s in spec.scales])
        self.upsampler_depth = tuple(len(spec.upsampler_factors(s)) for s in spec.scales)

    def construct(self, x, task_idx: int = 0, with_stages: bool = False, with_features: bool = False,
                  stage_inputs=None):
        """See the class docstring. `stage_inputs` (with `with_stages`): a tuple with one value
        per stage of `spec.stage_names(task_idx)`; each stage then reads its input(s) from it
        instead of from the stage before, so every stage is computed from given values and its
        own rounding can be told apart from what it inherits (layer-by-layer parity)."""
        x = self.sub_mean(x)
        stages = (x,)
        head = self.head[task_idx]
        for i in range(3):
            x = head[i](x if stage_inputs is None else stage_inputs[i])
            stages = stages + (x,)
        if stage_inputs is not None:
            x = stage_inputs[3]
        n_body = self.body.stage_count
        res, features, body_stages = self.body(x, task_idx, with_stages, stage_inputs, 4)
        res = res + x
        stages = stages + body_stages + (res,)
        upsampler = self.tail[task_idx][0]
        depth = self.upsampler_depth[task_idx]
        for k in range(depth):
            res = upsampler[2 * k + 1](upsampler[2 * k](res if stage_inputs is None else stage_inputs[4 + n_body + k]))
            stages = stages + (res,)
        out = self.tail[task_idx][1](res if stage_inputs is None else stage_inputs[4 + n_body + depth])
        stages = stages + (out,)
        out = self.add_mean(out if stage_inputs is None else stage_inputs[5 + n_body + depth])
        stages = stages + (out,)
        if with_stages and with_features:
            return out, features, stages
        if with_stages:
            return out, stages
        if with_features:
            return out, features
        return out
