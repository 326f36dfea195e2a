"""Learning-rate schedules: linear warm-up, then step decay by epoch or cosine decay.

The learning rate of optimizer step t (0-based: the step that makes global step t + 1)
is a pure function of t, so a resumed run needs nothing but its step count:

* warm-up (``schedule.warmup_steps`` W > 0): ``lr * (t + 1) / W`` for t < W, so the
  first step already moves and step W - 1 reaches the full rate;
* ``multistep`` (the paper's): ``lr * gamma ** (number of milestones <= epoch)``, epochs
  counted from 0 (``epoch = t // steps_per_epoch``);
* ``cosine``: from ``lr`` after the warm-up down to ``min_lr`` at the last step of
  ``schedule.epochs``: ``min_lr + (lr - min_lr) * (1 + cos(pi * u)) / 2`` with
  ``u = (t - W) / (T - W)`` and T the total number of steps.
"""

from __future__ import annotations

import math

from ipt_ms.train.config import ScheduleConfig

__all__ = ["learning_rate"]


def learning_rate(schedule: ScheduleConfig, base_lr: float, step: int, steps_per_epoch: int) -> float:
    """The learning rate of optimizer step `step` (0-based)."""
    warmup = schedule.warmup_steps
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule.kind == "cosine":
        total = schedule.epochs * steps_per_epoch
        span = max(total - warmup - 1, 1)
        progress = min(max(step - warmup, 0) / span, 1.0)
        return schedule.min_lr + (base_lr - schedule.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return schedule.lr_at(base_lr, step // steps_per_epoch)
