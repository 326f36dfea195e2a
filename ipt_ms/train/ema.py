"""Exponential moving average of the weights (`train.ema_decay`), kept on the device.

After every applied optimizer step, ``ema = decay * ema + (1 - decay) * w`` for each
trainable parameter, starting from the initial weights (as BasicSR's ``net_g_ema`` and
timm's ``ModelEmaV2``). The averages are MindSpore Parameters named ``ema.<name>``, so
they go into training checkpoints with everything else, and the update is one compiled
graph (``ms.jit``: in-place updates can be silent no-ops in PyNative on CPU). Validation
and the exported weights use the averages; parameters that do not train (the mean
shift) are taken from the network as they are.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

__all__ = ["WeightEMA"]

_ema_update = ops.MultitypeFuncGraph("ipt_ema_update")


@_ema_update.register("Tensor", "Tensor", "Tensor")
def _tensor_ema_update(decay, average, weight):
    return ops.assign(average, average * decay + weight * (1.0 - decay))


class WeightEMA(nn.Cell):
    """Moving averages of `params` (a network's trainable parameters)."""

    def __init__(self, params, decay: float):
        super().__init__(auto_prefix=False)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.weights = ParameterTuple(list(params))
        self.averages = ParameterTuple([Parameter(Tensor(p.asnumpy().copy()), name=f"ema.{p.name}",
                                                  requires_grad=False) for p in self.weights])
        self.decay = Tensor(float(decay), ms.float32)
        self.hyper_map = ops.HyperMap()

    @ms.jit
    def construct(self):
        return self.hyper_map(ops.partial(_ema_update, self.decay), self.averages, self.weights)

    def arrays(self) -> dict[str, np.ndarray]:
        """Network parameter name -> average (copies)."""
        return {p.name[len("ema."):]: p.asnumpy().copy() for p in self.averages}
