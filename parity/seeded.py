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
