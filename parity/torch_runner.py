"""Load official/converted weights into the PyTorch twin and run it like the MindSpore side."""

from __future__ import annotations

import numpy as np
import torch

from ipt_ms.errors import IPTError
from ipt_ms.spec import IPTSpec
from parity.torch_ipt import TorchIPT


def build_torch_model(spec: IPTSpec, state: dict[str, np.ndarray] | None = None) -> TorchIPT:
    """PyTorch twin for `spec` in eval mode, loading official-keyed arrays with strict=True."""
    model = TorchIPT(spec)
    if state is not None:
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
        model.load_state_dict(tensors, strict=True)
    return model.eval()


def load_torch_model(weights: str, **overrides) -> tuple[TorchIPT, IPTSpec]:
    """One-call loader for any weights file (.pt/.pth/.safetensors/.ckpt) into the twin."""
    from ipt_ms.convert.weights import load_weights

    spec, state = load_weights(weights, **overrides)
    return build_torch_model(spec, state), spec


class TorchPredictor:
    """Runs batches of input tiles through the PyTorch twin for one task (numpy in/out)."""

    framework = "torch"

    def __init__(self, model: TorchIPT, spec: IPTSpec, task: str | int, batch_size: int = 64,
                 progress: bool = False, device: str = "cpu"):
        if batch_size < 1:
            raise IPTError(f"batch size must be >= 1, got {batch_size}")
        self.model, self.spec = model.to(device).eval(), spec
        self.task_idx = spec.task_index(task)
        self.scale = spec.scales[self.task_idx]
        self.batch_size, self.progress, self.device = batch_size, progress, device

    @torch.no_grad()
    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        from ipt_ms.inference import run_batches

        def call(chunk: np.ndarray) -> np.ndarray:
            return self.model(torch.from_numpy(chunk).to(self.device), self.task_idx).float().cpu().numpy()

        return run_batches(tiles, call, step=self.batch_size, scale=self.scale, progress=self.progress)
