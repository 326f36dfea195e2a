"""One jit-compiled IPT training step: forward, backward, gradient mean, clipping, Adam.

Why not `nn.TrainOneStepCell` + `nn.Adam`: `nn.Adam` adds epsilon before the bias
correction and so differs from `torch.optim.Adam`; `mint.optim.Adam` matches it, but
only when compiled (its in-place updates are silent no-ops in PyNative on CPU). The
update part (`ParameterUpdate`) is therefore always compiled with `ms.jit`; in Graph
mode the whole step is one graph.

Each step also reports whether the (averaged) gradients were finite. A non-finite step
never touches the weights or the Adam state, so the training loop can stop on it with
the weights of the last good step, or skip the batch. With dynamic loss scaling (mixed
precision on GPU/Ascend) a non-finite step is first treated as a loss-scale overflow:
the scale shrinks and the batch is skipped, as `DynamicLossScaleManager` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import mindspore as ms
from mindspore import Parameter, Tensor, mint, nn, ops


@dataclass(frozen=True)
class LossScaleSettings:
    """Dynamic loss scaling: start at `init`, divide by `factor` on overflow (not below
    1), multiply by `factor` after `window` finite steps in a row."""

    init: float = 65536.0
    factor: float = 2.0
    window: int = 1000


def build_adam(params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 0.0):
    """`mint.optim.Adam` (torch semantics: L2 weight decay added to the gradient)."""
    return mint.optim.Adam(params, lr=float(lr), betas=(float(betas[0]), float(betas[1])), eps=float(eps),
                           weight_decay=float(weight_decay))


def set_learning_rate(optimizer, lr: float) -> None:
    """Change the learning rate of every parameter group (a Parameter, so no recompile)."""
    for group_lr in optimizer.lrs:
        group_lr.set_data(Tensor(float(lr), ms.float32))


def get_learning_rate(optimizer) -> float:
    return float(optimizer.lrs[0].asnumpy())


class ParameterUpdate(nn.Cell):
    """Unscale, measure, clip and apply gradients; track the dynamic loss scale.

    Inputs: loss_finite (bool tensor, agreed by all devices), then the gradients
    (already averaged over devices) as separate arguments. Returns (applied, grad_norm, scale_before) where `applied`
    says whether Adam ran.
    """

    def __init__(self, optimizer, clip_norm: float | None = None, loss_scale: LossScaleSettings | None = None):
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.use_clip = clip_norm is not None
        self.clip_norm = float(clip_norm) if clip_norm is not None else 1.0
        self.dynamic_scale = loss_scale is not None
        settings = loss_scale or LossScaleSettings(init=1.0)
        self.scale_factor = float(settings.factor)
        self.scale_window = int(settings.window)
        self.loss_scale = Parameter(Tensor(float(settings.init), ms.float32), name="loss_scale", requires_grad=False)
        self.good_steps = Parameter(Tensor(0, ms.int32), name="loss_scale_good_steps", requires_grad=False)

    @ms.jit
    def construct(self, loss_finite, *grads):
        # varargs, not a tuple argument: in PyNative, ms.jit caches a tuple of fresh
        # gradient tensors by identity and would recompile on every step
        scale = self.loss_scale * 1.0
        if self.dynamic_scale:
            inv = 1.0 / scale
            grads = tuple(g.astype(ms.float32) * inv for g in grads)
        sq = ops.zeros((), ms.float32)
        for g in grads:
            sq = sq + ops.sum(ops.square(g.astype(ms.float32)))
        norm = ops.sqrt(sq)
        finite = ops.logical_and(ops.isfinite(norm), loss_finite)
        if self.use_clip:
            # torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6))
            coef = ops.minimum(self.clip_norm / (norm + 1e-6), 1.0)
            grads = tuple(g * coef.astype(g.dtype) for g in grads)
        if finite:
            self.optimizer(grads)
        if self.dynamic_scale:
            self._update_scale(finite)
        return finite, norm, scale

    def _update_scale(self, finite):
        grown = self.good_steps + 1
        grow = grown >= self.scale_window
        shrunk = ops.maximum(self.loss_scale / self.scale_factor, 1.0)
        kept = ops.select(grow, self.loss_scale * self.scale_factor, self.loss_scale)
        ops.assign(self.loss_scale, ops.select(finite, kept, shrunk))
        ops.assign(self.good_steps, ops.select(ops.logical_and(finite, ops.logical_not(grow)), grown,
                                               ops.zeros_like(grown)))


class TrainStep(nn.Cell):
    """Forward + backward + (data-parallel mean) + `ParameterUpdate`, for `IPTLoss`.

    Args:
        loss_net: an `IPTLoss` (returns total, l1, contrastive).
        optimizer: from `build_adam` over the trainable parameters.
        clip_norm: global gradient-norm clip (None: off).
        loss_scale: dynamic loss scaling settings (None: off, for float32 training).
        distributed: average gradients (and the reported losses) over the data-parallel group.

    Inputs: lr, hr, task_idx (Python int). Returns a float32 vector
    [total, l1, contrastive, applied, grad_norm, loss_scale]; losses are the means over
    devices, `applied` is 1.0 when the weights were updated.
    """

    def __init__(self, loss_net: nn.Cell, optimizer, clip_norm: float | None = None,
                 loss_scale: LossScaleSettings | None = None, distributed: bool = False):
        super().__init__(auto_prefix=False)
        self.loss_net = loss_net
        self.weights = optimizer.parameters
        self.update = ParameterUpdate(optimizer, clip_norm, loss_scale)
        self.grad_fn = ms.value_and_grad(self._scaled_loss, None, self.weights, has_aux=True)
        self.distributed = bool(distributed)
        if self.distributed:
            from mindspore.communication import get_group_size

            self.world_size = float(get_group_size())
            self.grad_reducer = nn.DistributedGradReducer(self.weights, mean=True, degree=get_group_size())
            self.all_reduce = ops.AllReduce()
        else:
            self.world_size = 1.0

    def _scaled_loss(self, lr, hr, task_idx, scale):
        total, l1, con = self.loss_net(lr, hr, task_idx)
        return total * scale.astype(total.dtype), total, l1, con

    def construct(self, lr, hr, task_idx: int = 0):
        scale = self.update.loss_scale * 1.0
        (_, total, l1, con), grads = self.grad_fn(lr, hr, task_idx, scale)
        stats = ops.stack([total, l1, con, ops.isfinite(total).astype(ms.float32)])
        if self.distributed:
            grads = self.grad_reducer(grads)
            stats = self.all_reduce(stats)  # sums; every device must have a finite loss
            loss_finite = stats[3] >= self.world_size - 0.5
            stats = stats / self.world_size
        else:
            loss_finite = stats[3] > 0.5
        applied, norm, used_scale = self.update(loss_finite, *grads)
        return ops.stack([stats[0], stats[1], stats[2], applied.astype(ms.float32), norm, used_scale])
