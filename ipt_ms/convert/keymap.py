"""Declarative key map between the official PyTorch state_dict and the MindSpore network.

Both networks use the same module tree, so almost every key is identical. The table
below lists the only differences; it is read in both directions. Keys not covered by a
row keep their name. `position_ids` is a PyTorch buffer that MindSpore does not store;
it is rebuilt from the spec (it is always ``arange(num_patches)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ipt_ms.errors import WeightsMismatchError
from ipt_ms.spec import IPTSpec


@dataclass(frozen=True)
class LeafRename:
    """Parameters of modules whose path matches `module` rename their leaf."""

    module: str  # regex, full match on the module path (key without its leaf)
    torch_leaf: str
    mindspore_leaf: str
    why: str


KEY_MAP: tuple[LeafRename, ...] = (
    LeafRename(r"body\.(encoder|decoder)\.layers\.\d+\.norm[123]", "weight", "gamma", "nn.LayerNorm scale"),
    LeafRename(r"body\.(encoder|decoder)\.layers\.\d+\.norm[123]", "bias", "beta", "nn.LayerNorm shift"),
    LeafRename(r"body\.query_embed", "weight", "embedding_table", "nn.Embedding table"),
    LeafRename(r"body\.position_encoding\.pe", "weight", "embedding_table", "nn.Embedding table"),
)

#: PyTorch-only buffers: dropped going to MindSpore, rebuilt going back.
TORCH_ONLY_BUFFERS = ("body.position_encoding.position_ids",)


def _rename(key: str, to_mindspore: bool) -> str:
    module, _, leaf = key.rpartition(".")
    for row in KEY_MAP:
        src, dst = (row.torch_leaf, row.mindspore_leaf) if to_mindspore else (row.mindspore_leaf, row.torch_leaf)
        if leaf == src and re.fullmatch(row.module, module):
            return f"{module}.{dst}"
    return key


def mindspore_key(torch_key: str) -> str | None:
    """MindSpore parameter name for an official PyTorch key (None for torch-only buffers)."""
    return None if torch_key in TORCH_ONLY_BUFFERS else _rename(torch_key, to_mindspore=True)


def torch_key(mindspore_key: str) -> str:
    """Official PyTorch key for a MindSpore parameter name."""
    return _rename(mindspore_key, to_mindspore=False)


def mindspore_shapes(spec: IPTSpec) -> dict[str, tuple[int, ...]]:
    """Every MindSpore parameter name and shape for `spec` (official order)."""
    return {mindspore_key(k): s for k, s in spec.torch_state_shapes().items() if k not in TORCH_ONLY_BUFFERS}


def check_shapes(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]],
                 tolerate_missing: tuple[str, ...] = (), context: str = "weights") -> None:
    """Raise WeightsMismatchError listing missing, unexpected and mis-shaped keys."""
    missing = [k for k in expected if k not in found and k not in tolerate_missing]
    unexpected = [k for k in found if k not in expected]
    mismatched = [(k, expected[k], tuple(found[k])) for k in expected
                  if k in found and tuple(found[k]) != tuple(expected[k])]
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(missing, unexpected, mismatched, context=context)


def torch_to_mindspore(state: dict[str, np.ndarray], spec: IPTSpec) -> dict[str, np.ndarray]:
    """Official-keyed arrays -> MindSpore-named arrays, after checking every key and shape."""
    check_shapes({k: v.shape for k, v in state.items()}, spec.torch_state_shapes(),
                 tolerate_missing=TORCH_ONLY_BUFFERS, context="PyTorch weights")
    return {mindspore_key(k): state[k] for k in spec.torch_state_shapes() if k not in TORCH_ONLY_BUFFERS}


def mindspore_to_torch(params: dict[str, np.ndarray], spec: IPTSpec) -> dict[str, np.ndarray]:
    """MindSpore-named arrays -> official-keyed arrays in the official order."""
    check_shapes({k: v.shape for k, v in params.items()}, mindspore_shapes(spec), context="MindSpore weights")
    out = {}
    for key, shape in spec.torch_state_shapes().items():
        if key in TORCH_ONLY_BUFFERS:
            out[key] = np.arange(shape[-1], dtype=np.int64).reshape(shape)
        else:
            out[key] = params[mindspore_key(key)]
    return out
