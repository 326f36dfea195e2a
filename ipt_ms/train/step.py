"""One jit-compiled IPT training step: forward, backward, gradient mean, clipping, Adam.

Why not `nn.TrainOneStepCell` + `nn.Adam`: `nn.Adam` adds epsilon before the bias
correction and so differs from `torch.optim.Adam` (see `Adam` here for the exact
PyTorch rule on the same fused kernel). The update part (`ParameterUpdate`) is always
compiled with `ms.jit` (in-place updates can be silent no-ops in PyNative on CPU); in
Graph mode the whole step is one graph.

With gradient accumulation (`accumulate` K > 1) one optimizer step takes K calls: the
first K - 1 (``final=False``) add their gradients and loss statistics to buffers, the
last one averages them with its own, resets the buffers and goes on as a single step
would (data-parallel mean, clipping, Adam). The gradient is then the mean over the K
micro-batches: for a loss that is a mean over images (L1) it equals the gradient of
the whole batch; the contrastive term is computed within each micro-batch, as it is
within each worker's batch in data parallel.

Each step also reports whether the (averaged) gradients were finite. A non-finite step
never touches the weights or the Adam state, so the training loop can stop on it with
the weights of the last good step, or skip the batch. With dynamic loss scaling (mixed
precision on GPU/Ascend) a non-finite step is first treated as a loss-scale overflow:
the scale shrinks and the batch is skipped, as `DynamicLossScaleManager` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from ipt_ms.compile_cache import CompileCached

# Per-gradient maps applied with HyperMap: a Python loop or comprehension over the ~380
# gradients of the full model nests one call per element and exceeds Graph mode's call
# depth limit (1000).
_square_sum = ops.MultitypeFuncGraph("ipt_square_sum")
_scale_grad = ops.MultitypeFuncGraph("ipt_scale_grad")


@_square_sum.register("Tensor")
def _tensor_square_sum(grad):
    # row sums first: MindSpore's CPU ReduceSum over a whole tensor runs ~3x slower than
    # over its last axis (the norm of the full model's gradients: 340 ms against 105 ms)
    grad = grad.astype(ms.float32)
    rows = grad.reshape((-1, grad.shape[-1])) if grad.ndim > 1 else grad.reshape((1, -1))
    return ops.sum(ops.sum(rows * rows, dim=-1))


@_scale_grad.register("Tensor", "Tensor")
def _tensor_scale_grad(factor, grad):
    return grad.astype(ms.float32) * factor


@dataclass(frozen=True)
class LossScaleSettings:
    """Dynamic loss scaling: start at `init`, divide by `factor` on overflow (not below
    1), multiply by `factor` after `window` finite steps in a row."""

    init: float = 65536.0
    factor: float = 2.0
    window: int = 1000


_adam_apply = ops.MultitypeFuncGraph("ipt_adam_apply")
_decay_grad = ops.MultitypeFuncGraph("ipt_decay_grad")


@_adam_apply.register("Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                      "Tensor", "Tensor")
def _tensor_adam_apply(kernel, beta1_power, beta2_power, lr, beta1, beta2, eps, param, exp_avg, exp_avg_sq, grad):
    return ops.depend(True, kernel(param, exp_avg, exp_avg_sq, beta1_power, beta2_power, lr, beta1, beta2, eps,
                                   grad))


@_decay_grad.register("Number", "Tensor", "Tensor")
def _tensor_decay_grad(weight_decay, param, grad):
    return grad + weight_decay * param


class Adam(nn.Cell):
    """`torch.optim.Adam` (and `mint.optim.Adam`) on MindSpore's fused Adam kernel.

    Why not those two: `nn.Adam` runs the fused kernel, which adds eps to sqrt(v) *before*
    the bias correction, so it drifts from PyTorch for small gradients; `mint.optim.Adam`
    matches PyTorch but is built from ~10 separate operations per parameter: on the full
    115M-parameter model its training step compiled in 112 s and peaked at 11.7 GB,
    against 36 s and 5.6 GB with the fused kernel. PyTorch's step

        w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    equals the kernel's ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps')``
    with ``eps' = eps * sqrt(1 - b2^t)``, which is what this cell feeds it. Weight decay
    is PyTorch's L2 form (added to the gradient). State: `exp_avg`, `exp_avg_sq`,
    `state_step` (named as in `mint.optim.Adam`), learning rate in `lrs[0]`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(auto_prefix=False)
        for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
            if value < 0:
                raise ValueError(f"Adam {name} must be >= 0, got {value}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Adam betas must be in [0, 1), got {betas}")
        self.parameters = ParameterTuple(list(params))
        self.exp_avg = self.parameters.clone(prefix="exp_avg", init="zeros")
        self.exp_avg_sq = self.parameters.clone(prefix="exp_avg_sq", init="zeros")
        self.state_step = Parameter(Tensor([0.0], ms.float32), name="state_step", requires_grad=False)
        self.learning_rate = Parameter(Tensor(float(lr), ms.float32), name="learning_rate", requires_grad=False)
        self.lrs = [self.learning_rate]
        self.beta1 = Tensor(float(betas[0]), ms.float32)
        self.beta2 = Tensor(float(betas[1]), ms.float32)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.kernel = ops.Adam()
        self.hyper_map = ops.HyperMap()

    def construct(self, gradients):
        step = self.state_step + 1.0
        ops.assign(self.state_step, step)
        beta1_power = ops.pow(self.beta1, step)
        beta2_power = ops.pow(self.beta2, step)
        eps = (self.eps * ops.sqrt(1.0 - beta2_power)).reshape(())
        if self.weight_decay > 0:
            gradients = self.hyper_map(ops.partial(_decay_grad, self.weight_decay), self.parameters, gradients)
        return self.hyper_map(ops.partial(_adam_apply, self.kernel, beta1_power, beta2_power, self.learning_rate,
                                          self.beta1, self.beta2, eps),
                              self.parameters, self.exp_avg, self.exp_avg_sq, gradients)


def build_adam(params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 0.0) -> Adam:
    """The optimiser of every IPT training run: `Adam` with PyTorch's update rule."""
    return Adam(params, lr=float(lr), betas=(float(betas[0]), float(betas[1])), eps=float(eps),
                weight_decay=float(weight_decay))


def set_learning_rate(optimizer: Adam, lr: float) -> None:
    """Change the learning rate of every parameter group (a Parameter: no recompile).

    `ops.assign`, not `Parameter.set_data`: after the step is compiled, set_data on this
    0-d parameter is not seen by the graph (measured with MindSpore 2.10 on CPU, Graph
    and PyNative alike), while assign is.
    """
    for group_lr in optimizer.lrs:
        ops.assign(group_lr, Tensor(float(lr), group_lr.dtype))


class ParameterUpdate(nn.Cell):
    """Unscale, measure, clip and apply gradients; track the dynamic loss scale.

    Inputs: loss_finite (bool tensor, agreed by all devices), then the gradients
    (already averaged over devices) as separate arguments. Returns (applied, grad_norm,
    scale_before), `applied` saying whether Adam ran.
    """

    def __init__(self, optimizer: Adam, clip_norm: float | None = None, loss_scale: LossScaleSettings | None = None):
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.use_clip = clip_norm is not None
        self.clip_norm = float(clip_norm) if clip_norm is not None else 1.0
        self.dynamic_scale = loss_scale is not None
        settings = loss_scale or LossScaleSettings(init=1.0)
        self.scale_factor = float(settings.factor)
        self.scale_window = int(settings.window)
        self.loss_scale = Parameter(Tensor(float(settings.init), ms.float32), name="loss_scale", requires_grad=False)
        self.hyper_map = ops.HyperMap()
        self.good_steps = Parameter(Tensor(0, ms.int32), name="loss_scale_good_steps", requires_grad=False)

    @ms.jit
    def construct(self, loss_finite, *grads):
        # varargs, not a tuple argument: in PyNative, ms.jit caches a tuple of fresh
        # gradient tensors by identity and would recompile on every step
        scale = self.loss_scale * 1.0
        if self.dynamic_scale:
            grads = self.hyper_map(ops.partial(_scale_grad, 1.0 / scale), grads)
        norm = ops.sqrt(ops.addn(self.hyper_map(_square_sum, grads)))
        finite = ops.logical_and(ops.isfinite(norm), loss_finite)
        if self.use_clip:
            # torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6))
            coef = ops.minimum(self.clip_norm / (norm + 1e-6), 1.0)
            grads = self.hyper_map(ops.partial(_scale_grad, coef), grads)
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


_add_into = ops.MultitypeFuncGraph("ipt_add_into")
_mean_and_reset = ops.MultitypeFuncGraph("ipt_mean_and_reset")


@_add_into.register("Tensor", "Tensor")
def _tensor_add_into(total, value):
    return ops.assign(total, total + value.astype(total.dtype))


@_mean_and_reset.register("Number", "Tensor", "Tensor")
def _tensor_mean_and_reset(count, total, value):
    mean = (total + value.astype(total.dtype)) / count
    return ops.depend(mean, ops.assign(total, ops.zeros_like(total)))


class GradientSums(nn.Cell):
    """Buffers of a gradient accumulation: one per trainable parameter, plus the loss stats."""

    def __init__(self, weights: ParameterTuple, count: int):
        super().__init__(auto_prefix=False)
        self.count = float(count)
        self.grads = weights.clone(prefix="grad_sum", init="zeros")
        self.stats = Parameter(Tensor(np.zeros(4, np.float32)), name="grad_sum_stats", requires_grad=False)
        self.hyper_map = ops.HyperMap()


class AddGradients(nn.Cell):
    """sums += (stats, gradients) of one micro-batch."""

    def __init__(self, sums: GradientSums):
        super().__init__(auto_prefix=False)
        self.sums = sums

    @ms.jit
    def construct(self, stats, *grads):
        added = self.sums.hyper_map(_add_into, self.sums.grads, grads)
        return ops.depend(ops.assign(self.sums.stats, self.sums.stats + stats), added)


class TakeMeanGradients(nn.Cell):
    """(sums + this micro-batch) / K, and the sums reset to zero."""

    def __init__(self, sums: GradientSums):
        super().__init__(auto_prefix=False)
        self.sums = sums

    @ms.jit
    def construct(self, stats, *grads):
        mean_grads = self.sums.hyper_map(ops.partial(_mean_and_reset, self.sums.count), self.sums.grads, grads)
        mean_stats = _tensor_mean_and_reset(self.sums.count, self.sums.stats, stats)
        return mean_stats, mean_grads


class TrainStep(CompileCached, nn.Cell):
    """Forward + backward + (data-parallel mean) + `ParameterUpdate`, for `IPTLoss`.

    Args:
        loss_net: an `IPTLoss` (returns total, l1, contrastive).
        optimizer: from `build_adam` over the trainable parameters.
        clip_norm: global gradient-norm clip (None: off).
        loss_scale: dynamic loss scaling settings (None: off, for float32 training).
        distributed: average gradients (and the reported losses) over the data-parallel group.
        accumulate: micro-batches per optimizer step (see the module docstring).

    Inputs: lr, hr, task_idx (Python int), final (Python bool: the last micro-batch of the
    step; always True without accumulation). Returns a float32 vector
    [total, l1, contrastive, applied, grad_norm, loss_scale]; losses are the means over
    devices (and micro-batches), `applied` is 1.0 when the weights were updated. A
    non-final call returns [total, l1, contrastive, finite] of its micro-batch.
    """

    def __init__(self, loss_net: nn.Cell, optimizer: Adam, clip_norm: float | None = None,
                 loss_scale: LossScaleSettings | None = None, distributed: bool = False, accumulate: int = 1):
        super().__init__(auto_prefix=False)
        self.loss_net = loss_net
        self.weights = optimizer.parameters
        self.update = ParameterUpdate(optimizer, clip_norm, loss_scale)
        self.accumulate = int(accumulate)
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
        if self.accumulate > 1:
            self.grad_sums = GradientSums(self.weights, self.accumulate)
            self.add_gradients = AddGradients(self.grad_sums)
            self.take_gradients = TakeMeanGradients(self.grad_sums)
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

    def construct(self, lr, hr, task_idx: int = 0, final: bool = True):
        scale = self.update.loss_scale * 1.0
        (_, total, l1, con), grads = self.grad_fn(lr, hr, task_idx, scale)
        stats = ops.stack([total, l1, con, ops.isfinite(total).astype(ms.float32)])
        if self.accumulate > 1:
            if not final:
                return self.add_gradients(stats, *grads)
            stats, grads = self.take_gradients(stats, *grads)
        if self.distributed:
            grads = self.grad_reducer(grads)
            stats = self.all_reduce(stats)  # sums; every device must have a finite loss
            loss_finite = stats[3] >= self.world_size - 0.5
            stats = stats / self.world_size
        else:
            loss_finite = stats[3] > 0.5
        applied, norm, used_scale = self.update(loss_finite, *grads)
        return ops.stack([stats[0], stats[1], stats[2], applied.astype(ms.float32), norm, used_scale])
