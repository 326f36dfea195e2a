"""Task names and what they mean. Framework-free; shared by model, data and eval code.

A task is one head/tail pair of the model plus the degradation it undoes:

* ``sr_x{s}``      bicubic super-resolution by an integer factor s (2, 3, 4, 8, ...)
* ``denoise_{n}``  additive Gaussian noise with sigma n on the [0, 255] scale
* ``derain``       rain streak removal
* ``deblur``       motion-blur removal
* ``restore_{i}``  any other scale-1 head whose purpose the weights do not tell
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ipt_ms.errors import IPTError

#: The 6 tasks of the official pre-trained model, in head/tail/query order.
PRETRAIN_TASKS = ("sr_x2", "sr_x3", "sr_x4", "denoise_30", "denoise_50", "derain")
PRETRAIN_SCALES = (2, 3, 4, 1, 1, 1)

_PATTERNS = (
    (re.compile(r"sr_x(\d+)", re.ASCII), "sr"),
    (re.compile(r"denoise_(\d+(?:\.\d+)?)", re.ASCII), "denoise"),
    (re.compile(r"derain"), "derain"),
    (re.compile(r"deblur"), "deblur"),
    (re.compile(r"restore_(\d+)", re.ASCII), "restore"),
)


@dataclass(frozen=True)
class Task:
    """A parsed task name."""

    name: str
    kind: str  # "sr" | "denoise" | "derain" | "deblur" | "restore"
    scale: int = 1  # output/input size ratio
    sigma: float | None = None  # noise level for "denoise"


def parse_task(name: str) -> Task:
    """Parse a task name; raises IPTError for names that follow no known pattern."""
    for pattern, kind in _PATTERNS:
        match = pattern.fullmatch(name) if isinstance(name, str) else None  # `$` would let "sr_x2\n" through
        if not match:
            continue
        if kind == "sr":
            scale = int(match.group(1))
            if scale < 2:
                raise IPTError(f"task {name!r}: super-resolution scale must be >= 2")
            return Task(name, kind, scale=scale)
        if kind == "denoise":
            return Task(name, kind, sigma=float(match.group(1)))
        return Task(name, kind)
    raise IPTError(
        f"unknown task name {name!r}: expected sr_x<scale>, denoise_<sigma>, derain, deblur or restore_<i>"
    )


def default_task_names(scales: tuple[int, ...] | list[int]) -> list[str]:
    """Names for a model whose weights only tell the scales.

    The 6-task pre-training layout (2, 3, 4, 1, 1, 1) gets the official names; otherwise
    scale s > 1 becomes ``sr_x{s}`` and a scale-1 head at position i becomes ``restore_{i}``.
    """
    scales = tuple(int(s) for s in scales)
    if scales == PRETRAIN_SCALES:
        return list(PRETRAIN_TASKS)
    return [f"sr_x{s}" if s > 1 else f"restore_{i}" for i, s in enumerate(scales)]
