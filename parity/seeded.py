"""Seeded IPT weights with the official initialisation (for demos, tests and parity runs)."""

from __future__ import annotations

import numpy as np
import torch

from ipt_ms.spec import IPTSpec
from parity.torch_ipt import TorchIPT


def seeded_state(spec: IPTSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Official-keyed float32 arrays of a freshly initialised twin (torch.manual_seed(seed))."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TorchIPT(spec)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def with_trained_layernorms(state: dict[str, np.ndarray], seed: int = 0, spread: float = 0.1) -> dict[str, np.ndarray]:
    """`state` with every LayerNorm weight and bias moved off its initial 1 / 0 (N(0, spread)).

    The official initialisation leaves them at exactly 1 and 0, as no trained checkpoint
    does; a check that a 1 % change or a weight/bias swap of a LayerNorm is caught needs
    values where such a change changes something (`parity.tamper`)."""
    rng = np.random.default_rng(seed)
    out = dict(state)
    for key in sorted(state):
        if ".norm" in key and key.endswith((".weight", ".bias")):
            out[key] = (state[key] + rng.normal(0.0, spread, state[key].shape)).astype(np.float32)
    return out
