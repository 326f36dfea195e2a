"""Cutting one task out of a multi-task state: the layout of the released single-task models.

The chosen task's head, tail and query row become index 0 of a single-task model, and the other
tasks' heads, tails and queries are dropped (IPT_sr2.pt, ...). Fine-tuning starts from such a
state, and `ipt-ms convert --task` writes one.
"""

from __future__ import annotations

import re

import numpy as np

from ipt_ms.spec import IPTSpec

_PER_TASK = re.compile(r"^(head|tail)\.(\d+)\.(.+)$")
_QUERY = "body.query_embed.weight"


def select_task(spec: IPTSpec, state: dict[str, np.ndarray], task: str | int) -> tuple[IPTSpec, dict[str, np.ndarray]]:
    """Single-task spec and official-keyed state holding only `task`'s head/tail/query."""
    idx = spec.task_index(task)
    single = spec.replace(scales=(spec.scales[idx],), task_names=(spec.task_names[idx],), num_queries=1)
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        match = _PER_TASK.match(key)
        if match:
            if int(match.group(2)) == idx:
                out[f"{match.group(1)}.0.{match.group(3)}"] = value
        elif key == _QUERY:
            out[key] = np.ascontiguousarray(value[idx:idx + 1])
        else:
            out[key] = value
    return single, out
