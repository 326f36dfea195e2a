"""The named architectures `make-weights --preset` and `doctor` build: one table, below the CLI.

`tiny` is `IPTSpec.tiny`, the one small model; it is also the `model:` section of configs/tiny.yaml
(tests/ux/test_consistency.py keeps the two equal), so weights made with it load into
``ipt-ms pretrain --config configs/tiny.yaml --init ...``.
"""

from __future__ import annotations

from ipt_ms.spec import IPTSpec

PRESETS = ("pretrain", "sr_x2", "sr_x3", "sr_x4", "denoise_30", "denoise_50", "derain", "tiny")


def preset_spec(preset: str) -> IPTSpec:
    """The architecture of a --preset (before --tasks/--n-feats/... overrides)."""
    if preset == "pretrain":
        return IPTSpec.pretrain()
    if preset == "tiny":
        return IPTSpec.tiny()
    return IPTSpec.official(preset)
