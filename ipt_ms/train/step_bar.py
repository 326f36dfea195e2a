"""The training loop's step bar (rank 0, a terminal): smoothed loss, learning rate, pairs/s, last validation."""

from __future__ import annotations

import contextlib
import math

from ipt_ms.progress import counter


class StepBar:
    """A tqdm bar over optimizer steps; does nothing when not `enable`d.

    The loss and throughput it shows are exponential moving averages, so one slow or odd
    batch does not make the line jump."""

    def __init__(self, total_steps: int, desc: str, initial: int, enable: bool):
        self.enable = enable
        self._bar = counter(total_steps, desc=desc, unit="step", enable=enable, initial=initial)
        self._loss: float | None = None
        self._rate: float | None = None
        self._validation = ""

    def logging_redirected(self):
        """While the bar is drawn, log lines go above it rather than through it."""
        if not self.enable:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()

    def validated(self, short: str) -> None:
        """Show a validation's short summary from now on."""
        self._validation = f" val {short}"

    def step(self, loss: float, pairs_per_s: float, lr: float) -> None:
        """Count one step and show its (smoothed) numbers."""
        self._rate = pairs_per_s if self._rate is None else 0.9 * self._rate + 0.1 * pairs_per_s
        if math.isfinite(loss):
            self._loss = loss if self._loss is None else 0.98 * self._loss + 0.02 * loss
        if self.enable:
            self._bar.update(1)
            self._bar.set_postfix_str(f"loss {self._loss if self._loss is not None else float('nan'):.4f} "
                                      f"lr {lr:.2e} {self._rate:.1f} pairs/s{self._validation}", refresh=False)

    def close(self) -> None:
        if self.enable:
            self._bar.close()
