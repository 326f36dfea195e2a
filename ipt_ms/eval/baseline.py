"""The no-model baseline every IPT table is read against.

A restoration model is only useful if it beats doing nothing clever: bicubic upscaling
for super-resolution (MATLAB-exact, `ipt_ms.data.imresize`, as the SR literature's
"Bicubic" rows), and the degraded input itself for denoising, deraining and deblurring.
Evaluation tables and training-time validation score this output with the same metric
code as the model's, so the two numbers are directly comparable.
"""

from __future__ import annotations

import numpy as np

from ipt_ms.data.imresize import imresize
from ipt_ms.tasks import Task

__all__ = ["baseline_name", "baseline_output"]


def baseline_name(task: Task) -> str:
    """Row label of the baseline for `task` ("bicubic" for SR, "input" otherwise)."""
    return "bicubic" if task.scale > 1 else "input"


def baseline_output(lq: np.ndarray, task: Task) -> np.ndarray:
    """The baseline restoration of a degraded HxWx3 image on the [0, 255] scale (float32).

    SR: the LR image, quantised to 8 bits as it is stored, upscaled by `task.scale` with
    MATLAB's bicubic kernel (antialiasing is irrelevant when enlarging). Other tasks:
    the degraded input unchanged.
    """
    lq = np.asarray(lq)
    if task.scale == 1:
        return lq.astype(np.float32, copy=True)
    as_u8 = np.clip(np.round(lq), 0, 255).astype(np.uint8)
    return imresize(as_u8, scale=task.scale).astype(np.float32)
