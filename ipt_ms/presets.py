"""The named architectures `make-weights --preset` and `doctor` build: one table, below the CLI.

`tiny` is the `model:` section of configs/tiny.yaml (tests/ux/test_consistency.py keeps the
two equal), so weights made with it load into ``ipt-ms pretrain --config configs/tiny.yaml
--init ...``.
"""

from __future__ import annotations

from ipt_ms.spec import IPTSpec
from ipt_ms.tasks import parse_task

PRESETS = ("pretrain", "sr_x2", "sr_x3", "sr_x4", "denoise_30", "denoise_50", "derain", "tiny")

TINY_MODEL = {"task_names": ("sr_x2", "denoise_30"), "n_feats": 16, "patch_size": 24, "patch_dim": 3,
              "num_heads": 2, "num_layers": 1}


def preset_spec(preset: str) -> IPTSpec:
    """The architecture of a --preset (before --tasks/--n-feats/... overrides)."""
    if preset == "pretrain":
        return IPTSpec.pretrain()
    if preset == "tiny":
        tasks = TINY_MODEL["task_names"]
        return IPTSpec(scales=tuple(parse_task(t).scale for t in tasks), num_queries=len(tasks), **TINY_MODEL)
    return IPTSpec.official(preset)
