"""Building what a run steps: the network (mixed precision or not), the loss, Adam, the step cell, EMA.

Everything here follows from the config and the starting weights alone; the loop only calls it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ipt_ms.spec import IPTSpec
from ipt_ms.train.config import TrainConfig

log = logging.getLogger("ipt_ms.train")


def amp_level(cfg: TrainConfig, device: str) -> str:
    """'auto' means O2 (float16 cells, float32 loss) on GPU/Ascend and float32 on CPU."""
    if cfg.train.amp == "auto":
        return "O0" if device == "CPU" else "O2"
    return cfg.train.amp


@dataclass
class TrainingNetwork:
    """The cells of one run: `net` holds the weights, `step_cell` runs an optimizer step on them."""

    net: Any  # the IPT network (float32 parameters; exported and validated)
    amp: str  # "O0" (float32), "O1", "O2", "O3"
    optimizer: Any
    step_cell: Any  # `ipt_ms.train.step.TrainStep`
    ema: Any | None  # `ipt_ms.train.ema.WeightEMA`, when train.ema_decay is set

    def state_groups(self) -> dict[str, list]:
        """Every parameter a checkpoint holds, by group: what is saved is what is restored."""
        opt, update = self.optimizer, self.step_cell.update
        groups = {"network": list(self.net.get_parameters()),
                  "optimizer": list(opt.exp_avg) + list(opt.exp_avg_sq) + [opt.state_step],
                  "loss-scale": [update.loss_scale, update.good_steps]}
        if self.ema is not None:
            groups["weight-average"] = list(self.ema.averages)
        return groups


def build_training(cfg: TrainConfig, spec: IPTSpec, init_state: dict[str, np.ndarray] | None, device: str,
                   distributed: bool) -> TrainingNetwork:
    """The network from `init_state` (None: fresh), wrapped for the config's precision, loss and optimizer."""
    import mindspore as ms

    from ipt_ms.inference import build_model
    from ipt_ms.train.losses import IPTLoss
    from ipt_ms.train.step import LossScaleSettings, TrainStep, build_adam

    net = build_model(spec, init_state)  # set to training mode below
    amp = amp_level(cfg, device)
    model = net
    if amp != "O0":
        if device == "CPU":
            log.warning("mixed precision %s on CPU: float16 is slower than float32 here; use it to test only", amp)
        model = ms.amp.auto_mixed_precision(net, amp)
    model.set_train(True)
    loss_net = IPTLoss(model, cfg.loss.contrastive, cfg.loss.weight, cfg.loss.temperature, cfg.loss.base_temperature)
    optimizer = build_adam(net.trainable_params(), cfg.optim.lr, cfg.optim.betas, cfg.optim.eps,
                           cfg.optim.weight_decay)
    scale = None
    if amp != "O0":
        ls = cfg.train.loss_scale
        scale = LossScaleSettings(init=ls.init, factor=ls.factor, window=ls.window)
    step_cell = TrainStep(loss_net, optimizer, cfg.optim.grad_clip_norm, scale, distributed=distributed,
                          accumulate=cfg.train.accumulate)
    ema = None
    if cfg.train.ema_decay is not None:
        from ipt_ms.train.ema import WeightEMA

        ema = WeightEMA(net.trainable_params(), cfg.train.ema_decay)
    return TrainingNetwork(net, amp, optimizer, step_cell, ema)
